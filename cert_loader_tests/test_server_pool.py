"""Per-server limits for every run, the asset graph's own Materialize included (issue 15, point 4).

The district job's runs carry server tags (test_store_exclusion.py); runs of the implicit asset job do not,
so the district asset sits in a Dagster concurrency pool named after the CERT servers (defs/servers.py),
and dagster.yaml holds runs in the queue at run granularity. Here, against a real `dagster dev`: with the
pool's limit at 1, a second district's run launched as the UI's Materialize does (the implicit asset job,
no tags) stays QUEUED while the first is loading, and starts only after it has finished.
"""

from __future__ import annotations

import os
import time

import dagster as dg
import pytest

from cert_loader.defs import build_definitions
from cert_loader.defs.servers import POOL_PREFIX, server_pool
from cert_loader.sample import generate_district
from cert_loader_tests.dagster_support import (
    SAMPLE_MANIFEST, dev_instance, sqlalchemy_url, start_dagster_dev, stop_group,
)
from cert_loader_tests.fix_district import new_district

pytestmark = [pytest.mark.usefixtures("no_prepared_left"), pytest.mark.dagster_cli]

MID_LOAD = "mid-copy:ids:edfi.attendance_event"
IMPLICIT_JOB = "__ASSET_JOB"  # what the asset graph's Materialize launches
DEADLINE_S = 150


def test_the_district_asset_and_the_restore_op_sit_in_the_servers_pool(monkeypatch):
    monkeypatch.setenv("CERT_IDS_URL", "postgresql://root:s3cret@10.0.0.5:6432/ids")
    monkeypatch.setenv("CERT_HCP1_URL", "postgresql://root@10.0.0.5:6432/hcp1")
    monkeypatch.setenv("CERT_SP_URI", "bolt://graph.local:7688")
    for name in ("CERT_HCP2_URL", "CERT_ADB_URL"):
        monkeypatch.delenv(name, raising=False)
    pool = server_pool()
    assert pool == POOL_PREFIX + "10.0.0.5:6432+graph.local:7688"  # each server once, sorted, no credential
    defs = build_definitions(SAMPLE_MANIFEST)
    [asset] = [a for a in defs.assets if isinstance(a, dg.AssetsDefinition)]
    assert asset.op.pool == pool
    restore = defs.resolve_job_def("cert_restore")
    assert [node.definition.pool for node in restore.graph.node_dict.values()] == [pool]
    assert server_pool({}) is None  # nothing configured: no pool


def _wait(instance: dg.DagsterInstance, run_id: str, done) -> dg.DagsterRun:
    deadline = time.monotonic() + DEADLINE_S
    while True:
        run = instance.get_run_by_id(run_id)
        if done(run):
            return run
        assert time.monotonic() < deadline, (run_id, run.status)
        time.sleep(0.3)


def test_a_materialize_run_waits_in_the_queue_while_the_server_is_full(make_database, sample_stores, graph_config,
                                                                       tmp_path):
    from dagster_graphql import DagsterGraphQLClient

    instance_url = sqlalchemy_url(make_database("dagster_pool", mark=False))
    pause_file = tmp_path / "paused"
    # The first run pauses a few seconds mid-load, holding the pool's only slot.
    env, home, data_root = dev_instance(instance_url, tmp_path, sample_stores, graph_config,
                                        CERT_LOADER_TEST_PAUSE_AT=MID_LOAD, CERT_LOADER_TEST_PAUSE_SECONDS="6",
                                        CERT_LOADER_TEST_PAUSE_FILE=str(pause_file))
    pool = server_pool(env)
    assert pool and "127.0.0.1:5432" in pool
    keys = [key for a in build_definitions(data_root / "data" / "analysis" / "cert-schema.json").assets
            if isinstance(a, dg.AssetsDefinition) for key in a.keys]
    os.environ["DAGSTER_PG_URL"] = instance_url  # for this process's own look at the instance
    proc, port = start_dagster_dev(env, tmp_path, tmp_path / "dagster-dev.log")
    try:
        first, second = new_district(), new_district()
        with dg.DagsterInstance.from_config(str(home)) as instance:
            instance.event_log_storage.set_concurrency_slots(pool, 1)
            for district in (first, second):
                generate_district(data_root, district, students=30)
            instance.add_dynamic_partitions("district", [first, second])
            client = DagsterGraphQLClient("127.0.0.1", port_number=port)

            def materialize(district: str) -> str:  # no job tags: what the asset graph's Materialize sends
                return client.submit_job_execution(IMPLICIT_JOB, asset_selection=keys,
                                                   tags={"dagster/partition": district})

            run_a = materialize(first)
            _wait(instance, run_a, lambda run: pause_file.is_file() or run.is_finished)
            assert instance.get_run_by_id(run_a).status == dg.DagsterRunStatus.STARTED
            assert not any(k.startswith("cert_loader/server.") for k in instance.get_run_by_id(run_a).tags)
            run_b = materialize(second)
            time.sleep(3)  # several dequeue intervals of the daemon
            assert instance.get_run_by_id(run_a).status == dg.DagsterRunStatus.STARTED
            assert instance.get_run_by_id(run_b).status == dg.DagsterRunStatus.QUEUED
            done_a = _wait(instance, run_a, lambda run: run.is_finished)
            done_b = _wait(instance, run_b, lambda run: run.is_finished)
            assert done_a.is_success and done_b.is_success, (done_a.status, done_b.status)
            record_a, record_b = (instance.get_run_record_by_id(r) for r in (run_a, run_b))
            assert record_b.start_time >= record_a.end_time  # the second started after the first had ended
    finally:
        stop_group(proc)
        os.environ.pop("DAGSTER_PG_URL", None)
