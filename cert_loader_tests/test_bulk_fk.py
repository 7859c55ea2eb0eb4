"""Bulk-FK mode against the real stores: same results as ordinary mode, FKs back exactly, refused for non-owners, crash-safe."""

from __future__ import annotations

import time

import psycopg
import pytest

from cert_loader.engine import LoadOptions, load_district, unload_district
from cert_loader_tests.fix_cli import cli_env, kill, paused_load, run_cli
from cert_loader_tests.fix_district import check_rows, rewrite, set_value, store_snapshot

pytestmark = pytest.mark.usefixtures("no_prepared_left")


def fk_definitions(urls: dict[str, str]) -> dict[str, list[tuple]]:
    """Every FK of every store as the catalog has it: table, name, definition, validated."""
    out = {}
    for store, url in urls.items():
        with psycopg.connect(url, autocommit=True) as conn:
            out[store] = conn.execute(
                "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid), convalidated "
                "FROM pg_constraint WHERE contype = 'f' ORDER BY 1, 2").fetchall()
    return out


def firing_order(urls: dict[str, str]) -> dict[str, list[tuple]]:
    """Per table, its FKs in the order PostgreSQL checks them on insert (RI trigger names sort by creation)."""
    out = {}
    for store, url in urls.items():
        with psycopg.connect(url, autocommit=True) as conn:
            out[store] = conn.execute(
                "SELECT t.tgrelid::regclass::text, array_agg(c.conname ORDER BY t.tgname) FROM pg_trigger t "
                "JOIN pg_constraint c ON c.oid = t.tgconstraint WHERE c.contype = 'f' AND t.tgrelid = c.conrelid "
                "AND t.tgfoid = 'pg_catalog.\"RI_FKey_check_ins\"'::regproc GROUP BY 1 ORDER BY 1").fetchall()
    return out


def test_same_results_as_ordinary_mode_and_every_fk_back(pg_config, make_district, sample_stores):
    district = make_district(students=40)
    before, order = fk_definitions(sample_stores), firing_order(sample_stores)
    assert sum(len(v) for v in before.values()) > 10
    ordinary = load_district(pg_config(), district)
    assert ordinary.status == "SUCCESS", ordinary.error
    rows = store_snapshot(sample_stores, district)
    unload_district(pg_config(), district)
    bulk = load_district(pg_config(), district, LoadOptions(bulk_fk=True))
    assert bulk.status == "SUCCESS", bulk.error
    assert check_rows(bulk) == check_rows(ordinary)
    assert bulk.as_dict()["post_load_validation"] == ordinary.as_dict()["post_load_validation"]
    assert store_snapshot(sample_stores, district) == rows
    assert fk_definitions(sample_stores) == before
    assert firing_order(sample_stores) == order  # a row breaking two FKs names the same one as before


@pytest.mark.parametrize("strategy", ["replace", "merge", "upsert"])
def test_each_strategy_verifies_the_same_in_bulk_mode(strategy, pg_config, make_district, sample_stores):
    district = make_district(students=30)
    before = fk_definitions(sample_stores)
    assert load_district(pg_config(), district).status == "SUCCESS"
    ordinary = load_district(pg_config(), district, LoadOptions(strategy=strategy))
    bulk = load_district(pg_config(), district, LoadOptions(strategy=strategy, bulk_fk=True))
    assert (ordinary.status, bulk.status) == ("SUCCESS", "SUCCESS"), (ordinary.error, bulk.error)
    assert check_rows(bulk) == check_rows(ordinary)
    assert fk_definitions(sample_stores) == before


def test_an_orphan_fails_the_bulk_load_and_leaves_the_constraints(pg_config, make_district, sample_stores, data_root):
    district = make_district(students=20)
    rewrite(data_root, district, "ids", "edfi.enrollment", lambda t: set_value(t, "section_id", 0, 999_999))
    before = fk_definitions(sample_stores)
    report = load_district(pg_config(), district, LoadOptions(bulk_fk=True))
    assert report.status == "FAILED"
    message = report.error["message"]
    assert "edfi.enrollment" in message and "fk_integrity" in message and "999999" in message, message
    assert fk_definitions(sample_stores) == before
    assert all(n == 0 for rows in store_snapshot(sample_stores, district).values() for n in rows.values())


def test_a_role_that_does_not_own_the_tables_is_refused_in_preflight(as_loader, loader_role, make_district,
                                                                     sample_stores):
    district = make_district(students=10)
    report = load_district(as_loader(), district, LoadOptions(bulk_fk=True))
    assert report.status == "FAILED"
    message = report.error["message"]
    assert "--bulk-fk" in message and "is owned by root" in message and loader_role.name in message, message
    assert "load without --bulk-fk" in message
    assert all(n == 0 for rows in store_snapshot(sample_stores, district).values() for n in rows.values())
    # The same role loads fine in ordinary mode.
    assert load_district(as_loader(), district).status == "SUCCESS"


def test_the_lock_is_access_exclusive_and_a_crash_restores_every_fk(make_district, sample_stores, data_root):
    district = make_district(students=300)
    before = fk_definitions(sample_stores)
    point = "mid-copy:ids:edfi.attendance_event"
    proc = paused_load(point, district, cli_env(sample_stores, data_root), "--bulk-fk", stores="ids")
    try:
        with psycopg.connect(sample_stores["ids"], autocommit=True) as conn:
            locked = {r[0] for r in conn.execute(
                "SELECT l.relation::regclass::text FROM pg_locks l JOIN pg_database d ON d.oid = l.database "
                "WHERE d.datname = current_database() AND l.mode = 'AccessExclusiveLock' AND l.granted "
                "AND l.relation IS NOT NULL").fetchall()}
        assert {"edfi.attendance_event", "edfi.student", "school"} <= locked, locked
        assert fk_definitions(sample_stores) == before  # other sessions never see them gone
    finally:
        kill(proc)
    deadline = time.monotonic() + 30
    while fk_definitions(sample_stores) != before and time.monotonic() < deadline:
        time.sleep(0.2)
    assert fk_definitions(sample_stores) == before
    rerun = run_cli("load", district, "--stores", "ids", env=cli_env(sample_stores, data_root))
    assert rerun.returncode == 0, rerun.stdout[-2000:] + rerun.stderr[-2000:]


def test_plan_shows_the_refusal_and_writes_nothing(as_loader, loader_role, make_district, sample_stores):
    from cert_loader.engine import plan_district

    district = make_district(students=10)
    pf = plan_district(as_loader(), district, LoadOptions(bulk_fk=True))
    try:
        refusals = [str(p) for p in pf.plan.problems]
    finally:
        pf.close()
    assert refusals and all("--bulk-fk" in r and "is owned by root" in r for r in refusals), refusals
    assert any(r.startswith("ids: edfi.enrollment:") for r in refusals)
    pf = plan_district(as_loader(), district, LoadOptions())
    try:
        assert not pf.plan.problems
    finally:
        pf.close()
