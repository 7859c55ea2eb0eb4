"""Bulk-FK loads never overlap another load of the same store; run tags name the servers a run writes to.

Real loads in child processes: one is held at a pause point (it holds its store's writer lock, as every
load does from before its first write to its end), and the other is started beside it.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import yaml

from cert_loader.constants import ALL_STORES
from cert_loader.defs.servers import TAG_PREFIX, server_tags
from cert_loader_tests.dagster_support import SAMPLE_MANIFEST
from cert_loader_tests.fix_cli import cli_env, kill, paused_load, run_cli
from cert_loader_tests.fix_district import district_rows

POINT = "mid-copy:ids:edfi.attendance_event"


def _load(env: dict[str, str], district: str, *args: str, **extra: str) -> subprocess.CompletedProcess:
    return run_cli("load", district, "--stores", "ids", *args, env={**env, **extra})


def _loaded(url: str, district: str) -> int:
    return sum(district_rows(url, district).values())


def test_a_bulk_fk_load_beside_a_running_load_is_refused_naming_the_store(make_district, sample_stores, data_root):
    running, bulk = make_district(students=300), make_district()
    env = cli_env(sample_stores, data_root)
    proc = paused_load(POINT, running, env, stores="ids")
    try:
        refused = _load(env, bulk, "--bulk-fk", CERT_STORE_LOCK_WAIT="1")
    finally:
        kill(proc)
    out = refused.stdout + refused.stderr
    assert refused.returncode != 0, out
    assert "--bulk-fk needs store ids to itself" in out and "CERT_STORE_LOCK_WAIT" in out, out[-2000:]
    assert _loaded(sample_stores["ids"], bulk) == 0
    again = _load(env, bulk, "--bulk-fk")  # the other load is gone: now it runs
    assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-2000:]


def test_loads_and_unloads_beside_a_bulk_fk_load_are_refused(make_district, sample_stores, data_root):
    bulk, other = make_district(students=300), make_district()
    env = cli_env(sample_stores, data_root)
    assert _load(env, other).returncode == 0
    proc = paused_load(POINT, bulk, env, "--bulk-fk", stores="ids")
    try:
        load = _load(env, make_district(), CERT_STORE_LOCK_WAIT="1")
        unload = run_cli("unload", other, "--stores", "ids", env={**env, "CERT_STORE_LOCK_WAIT": "1"})
    finally:
        kill(proc)
    for done in (load, unload):
        out = done.stdout + done.stderr
        assert done.returncode != 0, out
        assert "a --bulk-fk load holds store ids exclusively" in out, out[-2000:]
    assert _loaded(sample_stores["ids"], other) > 0


def test_a_bulk_fk_load_waits_for_a_load_that_ends_within_the_wait(make_district, sample_stores, data_root):
    running, bulk = make_district(students=300), make_district()
    env = cli_env(sample_stores, data_root)
    proc = paused_load(POINT, running, env, stores="ids", CERT_LOADER_TEST_PAUSE_SECONDS="3")
    try:
        queued = _load(env, bulk, "--bulk-fk", CERT_STORE_LOCK_WAIT="120")
        assert proc.wait(120) == 0
    finally:
        kill(proc)
    assert queued.returncode == 0, queued.stdout[-2000:] + queued.stderr[-2000:]
    assert _loaded(sample_stores["ids"], running) > 0 and _loaded(sample_stores["ids"], bulk) > 0


def test_run_tags_name_each_store_s_server_and_no_credential():
    env = {"CERT_IDS_URL": "postgresql://root:s3cret@10.0.0.5:6432/ids",
           "CERT_HCP1_URL": "host=db1 port=5433 dbname=hcp1 user=root password=s3cret",
           "CERT_HCP2_URL": "postgresql://root@10.0.0.5/hcp2", "CERT_ADB_URL": "postgresql:///adb",
           "CERT_SP_URI": "bolt://neo:s3cret@graph.local:7688"}
    tags = server_tags(env)
    assert tags == {TAG_PREFIX + "ids": "10.0.0.5:6432", TAG_PREFIX + "hcp1": "db1:5433",
                    TAG_PREFIX + "hcp2": "10.0.0.5:5432", TAG_PREFIX + "adb": "localhost:5432",
                    TAG_PREFIX + "sp": "graph.local:7688"}
    assert "s3cret" not in repr(tags) and "root" not in repr(tags)


def test_dagster_yaml_limits_every_store_s_server_per_unique_value():
    config = yaml.safe_load((Path(__file__).parents[1] / "dagster.yaml").read_text())
    limits = config["concurrency"]["runs"]["tag_concurrency_limits"]
    per_server = {lim["key"]: lim for lim in limits if lim["key"].startswith(TAG_PREFIX)}
    assert set(per_server) == {TAG_PREFIX + s for s in ALL_STORES}
    assert all(lim["value"] == {"applyLimitPerUniqueValue": True} and lim["limit"] >= 1 for lim in per_server.values())


def test_every_run_of_the_district_job_carries_the_server_tags(monkeypatch):
    from cert_loader.defs import JOB_NAME, build_definitions

    monkeypatch.setenv("CERT_IDS_URL", "postgresql://root:s3cret@10.0.0.5:6432/ids")
    monkeypatch.setenv("CERT_SP_URI", "bolt://graph.local:7688")
    job = build_definitions(SAMPLE_MANIFEST).resolve_job_def(JOB_NAME)
    assert job.run_tags[TAG_PREFIX + "ids"] == "10.0.0.5:6432"
    assert job.run_tags[TAG_PREFIX + "sp"] == "graph.local:7688"
    assert "s3cret" not in repr(job.run_tags)
