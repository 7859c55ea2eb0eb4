"""Bulk-FK mode (opt-in): the loaded tables' foreign keys come off for the load and go back, validated set-wise, in the same transaction.

PostgreSQL checks an FK once per inserted row (~70% of a load's time, DESIGN.md section 10). With
``--bulk-fk`` each store's transaction drops the FKs *of the tables it loads*, loads, verifies exactly as
in ordinary mode, then re-adds every FK with ``ALTER TABLE … ADD CONSTRAINT`` and the definition
``pg_get_constraintdef`` gave, which validates the whole table in one pass. It is all one transaction:
a failure or a crash anywhere rolls back to the untouched constraints.

The price: ``DROP CONSTRAINT`` takes an ACCESS EXCLUSIVE lock on the table and on the table it references,
held until the store commits (or, when the load is in doubt, until ``cert-loader recover``): nobody can
read those tables meanwhile. Re-adding validates every district's rows of the table, not only this one's.
Only the owner of a table (or a member of the owning role) may do this; pre-flight refuses otherwise.

Kept in place (checked per row as in ordinary mode): FKs that are NOT VALID (re-adding would skip the
check), FKs of partitions (they follow their parent's), FKs with ON DELETE/UPDATE actions other than
NO ACTION/RESTRICT unless the strategy only inserts (their actions run on deletes and updates), and FKs
of tables outside the load that point at loaded tables.
"""

from __future__ import annotations

from dataclasses import dataclass

from psycopg import sql

from cert_loader.errors import CatalogError, CertLoaderError
from cert_loader.stores.postgres import PgStore

# Referential actions that only check (a: NO ACTION, r: RESTRICT); others change rows on parent deletes/updates.
_CHECK_ONLY = ("a", "r")

_FKS = """
SELECT n.nspname, c.relname, con.conname, pg_get_constraintdef(con.oid), rn.nspname, rc.relname,
       pg_get_userbyid(c.relowner), current_user, pg_has_role(c.relowner, 'USAGE'),
       has_table_privilege(con.confrelid, 'REFERENCES'),
       con.convalidated, con.confdeltype::text, con.confupdtype::text
FROM pg_constraint con
JOIN pg_class c ON c.oid = con.conrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_class rc ON rc.oid = con.confrelid
JOIN pg_namespace rn ON rn.oid = rc.relnamespace
WHERE con.contype = 'f' AND con.conparentid = 0
  AND (n.nspname, c.relname) IN (SELECT * FROM unnest(%s::text[], %s::text[]))
ORDER BY con.oid
"""


@dataclass(frozen=True)
class BulkFk:
    """One FK that bulk-FK mode takes off and puts back, with the definition to put back."""

    schema: str
    table: str
    name: str
    definition: str  # pg_get_constraintdef(): "FOREIGN KEY (a, b) REFERENCES s.p(a, b) DEFERRABLE …"
    ref_schema: str
    ref_table: str

    @property
    def qualname(self) -> str:
        return f"{self.schema}.{self.table}"


@dataclass
class BulkFkPlan:
    """What one store drops, what it keeps (and why), and what stops the mode in pre-flight."""

    store: str
    drop: list[BulkFk]
    kept: list[str]
    problems: list[CertLoaderError]


def plan_bulk_fk(store: PgStore, tables: list[tuple[str, str]], strategy: str) -> BulkFkPlan:
    """Read the FKs of ``tables`` (schema, name) and decide, before anything is written, which come off."""
    plan = BulkFkPlan(store.name, [], [], [])
    if not tables:
        return plan
    schemas, names = [t[0] for t in tables], [t[1] for t in tables]
    for (schema, table, name, definition, ref_schema, ref_table, owner, user, owns, refs,
         valid, on_delete, on_update) in store.rows(_FKS, (schemas, names)):
        qual = f"{schema}.{table}"
        if not valid:
            plan.kept.append(f"{qual}: {name} (NOT VALID: kept, checked per row)")
            continue
        if strategy != "insert" and (on_delete not in _CHECK_ONLY or on_update not in _CHECK_ONLY):
            plan.kept.append(f"{qual}: {name} (has ON DELETE/UPDATE actions: kept, checked per row)")
            continue
        if not owns:
            plan.problems.append(CatalogError(
                f"--bulk-fk drops and re-adds foreign key {name}, which only the table's owner may do: "
                f"{qual} is owned by {owner}, and {user} is not a member of that role",
                store=store.name, table=qual,
                hint=f"run the load as {owner} (or a member of it), or load without --bulk-fk",
            ))
            continue
        if not refs:
            plan.problems.append(CatalogError(
                f"--bulk-fk re-adds foreign key {name}, which needs the REFERENCES privilege on "
                f"{ref_schema}.{ref_table}; {user} lacks it",
                store=store.name, table=qual,
                hint=f"GRANT REFERENCES ON {ref_schema}.{ref_table} TO {user}, or load without --bulk-fk",
            ))
            continue
        plan.drop.append(BulkFk(schema, table, name, definition, ref_schema, ref_table))
    return plan


def drop_fks(store: PgStore, fks: list[BulkFk]) -> None:
    """Inside the store's open transaction: take the FKs off (ACCESS EXCLUSIVE on both tables until commit)."""
    for fk in fks:
        store.execute(
            sql.SQL("ALTER TABLE {} DROP CONSTRAINT {}").format(sql.Identifier(fk.schema, fk.table), sql.Identifier(fk.name)),
            table=fk.qualname,
        )


def restore_fks(store: PgStore, fks: list[BulkFk]) -> None:
    """Put every FK back exactly as it was; ADD CONSTRAINT validates the whole table set-wise.

    The definition is the server's own text from ``pg_get_constraintdef`` (its identifiers already
    quoted by the server), read in pre-flight; it is never built from input. They go back in their
    original creation order, so a row breaking two FKs still names the same one first (PostgreSQL fires
    the FK triggers in the order they were created).
    """
    for fk in fks:
        store.execute(
            sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} ").format(sql.Identifier(fk.schema, fk.table), sql.Identifier(fk.name))
            + sql.SQL(fk.definition),  # noqa: S608 - server-generated constraint text, see docstring
            table=fk.qualname,
        )
