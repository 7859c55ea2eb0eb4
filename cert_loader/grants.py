"""What a CERT database owner runs for the loader's role: the least-privilege grants, read from the live catalog (issue 7)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import psycopg
from psycopg import sql

from cert_loader.catalog import Catalog, read_catalog
from cert_loader.constants import DECISION_TABLE, DISTRICT_COLUMN, LOADER_SCHEMA
from cert_loader.references import BoundReference
from cert_loader.stores.postgres import mapped_errors

# What a load does to a CERT table: read (counts, FK checks, staging), COPY/INSERT, upsert/merge, delete.
TABLE_PRIVILEGES = "SELECT, INSERT, UPDATE, DELETE"

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
    parents: tuple[tuple[str, str], ...]  # FK parents and declared cross-store parents without district_id: read only
    sequences: tuple[tuple[str, str], ...]  # called by the CERT tables' column defaults

    @property
    def schemas(self) -> tuple[str, ...]:
        return tuple(sorted({s for s, _ in self.tables + self.parents + self.sequences}))


def grant_targets(catalog: Catalog, default_sequences: dict[tuple[str, str], list[tuple[str, str]]] | None = None,
                  referenced: Iterable[tuple[str, str]] = ()) -> GrantTargets:
    """The CERT tables of ``catalog``, the parents their FKs read, and the sequences their defaults call.

    ``referenced`` are this store's parent tables of declared cross-store references (DESIGN.md section 2):
    the check reads them from another store's load, so a shared table no FK points at still needs SELECT.
    """
    cert = sorted(k for k, t in catalog.tables.items() if t.column(DISTRICT_COLUMN) is not None)
    fk_parents = {fk.ref_key for k in cert for fk in catalog.tables[k].foreign_keys}
    parents = sorted((fk_parents | set(referenced)) - set(cert))
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


def read_grant_targets(conn: psycopg.Connection, store: str, catalog: Catalog | None = None,
                       referenced: Iterable[tuple[str, str]] = ()) -> GrantTargets:
    """The grant targets of the connected store, from its live catalog (nothing is written)."""
    with mapped_errors(store):
        catalog = catalog or read_catalog(conn, store)
        seqs: dict[tuple[str, str], list[tuple[str, str]]] = {}
        for tschema, table, sschema, seq in conn.execute(_DEFAULT_SEQUENCES).fetchall():
            seqs.setdefault((tschema, table), []).append((sschema, seq))
    return grant_targets(catalog, seqs, referenced)


def referenced_parents(references: Iterable[BoundReference], store: str) -> set[tuple[str, str]]:
    """The parent tables of ``store`` that declared cross-store references read."""
    return {ref.parent.table.key_id for ref in references if ref.parent.store == store}
