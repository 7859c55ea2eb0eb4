"""Undo through the product (issue 13): `load --backup`, `ENABLE_CERT_BACKUP`, `backups`, `restore`, crashes and recovery."""

from __future__ import annotations

import json
import subprocess

import psycopg
import pytest

from cert_loader.backup.layout import backups_dir
from cert_loader.engine import LoadOptions, load_district
from cert_loader.inputs import DistrictPaths
from cert_loader_tests.fix_backup import (
    contents,
    graph_contents,
    second_extract,
)
from cert_loader_tests.fix_cli import (
    cli_env,
    env_stores,
    kill,
    paused_command,
    paused_load,
    run_cli,
)

STUDENTS = 30


def _cli(args, env, timeout=300):
    return run_cli(*args, "--stores", env_stores(env), env=env, timeout=timeout)


def _state(sample_stores, graph_config, district):
    return {s: contents(u, district) for s, u in sample_stores.items()}, graph_contents(graph_config, district)


def _report(data_root, district) -> dict:
    return json.loads(DistrictPaths(data_root, district).report_file.read_text())


@pytest.fixture
def v1(make_district, sample_stores, data_root, graph_config):
    """A district loaded once (v1), its state, and the CLI's environment; its files then become v2."""
    district = make_district(students=STUDENTS)
    env = cli_env(sample_stores, data_root, graph_config)
    done = _cli(["load", district], env)
    assert done.returncode == 0, done.stdout + done.stderr
    state = _state(sample_stores, graph_config, district)
    second_extract(data_root, district)
    return district, env, state


def test_load_backup_then_restore_through_the_cli(v1, sample_stores, data_root, graph_config):
    district, env, before = v1
    done = _cli(["load", district, "--strategy", "merge", "--backup"], env)
    assert done.returncode == 0, done.stdout + done.stderr
    report = _report(data_root, district)
    run_id, backup = report["load_run_id"], report["backup"]
    assert backup["rows"] > 0 and backup["bytes"] > 0 and backup["seconds"] >= 0 and backup["path"].endswith(run_id)
    assert "Backup:" in done.stdout and f"--run {run_id}" in done.stdout
    assert _state(sample_stores, graph_config, district) != before
    listed = _cli(["backups", district, "--json"], env)
    [entry] = json.loads(listed.stdout)
    assert entry["run_id"] == run_id and entry["restorable"] and entry["committed"] and entry["strategy"] == "merge"
    restored = _cli(["restore", district, "--run", run_id], env)
    assert restored.returncode == 0, restored.stdout + restored.stderr
    assert _state(sample_stores, graph_config, district) == before
    report = _report(data_root, district)
    assert report["strategy"] == "restore" and report["overall_status"] == "SUCCESS"
    assert report["stores"]["ids"]["transaction"] == "PREPARED-then-COMMITTED"
    assert not (backups_dir(data_root, district) / run_id / "data" / "loads").exists()


def test_enable_cert_backup_without_the_flag_and_keep(v1, data_root):
    district, env, _ = v1
    env = {**env, "ENABLE_CERT_BACKUP": "true"}
    for _ in range(3):
        done = _cli(["load", district, "--strategy", "replace", "--keep", "2"], env)
        assert done.returncode == 0, done.stdout + done.stderr
        assert _report(data_root, district)["backup"]["rows"] > 0
    assert len(list(backups_dir(data_root, district).iterdir())) == 2
    off = _cli(["load", district, "--strategy", "replace", "--no-backup"], env)
    assert off.returncode == 0 and "backup" not in _report(data_root, district)
    bad = _cli(["load", district, "--strategy", "replace"], {**env, "ENABLE_CERT_BACKUP": "maybe"})
    assert bad.returncode == 2 and "ENABLE_CERT_BACKUP" in bad.stderr


def test_restore_over_a_later_load_needs_force(v1, sample_stores, data_root, graph_config):
    district, env, before = v1
    first = _cli(["load", district, "--strategy", "upsert", "--backup"], env)
    assert first.returncode == 0, first.stderr
    run_id = _report(data_root, district)["load_run_id"]
    later = _cli(["load", district, "--strategy", "replace"], env)
    assert later.returncode == 0, later.stderr
    later_id = _report(data_root, district)["load_run_id"]
    now = _state(sample_stores, graph_config, district)
    refused = _cli(["restore", district, "--run", run_id], env)
    assert refused.returncode == 1 and later_id in refused.stdout and "--force" in refused.stdout
    assert _state(sample_stores, graph_config, district) == now
    forced = _cli(["restore", district, "--run", run_id, "--force"], env)
    assert forced.returncode == 0, forced.stdout + forced.stderr
    assert _state(sample_stores, graph_config, district) == before


def test_a_failed_backup_fails_the_load_and_writes_nothing(v1, sample_stores, data_root, graph_config):
    district, _, _ = v1
    with psycopg.connect(sample_stores["ids"], autocommit=True) as conn:
        conn.execute("UPDATE edfi.student SET birth_date = 'infinity' WHERE district_id = %s AND student_id = "
                     "(SELECT min(student_id) FROM edfi.student WHERE district_id = %s)", (district, district))
    before = _state(sample_stores, graph_config, district)
    report = load_district(full_config_of(sample_stores, data_root, graph_config), district,
                           LoadOptions(strategy="replace", backup=True))
    assert report.status == "FAILED" and "birth_date" in report.error["message"]
    assert _state(sample_stores, graph_config, district) == before
    assert not any(backups_dir(data_root, district).iterdir())


def full_config_of(sample_stores, data_root, graph_config):
    from cert_loader.config import LoaderConfig, PgStoreConfig

    return LoaderConfig(data_root, {n: PgStoreConfig(n, u) for n, u in sample_stores.items()}, graph_config)


def test_sigkill_mid_backup_then_recover_leaves_v1(v1, sample_stores, data_root, graph_config, no_prepared_left):
    district, env, before = v1
    kill(paused_load("mid-backup:hcp1", district, env, "--strategy", "merge", "--backup"))
    rec = _cli(["recover"], env)
    assert rec.returncode == 0, rec.stdout + rec.stderr
    assert _state(sample_stores, graph_config, district) == before
    listed = json.loads(_cli(["backups", district, "--json"], env).stdout)
    assert [b["restorable"] for b in listed] == [False] and "incomplete" in listed[0]["why_not"]


def _paused_restore(point, district, run_id, env) -> subprocess.Popen:
    return paused_command(point, env, "restore", district, "--run", run_id, "--stores", env_stores(env))


@pytest.mark.parametrize("point,expected", [("before-decision", "v2"), ("after-decision", "v1"),
                                            ("before-commit-prepared:hcp2", "v1")])
def test_sigkill_during_the_restore_commit_then_recover(point, expected, v1, sample_stores, data_root, graph_config,
                                                        no_prepared_left):
    district, env, before = v1
    done = _cli(["load", district, "--strategy", "merge", "--backup"], env)
    assert done.returncode == 0, done.stderr
    run_id = _report(data_root, district)["load_run_id"]
    after = _state(sample_stores, graph_config, district)
    kill(_paused_restore(point, district, run_id, env))
    rec = _cli(["recover"], env)
    assert rec.returncode == 0, rec.stdout + rec.stderr
    assert _state(sample_stores, graph_config, district) == (before if expected == "v1" else after)


def test_dagster_backup_then_cert_restore_job(make_district, sample_stores, data_root, tmp_path, no_prepared_left):
    """`backup: true` in the load's run config, then the cert_restore job with run config district and run_id."""
    import dagster as dg

    from cert_loader.defs.assets import build_cert_asset
    from cert_loader.defs.restore import JOB_NAME, build_restore_job
    from cert_loader.defs.translator import build_specs
    from cert_loader.manifest import read_manifest
    from cert_loader_tests.dagster_support import (
        instance_with,
        materializations,
        pg_resources,
        snapshot_to,
    )

    manifest = snapshot_to(sample_stores, tmp_path / "cert-schema.json")
    cert = build_specs(read_manifest(manifest))
    asset = build_cert_asset(cert, manifest)
    district = make_district(students=STUDENTS)
    instance = instance_with([district])
    resources = pg_resources(sample_stores, data_root)
    assert dg.materialize([asset], partition_key=district, instance=instance, resources=resources).success
    before = {s: contents(u, district) for s, u in sample_stores.items()}
    second_extract(data_root, district)
    loaded = dg.materialize([asset], partition_key=district, instance=instance, resources=resources,
                            run_config={"ops": {"cert_district_load": {"config": {"strategy": "merge", "backup": True}}}})
    assert loaded.success
    report = _report(data_root, district)
    assert report["backup"]["rows"] > 0
    assert {s: contents(u, district) for s, u in sample_stores.items()} != before
    job = build_restore_job(tuple(sample_stores), cert)
    assert job.name == JOB_NAME
    result = job.execute_in_process(
        instance=instance, resources=resources,
        run_config={"ops": {"cert_restore_op": {"config": {"district": district, "run_id": report["load_run_id"]}}}})
    assert result.success
    assert {s: contents(u, district) for s, u in sample_stores.items()} == before
    assert _report(data_root, district)["strategy"] == "restore"
    restored = materializations(result)
    assert restored and all(k.path[0] == "cert" for k in restored)
    refused = job.execute_in_process(
        instance=instance, resources=resources, raise_on_error=False,
        run_config={"ops": {"cert_restore_op": {"config": {"district": district, "run_id": "load-nope"}}}})
    assert not refused.success


def test_dagster_keep_prunes_older_backups(make_district, sample_stores, data_root, tmp_path, no_prepared_left):
    """`keep: 1` with `backup: true` in the load's run config leaves only the newest backup (LoadConfig.keep)."""
    import dagster as dg

    from cert_loader.defs.assets import LoadConfig, build_cert_asset
    from cert_loader.defs.translator import build_specs
    from cert_loader.manifest import read_manifest
    from cert_loader_tests.dagster_support import instance_with, pg_resources, snapshot_to

    assert LoadConfig().keep is None  # default: keep all
    manifest = snapshot_to(sample_stores, tmp_path / "cert-schema.json")
    asset = build_cert_asset(build_specs(read_manifest(manifest)), manifest)
    district = make_district(students=STUDENTS)
    instance = instance_with([district])
    resources = pg_resources(sample_stores, data_root)
    config = {"strategy": "replace", "backup": True}
    for extra in ({}, {}, {"keep": 1}):
        assert dg.materialize([asset], partition_key=district, instance=instance, resources=resources,
                              run_config={"ops": {"cert_district_load": {"config": {**config, **extra}}}}).success
    kept = sorted(p.name for p in backups_dir(data_root, district).iterdir())
    assert kept == [_report(data_root, district)["load_run_id"]]
