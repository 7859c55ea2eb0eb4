"""`dg launch --assets … --partition D` from the repository root, the successor of `dagster asset materialize` (issue 14, point 8)."""

from __future__ import annotations

import subprocess

import dagster as dg
import pytest

from cert_loader_tests.dagster_support import (
    REPO, VENV_BIN, cert_env, dagster_instance_env, snapshot_to, subprocess_env,
)
from cert_loader_tests.fix_district import store_snapshot

pytestmark = [pytest.mark.dagster_cli, pytest.mark.usefixtures("no_prepared_left")]


def test_dg_launch_materializes_a_registered_district(make_database, sample_stores, make_district, data_root,
                                                      tmp_path, monkeypatch) -> None:
    instance_env = dagster_instance_env(tmp_path / "dagster_home", make_database("dg_launch", mark=False))
    monkeypatch.setenv("DAGSTER_PG_URL", instance_env["DAGSTER_PG_URL"])
    snapshot_to(sample_stores, data_root / "data" / "analysis" / "cert-schema.json")
    district = make_district(students=50)
    env = subprocess_env(**instance_env, **cert_env(sample_stores, data_root))
    out = subprocess.run([str(VENV_BIN / "cert-loader"), "register", district], env=env, cwd=tmp_path,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr

    # From the repository root, as the README says: [tool.dg] in pyproject.toml names the code location.
    out = subprocess.run([str(VENV_BIN / "dg"), "launch", "--assets", "tag:store=ids", "--partition", district],
                         env=env, cwd=REPO, capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    rows = store_snapshot(sample_stores, district)
    assert all(n > 0 for n in rows["ids"].values())
    assert not any(n for store in ("hcp1", "hcp2", "adb") for n in rows[store].values())

    with dg.DagsterInstance.from_config(instance_env["DAGSTER_HOME"]) as instance:
        run = instance.get_runs(limit=1)[0]
        assert run.status == dg.DagsterRunStatus.SUCCESS and run.tags["dagster/partition"] == district
        student = instance.get_latest_materialization_event(dg.AssetKey(["cert", "ids", "edfi__student"]))
        assert student.asset_materialization.partition == district
        assert student.asset_materialization.metadata["cert_loader/rows"].value == rows["ids"]["edfi.student"]


def test_dg_sees_the_project(tmp_path) -> None:
    """`dg` finds the project config in pyproject.toml and lists the code location's sensors from any directory."""
    env = subprocess_env(CERT_SCHEMA_MANIFEST=str(REPO / "cert_loader_tests" / "sample-manifest.json"),
                         COLUMNS="200")
    out = subprocess.run([str(VENV_BIN / "dg"), "list", "defs", "--json", "--target-path", str(REPO)],
                         env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert '"validation_report_sensor"' in out.stdout and '"cert_recovery_sensor"' in out.stdout
    assert '"cert/ids/school"' in out.stdout
