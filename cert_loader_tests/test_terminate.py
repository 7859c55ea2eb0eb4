"""Stopping a load (issue 14, point 3): Ctrl-C on `cert-loader load`, and a Dagster run terminated through GraphQL.

Mid-load, every store must end as before the load (no rows, no prepared transaction), the load report
must say FAILED and why, and the district's lock must be free. After the commit decision a stop is
held until the load has completed (interrupts.py).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import dagster as dg
import psycopg
import pytest

from cert_loader.engine import load_district
from cert_loader.inputs import DistrictPaths
from cert_loader.sample import generate_district
from cert_loader.stores.graph import GraphStore
from cert_loader.stores.postgres import LOCK_PREFIX
from cert_loader_tests.dagster_support import (
    dev_instance, start_dagster_dev,
    default_signals, sqlalchemy_url, stop_group,
)
from cert_loader_tests.fix_cli import CLI, cli_env
from cert_loader_tests.fix_district import new_district, store_snapshot

pytestmark = pytest.mark.usefixtures("no_prepared_left")

# In a worker thread (the stores load side by side): the realistic middle of a load.
MID_LOAD = "mid-copy:ids:edfi.attendance_event"
PAUSE_DEADLINE_S = 120


def _report(data_root: Path, district: str) -> dict:
    return json.loads(DistrictPaths(data_root, district).report_file.read_text())


def _lock_free(urls: dict[str, str], district: str) -> bool:
    for url in urls.values():
        with psycopg.connect(url, autocommit=True) as conn:
            if not conn.execute("SELECT pg_try_advisory_lock(hashtextextended(%s, 0))",
                                (LOCK_PREFIX + district,)).fetchone()[0]:
                return False
            conn.execute("SELECT pg_advisory_unlock(hashtextextended(%s, 0))", (LOCK_PREFIX + district,))
    return True


def _prepared(urls: dict[str, str]) -> list:
    names = [u.rsplit("/", 1)[1] for u in urls.values()]
    with psycopg.connect(next(iter(urls.values())), autocommit=True) as conn:
        return conn.execute("SELECT gid FROM pg_prepared_xacts WHERE database = ANY(%s)", (names,)).fetchall()


def _wait_for(path: Path, proc_alive, what: str, timeout: float = PAUSE_DEADLINE_S) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.is_file():
            return
        assert proc_alive(), f"{what} ended before it paused"
        time.sleep(0.2)
    raise AssertionError(f"{what} did not pause within {timeout} s")


def _cli_load_paused(point: str, district: str, env: dict[str, str], pause_file: Path, *args: str,
                     **extra: str) -> subprocess.Popen:
    """`cert-loader load` paused at ``point``, with SIGINT handled as a terminal would (DESIGN.md section 9)."""
    proc = subprocess.Popen(
        [*CLI, "load", district, "--stores", "ids,hcp1,hcp2,adb", *args],
        env={**env, "CERT_LOADER_TEST_PAUSE_AT": point, "CERT_LOADER_TEST_PAUSE_FILE": str(pause_file), **extra},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
        preexec_fn=default_signals,
    )
    _wait_for(pause_file, lambda: proc.poll() is None, "the load")
    return proc


@pytest.mark.parametrize("parallel", ["--parallel", "--no-parallel"])  # stopped in a store thread, or in the main one
def test_ctrl_c_mid_load_rolls_back_and_writes_the_report(parallel, make_district, sample_stores, data_root,
                                                          pg_config, tmp_path) -> None:
    district = make_district(students=400)
    proc = _cli_load_paused(MID_LOAD, district, cli_env(sample_stores, data_root), tmp_path / "paused", parallel)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, out + err[-3000:]
    assert "interrupted: see the load report" in err

    report = _report(data_root, district)
    assert report["overall_status"] == "FAILED"
    assert report["error"]["message"] == "load interrupted (Ctrl-C); every store rolled back"
    assert report["error"]["rolled_back"] is True and report["error"]["details"] == {"interrupted": "Ctrl-C"}
    assert report["stores"]["ids"]["transaction"] == "ROLLED_BACK"
    # one after another, the stores after ids never began
    assert {s["transaction"] for s in report["stores"].values()} <= {"ROLLED_BACK", "NOT_STARTED"}
    assert not any(n for rows in store_snapshot(sample_stores, district).values() for n in rows.values())
    assert _prepared(sample_stores) == []
    assert _lock_free(sample_stores, district)
    assert load_district(pg_config(), district).status == "SUCCESS"  # nothing left in the way


def test_ctrl_c_mid_replace_keeps_the_district_as_it_was(make_district, sample_stores, data_root, pg_config,
                                                         tmp_path) -> None:
    """Over a district already in CERT, "as before" is its old rows, not none: a replace stopped mid-load keeps them."""
    district = make_district(students=400)
    assert load_district(pg_config(), district).status == "SUCCESS"
    before = store_snapshot(sample_stores, district)
    assert all(n > 0 for rows in before.values() for n in rows.values())
    proc = _cli_load_paused(MID_LOAD, district, cli_env(sample_stores, data_root), tmp_path / "paused",
                            "--strategy", "replace")
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, out + err[-3000:]
    assert _report(data_root, district)["overall_status"] == "FAILED"
    assert store_snapshot(sample_stores, district) == before
    assert _prepared(sample_stores) == []
    assert _lock_free(sample_stores, district)


def test_ctrl_c_after_the_decision_completes_the_load(make_district, sample_stores, data_root, tmp_path) -> None:
    district = make_district(students=50)
    proc = _cli_load_paused("after-decision", district, cli_env(sample_stores, data_root), tmp_path / "paused",
                            CERT_LOADER_TEST_PAUSE_SECONDS="2")
    proc.send_signal(signal.SIGINT)  # held: the decision is made, so the load completes
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, out + err[-3000:]
    report = _report(data_root, district)
    assert report["overall_status"] == "SUCCESS"
    assert {s["transaction"] for s in report["stores"].values()} == {"PREPARED-then-COMMITTED"}
    assert any("came after the commit decision" in note for note in report["notes"])
    assert all(n > 0 for rows in store_snapshot(sample_stores, district).values() for n in rows.values())
    assert _prepared(sample_stores) == []


@pytest.mark.parametrize("point", ["before-prepare:hcp1", "before-decision"])
def test_ctrl_c_between_prepare_and_decision_rolls_back_at_the_decision(point, make_district, sample_stores,
                                                                         data_root, tmp_path) -> None:
    district = make_district(students=50)
    proc = _cli_load_paused(point, district, cli_env(sample_stores, data_root), tmp_path / "paused",
                            CERT_LOADER_TEST_PAUSE_SECONDS="2")
    proc.send_signal(signal.SIGINT)  # held while stores are PREPAREd, raised before the decision
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, out + err[-3000:]
    report = _report(data_root, district)
    assert report["overall_status"] == "FAILED"
    assert report["error"]["message"] == "load interrupted (Ctrl-C); every store rolled back"
    assert {s["transaction"] for s in report["stores"].values()} == {"ROLLED_BACK"}
    assert not any(n for rows in store_snapshot(sample_stores, district).values() for n in rows.values())
    assert _prepared(sample_stores) == []
    assert _lock_free(sample_stores, district)


# --- a Dagster run terminated from GraphQL, against a real webserver and daemon ---------------------------

@pytest.fixture(scope="module")
def dagster_dev(make_database, sample_stores, graph_config, tmp_path_factory):
    """Start `dagster dev` whose runs pause at a given point (faults.py), over the four stores and the graph."""
    started: list[subprocess.Popen] = []

    def start(point: str, **pause: str) -> dict:
        for earlier in started:  # one daemon at a time: each would take the other's queued runs
            stop_group(earlier)
        # An instance of its own each time, for the same reason.
        instance_url = sqlalchemy_url(make_database(f"dagster_stop{len(started)}", mark=False))
        os.environ["DAGSTER_PG_URL"] = instance_url  # for this process's own look at the instance
        tmp = tmp_path_factory.mktemp("dagster_terminate")
        pause_file = tmp / "paused"
        env, home, data_root = dev_instance(instance_url, tmp, sample_stores, graph_config,
                                            CERT_LOADER_TEST_PAUSE_AT=point,
                                            CERT_LOADER_TEST_PAUSE_FILE=str(pause_file), **pause)
        log_path = tmp / "dagster-dev.log"
        proc, port = start_dagster_dev(env, tmp, log_path)
        started.append(proc)
        return {"port": port, "home": str(home), "log": log_path, "data_root": data_root, "pause_file": pause_file,
                "alive": lambda: proc.poll() is None}

    try:
        yield start
    finally:
        for proc in started:
            stop_group(proc)
        os.environ.pop("DAGSTER_PG_URL", None)


def _launch_and_terminate(dev: dict, students: int) -> tuple[str, dg.DagsterRun]:
    """Launch the district job for a new partition through GraphQL, terminate it once it paused; the finished run."""
    from dagster_graphql import DagsterGraphQLClient

    district = new_district()
    generate_district(dev["data_root"], district, students=students)
    with dg.DagsterInstance.from_config(dev["home"]) as instance:
        instance.add_dynamic_partitions("district", [district])
    client = DagsterGraphQLClient("127.0.0.1", port_number=dev["port"])
    run_id = client.submit_job_execution("cert_district_job", tags={"dagster/partition": district})
    _wait_for(dev["pause_file"], dev["alive"], "the district run")
    client.terminate_run(run_id)
    deadline = time.monotonic() + 120
    with dg.DagsterInstance.from_config(dev["home"]) as instance:
        while time.monotonic() < deadline:
            run = instance.get_run_by_id(run_id)
            if run is not None and run.is_finished:
                return district, run
            time.sleep(0.5)
    raise AssertionError(f"run {run_id} did not finish within 120 s:\n{dev['log'].read_text()[-4000:]}")


def _graph_nodes(graph_config, district: str) -> int:
    with GraphStore(graph_config) as graph:
        return sum(graph.counts(district)["nodes"].values())


@pytest.mark.dagster_cli
def test_terminate_a_district_run_mid_load(dagster_dev, sample_stores, graph_config, pg_config) -> None:
    dev = dagster_dev(MID_LOAD)
    district, run = _launch_and_terminate(dev, students=400)
    assert run.status == dg.DagsterRunStatus.CANCELED, dev["log"].read_text()[-4000:]  # a user's stop, not a failure

    report = _report(dev["data_root"], district)
    assert report["overall_status"] == "FAILED"
    assert report["error"]["message"] == (
        "load interrupted (run terminated: DagsterExecutionInterruptedError); every store rolled back")
    assert report["error"]["rolled_back"] is True
    assert {s["transaction"] for s in report["stores"].values()} == {"ROLLED_BACK"}
    assert not any(n for rows in store_snapshot(sample_stores, district).values() for n in rows.values())
    assert _graph_nodes(graph_config, district) == 0
    assert _prepared(sample_stores) == []
    assert _lock_free(sample_stores, district)
    # Nothing in doubt and the lock free: a second load (here in-process, without the pause) goes through.
    assert load_district(pg_config(root=dev["data_root"]), district).status == "SUCCESS"


@pytest.mark.dagster_cli
def test_terminate_after_the_decision_completes_the_load(dagster_dev, sample_stores, graph_config) -> None:
    dev = dagster_dev("after-decision", CERT_LOADER_TEST_PAUSE_SECONDS="3")
    district, run = _launch_and_terminate(dev, students=50)
    log_tail = dev["log"].read_text()[-4000:]
    # The stop came after the decision: held until every store committed, then the run went on to report it.
    assert run.status == dg.DagsterRunStatus.SUCCESS, log_tail
    report = _report(dev["data_root"], district)
    assert report["overall_status"] == "SUCCESS", log_tail
    assert any("came after the commit decision" in note for note in report["notes"])
    assert all(n > 0 for rows in store_snapshot(sample_stores, district).values() for n in rows.values())
    assert _graph_nodes(graph_config, district) > 0
    assert _prepared(sample_stores) == []
    with dg.DagsterInstance.from_config(dev["home"]) as instance:
        clinic = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=dg.AssetKey(["cert", "hcp1", "clinic"]), asset_partitions=[district]),
            limit=1).records
    assert clinic and clinic[0].run_id == run.run_id
