"""Issue 7, point 3: a recognizable password never shows in stdout, stderr, the load report or the Dagster event log."""

from __future__ import annotations


import dagster as dg
import pytest
from dagster._serdes import serialize_value

from cert_loader.config import LoaderConfig, PgStoreConfig
from cert_loader.defs.assets import build_cert_asset
from cert_loader.defs.resources import DATA_KEY, CertDataResource, PostgresStoreResource, resource_key
from cert_loader.defs.translator import build_specs
from cert_loader.inputs import DistrictPaths
from cert_loader.manifest import read_manifest
from cert_loader.stores.postgres import PgStore
from cert_loader_tests.dagster_support import instance_with, snapshot_to
from cert_loader_tests.fix_cli import run_cli

pytestmark = pytest.mark.usefixtures("no_prepared_left")
STUDENTS = 20
PG = "ids,hcp1,hcp2,adb"


def wrong_port(url: str) -> str:
    return url.replace(":5432/", ":1/")


def bad_percent(url: str) -> str:
    """The password followed by an invalid %-escape: libpq quotes the whole token in its error."""
    user, rest = url.split("@", 1)
    return f"{user}%zz@{rest}"


@pytest.fixture
def cli(loader_role, sample_stores, data_root, graph_config):
    """Run the CLI as the least-privilege role (password in every URL) and with the graph's password."""
    seen: list[str] = []

    def run(*args, env=None, district=None):
        base = loader_role.env(sample_stores, data_root)
        base.update(CERT_SP_URI=graph_config.uri, CERT_SP_USER=graph_config.user,
                    CERT_SP_PASSWORD=graph_config.password, CERT_SP_DATABASE=graph_config.database)
        proc = run_cli(*args, env={**base, **(env or {})}, timeout=180)
        seen.extend([proc.stdout, proc.stderr])
        if district is not None:
            seen.append(DistrictPaths(data_root, district).report_file.read_text())
        return proc

    run.seen = seen
    return run


def assert_clean(texts: list[str], *secrets: str) -> None:
    for secret in secrets:
        for text in texts:
            assert secret not in text, f"{secret!r} leaked: {text[max(0, text.find(secret) - 300):][:600]}"


def test_cli_never_prints_a_password(cli, make_district, loader_role, graph_config, sample_stores):
    district = make_district(students=STUDENTS)
    every = "ids,hcp1,hcp2,adb,sp"
    plan = cli("plan", district, "--stores", every)
    assert plan.returncode == 0, plan.stdout + plan.stderr
    assert f"{loader_role.name}:***@" in plan.stdout

    ok = cli("-v", "load", district, "--stores", every, district=district)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    again = cli("load", district, "--stores", every, "--json", district=district)  # insert again: refused by a key
    assert again.returncode == 1 and '"overall_status": "FAILED"' in again.stdout

    port = cli("load", district, "--stores", PG, district=district,
               env={"CERT_HCP1_URL": wrong_port(loader_role.url(sample_stores["hcp1"]))})
    assert port.returncode == 1 and "cannot connect to" in port.stdout and "port 1 failed" in port.stdout
    percent = cli("load", district, "--stores", PG, district=district,
                  env={"CERT_IDS_URL": bad_percent(loader_role.url(sample_stores["ids"]))})
    assert percent.returncode == 1 and "invalid percent-encoded token" in percent.stdout
    graph = cli("load", district, "--stores", every, district=district,
                env={"CERT_SP_PASSWORD": loader_role.password + "-graph"})
    assert graph.returncode == 1 and "authentication failed" in graph.stdout

    for args in (["unload", district, "--stores", every], ["recover", "--stores", every],
                 ["mark", "--stores", PG], ["grants", "--role", "x", "--stores", PG]):
        cli(*args)
    assert len(cli.seen) == 2 * 10 + 5
    assert_clean(cli.seen, loader_role.password, graph_config.password)


def test_driver_messages_are_scrubbed(loader_role, sample_stores):
    """At the source: the connection error of PgStore and the config's repr (every conninfo form: test_config.py)."""
    url = bad_percent(loader_role.url(sample_stores["ids"]))
    store = PgStore(PgStoreConfig("ids", url))
    with pytest.raises(Exception) as info:
        store.connect()
    assert "invalid percent-encoded token" in str(info.value)
    assert_clean([str(info.value), repr(PgStoreConfig("ids", url)), repr(LoaderConfig(".", {"ids": PgStoreConfig("ids", url)}))],
                 loader_role.password)


@pytest.fixture(scope="module")
def asset(sample_stores, tmp_path_factory):
    manifest = snapshot_to(sample_stores, tmp_path_factory.mktemp("manifest") / "cert-schema.json")
    return build_cert_asset(build_specs(read_manifest(manifest)), manifest)


def event_log_text(instance: dg.DagsterInstance, run_id: str) -> list[str]:
    """Every record of the run's event log (messages, metadata, errors with causes) and the run itself, as text."""
    return [serialize_value(e) for e in instance.all_logs(run_id)] + [serialize_value(instance.get_run_by_id(run_id))]


def test_dagster_event_log_never_holds_a_password(asset, loader_role, sample_stores, data_root, make_district,
                                                  monkeypatch):
    district = make_district(students=STUDENTS)
    resources = {resource_key(n): PostgresStoreResource(url=dg.EnvVar(f"CERT_{n.upper()}_URL")) for n in sample_stores}
    resources[DATA_KEY] = CertDataResource(data_root=str(data_root))
    texts: list[str] = []
    for name, url in loader_role.urls(sample_stores).items():
        monkeypatch.setenv(f"CERT_{name.upper()}_URL", url)
    for attempt in ("success", "wrong port", "refused key"):
        if attempt == "wrong port":
            monkeypatch.setenv("CERT_ADB_URL", wrong_port(loader_role.url(sample_stores["adb"])))
        if attempt == "refused key":
            monkeypatch.setenv("CERT_ADB_URL", loader_role.url(sample_stores["adb"]))
        instance = instance_with([district])
        result = dg.materialize([asset], partition_key=district, instance=instance, resources=resources,
                                raise_on_error=False)
        assert result.success == (attempt == "success"), attempt
        log = event_log_text(instance, result.run_id)
        if attempt == "wrong port":
            assert any(f"{loader_role.name}:***@127.0.0.1:1/" in t for t in log)
        texts += log
        texts.append(DistrictPaths(data_root, district).report_file.read_text())
    assert_clean(texts, loader_role.password)
