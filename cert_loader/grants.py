"""What a CERT database owner runs for the loader: the CERT mark, and the least-privilege grants of the loader's role (issue 7)."""

from __future__ import annotations

from dataclasses import dataclass

import psycopg
from psycopg import errors as pgerr
from psycopg import sql

from cert_loader.catalog import Catalog, read_catalog
from cert_loader.config import PgStoreConfig
from cert_loader.errors import StoreError
from cert_loader.preflight import MARK_SETTING, mark_statements
from cert_loader.stores.postgres import PgStore, mapped_errors, store_error

# The loader's own schema (created by `cert-loader mark`): staging tables for upsert/merge, created and
# dropped inside the load transaction, and the commit decisions (strategies/base.py, transaction.py).
LOADER_SCHEMA = "cert_loader"
DECISION_TABLE = "load_decision"
# What a load does to a CERT table: read (counts, FK checks, staging), COPY/INSERT, upsert/merge, delete.
TABLE_PRIVILEGES = "SELECT, INSERT, UPDATE, DELETE"
# The column marking a CERT table (DESIGN.md section 2), as plan.DISTRICT_COLUMN.
DISTRICT_COLUMN = "district_id"

# Sequences that the CERT tables' column defaults call (serial columns): COPY of a row that takes the
# default calls nextval(), which needs USAGE. Identity columns need no grant.
_DEFAULT_SEQUENCES = """
SELECT DISTINCT tn.nspname, t.relname, sn.nspname, s.relname
FROM pg_attrdef ad
JOIN pg_depend d ON d.classid = 'pg_attrdef'::regclass AND d.objid = ad.oid AND d.refclassid = 'pg_class'::regclass
JOIN pg_class s ON s.oid = d.refobjid AND s.relkind = 'S'
JOIN pg_namespace sn ON sn.oid = s.relnamespace
JOIN pg_class t ON t.oid = ad.adrelid
JOIN pg_namespace tn ON tn.oid = t.relnamespace
ORDER BY 3, 4
"""


@dataclass(frozen=True)
class GrantTargets:
    """The objects of one store the loader's role needs, read from its live catalog."""

    database: str
    tables: tuple[tuple[str, str], ...]  # CERT tables (they have district_id): read and write
    parents: tuple[tuple[str, str], ...]  # FK parents without district_id: read by the FK verification
    sequences: tuple[tuple[str, str], ...]  # called by the CERT tables' column defaults

    @property
    def schemas(self) -> tuple[str, ...]:
        return tuple(sorted({s for s, _ in self.tables + self.parents + self.sequences}))


def grant_targets(catalog: Catalog, default_sequences: dict[tuple[str, str], list[tuple[str, str]]] | None = None) -> GrantTargets:
    """The CERT tables of ``catalog``, the parents their FKs read, and the sequences their defaults call."""
    cert = sorted(k for k, t in catalog.tables.items() if t.column(DISTRICT_COLUMN) is not None)
    parents = sorted({fk.ref_key for k in cert for fk in catalog.tables[k].foreign_keys} - set(cert))
    seqs = sorted({s for k in cert for s in (default_sequences or {}).get(k, ())})
    return GrantTargets(catalog.database, tuple(cert), tuple(parents), tuple(seqs))


def grant_statements(role: str, targets: GrantTargets) -> list[str]:
    """The GRANT statements that give ``role`` exactly what a load, unload and recovery need (README, Security).

    CONNECT and TEMPORARY on the database; USAGE on the CERT schemas; SELECT, INSERT, UPDATE, DELETE on the
    CERT tables (SELECT on read-only FK parents, USAGE on default sequences, when there are any); USAGE and
    CREATE on the loader's schema and SELECT, INSERT on its decision table. No ownership, no superuser.
    """
    who = sql.Identifier(role)

    def text(query: sql.Composable) -> str:
        return query.as_string(None) + ";"

    def idents(names) -> sql.Composable:
        return sql.SQL(", ").join(sql.Identifier(*n) if isinstance(n, tuple) else sql.Identifier(n) for n in names)

    out = [text(sql.SQL("GRANT CONNECT, TEMPORARY ON DATABASE {} TO {}").format(sql.Identifier(targets.database), who))]
    if targets.schemas:
        out.append(text(sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(idents(targets.schemas), who)))
    for schema in sorted({s for s, _ in targets.tables}):
        tables = [t for t in targets.tables if t[0] == schema]
        out.append(text(sql.SQL("GRANT " + TABLE_PRIVILEGES + " ON TABLE {} TO {}").format(idents(tables), who)))
    if targets.parents:
        out.append(text(sql.SQL("GRANT SELECT ON TABLE {} TO {}").format(idents(targets.parents), who)))
    if targets.sequences:
        out.append(text(sql.SQL("GRANT USAGE ON SEQUENCE {} TO {}").format(idents(targets.sequences), who)))
    out.append(text(sql.SQL("GRANT USAGE, CREATE ON SCHEMA {} TO {}").format(sql.Identifier(LOADER_SCHEMA), who)))
    out.append(text(sql.SQL("GRANT SELECT, INSERT ON TABLE {} TO {}").format(
        sql.Identifier(LOADER_SCHEMA, DECISION_TABLE), who)))
    return out


def read_grant_targets(conn: psycopg.Connection, store: str) -> GrantTargets:
    """The grant targets of the connected store, from its live catalog (nothing is written)."""
    with mapped_errors(store):
        catalog = read_catalog(conn, store)
        seqs: dict[tuple[str, str], list[tuple[str, str]]] = {}
        for tschema, table, sschema, seq in conn.execute(_DEFAULT_SEQUENCES).fetchall():
            seqs.setdefault((tschema, table), []).append((sschema, seq))
    return grant_targets(catalog, seqs)


def loader_schema_exists(conn: psycopg.Connection) -> bool:
    return conn.execute("SELECT to_regclass('cert_loader.load_decision') IS NOT NULL").fetchone()[0]


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
            if user != owner and not superuser:
                hint = (f"marking needs the database owner: role {user!r} is not the owner of database {database!r} "
                        f"(its owner is {owner!r}); ask the owner or a superuser to run `cert-loader mark --stores "
                        f"{store.name}` with their own URL, or to run: {' '.join(statements)}")
            elif "set parameter" in str(exc):
                grant = sql.SQL("GRANT SET ON PARAMETER {} TO {};").format(
                    sql.SQL(MARK_SETTING), sql.Identifier(user)).as_string(None)
                hint = (f"role {user!r} owns database {database!r}, but PostgreSQL lets only a superuser set a custom "
                        f"setting on a database unless granted: a superuser runs `{grant}` once (or runs the mark)")
            else:
                hint = "marking needs the database owner (CREATE on the database, to create the schema cert_loader)"
            raise store_error(store.name, exc, hint=hint) from exc
        except psycopg.Error as exc:
            raise store_error(store.name, exc) from exc
    return database


def require_marked(configs: dict[str, PgStoreConfig]) -> None:
    """Refuse unless every store is marked as CERT (StoreError naming store, database and the marking statement).

    For commands that write outside a load's pre-flight (``recover``): nothing is touched anywhere when one
    store is not marked.
    """
    from cert_loader.preflight import MARK_VALUE

    for name, config in configs.items():
        store = PgStore(config, application="cert_loader-guard")
        try:
            conn = store.connect(autocommit=True)
            with mapped_errors(name):
                database, mark = conn.execute(
                    "SELECT current_database(), current_setting(%s, true)", (MARK_SETTING,)).fetchone()
        finally:
            store.close()
        if mark != MARK_VALUE:
            raise StoreError(
                f'database "{database}" ({config.redacted()}) is not marked as a CERT store; nothing was touched',
                store=name,
                hint="if it really is CERT, its owner (or a superuser) runs: " + mark_statements(database)[0]
                + f" (or `cert-loader mark --stores {name}`)",
            )
