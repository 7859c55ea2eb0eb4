"""Helpers shared by the Dagster tests: a manifest of the session's stores, resources, instances, environments, `dagster dev`."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import dagster as dg
import pytest

from cert_loader.config import LoaderConfig, PgStoreConfig
from cert_loader.defs.partitions import DISTRICT_PARTITIONS
from cert_loader.defs.resources import DATA_KEY, CertDataResource, PostgresStoreResource, resource_key
from cert_loader.manifest import snapshot, write_manifest

REPO = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
SAMPLE_MANIFEST = Path(__file__).with_name("sample-manifest.json")


def snapshot_to(urls: dict[str, str], path: Path) -> Path:
    """Write the manifest of the given PostgreSQL stores (what `cert-loader snapshot` does)."""
    config = LoaderConfig(data_root=path.parent, pg={n: PgStoreConfig(n, u) for n, u in urls.items()})
    return write_manifest(snapshot(config), path)


def pg_resources(urls: dict[str, str], data_root: Path) -> dict:
    out = {resource_key(n): PostgresStoreResource(url=u) for n, u in urls.items()}
    out[DATA_KEY] = CertDataResource(data_root=str(data_root))
    return out


def instance_with(districts: list[str]) -> dg.DagsterInstance:
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(DISTRICT_PARTITIONS, districts)
    return instance


def materializations(result) -> list[dg.AssetKey]:
    return [e.asset_key for e in result.get_asset_materialization_events()]


def check_evaluations(result) -> list:
    return [e.event_specific_data for e in result.all_events if e.event_type_value == "ASSET_CHECK_EVALUATION"]


def step_failure(result) -> str:
    for event in result.all_events:
        if event.event_type_value == "STEP_FAILURE":
            return event.event_specific_data.error.message
    raise AssertionError("no step failure")


def dagster_home(directory: Path) -> Path:
    """A DAGSTER_HOME holding the project's own dagster.yaml (storage from DAGSTER_PG_URL)."""
    directory.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / "dagster.yaml", directory / "dagster.yaml")
    return directory


def dagster_instance_env(directory: Path, database_url: str) -> dict[str, str]:
    """DAGSTER_HOME (``directory``, with the project's dagster.yaml) and DAGSTER_PG_URL, its storage in ``database_url``."""
    return {"DAGSTER_HOME": str(dagster_home(directory)), "DAGSTER_PG_URL": sqlalchemy_url(database_url)}


def sqlalchemy_url(libpq_url: str) -> str:
    """dagster-postgres wants postgresql+psycopg2:// (DESIGN.md section 9)."""
    return libpq_url.replace("postgresql://", "postgresql+psycopg2://", 1)


def subprocess_env(**extra: str) -> dict[str, str]:
    """The test process's environment without any CERT_*/DAGSTER_* leftovers, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CERT_", "DAGSTER_"))}
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    env.update(extra)
    return env


def cert_env(urls: dict[str, str], data_root: Path) -> dict[str, str]:
    env = {f"CERT_{n.upper()}_URL": u for n, u in urls.items()}
    env["CERT_DATA_ROOT"] = str(data_root)
    return env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def default_signals() -> None:
    """Background shells may start us with SIGINT/SIGTERM ignored; dagster dev must die on them (DESIGN.md section 9).

    A ``preexec_fn`` for the child's Popen.
    """
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def wait_http(url: str, proc: subprocess.Popen, log_path: Path, timeout: float = 60) -> None:
    """Until ``url`` answers; the server exiting, or not answering by the deadline, fails the test with its log."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"dagster dev exited ({proc.returncode}):\n{log_path.read_text()[-3000:]}", pytrace=False)
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.5)
    pytest.fail(f"dagster dev did not answer on {url} in {timeout} s:\n{log_path.read_text()[-3000:]}", pytrace=False)


def stop_group(proc: subprocess.Popen) -> None:
    """SIGTERM the whole process group (webserver, daemon, code server), SIGKILL what is left."""
    for sig, wait in ((signal.SIGTERM, 15), (signal.SIGKILL, 5)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            time.sleep(0.5)  # let the group's other members exit before checking again
        except subprocess.TimeoutExpired:
            continue


def start_dagster_dev(env: dict[str, str], cwd: Path, log_path: Path) -> tuple[subprocess.Popen, int]:
    """`dagster dev` over the project's workspace (own session, so stop_group ends all of it), once it answers."""
    port = free_port()
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [str(VENV_BIN / "dagster"), "dev", "-h", "127.0.0.1", "-p", str(port), "-w", str(REPO / "workspace.yaml")],
            env=subprocess_env(**env), cwd=cwd, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True, preexec_fn=default_signals,
        )
    try:
        wait_http(f"http://127.0.0.1:{port}/server_info", proc, log_path)
    except BaseException:
        stop_group(proc)  # a server that never answered leaves nothing running
        raise
    return proc, port


def dev_instance(instance_url: str, tmp: Path, urls: dict[str, str], graph, **extra: str) -> tuple[dict[str, str], Path, Path]:
    """What `dagster dev` over the session's stores and graph needs: its environment, DAGSTER_HOME and data root.

    The schema manifest is written under the data root, where the code location finds it.
    """
    data_root = tmp / "root"
    config = LoaderConfig(data_root=data_root, pg={n: PgStoreConfig(n, u) for n, u in urls.items()}, graph=graph)
    write_manifest(snapshot(config), data_root / "data" / "analysis" / "cert-schema.json")
    home = dagster_home(tmp / "dagster_home")
    env = {"DAGSTER_HOME": str(home), "DAGSTER_PG_URL": instance_url, **cert_env(urls, data_root),
           "CERT_SP_URI": graph.uri, "CERT_SP_USER": graph.user, "CERT_SP_PASSWORD": graph.password,
           "CERT_SP_DATABASE": graph.database, **extra}
    return env, home, data_root


def start_celery_worker(name: str, env: dict[str, str], log_path: Path) -> subprocess.Popen:
    """`scripts/celery-worker.sh NAME` (own session), once its log says it is ready for tasks."""
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([str(REPO / "scripts" / "celery-worker.sh"), name], env=subprocess_env(**env),
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                preexec_fn=default_signals)
    deadline = time.monotonic() + 60
    while " ready." not in log_path.read_text(errors="replace"):
        if proc.poll() is not None or time.monotonic() > deadline:
            stop_group(proc)
            pytest.fail(f"celery worker {name} did not start:\n{log_path.read_text()[-3000:]}", pytrace=False)
        time.sleep(0.3)
    return proc


# The asset graph of the sample CERT schema: key -> parents (the snapshot; regenerate it with
# `cert-loader snapshot` over the sample stores if the sample schema changes on purpose).
SAMPLE_GRAPH = {
    "cert/ids/edfi__course": [],
    "cert/ids/school": [],
    "cert/ids/edfi__student": ["cert/ids/school"],
    "cert/ids/school_calendar": ["cert/ids/school"],
    "cert/ids/staff": ["cert/ids/school"],
    "cert/ids/edfi__attendance_event": ["cert/ids/edfi__student", "cert/ids/school"],
    "cert/ids/edfi__section": ["cert/ids/edfi__course", "cert/ids/school", "cert/ids/staff"],
    "cert/ids/edfi__enrollment": ["cert/ids/edfi__section", "cert/ids/edfi__student"],
    "cert/hcp1/clinic": [],
    "cert/hcp1/patient": ["cert/hcp1/clinic"],
    "cert/hcp1/immunization": ["cert/hcp1/patient"],
    "cert/hcp1/screening": ["cert/hcp1/patient"],
    "cert/hcp1/visit": ["cert/hcp1/clinic", "cert/hcp1/patient"],
    "cert/hcp2/provider": [],
    "cert/hcp2/provider_credential": ["cert/hcp2/provider"],
    "cert/hcp2/referral": ["cert/hcp2/provider"],
    "cert/hcp2/service_plan": ["cert/hcp2/provider"],
    "cert/hcp2/service_session": ["cert/hcp2/service_plan"],
    "cert/adb/assessment": [],
    "cert/adb/assessment_item": ["cert/adb/assessment"],
    "cert/adb/assessment_window": ["cert/adb/assessment"],
    "cert/adb/performance_level": ["cert/adb/assessment"],
    "cert/adb/student_assessment": ["cert/adb/assessment", "cert/adb/assessment_window"],
    "cert/adb/objective_score": ["cert/adb/student_assessment"],
    "cert/sp/nodes": [],
    "cert/sp/relationships": ["cert/sp/nodes"],
}
