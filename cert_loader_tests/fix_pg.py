"""PostgreSQL for the tests: the real local server, databases named per test session and dropped after it."""

from __future__ import annotations

import contextlib
import os
import secrets
import time
from typing import Callable, Iterator

import psycopg
import pytest
from psycopg import sql

from cert_loader.config import redact_url
from cert_loader.constants import PG_STORES
from cert_loader.testing.databases import create_database

ADMIN_URL = os.environ.get("CERT_TEST_PG_ADMIN_URL", "postgresql://root@127.0.0.1:5432/postgres")
RUN_ID = secrets.token_hex(4)
# Every database this run creates starts with this (make_database); other runs' databases are never touched.
DATABASE_PREFIX = f"cert_{RUN_ID}_"


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


# The session's pg_admin while it is open, so the autouse fixture can tell whether any test used PostgreSQL.
_OPEN_ADMIN: list[AdminConnection] = []


@pytest.fixture(scope="session")
def pg_admin() -> Iterator[AdminConnection]:
    """One autocommit connection per session; an unreachable server fails the tests, never skips them."""
    conn = AdminConnection()
    if conn.execute("SHOW max_prepared_transactions").fetchone()[0] == "0":
        conn.close()  # two-phase commit is what most tests check: say so once, not as 300 odd failures
        pytest.fail("the test server has max_prepared_transactions = 0: run the tests with `bash scripts/test.sh`, "
                    "which enables prepared transactions (and restarts PostgreSQL once)", pytrace=False)
    _OPEN_ADMIN.append(conn)
    try:
        yield conn
    finally:
        _OPEN_ADMIN.remove(conn)
        conn.close()


@pytest.fixture(scope="session")
def make_database(pg_admin) -> Iterator[Callable[..., str]]:
    """Create a database ``cert_<run>_<suffix>`` (marked as CERT unless told otherwise); drop all at the end."""
    created: list[str] = []

    def make(suffix: str, *, mark: bool = True, ddl: str | None = None) -> str:
        name = f"{DATABASE_PREFIX}{suffix}"
        created.append(name)
        return create_database(ADMIN_URL, name, ddl, mark=mark)

    yield make
    for name in created:
        _rollback_prepared(pg_admin, name)
        pg_admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def _rollback_prepared(pg_admin, database: str) -> None:
    _rollback_all(pg_admin.execute(
        "SELECT gid, database FROM pg_prepared_xacts WHERE database = %s", (database,)).fetchall())


def _prepared_of_this_run(pg_admin) -> list[tuple[str, str]]:
    """(gid, database) of every prepared transaction in this run's databases: one query."""
    return pg_admin.execute(
        "SELECT gid, database FROM pg_prepared_xacts WHERE starts_with(database, %s) ORDER BY database, gid",
        (DATABASE_PREFIX,),
    ).fetchall()


def _rollback_all(rows: list[tuple[str, str]]) -> None:
    by_database: dict[str, list[str]] = {}
    for gid, database in rows:
        by_database.setdefault(database, []).append(gid)
    for database, gids in by_database.items():
        with psycopg.connect(db_url(database), autocommit=True) as conn:
            for gid in gids:
                with contextlib.suppress(psycopg.errors.UndefinedObject):  # finished meanwhile
                    conn.tpc_rollback(gid)


def leave_prepared(url: str, gid: str, *statements: str) -> None:
    """A prepared transaction as a crashed load leaves it: ``statements`` run, PREPAREd, the session gone."""
    conn = psycopg.connect(url)
    try:
        conn.tpc_begin(gid)
        for statement in statements or ("SELECT 1",):
            conn.execute(statement)
        conn.tpc_prepare()
    finally:
        conn.close()


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


@pytest.fixture(autouse=True)
def rollback_prepared() -> Iterator[None]:
    """Roll back this run's leftover prepared transactions before and after every test (psycopg's ``tpc``).

    A test that never touched PostgreSQL costs nothing: until some test opened ``pg_admin`` this run has
    no database, so there is nothing to roll back and no connection is made. Otherwise one query before
    and one after. ``no_prepared_left`` depends on this fixture, so its check runs before this clean-up.
    """
    _rollback_leftovers()
    yield
    _rollback_leftovers()


def _rollback_leftovers() -> None:
    for admin in _OPEN_ADMIN:  # empty until a test asked for pg_admin: then this run has no database yet
        _rollback_all(_prepared_of_this_run(admin))


@pytest.fixture
def no_prepared_left(rollback_prepared, pg_admin, sample_stores) -> Iterator[None]:
    """Fail a test that leaves a prepared transaction of this run behind (``rollback_prepared`` then cleans up)."""
    yield
    rows = _prepared_of_this_run(pg_admin)
    assert not rows, f"prepared transactions left behind: {rows}"
