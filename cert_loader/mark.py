"""The CERT mark in one place: what makes a database a CERT store, how to set it, and the guard that refuses any other target (DESIGN.md section 4)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import errors as pgerr
from psycopg import sql

from cert_loader.config import PgStoreConfig
from cert_loader.constants import DECISION_QUALNAME, DECISION_TABLE, LOADER_SCHEMA
from cert_loader.errors import StoreError
from cert_loader.stores.postgres import PgStore, mapped_errors, store_error

# The database setting that makes a database a CERT store (DESIGN.md section 4).
MARK_SETTING = "cert_loader.environment"
MARK_VALUE = "cert"


def mark_statements(database: str) -> list[str]:
    """What a database owner runs once to make a database a CERT store the loader may write to."""
    decisions = sql.Identifier(LOADER_SCHEMA, DECISION_TABLE).as_string(None)
    return [
        f"ALTER DATABASE {sql.Identifier(database).as_string(None)} SET {MARK_SETTING} = '{MARK_VALUE}';",
        f"CREATE SCHEMA IF NOT EXISTS {sql.Identifier(LOADER_SCHEMA).as_string(None)};",
        f"CREATE TABLE IF NOT EXISTS {decisions} (run_id text PRIMARY KEY, district_id text NOT NULL, "
        "stores text[] NOT NULL, decided_at timestamptz NOT NULL DEFAULT now());",
    ]


@dataclass
class StoreStatus:
    """What pre-flight learned about one PostgreSQL store."""

    name: str
    url: str
    database: str = ""
    marked: bool = False
    loader_schema: bool = False
    two_phase: bool = False
    max_prepared: int = 0
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def inspect_store(store: PgStore) -> StoreStatus:
    """The mark, the loader's schema and two-phase support of an open store, in one round trip."""
    with mapped_errors(store.name):
        database, mark, schema, max_prepared = store.conn.execute(
            "SELECT current_database(), current_setting(%s, true), to_regclass(%s) IS NOT NULL, "
            "current_setting('max_prepared_transactions')::int",
            (MARK_SETTING, DECISION_QUALNAME),
        ).fetchone()
    return StoreStatus(
        name=store.name, url=store.config.redacted(), database=database, marked=mark == MARK_VALUE,
        loader_schema=schema, two_phase=max_prepared > 0, max_prepared=max_prepared,
    )


def not_marked(name: str, database: str, url: str, outcome: str) -> StoreError:
    """The refusal of a database that is not marked, naming the statement that marks it."""
    return StoreError(
        f'database "{database}" ({url}) is not marked as a CERT store; {outcome}',
        store=name,
        hint=f"if it really is CERT, its owner (or a superuser) runs: {mark_statements(database)[0]} "
        f"(or `cert-loader mark --stores {name}`)",
    )


def mark_problems(status: dict[str, StoreStatus]) -> list[StoreError]:
    """Refuse any database not marked as a CERT store, or marked but without the loader's schema."""
    problems = []
    for name, st in status.items():
        if not st.marked:
            problems.append(not_marked(name, st.database, st.url, "nothing was written"))
        elif not st.loader_schema:
            problems.append(StoreError(
                f'database "{st.database}" lacks the loader\'s schema {LOADER_SCHEMA} (staging and commit decisions)',
                store=name, hint=f"its owner runs `cert-loader mark --stores {name}`",
            ))
    return problems


# The loader's schema counts as present once its decision table exists (the last object `mark` creates);
# inspect_store checks the same.
def loader_schema_exists(conn: psycopg.Connection) -> bool:
    return conn.execute("SELECT to_regclass(%s) IS NOT NULL", (DECISION_QUALNAME,)).fetchone()[0]


def mark_store(store: PgStore) -> str:
    """Run the mark statements on an open autocommit connection; returns the database name.

    Raises a StoreError that says what is missing: the database owner, and on PostgreSQL 15 for a
    non-superuser owner also a superuser's ``GRANT SET ON PARAMETER`` (a custom setting is superuser-only).
    """
    conn = store.conn
    with mapped_errors(store.name):
        database, user, owner, superuser = conn.execute(
            "SELECT current_database(), current_user, pg_get_userbyid(d.datdba), r.rolsuper "
            "FROM pg_database d, pg_roles r WHERE d.datname = current_database() AND r.rolname = current_user"
        ).fetchone()
    statements = mark_statements(database)
    for statement in statements:
        try:
            conn.execute(statement)
        except pgerr.InsufficientPrivilege as exc:
            setting = statement == statements[0]  # ALTER DATABASE … SET
            raise store_error(store.name, exc, hint=_mark_hint(store.name, database, user, owner, superuser,
                                                               setting, statements)) from exc
        except psycopg.Error as exc:
            raise store_error(store.name, exc) from exc
    return database


def _mark_hint(store: str, database: str, user: str, owner: str, superuser: bool, setting: bool,
               statements: list[str]) -> str:
    if user != owner and not superuser:
        return (f"marking needs the database owner: role {user!r} is not the owner of database {database!r} "
                f"(its owner is {owner!r}); ask the owner or a superuser to run `cert-loader mark --stores "
                f"{store}` with their own URL, or to run: {' '.join(statements)}")
    # "must be owner", "permission denied to set parameter" and a refused CREATE SCHEMA share one SQLSTATE
    # (42501, InsufficientPrivilege), so no error class tells them apart; nor should the message text, which
    # follows the server's lc_messages. For the owner, ALTER DATABASE … SET can only be refused the parameter.
    if setting:
        grant = sql.SQL("GRANT SET ON PARAMETER {} TO {};").format(
            sql.SQL(MARK_SETTING), sql.Identifier(user)).as_string(None)
        return (f"role {user!r} owns database {database!r}, but PostgreSQL lets only a superuser set a custom "
                f"setting on a database unless granted: a superuser runs `{grant}` once (or runs the mark)")
    return f"marking needs the database owner (CREATE on the database, to create the schema {LOADER_SCHEMA})"


def require_marked(configs: dict[str, PgStoreConfig]) -> None:
    """Refuse unless every store is marked as CERT (StoreError naming store, database and the marking statement).

    For commands that write outside a load's pre-flight (``recover``): nothing is touched anywhere when one
    store is not marked.
    """
    for name, config in configs.items():
        with PgStore(config, application="cert_loader-guard") as store:
            with mapped_errors(name):
                database, mark = store.conn.execute(
                    "SELECT current_database(), current_setting(%s, true)", (MARK_SETTING,)).fetchone()
        if mark != MARK_VALUE:
            raise not_marked(name, database, config.redacted(), "nothing was touched")
