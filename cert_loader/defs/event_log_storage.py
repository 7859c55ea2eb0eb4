"""dagster-postgres's event log storage with one pooled connection per process (issue 6: a district in ≤ 30 s).

A district run writes ~1,400 events: a planned event per asset and per check at launch, then a step
output, a materialization and two check evaluations per table. Stock ``PostgresEventLogStorage`` holds no
connection between calls (SQLAlchemy ``NullPool``): every event opens a new PostgreSQL connection — a
backend fork, ~3 ms here — and each asset-check event opens one more only to ask whether the
``asset_check_executions`` table exists. On the seed's district shape that was ~31 s of a 60 s run.

This subclass changes only how connections are held: a ``QueuePool`` of one connection per process
(overflow for the odd concurrent writer, e.g. the engine's progress lines logged from store threads),
pinged before use when it sat idle (a PostgreSQL restart then costs a reconnect, not a failed event write;
back-to-back events skip the ping, which alone cost ~1 s per district), and the answer "the asset-check
table exists" remembered once it is yes. Rows, statements and transactions are dagster-postgres's
own. The webserver still swaps in its own pool (``optimize_for_webserver``) exactly as before.

Three more costs of a district's ~1,600 events are cut the same way, nothing written differently:

- Each event's row went in followed by a second statement, ``NOTIFY``, which dagster-postgres keeps only
  for processes of older Dagster versions (event watching polls now); every process of this instance runs
  the pinned Dagster, so nothing listens. The row, its asset index rows and its check row are the stock ones.
- A run's ~635 planned events (one per asset and per check, written before the step starts) reach the
  storage as one batch when ``DAGSTER_EVENT_BATCH_SIZE`` is set — Dagster's own batch writing, which this
  storage turns on for its process unless the operator set the variable (0 turns it off). The stock
  Postgres batch only handles materializations and falls back to one event at a time; here a batch of
  planned events is one multi-row INSERT, then each event's index rows as before.
- Every check result asks for the latest materialization of its asset's partition (the check's target),
  and every materialization for its parents' (data provenance): ~500 queries, each answered by the
  materialization this same step stored milliseconds before. The storage remembers the materializations
  it stored itself and answers exactly that question ("latest of asset A, partition P", no other filter)
  from memory. Another process can only write a later one for the same partition by running the same
  district at the same time, which the run queue's dagster/partition limit and the engine's district lock
  both prevent; a wipe or event deletion in this process forgets what it remembered.
- Every output of the step asks whether the district is still a partition (a dynamic partition): ~480
  identical queries. A "yes" is kept for ``PARTITION_YES_S`` seconds (a partition deleted meanwhile in
  another process is seen that much later; one deleted in this process at once); a "no" is asked again.

Upstream tracks the same costs: dagster-io/dagster#33935 (pool settings not configurable), #34153
(``supports_asset_checks`` is uncached), #33832 (planned events written one by one).
"""

from __future__ import annotations

import os
import time
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy.exc
import sqlalchemy.pool as db_pool
from dagster import AssetKey, AssetRecordsFilter, DagsterEventType, EventLogEntry, EventLogRecord, EventRecordsResult
# No public spelling in Dagster 1.13.27 of these (ConfigurableClassData: no `dagster.serdes`, `dagster_shared.serdes`
# lacks it; the event-type sets are what dagster-postgres's own store_event tests against): dagster-postgres
# imports them from here too, and the subclass takes what its parent takes.
from dagster._core.event_api import EventLogCursor
from dagster._core.events import ASSET_CHECK_EVENTS, ASSET_EVENTS
from dagster._serdes import ConfigurableClassData
from dagster_postgres.event_log.event_log import PostgresEventLogStorage
from dagster_postgres.utils import create_pg_engine, get_token_provider_from_config, pg_url_from_config
from sqlalchemy import event

# A process writes its events one at a time; the overflow only serves concurrent writers, and is closed on return.
POOL_SIZE = 1
MAX_OVERFLOW = 8
# Recycle before any server or proxy idle timeout would cut a connection the daemon or webserver holds.
POOL_RECYCLE_S = 1800
# A connection back in the pool for longer than this is pinged before its next use. A server restart
# takes far longer, so a connection it closed has always sat idle long enough to be pinged; a run's
# events come milliseconds apart, so they skip the ping. Left: a backend killed on its own (say by
# pg_terminate_backend) within this window of the next event fails that one write, then is replaced.
PING_AFTER_IDLE_S = 0.1
# Dagster's batch writing, on for this storage's process (planned events in one batch; see the module docstring).
EVENT_BATCH_SIZE = "1000"
PLANNED = frozenset({DagsterEventType.ASSET_MATERIALIZATION_PLANNED, DagsterEventType.ASSET_CHECK_EVALUATION_PLANNED})
# How many (asset, partition) materializations a process remembers having stored: a district run needs ~160.
REMEMBERED = 10_000
# How long "district D is a partition" is believed without asking again (a run's outputs ask within seconds).
PARTITION_YES_S = 10.0


class PooledPostgresEventLogStorage(PostgresEventLogStorage):
    """``PostgresEventLogStorage`` that keeps its connection (configured exactly like dagster-postgres's)."""

    def __init__(self, postgres_url: str, should_autocreate_tables: bool = True,
                 inst_data: ConfigurableClassData | None = None, token_provider=None):
        super().__init__(postgres_url, should_autocreate_tables, inst_data, token_provider)
        self._engine.dispose()
        self._engine = create_pg_engine(
            self.postgres_url, token_provider, isolation_level="AUTOCOMMIT", poolclass=db_pool.QueuePool,
            pool_size=POOL_SIZE, max_overflow=MAX_OVERFLOW, pool_recycle=POOL_RECYCLE_S,
        )
        ping_when_idle(self._engine.pool, PING_AFTER_IDLE_S)
        self._has_check_table = False
        self._tables: set[str] = set()
        self._asset_key_cols: set[str] = set()
        self._stored: OrderedDict[tuple[AssetKey, str], EventLogRecord] = OrderedDict()
        self._partition_yes: dict[tuple[str, str], float] = {}
        os.environ.setdefault("DAGSTER_EVENT_BATCH_SIZE", EVENT_BATCH_SIZE)

    @classmethod
    def from_config_value(cls, inst_data: ConfigurableClassData | None,
                          config_value: Mapping[str, Any]) -> PooledPostgresEventLogStorage:
        return cls(
            postgres_url=pg_url_from_config(config_value),
            should_autocreate_tables=config_value.get("should_autocreate_tables", True),
            inst_data=inst_data,
            token_provider=get_token_provider_from_config(config_value),
        )

    def dispose(self) -> None:
        """Close the held connection with the instance (stock dagster-postgres has none to close)."""
        super().dispose()
        self._engine.dispose()

    def store_event(self, event: EventLogEntry) -> None:
        self._store([event])

    def store_event_batch(self, events: Sequence[EventLogEntry]) -> None:
        if events and all(e.is_dagster_event and e.dagster_event_type in PLANNED for e in events):
            self._store(events)
        else:
            super().store_event_batch(events)

    def _store(self, events: Sequence[EventLogEntry]) -> None:
        """dagster-postgres's store_event for one event or a batch: the rows, then their index rows (no NOTIFY)."""
        with self._connect() as conn:
            insert = self.prepare_insert_event_batch(events)
            result = conn.execute(insert.returning(insert.table.c.id))
            ids = [int(row[0]) for row in result.fetchall()]
        asset = [(e, i) for e, i in zip(events, ids)
                 if e.is_dagster_event and e.dagster_event_type in ASSET_EVENTS and e.dagster_event.asset_key]
        if asset:
            with self.index_transaction() as conn:
                self._store_asset_event_tags(conn, [e for e, _ in asset], [i for _, i in asset])
                for entry, event_id in asset:
                    self._store_asset_event(conn, entry, event_id)
                    self._remember(entry, event_id)
        for entry, event_id in zip(events, ids):
            if entry.is_dagster_event and entry.dagster_event_type in ASSET_CHECK_EVENTS:
                self.store_asset_check_event(entry, event_id)

    def _remember(self, entry: EventLogEntry, event_id: int) -> None:
        dagster_event = entry.dagster_event
        if dagster_event.event_type != DagsterEventType.ASSET_MATERIALIZATION or dagster_event.partition is None:
            return
        key = (dagster_event.asset_key, dagster_event.partition)
        self._stored[key] = EventLogRecord(storage_id=event_id, event_log_entry=entry)
        self._stored.move_to_end(key)
        if len(self._stored) > REMEMBERED:
            self._stored.popitem(last=False)

    def fetch_materializations(self, records_filter, limit: int, cursor: str | None = None,
                               ascending: bool = False) -> EventRecordsResult:
        record = self._latest_stored(records_filter, limit, cursor, ascending)
        if record is None:
            return super().fetch_materializations(records_filter, limit, cursor, ascending)
        # What the SQL query returns for limit=1: the record, a cursor at it, has_more as len == limit.
        return EventRecordsResult([record], cursor=EventLogCursor.from_storage_id(record.storage_id).to_string(),
                                  has_more=True)

    def _latest_stored(self, f, limit: int, cursor: str | None, ascending: bool) -> EventLogRecord | None:
        """The remembered answer to "latest materialization of asset A, partition P" — that question only."""
        if not isinstance(f, AssetRecordsFilter) or limit != 1 or cursor is not None or ascending:
            return None
        if f.asset_partitions is None or len(f.asset_partitions) != 1 or any(
                v is not None for v in (f.after_timestamp, f.before_timestamp, f.after_storage_id,
                                        f.before_storage_id, f.storage_ids)):
            return None
        return self._stored.get((f.asset_key, f.asset_partitions[0]))

    def has_dynamic_partition(self, partitions_def_name: str, partition_key: str) -> bool:
        key = (partitions_def_name, partition_key)
        if time.monotonic() - self._partition_yes.get(key, -PARTITION_YES_S) < PARTITION_YES_S:
            return True
        if not super().has_dynamic_partition(partitions_def_name, partition_key):
            return False
        if len(self._partition_yes) >= REMEMBERED:
            self._partition_yes.clear()
        self._partition_yes[key] = time.monotonic()
        return True

    def delete_dynamic_partition(self, partitions_def_name: str, partition_key: str) -> None:
        self._partition_yes.pop((partitions_def_name, partition_key), None)
        super().delete_dynamic_partition(partitions_def_name, partition_key)

    def wipe(self) -> None:
        self._stored.clear()
        self._partition_yes.clear()
        super().wipe()

    def delete_events(self, run_id: str) -> None:
        self._stored.clear()
        super().delete_events(run_id)

    def wipe_asset(self, asset_key: AssetKey) -> None:
        self._stored.clear()
        super().wipe_asset(asset_key)

    def wipe_asset_partitions(self, asset_key: AssetKey, partition_keys: Sequence[str]) -> None:
        self._stored.clear()
        super().wipe_asset_partitions(asset_key, partition_keys)

    @property
    def supports_asset_checks(self) -> bool:
        # A table that exists does not stop existing under a running instance; a "no" is asked again
        # so that a `dagster instance migrate` in between is seen.
        if not self._has_check_table:
            self._has_check_table = bool(super().supports_asset_checks)
        return self._has_check_table

    # Asked on every stored materialization (its tags' table) and asset-record read (the status cache's
    # columns): each a catalog query, has_table on a connection of its own; ~1.3 s of the seed shape's
    # run on a busy server (py-spy, issue 15). Same rule as above: a "yes" is kept, a "no" asked again.
    def has_table(self, table_name: str) -> bool:
        if table_name not in self._tables and super().has_table(table_name):
            self._tables.add(table_name)
        return table_name in self._tables

    def has_asset_key_col(self, column_name: str) -> bool:
        if column_name not in self._asset_key_cols and super().has_asset_key_col(column_name):
            self._asset_key_cols.add(column_name)
        return column_name in self._asset_key_cols

    def _has_asset_key_col_on_connection(self, conn, column_name: str) -> bool:
        if column_name not in self._asset_key_cols and super()._has_asset_key_col_on_connection(conn, column_name):
            self._asset_key_cols.add(column_name)
        return column_name in self._asset_key_cols


def ping_when_idle(pool: db_pool.Pool, idle_s: float) -> None:
    """SQLAlchemy's ``pool_pre_ping``, skipped for a connection used less than ``idle_s`` ago.

    Raising ``DisconnectionError`` from a checkout listener is SQLAlchemy's documented way to have the
    pool drop the connection and hand out a fresh one (it retries the checkout).
    """

    @event.listens_for(pool, "checkin")
    def _checkin(dbapi_connection, record) -> None:
        record.info["cert_loader_idle_since"] = time.monotonic()

    @event.listens_for(pool, "checkout")
    def _checkout(dbapi_connection, record, proxy) -> None:
        since = record.info.get("cert_loader_idle_since")
        if since is None or time.monotonic() - since < idle_s:
            return
        try:
            with dbapi_connection.cursor() as cursor:
                cursor.execute("SELECT 1")
        except Exception as exc:  # noqa: BLE001 - any failure means this connection is gone
            raise sqlalchemy.exc.DisconnectionError(f"event log connection lost while idle: {exc}") from exc
