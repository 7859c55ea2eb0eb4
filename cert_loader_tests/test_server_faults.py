"""Servers failing under a running load: PostgreSQL restarted, the graph server killed. The load fails cleanly, nothing is half-done, a rerun succeeds."""

from __future__ import annotations

import os
import subprocess
import time

import pytest

from cert_loader.testing.arcadedb import start_arcadedb
from cert_loader_tests.fix_cli import CLI, cli_env, run_cli
from cert_loader_tests.fix_district import store_snapshot

PAUSE = "8"


def _start_paused_load(district, env, point):
    proc = subprocess.Popen(
        [*CLI, "load", district, "--stores", "ids,hcp1,hcp2,adb,sp" if "CERT_SP_URI" in env else "ids,hcp1,hcp2,adb"],
        env={**env, "CERT_LOADER_TEST_PAUSE_AT": point, "CERT_LOADER_TEST_PAUSE_SECONDS": PAUSE},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if line.startswith(f"PAUSED {point}"):
            return proc
        if not line and proc.poll() is not None:
            break
    proc.kill()
    pytest.fail(f"the load never paused at {point}: {proc.stderr.read()[-2000:]}")


def _nothing_of(sample_stores, district) -> bool:
    return all(n == 0 for rows in store_snapshot(sample_stores, district).values() for n in rows.values())


def test_postgres_restarted_mid_load(make_district, sample_stores, data_root, no_prepared_left):
    district = make_district(students=400)
    env = cli_env(sample_stores, data_root)
    proc = _start_paused_load(district, env, "mid-copy:hcp1:public.visit")
    cluster = os.listdir("/etc/postgresql")[0]
    subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", cluster, "main", "restart"], check=True, timeout=120)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 1, out + err
    assert "✗ CERT Load FAILED" in out
    assert _nothing_of(sample_stores, district)
    rerun = run_cli("load", district, "--stores", "ids,hcp1,hcp2,adb", env=env)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr


def test_graph_server_killed_mid_load(make_district, sample_stores, data_root, tmp_path, no_prepared_left):
    server = start_arcadedb(tmp_path / "arcade", password="killed-mid-load-pw")
    try:
        from cert_loader.config import GraphConfig

        graph = GraphConfig(server.bolt_uri, server.user, server.password, server.database)
        district = make_district(students=200)
        env = cli_env(sample_stores, data_root, graph)
        proc = _start_paused_load(district, env, "graph-begun")
        server.stop()
        out, err = proc.communicate(timeout=180)
        assert proc.returncode == 1, out + err
        assert "✗ CERT Load FAILED" in out and "sp" in out
        assert _nothing_of(sample_stores, district)
        # The same data directory, restarted: the graph holds nothing of the district, and a rerun succeeds.
        server = start_arcadedb(tmp_path / "arcade", password="killed-mid-load-pw")
        graph = GraphConfig(server.bolt_uri, server.user, server.password, server.database)
        from cert_loader.stores.graph import GraphStore

        with GraphStore(graph) as store:
            assert not any(store.counts(district)["nodes"].values())
        env = cli_env(sample_stores, data_root, graph)
        rerun = run_cli("load", district, "--stores", "ids,hcp1,hcp2,adb,sp", env=env)
        assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    finally:
        server.stop()
