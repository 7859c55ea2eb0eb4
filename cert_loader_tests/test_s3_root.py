"""An s3:// data root (issue 15 point 3): a load, the sensor and the errors against a local moto server."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from cert_loader.data_root import S3Path, data_root, redact
from cert_loader.errors import InputError
from cert_loader.inputs import DistrictPaths, read_validation_gate
from cert_loader.sample import generate_district
from cert_loader_tests.fix_cli import run_cli
from cert_loader_tests.fix_district import district_rows, new_district
from cert_loader_tests.fix_s3 import list_keys, s3_bucket, s3_env, s3_server, upload_tree  # noqa: F401 (fixtures)

PG = "ids,hcp1,hcp2,adb"


def uploaded(tmp_path: Path, endpoint: str, bucket: str, **kwargs) -> tuple[str, str]:
    """A sample district generated in a scratch directory, uploaded, the scratch removed: (district, root URL)."""
    district = new_district()
    scratch = tmp_path / "scratch"
    generate_district(scratch, district, **kwargs)
    upload_tree(endpoint, scratch, bucket, "state")
    subprocess.run(["rm", "-rf", str(scratch)], check=True)
    return district, f"s3://{bucket}/state"


def cli(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    return run_cli(*args, cwd=cwd, env=env)


def load_env(sample_stores, endpoint: str, root: str, **override: str) -> dict[str, str]:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": str(Path(__file__).parents[1]),
           "CERT_DATA_ROOT": root, **s3_env(endpoint, **override)}
    env.update({f"CERT_{s.upper()}_URL": u for s, u in sample_stores.items()})
    return env


def test_cli_load_from_the_bucket(tmp_path, s3_server, s3_bucket, sample_stores, no_prepared_left) -> None:
    district, root = uploaded(tmp_path, s3_server, s3_bucket, students=20)
    cwd = tmp_path / "empty"
    cwd.mkdir()
    load = cli(["load", district, "--stores", PG], cwd, load_env(sample_stores, s3_server, root))
    assert load.returncode == 0, load.stderr + load.stdout
    assert "✓ CERT Load Complete" in load.stdout
    assert list(cwd.iterdir()) == []  # nothing written, nothing copied locally
    assert "testing-secret-key" not in load.stdout + load.stderr
    report_key = f"state/data/loads/{district}/load-report.json"
    assert report_key in list_keys(s3_server, s3_bucket, "state")
    report = json.loads((data_root(root) / report_key.split("/", 1)[1]).read_text())
    assert report["overall_status"] == "SUCCESS"
    for store, url in sample_stores.items():
        loaded = {t: n for t, n in district_rows(url, district).items() if n}
        expected = {t["table"] if "." in t["table"] else t["table"]: t["records_loaded"]
                    for t in report["stores"][store]["tables"] if t["records_loaded"]}
        assert sum(loaded.values()) == sum(expected.values()) > 0, store


def test_sensor_sees_a_district_in_the_bucket(tmp_path, s3_server, s3_bucket) -> None:
    import dagster as dg

    from cert_loader.defs import build_definitions
    from cert_loader.defs.resources import CertDataResource
    from cert_loader.defs.sensors import SENSOR_NAME
    from cert_loader_tests.dagster_support import SAMPLE_MANIFEST

    district, root = uploaded(tmp_path, s3_server, s3_bucket, students=5)
    defs = build_definitions(SAMPLE_MANIFEST)
    sensor = defs.resolve_sensor_def(SENSOR_NAME)
    home = tmp_path / "dagster-home"
    home.mkdir()
    instance = dg.DagsterInstance.local_temp(str(home))
    with dg.build_sensor_context(instance=instance, instance_ref=instance.get_ref(), definitions=defs,
                                 resources={"cert_data": CertDataResource(data_root=root)}) as context:
        data = sensor.evaluate_tick(context)
    assert [r.partition_key for r in data.run_requests] == [district]


def test_missing_object_and_unreachable_endpoint_are_named(tmp_path, s3_server, s3_bucket, monkeypatch) -> None:
    root = data_root(f"s3://{s3_bucket}/nowhere")
    assert isinstance(root, S3Path)
    with pytest.raises(InputError) as missing:
        read_validation_gate(DistrictPaths(root, "d1"))
    assert f"s3://{s3_bucket}/nowhere/data/anonymized/d1/validation-report.json" in str(missing.value)
    assert "not found" in str(missing.value) and missing.value.hint
    with pytest.raises(InputError) as absent:
        (root / "x.json").read_bytes()
    assert "not found" in str(absent.value) and "uploaded" in absent.value.hint
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # nothing listens on the discard port
    with pytest.raises(InputError) as down:
        (root / "x.json").read_bytes()
    assert f"s3://{s3_bucket}/nowhere/x.json" in str(down.value) and "AWS_ENDPOINT_URL" in down.value.hint


def test_redact_hides_user_info_and_secrets() -> None:
    assert redact("s3://AKIA:secret@bucket/p?secret_key=abc&x=1") == "s3://***@bucket/p?secret_key=***&x=1"
    assert str(data_root("s3://key:secret@bucket/prefix/")) == "s3://bucket/prefix"


def test_backup_load_and_restore_from_the_bucket(tmp_path, s3_server, s3_bucket, sample_stores, no_prepared_left) -> None:
    district, root = uploaded(tmp_path, s3_server, s3_bucket, students=10)
    cwd = tmp_path / "empty"
    cwd.mkdir()
    env = load_env(sample_stores, s3_server, root)
    first = cli(["load", district, "--stores", PG], cwd, env)
    assert first.returncode == 0, first.stderr + first.stdout
    before = {s: district_rows(u, district) for s, u in sample_stores.items()}
    second = cli(["load", district, "--stores", PG, "--strategy", "replace", "--backup"], cwd, env)
    assert second.returncode == 0, second.stderr + second.stdout
    report = json.loads((data_root(root) / "data" / "loads" / district / "load-report.json").read_text())
    run_id = report["load_run_id"]
    keys = list_keys(s3_server, s3_bucket, f"state/data/backups/{district}/{run_id}")
    assert f"state/data/backups/{district}/{run_id}/backup-manifest.json" in keys or any(
        k.endswith("manifest.json") for k in keys), keys
    assert any(k.endswith(".parquet") for k in keys)
    listed = cli(["backups", district, "--stores", PG, "--json"], cwd, env)
    assert listed.returncode == 0 and run_id in listed.stdout, listed.stderr
    restored = cli(["restore", district, "--run", run_id, "--stores", PG], cwd, env)
    assert restored.returncode == 0, restored.stderr + restored.stdout
    assert {s: district_rows(u, district) for s, u in sample_stores.items()} == before
    assert list(cwd.iterdir()) == []


def test_bad_credentials_are_named(tmp_path, s3_server, s3_bucket, sample_stores) -> None:
    district, root = uploaded(tmp_path, s3_server, s3_bucket, students=5)
    cwd = tmp_path / "empty"
    cwd.mkdir()
    set_auth(s3_server, "0")  # from now on the server checks keys (moto's IAM emulation knows none of ours)
    try:
        load = cli(["load", district, "--stores", PG], cwd,
                   load_env(sample_stores, s3_server, root, AWS_SECRET_ACCESS_KEY="not-the-secret"))
    finally:
        set_auth(s3_server, "inf")
    out = load.stdout + load.stderr
    assert load.returncode != 0
    assert f"s3://{s3_bucket}/state/data/anonymized/{district}/validation-report.json" in out, out
    assert "access refused" in out and "AWS_ACCESS_KEY_ID" in out, out
    assert "not-the-secret" not in out
    assert list(cwd.iterdir()) == []


def set_auth(endpoint: str, count: str) -> None:
    """moto's switch for checking credentials: ``0`` checks every request, ``inf`` none."""
    import urllib.request

    urllib.request.urlopen(urllib.request.Request(f"{endpoint}/moto-api/reset-auth", data=count.encode(), headers={"Content-Type": "text/plain"},
                                                  method="POST"), timeout=10).read()


def test_sample_snapshot_and_code_location_in_the_bucket(tmp_path, s3_server, s3_bucket, sample_stores,
                                                         monkeypatch, capsys) -> None:
    """`sample` and `snapshot` write into the bucket; the code location builds its assets from that manifest."""
    import importlib.util

    from cert_loader.cli import main
    from cert_loader_tests.dagster_support import SAMPLE_GRAPH

    district, root = new_district(), f"s3://{s3_bucket}/state"
    cwd = tmp_path / "empty"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    monkeypatch.setenv("CERT_DATA_ROOT", root)
    monkeypatch.delenv("CERT_SCHEMA_MANIFEST", raising=False)
    for store, url in sample_stores.items():
        monkeypatch.setenv(f"CERT_{store.upper()}_URL", url)
    monkeypatch.delenv("CERT_SP_URL", raising=False)

    assert main(["sample", district, "--students", "5"]) == 0
    keys = list_keys(s3_server, s3_bucket, "state")
    assert "state/data/analysis/extraction-order.json" in keys
    assert f"state/data/anonymized/{district}/validation-report.json" in keys
    assert f"state/data/anonymized/{district}/ids/edfi.student.parquet" in keys
    assert f"state/data/anonymized/{district}/sp/nodes.parquet" in keys
    assert main(["snapshot", "--stores", PG]) == 0
    assert f"wrote {root}/data/analysis/cert-schema.json" in capsys.readouterr().out
    assert "state/data/analysis/cert-schema.json" in list_keys(s3_server, s3_bucket, "state")
    assert list(cwd.iterdir()) == []  # nothing written locally

    spec = importlib.util.find_spec("cert_loader.definitions")  # the code location as `dagster dev` loads it,
    location = importlib.util.module_from_spec(spec)            # with this environment (not left in sys.modules)
    spec.loader.exec_module(location)
    assert location.manifest_path() == data_root(f"{root}/data/analysis/cert-schema.json")
    keys = {k.to_user_string() for k in location.defs.resolve_asset_graph().get_all_asset_keys()}
    assert keys == {k for k in SAMPLE_GRAPH if not k.startswith("cert/sp/")}  # no CERT_SP_URL: no graph assets
    assert location.defs.metadata["cert_loader/manifest"].value == f"{root}/data/analysis/cert-schema.json"
    # ... and the district sample wrote is readable from the bucket: the plan of a load of it.
    assert main(["plan", district, "--stores", PG]) == 0, capsys.readouterr().err
    assert district in capsys.readouterr().out
    assert list(cwd.iterdir()) == []


def test_missing_bucket_and_manifest_are_named(tmp_path, s3_server, s3_bucket, capsys) -> None:
    from cert_loader.cli import main
    from cert_loader.defs import build_definitions
    from cert_loader.manifest import read_manifest

    assert main(["sample", "d1", "--students", "1", "--data-root", "s3://no-such-bucket-x/state"]) == 2
    err = capsys.readouterr().err
    assert "s3://no-such-bucket-x/state/data/analysis/extraction-order.json" in err, err
    assert "bucket 'no-such-bucket-x' does not exist" in err, err
    url = f"s3://{s3_bucket}/none/data/analysis/cert-schema.json"
    with pytest.raises(InputError) as missing:
        read_manifest(url)
    assert f"schema manifest {url}: not found" in str(missing.value) and "cert-loader snapshot" in missing.value.hint
    defs = build_definitions(data_root(url))  # the code location loads, with no assets and what to do
    assert not defs.resolve_asset_graph().get_all_asset_keys()
    assert url in defs.metadata["cert_loader/manifest"].value
    assert "cert-loader snapshot" in defs.metadata["cert_loader/manifest"].value
