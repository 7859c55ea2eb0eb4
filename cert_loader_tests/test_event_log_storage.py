"""The instance's event log storage: dagster-postgres's tables and rows, one held connection per process (issue 6)."""

from __future__ import annotations

import time

from contextlib import contextmanager

import dagster as dg
import pytest
import sqlalchemy
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


def held_backends(pg_admin, database: str) -> set[int]:
    """The backends left once a closed overflow connection's backend has exited (the server ends it a moment later)."""
    deadline = time.monotonic() + 5
    while len(held := backends(pg_admin, database)) > 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    return held


def report(instance, n: int) -> None:
    for i in range(n):
        instance.report_runless_asset_event(dg.AssetMaterialization(KEY, metadata={"i": i}))


def test_events_reuse_one_connection(instance, database, pg_admin) -> None:
    assert isinstance(instance.event_log_storage, PooledPostgresEventLogStorage)
    report(instance, 1)
    held = held_backends(pg_admin, database)
    assert len(held) == 1, held  # NullPool (stock dagster-postgres) would hold none between events
    report(instance, 30)
    assert held_backends(pg_admin, database) == held  # the same backend wrote all 30: no connection per event


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


PARTS = dg.StaticPartitionsDefinition(["d1", "d2"])


@dg.asset(partitions_def=PARTS, key=KEY, check_specs=[dg.AssetCheckSpec("a", asset=KEY), dg.AssetCheckSpec("b", asset=KEY)])
def probe(context):
    yield dg.MaterializeResult(metadata={"partition": context.partition_key})
    yield dg.AssetCheckResult(check_name="a", passed=True)
    yield dg.AssetCheckResult(check_name="b", passed=False)


@contextmanager
def statements():
    """Every SQL statement any engine of this process sends meanwhile."""
    seen: list[str] = []

    def note(conn, cursor, statement, *args) -> None:
        seen.append(" ".join(statement.split()))

    sqlalchemy.event.listen(sqlalchemy.engine.Engine, "before_cursor_execute", note)
    try:
        yield seen
    finally:
        sqlalchemy.event.remove(sqlalchemy.engine.Engine, "before_cursor_execute", note)


def test_a_partitioned_run_reads_back_through_stock_dagster_postgres(instance, database) -> None:
    """Planned events batched, no NOTIFY, check targets answered from memory: the rows are the stock ones."""
    with statements() as sent:
        result = dg.materialize([probe], instance=instance, partition_key="d1")
    assert result.success
    inserts = [s for s in sent if s.startswith("INSERT INTO event_logs")]
    written = instance.all_logs(result.run_id)
    assert not [s for s in sent if "NOTIFY" in s]
    assert len(inserts) == len(written) - 2  # the three planned events (asset, two checks) in one INSERT
    assert dg.materialize([probe], instance=instance, partition_key="d2").success
    assert dg.materialize([probe], instance=instance, partition_key="d1").success
    stock = PostgresEventLogStorage(sqlalchemy_url(database))
    try:
        latest = stock.fetch_materializations(dg.AssetRecordsFilter(KEY, asset_partitions=["d1"]), limit=1).records[0]
        ours = instance.fetch_materializations(dg.AssetRecordsFilter(KEY, asset_partitions=["d1"]), limit=1)
        assert [r.storage_id for r in ours.records] == [latest.storage_id]  # the remembered answer is the stored one
        assert latest.asset_materialization.metadata["partition"].value == "d1"
        for name, status in (("a", "SUCCEEDED"), ("b", "FAILED")):
            history = stock.get_asset_check_execution_history(dg.AssetCheckKey(KEY, name), limit=10)
            assert [h.status.value for h in history] == [status] * 3
            # each evaluation points at the materialization of its own run and partition
            assert history[0].event.dagster_event.event_specific_data.target_materialization_data.storage_id == \
                latest.storage_id
        planned = stock.get_event_records(dg.EventRecordsFilter(dg.DagsterEventType.ASSET_MATERIALIZATION_PLANNED,
                                                                asset_key=KEY), limit=10)
        assert len(planned) == 3
        assert stock.get_asset_records([KEY])[0].asset_entry.last_run_id == latest.run_id
    finally:
        stock.dispose()


def test_only_the_exact_question_is_answered_from_memory(instance, database) -> None:
    assert dg.materialize([probe], instance=instance, partition_key="d2").success
    storage = instance.event_log_storage
    with statements() as sent:
        remembered = storage.fetch_materializations(dg.AssetRecordsFilter(KEY, asset_partitions=["d2"]), limit=1)
    assert sent == []  # stored by this process: answered without a query
    # any other filter goes to the database, and gets the same newest record
    before = remembered.records[0].storage_id + 1
    queried = storage.fetch_materializations(dg.AssetRecordsFilter(KEY, asset_partitions=["d2"],
                                                                   before_storage_id=before), limit=1)
    assert queried.records[0].storage_id == remembered.records[0].storage_id
    instance.wipe_assets([KEY])
    assert storage.fetch_materializations(dg.AssetRecordsFilter(KEY, asset_partitions=["d2"]), limit=1).records == []


def test_a_partition_is_believed_briefly_and_its_deletion_at_once(instance) -> None:
    storage = instance.event_log_storage
    storage.add_dynamic_partitions("districts_probe", ["d-1"])
    assert storage.has_dynamic_partition("districts_probe", "d-1")
    with statements() as sent:
        assert storage.has_dynamic_partition("districts_probe", "d-1")  # asked a moment ago: no query
        assert not storage.has_dynamic_partition("districts_probe", "d-2")
    assert len(sent) == 1  # a "no" is always asked
    storage.delete_dynamic_partition("districts_probe", "d-1")
    assert not storage.has_dynamic_partition("districts_probe", "d-1")
