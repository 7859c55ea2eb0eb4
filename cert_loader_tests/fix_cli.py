"""`cert-loader` in a child process for the tests: its environment, one run to the end, and a load paused at a named checkpoint (faults.py)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cert_loader.config import GraphConfig

PG = "ids,hcp1,hcp2,adb"
# `cert-loader` as the tests start it: this interpreter, so the package under test is the one that runs.
CLI = (sys.executable, "-m", "cert_loader.cli")
# How long a child load may take to reach its pause point (it first reads and converts the files).
PAUSE_DEADLINE_S = 120


def cli_env(sample_stores: dict[str, str], data_root: Path, graph_config: GraphConfig | None = None) -> dict[str, str]:
    """The environment a user would export: PATH, the data root, every store's URL (and the graph's)."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "CERT_DATA_ROOT": str(data_root)}
    env.update({f"CERT_{s.upper()}_URL": u for s, u in sample_stores.items()})
    if graph_config is not None:
        env.update(CERT_SP_URI=graph_config.uri, CERT_SP_USER=graph_config.user,
                   CERT_SP_PASSWORD=graph_config.password, CERT_SP_DATABASE=graph_config.database)
    return env


def run_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 300,
            cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Run ``cert-loader <args>`` to its end, stdout and stderr captured as text (``env=None``: the test's own)."""
    return subprocess.run([*CLI, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)


def env_stores(env: dict[str, str]) -> str:
    """The --stores value for ``env``: the four PostgreSQL stores, and the graph when it is configured."""
    return f"{PG},sp" if "CERT_SP_URI" in env else PG


def paused_load(point: str, district: str, env: dict[str, str], *args: str, stores: str | None = None,
                **extra_env: str) -> subprocess.Popen:
    """Start ``cert-loader load`` (own process group) and return once it printed ``PAUSED <point>``."""
    return paused_command(point, env, "load", district, "--stores", stores or env_stores(env), *args, **extra_env)


def paused_command(point: str, env: dict[str, str], *args: str, **extra_env: str) -> subprocess.Popen:
    """Start ``cert-loader <args>`` (own process group) and return once it printed ``PAUSED <point>``.

    A command that ends or never gets there fails the test with its stderr.
    """
    proc = subprocess.Popen(
        [*CLI, *args],
        env={**env, "CERT_LOADER_TEST_PAUSE_AT": point, **extra_env},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )
    deadline = time.monotonic() + PAUSE_DEADLINE_S
    seen = []
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line and proc.poll() is not None:
            break
        seen.append(line)
        if line.startswith(f"PAUSED {point}"):
            return proc
    kill(proc)
    pytest.fail(f"`cert-loader {args[0]}` never paused at {point}: {''.join(seen)[-3000:]}")


def kill(proc: subprocess.Popen) -> None:
    """SIGKILL the load's process group (a crash, as far as the stores can tell) and reap it."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(30)
    for stream in (proc.stdout, proc.stderr):
        if stream is not None:
            stream.close()


def kill_at(point: str, district: str, env: dict[str, str], stores: str | None = None) -> None:
    """Start a load that pauses at ``point``, then SIGKILL it from outside."""
    kill(paused_load(point, district, env, stores=stores))
