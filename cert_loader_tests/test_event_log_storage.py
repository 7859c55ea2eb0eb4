"""The instance's event log storage: dagster-postgres's tables and rows, one held connection per process (issue 6)."""

from __future__ import annotations

import time

import dagster as dg
import pytest
from dagster_postgres.event_log.event_log import PostgresEventLogStorage

from cert_loader.defs.event_log_storage import PING_AFTER_IDLE_S, PooledPostgresEventLogStorage
from cert_loader_tests.dagster_support import dagster_home, sqlalchemy_url

KEY = dg.AssetKey(["cert", "ids", "probe"])


@pytest.fixture(scope="module")
def database(make_database) -> str:
    return make_database("event_log", mark=False)


@pytest.fixture
def instance(database, tmp_path, monkeypatch):
    monkeypatch.setenv("DAGSTER_PG_URL", sqlalchemy_url(database))
    with dg.DagsterInstance.from_config(str(dagster_home(tmp_path / "home"))) as instance:
        yield instance


def backends(pg_admin, database: str) -> set[int]:
    rows = pg_admin.execute("SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
                            (database.rsplit("/", 1)[1],)).fetchall()
    return {pid for (pid,) in rows}


def report(instance, n: int) -> None:
    for i in range(n):
        instance.report_runless_asset_event(dg.AssetMaterialization(KEY, metadata={"i": i}))


def test_events_reuse_one_connection(instance, database, pg_admin) -> None:
    assert isinstance(instance.event_log_storage, PooledPostgresEventLogStorage)
    report(instance, 1)
    held = backends(pg_admin, database)
    assert len(held) == 1, held  # NullPool (stock dagster-postgres) would hold none between events
    report(instance, 30)
    assert backends(pg_admin, database) == held  # the same backend wrote all 30: no connection per event


def test_a_dropped_connection_is_replaced_not_failed(instance, database, pg_admin) -> None:
    report(instance, 1)
    (pid,) = backends(pg_admin, database)
    pg_admin.execute("SELECT pg_terminate_backend(%s)", (pid,))  # what a PostgreSQL restart does to it,
    time.sleep(PING_AFTER_IDLE_S * 3)  # and a restart takes far longer than this
    report(instance, 1)  # the idle ping notices, the pool reconnects, the event is written
    assert backends(pg_admin, database) - {pid}


def test_stock_dagster_postgres_reads_what_it_wrote(instance, database) -> None:
    before = len(instance.fetch_materializations(KEY, limit=1000).records)
    report(instance, 3)
    stock = PostgresEventLogStorage(sqlalchemy_url(database))
    try:
        records = stock.fetch_materializations(KEY, limit=1000).records
        assert len(records) == before + 3
        assert records[0].asset_materialization.metadata["i"].value == 2  # newest first
    finally:
        stock.dispose()
