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

Upstream tracks the same costs: dagster-io/dagster#33935 (pool settings not configurable), #34153
(``supports_asset_checks`` is uncached), #33832 (planned events written one by one).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import sqlalchemy.exc
import sqlalchemy.pool as db_pool
# Dagster 1.13.27 has no public spelling of ConfigurableClassData (no `dagster.serdes`; `dagster_shared.serdes`
# lacks it): dagster-postgres imports it from here too, and the subclass takes what its parent takes.
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
