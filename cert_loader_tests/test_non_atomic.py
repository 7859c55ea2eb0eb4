"""Non-atomic loads: a store whose server has max_prepared_transactions = 0 (refused under --atomic=required, else
committed store after store and said so), and --atomic=off, which commits store after store on purpose.

The server without prepared transactions is a throwaway PostgreSQL cluster the fixture creates (pg_createcluster)
and drops; --atomic=off runs against the session's stores.
"""

from __future__ import annotations

import os
import socket
import subprocess

import psycopg
import pytest

from cert_loader.config import LoaderConfig, PgStoreConfig
from cert_loader.engine import LoadOptions, load_district
from cert_loader.mark import mark_statements
from cert_loader.report import render_summary
from cert_loader.sample import apply_schema
from cert_loader_tests.fix_cli import cli_env, kill, paused_load, run_cli
from cert_loader_tests.fix_district import district_rows, store_snapshot
from cert_loader_tests.fix_pg import DATABASE_PREFIX, RUN_ID

OFF_REASON = "atomic commit switched off (--atomic=off)"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def no_2pc_url():
    version = os.listdir("/etc/postgresql")[0]
    name = f"cert_np_{RUN_ID}"
    port = _free_port()
    subprocess.run(["pg_createcluster", version, name, "-p", str(port), "--", "--auth=trust"],
                   check=True, capture_output=True, timeout=120)
    try:
        subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", version, name, "start"],
                       check=True, capture_output=True, timeout=120)
        admin = f"postgresql://postgres@127.0.0.1:{port}/postgres"
        with psycopg.connect(admin, autocommit=True) as conn:
            assert conn.execute("SHOW max_prepared_transactions").fetchone()[0] == "0"
            conn.execute("CREATE DATABASE cert_hcp2")
        url = f"postgresql://postgres@127.0.0.1:{port}/cert_hcp2"
        with psycopg.connect(url, autocommit=True) as conn:
            for statement in mark_statements("cert_hcp2"):
                conn.execute(statement)
        apply_schema(url, "hcp2")
        yield url
    finally:
        subprocess.run(["pg_dropcluster", "--stop", version, name], capture_output=True, timeout=120)


def _config(data_root, sample_stores, url):
    return LoaderConfig(data_root, {"ids": PgStoreConfig("ids", sample_stores["ids"]), "hcp2": PgStoreConfig("hcp2", url)})


def test_required_atomicity_is_refused(no_2pc_url, sample_stores, make_district, data_root):
    district = make_district(students=20)
    report = load_district(_config(data_root, sample_stores, no_2pc_url), district, LoadOptions(atomic="required"))
    assert report.status == "FAILED"
    assert "two-phase commit is not available" in report.error["message"]
    assert "max_prepared_transactions = 0 on hcp2" in report.error["message"]
    assert not any(district_rows(sample_stores["ids"], district).values())
    assert not any(district_rows(no_2pc_url, district).values())


def test_default_commits_store_after_store_and_says_so(no_2pc_url, sample_stores, make_district, data_root):
    district = make_district(students=20)
    report = load_district(_config(data_root, sample_stores, no_2pc_url), district)
    assert report.status == "SUCCESS", report.error
    data = report.as_dict()
    assert data["atomicity"] == "non-atomic"
    assert "max_prepared_transactions = 0 on hcp2" in data["atomicity_reason"]
    assert {s["transaction"] for s in data["stores"].values()} == {"COMMITTED"}
    assert any(district_rows(no_2pc_url, district).values())


def test_plan_says_two_phase_is_unavailable(no_2pc_url, sample_stores, make_district, data_root):
    district = make_district(students=10)
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "CERT_IDS_URL": sample_stores["ids"],
           "CERT_HCP2_URL": no_2pc_url}
    proc = run_cli("plan", district, "--data-root", str(data_root), "--stores", "ids,hcp2", env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "two-phase unavailable (max_prepared_transactions = 0)" in proc.stdout
    assert "Commit: non-atomic (store after store)" in proc.stdout


def _our_prepared(pg_admin) -> list[tuple]:
    return pg_admin.execute("SELECT gid, database FROM pg_prepared_xacts WHERE starts_with(database, %s)",
                            (DATABASE_PREFIX,)).fetchall()


def test_atomic_off_commits_store_after_store_without_preparing(sample_stores, make_district, data_root, pg_admin):
    """Paused between two stores' commits: the first stores' rows are committed, the rest not begun, nothing prepared."""
    district = make_district(students=20)
    proc = paused_load("before-commit:hcp2", district, cli_env(sample_stores, data_root), "--atomic", "off")
    try:
        rows = store_snapshot(sample_stores, district)
        assert _our_prepared(pg_admin) == []
    finally:
        kill(proc)
    has_rows = {store: any(tables.values()) for store, tables in rows.items()}
    assert has_rows == {"ids": True, "hcp1": True, "hcp2": False, "adb": False}
    # That is what off means: killed there, the first two stores keep the district, the others never get it.
    assert store_snapshot(sample_stores, district) == rows


def test_atomic_off_is_reported_as_non_atomic_with_its_reason(pg_config, sample_stores, make_district, pg_admin):
    district = make_district(students=20)
    report = load_district(pg_config(), district, LoadOptions(atomic="off"))
    assert report.status == "SUCCESS", report.error
    data = report.as_dict()
    assert (data["atomicity"], data["atomicity_reason"]) == ("non-atomic", OFF_REASON)
    assert {s: v["transaction"] for s, v in data["stores"].items()} == dict.fromkeys(sample_stores, "COMMITTED")
    assert data["post_load_validation"]["status"] == "PASSED"
    landed = store_snapshot(sample_stores, district)
    assert {s: sum(t.values()) for s, t in landed.items()} == {s: v["records_loaded"] for s, v in data["stores"].items()}
    assert all(sum(t.values()) > 0 for t in landed.values())
    assert f"  Commit:    non-atomic ({OFF_REASON})" in render_summary(report).splitlines()
    assert _our_prepared(pg_admin) == []
