"""cert_recovery_sensor in a real deployment (issue 14, point 4): a Dagster run worker SIGKILLed after the commit
decision, then nobody runs `cert-loader recover`: the daemon's sensor commits what the run left prepared.

`dagster dev` (webserver + daemon) runs the code location over the session's four stores and graph, with the
sensor ticking every 2 s. A district run pauses at the checkpoint "after-decision" (faults.py): the graph holds the
COMMIT decision, every PostgreSQL store is PREPAREd. The test SIGKILLs the run worker there (the pid the paused
process wrote into the pause file, checked against the run's own "Started process for run (pid: N)" event and
against the process session of the `dagster dev` this test started), then only waits. With
CERT_RECOVERY_SENSOR=off the same crash stays in doubt, which shows the wait is not won by anything but the
sensor; starting the sensor (as a user would in the UI, here the same GraphQL mutation) then resolves it.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import dagster as dg
import pytest

from cert_loader.sample import generate_district
from cert_loader_tests.dagster_support import (
    dev_instance, start_dagster_dev,
    sqlalchemy_url,
    stop_group,
)
from cert_loader_tests.fix_district import file_rows, graph_nodes, new_district, prepared, store_snapshot

pytestmark = [pytest.mark.usefixtures("no_prepared_left"), pytest.mark.dagster_cli]

INTERVAL_S = 2
PAUSE_DEADLINE_S = 120
RECOVERY_DEADLINE_S = 90

_SENSORS = """
query {
  workspaceOrError { ... on Workspace { locationEntries { name locationOrLoadError {
    ... on RepositoryLocation { repositories { name sensors { name sensorState {
      status ticks(limit: 50) { status skipReason error { message } timestamp } } } } }
    ... on PythonError { message } } } } }
}"""

_START_SENSOR = """
mutation($selector: SensorSelector!) {
  startSensor(sensorSelector: $selector) { __typename ... on PythonError { message } }
}"""


class Dev:
    """One `dagster dev` of this test: its process group, instance, data root and pause file."""

    def __init__(self, proc: subprocess.Popen, port: int, home: Path, log: Path, data_root: Path, pause_file: Path):
        self.proc, self.port, self.home, self.log = proc, port, home, log
        self.data_root, self.pause_file = data_root, pause_file

    def log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]

    def graphql(self, query: str, variables: dict | None = None) -> dict:
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}/graphql", data=json.dumps({"query": query, "variables": variables or {}}).encode(),
            headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as response:
            body = json.loads(response.read())
        assert "errors" not in body, body
        return body["data"]

    def recovery_sensor(self) -> tuple[dict, dict]:
        """(the sensor's selector, its sensorState with the latest ticks, newest first)."""
        for entry in self.graphql(_SENSORS)["workspaceOrError"]["locationEntries"]:
            location = entry["locationOrLoadError"]
            assert "repositories" in location, location
            for repo in location["repositories"]:
                for sensor in repo["sensors"]:
                    if sensor["name"] == "cert_recovery_sensor":
                        return ({"repositoryLocationName": entry["name"], "repositoryName": repo["name"],
                                 "sensorName": sensor["name"]}, sensor["sensorState"])
        raise AssertionError("no cert_recovery_sensor in the workspace")


@pytest.fixture
def dagster_dev(make_database, sample_stores, graph_config, tmp_path_factory, monkeypatch) -> Iterator[Callable[..., Dev]]:
    """Start `dagster dev` (own session and instance) whose runs pause at "after-decision" until killed."""
    started: list[subprocess.Popen] = []

    def start(**extra: str) -> Dev:
        for earlier in started:  # one daemon at a time
            stop_group(earlier)
        instance_url = sqlalchemy_url(make_database(f"dagster_recover{len(started)}", mark=False))
        monkeypatch.setenv("DAGSTER_PG_URL", instance_url)  # for this process's own look at the instance
        tmp = tmp_path_factory.mktemp("dagster_recovery")
        pause_file = tmp / "paused"
        env, home, data_root = dev_instance(instance_url, tmp, sample_stores, graph_config,
                                            CERT_RECOVERY_INTERVAL_SECONDS=str(INTERVAL_S),
                                            CERT_LOADER_TEST_PAUSE_AT="after-decision",
                                            CERT_LOADER_TEST_PAUSE_FILE=str(pause_file), **extra)
        log_path = tmp / "dagster-dev.log"
        proc, port = start_dagster_dev(env, tmp, log_path)
        started.append(proc)
        return Dev(proc, port, home, log_path, data_root, pause_file)

    try:
        yield start
    finally:
        for proc in started:
            stop_group(proc)
        for proc in started:  # nothing of theirs left: every process of the session gone (zombies reaped by init)
            assert not _session_members(proc.pid), f"left running: {_session_members(proc.pid)}"


def _session_members(sid: int) -> list[int]:
    """Live pids whose session is ``sid`` (each `dagster dev` here is started as a session leader)."""
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[3]) == sid and fields[0] != "Z":  # fields: state ppid pgrp session ...
                out.append(int(entry.name))
    return out


def _run_worker_pid(instance: dg.DagsterInstance, run_id: str) -> int | None:
    """The pid Dagster itself logged for the run's process ("Started process for run (pid: N).")."""
    for record in instance.all_logs(run_id, of_type=dg.DagsterEventType.ENGINE_EVENT):
        found = re.search(r"Started process for run \(pid: (\d+)\)", record.message or "")
        if found:
            return int(found.group(1))
    return None


def _launch_and_kill(dev: Dev, pg_admin, sample_stores, *, before_kill: Callable[[str], None] = lambda district: None,
                     students: int = 50) -> tuple[str, dict]:
    """Launch a district run through GraphQL, SIGKILL its run worker at "after-decision"; (district, file rows)."""
    from dagster_graphql import DagsterGraphQLClient

    district = new_district()
    generate_district(dev.data_root, district, students=students)
    with dg.DagsterInstance.from_config(str(dev.home)) as instance:
        instance.add_dynamic_partitions("district", [district])
        run_id = DagsterGraphQLClient("127.0.0.1", port_number=dev.port).submit_job_execution(
            "cert_district_job", tags={"dagster/partition": district})

        deadline = time.monotonic() + PAUSE_DEADLINE_S
        while not dev.pause_file.is_file():
            assert dev.proc.poll() is None and time.monotonic() < deadline, \
                f"the run never paused after the decision:\n{dev.log_tail()}"
            run = instance.get_run_by_id(run_id)
            assert run is None or not run.is_finished, f"run {run.status} before it paused:\n{dev.log_tail()}"
            time.sleep(0.2)
        point, pid_text = dev.pause_file.read_text().split()
        pid = int(pid_text)
        assert point == "after-decision"
        # The paused process is the run's worker, and one this test started (inside its dagster dev's session).
        assert _run_worker_pid(instance, run_id) == pid, dev.log_tail()
        assert pid in _session_members(dev.proc.pid)

        # Decided (the graph committed), not finished: every store PREPAREd, no row visible yet.
        assert len(prepared(pg_admin, sample_stores, district)) == len(sample_stores)
        now = store_snapshot(sample_stores, district)
        assert not any(n for tables in now.values() for n in tables.values()), "rows visible before COMMIT PREPARED"
        expected = file_rows(now, dev.data_root, district)
        assert all(sum(tables.values()) > 0 for tables in expected.values())
        before_kill(district)

        os.kill(pid, signal.SIGKILL)
        # Right after the kill: the run's prepared transactions are still there, in every store.
        assert len(prepared(pg_admin, sample_stores, district)) == len(sample_stores)
        deadline = time.monotonic() + 10
        while pid in _session_members(dev.proc.pid):
            assert time.monotonic() < deadline, f"run worker {pid} still alive after SIGKILL"
            time.sleep(0.1)
        assert not instance.get_run_by_id(run_id).is_success  # the run never got to finish
    return district, expected


def _wait_resolved(dev: Dev, pg_admin, sample_stores, district: str) -> float:
    """Seconds until the daemon's sensor left nothing of the district prepared (bounded)."""
    started = time.monotonic()
    while prepared(pg_admin, sample_stores, district):
        assert time.monotonic() - started < RECOVERY_DEADLINE_S, \
            f"still in doubt after {RECOVERY_DEADLINE_S} s: {prepared(pg_admin, sample_stores, district)}\n" \
            f"{dev.recovery_sensor()[1]}\n{dev.log_tail()}"
        time.sleep(0.5)
    return time.monotonic() - started


def _assert_committed(dev: Dev, pg_admin, sample_stores, graph_config, district: str, expected: dict) -> None:
    assert prepared(pg_admin, sample_stores, district) == []
    rows = store_snapshot(sample_stores, district)
    assert rows == expected, (rows, expected)
    assert graph_nodes(graph_config, district) > 0
    # The tick that did it says so (ticks come newest first); a tick cannot be seen before it is stored.
    resolved = f"resolved {len(sample_stores)} in-doubt prepared transaction(s)"
    deadline = time.monotonic() + 15
    while True:
        ticks = dev.recovery_sensor()[1]["ticks"]
        if any(t["status"] == "SKIPPED" and t["skipReason"] == resolved for t in ticks):
            break
        assert time.monotonic() < deadline, ticks
        time.sleep(0.5)
    assert not [t for t in ticks if t["status"] == "FAILURE"], ticks


def test_a_run_worker_killed_after_the_decision_is_committed_by_the_daemon(
        dagster_dev, pg_admin, sample_stores, graph_config) -> None:
    dev = dagster_dev()
    assert dev.recovery_sensor()[1]["status"] == "RUNNING"  # on by default in the code location

    def left_alone_while_alive(district: str) -> None:
        """While the run worker lives, its district lock keeps the sensor's ticks off the prepared transactions."""
        deadline = time.monotonic() + 10 * INTERVAL_S
        while not any("a load of the district is running" in (t["skipReason"] or "")
                      for t in dev.recovery_sensor()[1]["ticks"]):
            assert time.monotonic() < deadline, dev.recovery_sensor()[1]["ticks"]
            time.sleep(0.5)
        assert len(prepared(pg_admin, sample_stores, district)) == len(sample_stores)

    district, expected = _launch_and_kill(dev, pg_admin, sample_stores, before_kill=left_alone_while_alive)

    took = _wait_resolved(dev, pg_admin, sample_stores, district)  # no `cert-loader recover`, no load: only waiting
    _assert_committed(dev, pg_admin, sample_stores, graph_config, district, expected)
    print(f"committed by the daemon's sensor {took:.1f} s after the SIGKILL")


def test_with_the_sensor_off_the_crash_stays_in_doubt_until_it_is_started(
        dagster_dev, pg_admin, sample_stores, graph_config) -> None:
    dev = dagster_dev(CERT_RECOVERY_SENSOR="off")
    selector, state = dev.recovery_sensor()
    assert state["status"] == "STOPPED"
    district, expected = _launch_and_kill(dev, pg_admin, sample_stores)

    time.sleep(4 * INTERVAL_S)  # four intervals: a running sensor would have ticked
    assert len(prepared(pg_admin, sample_stores, district)) == len(sample_stores)
    assert not any(n for tables in store_snapshot(sample_stores, district).values() for n in tables.values())
    assert dev.recovery_sensor()[1]["ticks"] == []

    # Switched on, as from the UI's sensor page: the next tick commits the crashed run's load.
    assert dev.graphql(_START_SENSOR, {"selector": selector})["startSensor"]["__typename"] == "Sensor"
    _wait_resolved(dev, pg_admin, sample_stores, district)
    _assert_committed(dev, pg_admin, sample_stores, graph_config, district, expected)
