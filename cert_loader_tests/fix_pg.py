"""PostgreSQL for the tests: the real local server, databases named per test session and dropped after it."""

from __future__ import annotations

import os
import secrets
import time
from typing import Callable, Iterator

import psycopg
import pytest
from psycopg import sql

from cert_loader.config import redact_url
from cert_loader.constants import PG_STORES
from cert_loader.bench.workload import create_database

ADMIN_URL = os.environ.get("CERT_TEST_PG_ADMIN_URL", "postgresql://root@127.0.0.1:5432/postgres")
RUN_ID = secrets.token_hex(4)


def db_url(name: str) -> str:
    base = ADMIN_URL.rsplit("/", 1)[0]
    return f"{base}/{name}"


class AdminConnection:
    """An autocommit connection that reconnects once when the server was restarted under it (fault tests do)."""

    def __init__(self) -> None:
        self.conn = self._connect()

    @staticmethod
    def _connect() -> psycopg.Connection:
        last: Exception | None = None
        for _ in range(30):
            try:
                return psycopg.connect(ADMIN_URL, autocommit=True, connect_timeout=10)
            except psycopg.OperationalError as exc:
                last = exc
                time.sleep(1)
        pytest.fail(f"PostgreSQL at {redact_url(ADMIN_URL)} is not reachable: {last}")

    def execute(self, query, params=None):
        try:
            return self.conn.execute(query, params)
        except psycopg.OperationalError:
            self.conn = self._connect()
            return self.conn.execute(query, params)

    def close(self) -> None:
        self.conn.close()


@pytest.fixture(scope="session")
def pg_admin() -> Iterator[AdminConnection]:
    """One autocommit connection per session; an unreachable server fails the tests, never skips them."""
    conn = AdminConnection()
    yield conn
    conn.close()


@pytest.fixture(scope="session")
def make_database(pg_admin) -> Iterator[Callable[..., str]]:
    """Create a database ``cert_<run>_<suffix>`` (marked as CERT unless told otherwise); drop all at the end."""
    created: list[str] = []

    def make(suffix: str, *, mark: bool = True, ddl: str | None = None) -> str:
        name = f"cert_{RUN_ID}_{suffix}"
        created.append(name)
        return create_database(ADMIN_URL, name, ddl, mark=mark)

    yield make
    for name in created:
        _rollback_prepared(pg_admin, name)
        pg_admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def _rollback_prepared(pg_admin, database: str) -> None:
    rows = pg_admin.execute("SELECT gid FROM pg_prepared_xacts WHERE database = %s", (database,)).fetchall()
    if rows:
        with psycopg.connect(db_url(database), autocommit=True) as conn:
            for (gid,) in rows:
                conn.tpc_rollback(gid)


@pytest.fixture(scope="session")
def sample_stores(make_database) -> dict[str, str]:
    """The four CERT stores with the sample schema, shared by the session (tests use their own districts)."""
    from cert_loader.sample import apply_schema

    urls = {}
    for store in PG_STORES:
        url = make_database(store)
        apply_schema(url, store)
        urls[store] = url
    return urls


@pytest.fixture
def no_prepared_left(pg_admin, sample_stores) -> Iterator[None]:
    """Assert a test leaves no prepared transaction of ours behind (and clean up if it did)."""
    names = [u.rsplit("/", 1)[1] for u in sample_stores.values()]
    yield
    rows = pg_admin.execute(
        "SELECT gid, database FROM pg_prepared_xacts WHERE database = ANY(%s)", (names,)
    ).fetchall()
    for _, database in rows:
        _rollback_prepared(pg_admin, database)
    assert not rows, f"prepared transactions left behind: {rows}"
