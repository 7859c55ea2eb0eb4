"""District steps on Celery workers (issue 15, point 1): `dagster dev` with CERT_DAGSTER_EXECUTOR=celery, the
real RabbitMQ, workers started by scripts/celery-worker.sh on a queue of this test run's own.

Six districts launched at once go through the queued run coordinator to two workers, each verified in the
stores, both workers used. A worker's pool process killed mid-load fails its run, leaves every store as before,
and a rerun on a fresh worker succeeds. A whole worker killed mid-load (its main process SIGKILLed): its pool
process dies with it, the unacknowledged task (task_acks_late) goes back to the queue and the other worker
loads the district in the same run (cert_loader/defs/executor.py).
"""

from __future__ import annotations

import os
import secrets
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest

from cert_loader.sample import generate_district
from cert_loader_tests.dagster_support import (
    dev_instance,
    sqlalchemy_url, start_celery_worker, start_dagster_dev, stop_group,
)
from cert_loader_tests.fix_district import file_rows, graph_nodes, new_district, prepared, store_snapshot

pytestmark = [pytest.mark.usefixtures("no_prepared_left"), pytest.mark.dagster_cli]

MID_LOAD = "mid-copy:ids:edfi.attendance_event"
RUN_DEADLINE_S = 150


class Deployment:
    """One `dagster dev` (daemon + queued runs) whose district job runs its step on Celery workers."""

    def __init__(self, port: int, home: Path, data_root: Path, env: dict[str, str], tmp: Path):
        self.port, self.home, self.data_root, self.env, self.tmp = port, home, data_root, env, tmp
        self.workers: list = []

    def worker(self, name: str, **extra: str) -> Path:
        log = self.tmp / f"worker-{name}.log"
        self.workers.append(start_celery_worker(name, {**self.env, **extra}, log))
        return log

    def stop_workers(self) -> None:
        for proc in self.workers:
            stop_group(proc)
        self.workers.clear()

    def launch(self, district: str) -> str:
        from dagster_graphql import DagsterGraphQLClient

        if not (self.data_root / "data" / "anonymized" / district).exists():  # a rerun loads the same files
            generate_district(self.data_root, district, students=30)
        with dg.DagsterInstance.from_config(str(self.home)) as instance:
            instance.add_dynamic_partitions("district", [district])
        return DagsterGraphQLClient("127.0.0.1", port_number=self.port).submit_job_execution(
            "cert_district_job", tags={"dagster/partition": district})

    def wait(self, run_ids: list[str]) -> dict[str, dg.DagsterRun]:
        deadline = time.monotonic() + RUN_DEADLINE_S
        with dg.DagsterInstance.from_config(str(self.home)) as instance:
            while True:
                runs = {r: instance.get_run_by_id(r) for r in run_ids}
                if all(run.is_finished for run in runs.values()):
                    return runs
                assert time.monotonic() < deadline, {r: run.status for r, run in runs.items()}
                time.sleep(0.5)

    def failure(self, run_id: str) -> str:
        with dg.DagsterInstance.from_config(str(self.home)) as instance:
            return "\n".join(str(r.dagster_event.event_specific_data)[:1500] for r in instance.all_logs(run_id)
                             if r.dagster_event and r.dagster_event.event_type_value in ("STEP_FAILURE", "RUN_FAILURE"))

    def workers_of(self, run_id: str) -> list[str]:
        """The Celery hostnames dagster-celery recorded for the run's step ("Executing steps ... in celery
        worker"), one per attempt, in order."""
        with dg.DagsterInstance.from_config(str(self.home)) as instance:
            return [data.metadata["Celery worker"].value
                    for record in instance.all_logs(run_id, of_type=dg.DagsterEventType.ENGINE_EVENT)
                    if "Celery worker" in ((data := record.dagster_event.engine_event_data).metadata or {})]

    def worker_of(self, run_id: str) -> str:
        hosts = self.workers_of(run_id)
        assert len(hosts) == 1, f"run {run_id}: one attempt expected, got {hosts}"
        return hosts[0]

    def paused(self, pause_file: Path) -> int:
        """The pid of the worker's pool process once the step paused there (faults.py writes "<point> <pid>")."""
        deadline = time.monotonic() + RUN_DEADLINE_S
        while not pause_file.is_file():
            assert time.monotonic() < deadline, "the step never paused on the worker"
            time.sleep(0.2)
        return int(pause_file.read_text().split()[1])

    def paused_load(self, name: str) -> tuple[str, str, int]:
        """A worker NAME whose district step pauses mid-load, a new district launched to it:
        (district, run id, pid of the pool process holding the load)."""
        pause_file = self.tmp / f"paused-{name}"
        self.worker(name, CERT_LOADER_TEST_PAUSE_AT=MID_LOAD, CERT_LOADER_TEST_PAUSE_FILE=str(pause_file))
        district = new_district()
        run_id = self.launch(district)
        return district, run_id, self.paused(pause_file)


@pytest.fixture(scope="module")
def deployment(make_database, sample_stores, graph_config, tmp_path_factory) -> Iterator[Deployment]:
    instance_url = sqlalchemy_url(make_database("dagster_celery", mark=False))
    os.environ["DAGSTER_PG_URL"] = instance_url  # for this process's own look at the instance
    tmp = tmp_path_factory.mktemp("celery")
    queue = f"cert-test-{secrets.token_hex(4)}"  # this run's own queue on the shared RabbitMQ
    env, home, data_root = dev_instance(instance_url, tmp, sample_stores, graph_config,
                                        CERT_DAGSTER_EXECUTOR="celery", CERT_CELERY_QUEUE=queue)
    proc, port = start_dagster_dev(env, tmp, tmp / "dagster-dev.log")
    dep = Deployment(port, home, data_root, env, tmp)
    try:
        yield dep
    finally:
        dep.stop_workers()
        stop_group(proc)
        os.environ.pop("DAGSTER_PG_URL", None)
        _delete_queue(queue)


def _delete_queue(queue: str) -> None:
    from kombu import Connection

    with Connection("pyamqp://guest:guest@127.0.0.1:5672//") as conn:
        conn.default_channel.queue_delete(queue)


def _assert_loaded(sample_stores, graph_config, data_root: Path, district: str) -> None:
    rows = store_snapshot(sample_stores, district)
    assert rows == file_rows(rows, data_root, district)
    assert all(sum(tables.values()) > 0 for tables in rows.values())
    assert graph_nodes(graph_config, district) > 0


def test_six_districts_at_once_on_two_workers(deployment, sample_stores, graph_config) -> None:
    logs = [deployment.worker("alpha"), deployment.worker("beta")]
    try:
        districts = [new_district() for _ in range(6)]
        run_ids = [deployment.launch(d) for d in districts]
        runs = deployment.wait(run_ids)
        assert all(run.is_success for run in runs.values()), {r: run.status for r, run in runs.items()}
        for district in districts:
            _assert_loaded(sample_stores, graph_config, deployment.data_root, district)
        used = {deployment.worker_of(r).split("@")[0] for r in run_ids}
        assert used == {"alpha", "beta"}, used
        # The operator's view: each worker's own INFO log names the tasks it took and finished.
        for log in logs:
            text = log.read_text(errors="replace")
            assert "Task execute_plan[" in text and " received" in text and " succeeded in " in text, text[-2000:]
    finally:
        deployment.stop_workers()


def test_a_worker_killed_mid_load_fails_the_run_and_a_rerun_succeeds(deployment, pg_admin, sample_stores,
                                                                    graph_config) -> None:
    try:
        district, run_id, pid = deployment.paused_load("gamma")
        assert _parent(pid) == deployment.workers[0].pid  # the worker's pool process that runs the district
        os.kill(pid, signal.SIGKILL)
        run = deployment.wait([run_id])[run_id]
        assert run.status == dg.DagsterRunStatus.FAILURE
        assert not any(n for tables in store_snapshot(sample_stores, district).values() for n in tables.values())
        assert graph_nodes(graph_config, district) == 0
        assert prepared(pg_admin, sample_stores, district) == []
    finally:
        deployment.stop_workers()

    deployment.worker("delta")
    try:
        rerun = deployment.launch(district)
        assert deployment.wait([rerun])[rerun].is_success, deployment.failure(rerun)
        _assert_loaded(sample_stores, graph_config, deployment.data_root, district)
        assert deployment.worker_of(rerun).startswith("delta@")
    finally:
        deployment.stop_workers()


def _stat(pid: int) -> list[str]:
    """/proc/<pid>/stat after the command name: [state, parent pid, ...]."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def _parent(pid: int) -> int:
    return int(_stat(pid)[1])


def _gone(pid: int) -> bool:
    """Exited: no such process, or a zombie not yet reaped (its sessions and sockets are closed)."""
    try:
        return _stat(pid)[0] == "Z"
    except FileNotFoundError:
        return True


def test_a_whole_worker_killed_mid_load_its_step_runs_again_on_another(deployment, pg_admin, sample_stores,
                                                                       graph_config) -> None:
    try:
        district, run_id, pool = deployment.paused_load("epsilon")
        main = deployment.workers[0]
        # scripts/celery-worker.sh execs celery: the process it started is the worker's main process.
        assert b"celery" in Path(f"/proc/{main.pid}/cmdline").read_bytes() and _parent(pool) == main.pid
        other = deployment.worker("zeta")  # only now, so the step surely went to epsilon
        os.kill(main.pid, signal.SIGKILL)
        main.wait(timeout=10)
        deadline = time.monotonic() + 10
        while not _gone(pool):  # celery's PR_SET_PDEATHSIG: the pool process dies with the main process
            assert time.monotonic() < deadline, f"pool process {pool} outlived its worker"
            time.sleep(0.1)
        run = deployment.wait([run_id])[run_id]
        assert run.is_success, deployment.failure(run_id)
        _assert_loaded(sample_stores, graph_config, deployment.data_root, district)
        assert prepared(pg_admin, sample_stores, district) == []
        assert [h.split("@")[0] for h in deployment.workers_of(run_id)] == ["epsilon", "zeta"]
        text = other.read_text(errors="replace")
        assert " received" in text and " succeeded in " in text, text[-2000:]
    finally:
        deployment.stop_workers()
