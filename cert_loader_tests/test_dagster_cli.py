"""The shell path: dagster.yaml on PostgreSQL, `cert-loader register`, then `dagster asset materialize … --partition D` (issue 3, point 8)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import dagster as dg
import pytest
from dagster_postgres.event_log.event_log import PostgresEventLogStorage

from cert_loader_tests.dagster_support import (
    VENV_BIN, cert_env, dagster_instance_env, snapshot_to, subprocess_env,
)
from cert_loader_tests.fix_district import store_snapshot

pytestmark = [pytest.mark.dagster_cli, pytest.mark.usefixtures("no_prepared_left")]


@pytest.fixture(scope="module")
def instance_env(make_database, tmp_path_factory) -> dict[str, str]:
    """A DAGSTER_HOME with the project's dagster.yaml, its storage in a database of this session."""
    return dagster_instance_env(tmp_path_factory.mktemp("dagster_home"), make_database("dagster_cli", mark=False))


def run(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(args, env=env, cwd=cwd, capture_output=True, text=True, timeout=120)


def test_dagster_yaml_storage_and_run_queue(instance_env, monkeypatch) -> None:
    monkeypatch.setenv("DAGSTER_PG_URL", instance_env["DAGSTER_PG_URL"])
    with dg.DagsterInstance.from_config(instance_env["DAGSTER_HOME"]) as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        storage = instance.event_log_storage
        assert type(storage).__name__ == "PooledPostgresEventLogStorage"
        assert isinstance(storage, PostgresEventLogStorage) and storage.supports_asset_checks
        coordinator = instance.run_coordinator
        assert type(coordinator).__name__ == "QueuedRunCoordinator"
        per_value = {"applyLimitPerUniqueValue": True}
        concurrency = instance.get_concurrency_config()  # what the daemon's run queue reads
        assert concurrency.run_queue_config.max_concurrent_runs == 4
        assert concurrency.run_queue_config.tag_concurrency_limits == [
            {"key": "dagster/partition", "value": per_value, "limit": 1},
            *({"key": f"cert_loader/server.{store}", "value": per_value, "limit": 4}
              for store in ("ids", "hcp1", "hcp2", "adb", "sp")),
        ]
        pools = concurrency.pool_config
        assert (pools.pool_granularity.value, pools.default_pool_limit) == ("run", 4)
        instance.add_dynamic_partitions("district", ["probe"])
        assert "probe" in instance.get_dynamic_partitions("district")


def test_register_then_materialize_from_the_shell(instance_env, sample_stores, make_district, data_root, tmp_path,
                                                  monkeypatch) -> None:
    monkeypatch.setenv("DAGSTER_PG_URL", instance_env["DAGSTER_PG_URL"])
    manifest = snapshot_to(sample_stores, data_root / "data" / "analysis" / "cert-schema.json")
    district = make_district(students=50)
    env = subprocess_env(**instance_env, **cert_env(sample_stores, data_root))
    assert manifest.is_file()  # found through CERT_DATA_ROOT, as a user's shell would

    out = run([str(VENV_BIN / "cert-loader"), "register", district, "d-other"], env, tmp_path)
    assert out.returncode == 0, out.stderr
    assert f"{district}: added" in out.stdout
    out = run([str(VENV_BIN / "cert-loader"), "register", district], env, tmp_path)
    assert f"{district}: already registered" in out.stdout

    out = run([str(VENV_BIN / "dagster"), "asset", "materialize", "-m", "cert_loader.definitions",
               "--select", "tag:store=ids", "--partition", district], env, tmp_path)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    rows = store_snapshot(sample_stores, district)
    assert all(n > 0 for n in rows["ids"].values())
    assert not any(n for store in ("hcp1", "hcp2", "adb") for n in rows[store].values())

    with dg.DagsterInstance.from_config(instance_env["DAGSTER_HOME"]) as instance:
        student = instance.get_latest_materialization_event(dg.AssetKey(["cert", "ids", "edfi__student"]))
        assert student.asset_materialization.partition == district
        assert student.asset_materialization.metadata["cert_loader/rows"].value == rows["ids"]["edfi.student"]
        assert instance.get_latest_materialization_event(dg.AssetKey(["cert", "hcp1", "clinic"])) is None


def test_register_needs_dagster_home(tmp_path) -> None:
    out = run([str(VENV_BIN / "cert-loader"), "register", "d1"], subprocess_env(), tmp_path)
    assert out.returncode == 2 and "DAGSTER_HOME is not set" in out.stderr
