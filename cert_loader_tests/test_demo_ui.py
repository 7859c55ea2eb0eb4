"""`bash scripts/demo.sh --ui`: the README's "Running it from Dagster" in one step, stopped by Ctrl-C (issue 14, point 2)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Iterator

import pytest
from dagster import DagsterRunStatus
from dagster_graphql import DagsterGraphQLClient
from psycopg import sql

from cert_loader_tests.dagster_support import REPO, VENV_BIN, free_port, subprocess_env
from cert_loader_tests.fix_district import district_rows
from cert_loader_tests.fix_pg import RUN_ID, db_url

pytestmark = [pytest.mark.demo_ui,
              # dagster_graphql's client calls gql the old way (its deprecation, not ours)
              pytest.mark.filterwarnings("ignore:Using variable_values and operation_name:DeprecationWarning")]

FINISHED = {DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED}
URL_LINE = re.compile(r"Dagster UI: (http://127\.0\.0\.1:\d+)")
QUERY = """{
  assetNodes { assetKey { path } partitionKeys }
  workspaceOrError { ... on Workspace { locationEntries { name locationOrLoadError {
    __typename ... on PythonError { message }
    ... on RepositoryLocation { repositories { sensors { name sensorState {
      status ticks(limit: 1) { status skipReason error { message } } } } } } } } } }
}"""


def _default_signals() -> None:
    """Background shells may start us with SIGINT/SIGTERM ignored (DESIGN.md section 9); a Ctrl-C must reach the demo."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}").exists() and "Z" not in Path(f"/proc/{pid}/stat").read_text().split()[2]


@pytest.fixture
def demo_ui(pg_admin, tmp_path) -> Iterator[dict]:
    """The demo in UI mode on its own directory, databases and port; whatever happens, stopped and cleaned up."""
    demo_dir, prefix = tmp_path / "demo", f"cert_{RUN_ID}_demoui"
    log_path = tmp_path / "demo-ui.log"
    env = subprocess_env(CERT_DEMO_DIR=str(demo_dir), CERT_DEMO_STUDENTS="200", CERT_DEMO_DB_PREFIX=prefix)
    port = free_port()  # never the README's 3000: a user's own demo UI may be on it
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(["bash", str(REPO / "scripts" / "demo.sh"), "--ui", "--port", str(port)], env=env, cwd=tmp_path,
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                preexec_fn=_default_signals)
    try:
        yield {"proc": proc, "log": log_path, "dir": demo_dir, "prefix": prefix, "port": port}
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(30)
        subprocess.run([str(VENV_BIN / "python"), "-m", "cert_loader.testing.arcadedb", "stop",
                        "--dir", str(demo_dir / "arcadedb")], env=env, timeout=60)
        for suffix in ("ids", "hcp1", "hcp2", "adb", "dagster"):
            pg_admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(f"{prefix}_{suffix}")))


def _wait_for_url(proc: subprocess.Popen, log_path: Path, timeout: float = 420) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = log_path.read_text(errors="replace")
        found = URL_LINE.search(text)
        if found:
            return found.group(1)
        if proc.poll() is not None:
            pytest.fail(f"demo.sh --ui exited ({proc.returncode}) before printing the URL:\n{text[-4000:]}", pytrace=False)
        time.sleep(1)
    pytest.fail(f"demo.sh --ui printed no URL in {timeout} s:\n{log_path.read_text()[-4000:]}", pytrace=False)


def _graphql(url: str, proc: subprocess.Popen, log_path: Path, ready=lambda data: bool(data.get("assetNodes")),
             timeout: float = 120) -> dict:
    """The first answer of the GraphQL API for which ``ready`` holds (by default: the code location is loaded)."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"demo.sh --ui exited ({proc.returncode}):\n{log_path.read_text()[-4000:]}", pytrace=False)
        request = urllib.request.Request(f"{url}/graphql", data=json.dumps({"query": QUERY}).encode(),
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                last = json.load(response)
            if last.get("data") and ready(last["data"]):
                return last["data"]
        except OSError:
            pass
        time.sleep(1)
    pytest.fail(f"no ready answer from {url}/graphql in {timeout} s (last answer {last}):\n"
                f"{log_path.read_text()[-4000:]}", pytrace=False)


def _materialized(url: str, path: list[str]) -> list[str]:
    """The partitions of an asset that have a materialization in the instance (what the UI shows as loaded)."""
    query = ('{ assetOrError(assetKey: {path: %s}) { ... on Asset { assetMaterializations { partition } } } }'
             % json.dumps(path))
    request = urllib.request.Request(f"{url}/graphql", data=json.dumps({"query": query}).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        data = json.load(response)["data"]["assetOrError"]
    return sorted({m["partition"] for m in data.get("assetMaterializations") or []})


def _sensors(data: dict) -> dict[str, dict]:
    return {s["name"]: s["sensorState"] for entry in data["workspaceOrError"]["locationEntries"]
            for repo in entry["locationOrLoadError"]["repositories"] for s in repo["sensors"]}


def test_demo_ui_leaves_a_ready_instance_and_ctrl_c_stops_everything(demo_ui) -> None:
    proc, log_path, demo_dir, prefix = demo_ui["proc"], demo_ui["log"], demo_ui["dir"], demo_ui["prefix"]
    url = _wait_for_url(proc, log_path)
    assert url == f"http://127.0.0.1:{demo_ui['port']}"
    data = _graphql(url, proc, log_path)

    nodes = {"/".join(n["assetKey"]["path"]): n["partitionKeys"] for n in data["assetNodes"]}
    assert {"cert/ids/school", "cert/ids/edfi__student", "cert/hcp1/clinic", "cert/adb/assessment",
            "cert/sp/nodes", "cert/sp/relationships"} <= set(nodes)
    assert all(keys == ["district-001", "district-002"] for keys in nodes.values()), nodes
    assert {name: state["status"] for name, state in _sensors(data).items()} == {
        "cert_recovery_sensor": "RUNNING", "validation_report_sensor": "STOPPED"}
    # The daemon ticks the recovery sensor at once, with the code location's EnvVar resources.
    data = _graphql(url, proc, log_path, ready=lambda d: bool(_sensors(d)["cert_recovery_sensor"]["ticks"]), timeout=90)
    assert _sensors(data)["cert_recovery_sensor"]["ticks"][0] == {
        "status": "SKIPPED", "skipReason": "nothing in doubt", "error": None}

    # district-001 was loaded by the demo; district-002 only registered.
    assert all(n > 0 for n in district_rows(db_url(f"{prefix}_ids"), "district-001").values())
    assert not any(district_rows(db_url(f"{prefix}_ids"), "district-002").values())
    # The demo's CLI load reported to the instance (DAGSTER_HOME set): the UI shows district-001 as loaded.
    for path in (["cert", "ids", "school"], ["cert", "hcp2", "referral"], ["cert", "sp", "nodes"]):
        assert _materialized(url, path) == ["district-001"], path
    env_sh = (demo_dir / "env.sh").read_text()
    assert "DAGSTER_HOME=" in env_sh and f"{prefix}_dagster" in env_sh and "CERT_SP_URI=" in env_sh

    graph_pid = int((demo_dir / "arcadedb" / "arcadedb.pid").read_text())
    assert _pid_alive(graph_pid), "the graph server must keep running under the UI"

    # What the user does next in the UI: materialize district-002 (queued, launched by the daemon, five stores).
    client = DagsterGraphQLClient("127.0.0.1", port_number=demo_ui["port"])
    run_id = client.submit_job_execution("cert_district_job", tags={"dagster/partition": "district-002"})
    deadline = time.monotonic() + 180
    while (status := client.get_run_status(run_id)) not in FINISHED and time.monotonic() < deadline:
        time.sleep(1)
    assert status == DagsterRunStatus.SUCCESS, log_path.read_text()[-4000:]
    assert all(n > 0 for n in district_rows(db_url(f"{prefix}_hcp1"), "district-002").values())

    os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in the demo's terminal sends to its process group
    proc.wait(90)
    deadline = time.monotonic() + 30
    while _pid_alive(graph_pid) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not _pid_alive(graph_pid), "Ctrl-C left the graph server running"
    assert not (demo_dir / "arcadedb" / "arcadedb.pid").exists()
    with pytest.raises(OSError):
        urllib.request.urlopen(f"{url}/server_info", timeout=5)
