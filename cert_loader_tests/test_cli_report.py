"""A `cert-loader load` shows in Dagster (issue 14, point 7): materializations and check results of the district partition."""

from __future__ import annotations

import subprocess
from pathlib import Path

import dagster as dg
import pytest

from cert_loader.defs.cli_report import LOADED_BY
from cert_loader.defs.translator import build_specs
from cert_loader.manifest import read_manifest
from cert_loader_tests.dagster_support import (
    VENV_BIN, cert_env, dagster_instance_env, snapshot_to, subprocess_env,
)
from cert_loader_tests.fix_district import store_snapshot

pytestmark = [pytest.mark.dagster_cli, pytest.mark.usefixtures("no_prepared_left")]


@pytest.fixture(scope="module")
def instance_env(make_database, tmp_path_factory) -> dict[str, str]:
    return dagster_instance_env(tmp_path_factory.mktemp("dagster_home"), make_database("dagster_clirep", mark=False))


def _load(district: str, env: dict[str, str], cwd: Path, *flags: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(VENV_BIN / "cert-loader"), "load", district, "--stores", "ids,hcp1,hcp2,adb", *flags],
                          env=env, cwd=cwd, capture_output=True, text=True, timeout=300, check=False)


def _latest(instance: dg.DagsterInstance, key: dg.AssetKey, district: str):
    records = instance.fetch_materializations(dg.AssetRecordsFilter(asset_key=key, asset_partitions=[district]),
                                              limit=1).records
    return records[0] if records else None


def test_a_cli_load_is_reported_to_the_instance(instance_env, sample_stores, make_district, data_root, tmp_path,
                                                monkeypatch) -> None:
    monkeypatch.setenv("DAGSTER_PG_URL", instance_env["DAGSTER_PG_URL"])
    manifest = snapshot_to(sample_stores, data_root / "data" / "analysis" / "cert-schema.json")
    district = make_district(students=50)
    env = subprocess_env(**instance_env, **cert_env(sample_stores, data_root))

    out = _load(district, env, tmp_path)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
    rows = store_snapshot(sample_stores, district)
    loaded = {(store, table): n for store, tables in rows.items() for table, n in tables.items() if n}
    cert = build_specs(read_manifest(manifest))
    assert f"reported to Dagster: {len(loaded)} materializations" in out.stderr

    with dg.DagsterInstance.from_config(instance_env["DAGSTER_HOME"]) as instance:
        assert district in instance.get_dynamic_partitions("district")  # added by the load
        for (store, table), n in loaded.items():
            key = cert.key_of(store, table)
            record = _latest(instance, key, district)
            assert record is not None, f"{key.to_user_string()}: no materialization of {district}"
            meta = record.asset_materialization.metadata
            assert meta["cert_loader/rows"].value == n
            assert meta["dagster/row_count"].value == n
            assert meta["cert_loader/transaction"].value == "PREPARED-then-COMMITTED"
            assert meta["cert_loader/loaded_by"].value == LOADED_BY
            for check in ("row_count", "fk_integrity"):
                history = instance.event_log_storage.get_asset_check_execution_history(
                    dg.AssetCheckKey(key, check), limit=1)
                assert history, f"{key.to_user_string()}: no {check} evaluation"
                evaluation = history[0].event.dagster_event.event_specific_data
                assert evaluation.passed and evaluation.partition == district
                assert evaluation.target_materialization_data.storage_id == record.storage_id


def test_switched_off_or_without_a_manifest_the_load_is_unaffected(instance_env, sample_stores, make_district,
                                                                   data_root, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("DAGSTER_PG_URL", instance_env["DAGSTER_PG_URL"])
    env = subprocess_env(**instance_env, **cert_env(sample_stores, data_root))
    key = dg.AssetKey(["cert", "hcp1", "clinic"])

    no_manifest = make_district(students=20)
    out = _load(no_manifest, env, tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "not reported to Dagster: no schema manifest at" in out.stderr

    snapshot_to(sample_stores, data_root / "data" / "analysis" / "cert-schema.json")
    off = make_district(students=20)
    out = _load(off, env, tmp_path, "--no-report-to-dagster")
    assert out.returncode == 0 and "Dagster" not in out.stderr, out.stderr[-3000:]

    unreachable = make_district(students=20)
    bad = {**env, "DAGSTER_PG_URL": "postgresql+psycopg2://nobody@127.0.0.1:1/none"}
    out = _load(unreachable, bad, tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "not reported to Dagster (" in out.stderr and "the load itself is committed" in out.stderr
    assert all(n > 0 for n in store_snapshot(sample_stores, unreachable)["hcp1"].values())

    with dg.DagsterInstance.from_config(instance_env["DAGSTER_HOME"]) as instance:
        for district in (no_manifest, off, unreachable):
            assert _latest(instance, key, district) is None
