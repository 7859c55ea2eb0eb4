"""Settings (config.py): CERT_* read once into frozen values, every printed form redacted, driver messages scrubbed."""

from __future__ import annotations

import dataclasses
import secrets
from pathlib import Path

import pytest

from cert_loader.config import GraphConfig, LoaderConfig, PgStoreConfig, redact_url, scrub, url_secrets
from cert_loader.errors import ConfigError

PW = f"S3cret-{secrets.token_hex(4)}"
ENV = {
    "CERT_IDS_URL": f"postgresql://loader:{PW}@db1:5432/cert_ids",
    "CERT_HCP1_URL": " postgresql://loader@db1/cert_hcp1 ",
    "CERT_HCP2_URL": f"host=db2 dbname=cert_hcp2 password={PW}",
    "CERT_ADB_URL": f"postgresql://db3/cert_adb?sslmode=require&password={PW}",
    "CERT_SP_URI": "bolt://graph:7687",
    "CERT_SP_PASSWORD": PW,
}


def test_every_store_from_the_environment():
    config = LoaderConfig.from_env(ENV)
    assert list(config.pg) == ["ids", "hcp1", "hcp2", "adb"]
    assert config.pg["hcp1"].url == "postgresql://loader@db1/cert_hcp1"  # surrounding blanks dropped
    assert config.graph == GraphConfig("bolt://graph:7687", "neo4j", PW, "neo4j")  # user and database default
    assert config.data_root == Path(".")
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.pg["ids"].url = "postgresql://elsewhere/x"


def test_data_root_argument_then_variable_then_working_directory():
    assert LoaderConfig.from_env({**ENV, "CERT_DATA_ROOT": "/srv/cert"}).data_root == Path("/srv/cert")
    assert LoaderConfig.from_env({**ENV, "CERT_DATA_ROOT": "/srv/cert"}, data_root="/tmp/x").data_root == Path("/tmp/x")


def test_only_the_selected_stores_are_required():
    config = LoaderConfig.from_env({"CERT_HCP2_URL": ENV["CERT_HCP2_URL"]}, stores=("hcp2",))
    assert list(config.pg) == ["hcp2"] and config.graph is None


def test_every_missing_variable_is_named_at_once():
    env = {k: v for k, v in ENV.items() if k not in ("CERT_IDS_URL", "CERT_SP_URI")} | {"CERT_ADB_URL": "  "}
    with pytest.raises(ConfigError) as info:
        LoaderConfig.from_env(env)
    message = str(info.value)
    assert "environment variable(s) CERT_IDS_URL, CERT_ADB_URL, CERT_SP_URI not set" in message
    assert "pass --stores to load fewer stores" in message


def test_an_unknown_store_is_refused():
    with pytest.raises(ConfigError, match="unknown store\\(s\\) hcp3; choose from ids, hcp1, hcp2, adb, sp"):
        LoaderConfig.from_env(ENV, stores=("ids", "hcp3"))


def test_every_printed_form_is_redacted():
    config = LoaderConfig.from_env(ENV)
    redacted = config.redacted()
    assert redacted == {
        "ids": "postgresql://loader:***@db1:5432/cert_ids",
        "hcp1": "postgresql://loader@db1/cert_hcp1",
        "hcp2": "host=db2 dbname=cert_hcp2 password=***",
        "adb": "postgresql://db3/cert_adb?sslmode=require&password=***",
        "sp": "bolt://graph:7687 (user neo4j, database neo4j)",
    }
    for text in (repr(config), str(config), repr(config.pg["ids"]), repr(config.graph), str(redacted)):
        assert PW not in text, text
    assert repr(config.pg["ids"]) == "PgStoreConfig(name='ids', url='postgresql://loader:***@db1:5432/cert_ids')"


@pytest.mark.parametrize("conninfo,secret", [
    (f"host=127.0.0.1 password={PW} user=x", PW),
    (f"host=127.0.0.1 password = '{PW} x' user=x", f"{PW} x"),
    (f"host=127.0.0.1 PASSWORD='it\\'s {PW}'", f"it\\'s {PW}"),
    (f"postgresql://x@h/db?sslmode=disable&password={PW}", PW),
    (f"postgresql://x:{PW}@[::1/db", PW),  # urlsplit refuses it: the fallback still hides the password
    (f"postgresql://x:{PW}%21@h/db", f"{PW}!"),  # percent-encoded in the URL, decoded in a driver message
])
def test_redact_and_scrub_every_conninfo_form(conninfo, secret):
    assert PW not in redact_url(conninfo)
    scrubbed = scrub(f'error: "{conninfo}" and "{secret}"', conninfo)
    assert PW not in scrubbed and "***" in scrubbed


def test_url_secrets_as_written_and_decoded_longest_first():
    assert url_secrets(f"postgresql://u:{PW}%2Fx@h/db") == [f"{PW}%2Fx", f"{PW}/x"]
    assert url_secrets("postgresql://u@h/db") == []
    assert redact_url("postgresql://u@h:5/db?sslmode=require") == "postgresql://u@h:5/db?sslmode=require"


def test_a_store_scrubs_its_own_password_out_of_a_driver_message():
    store = PgStoreConfig("ids", ENV["CERT_IDS_URL"])
    message = f'connection to server failed: password authentication failed for "{ENV["CERT_IDS_URL"]}" ({PW})'
    assert store.scrub(message) == ('connection to server failed: password authentication failed for '
                                    '"postgresql://loader:***@db1:5432/cert_ids" (***)')
