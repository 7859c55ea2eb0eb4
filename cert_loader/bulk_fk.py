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

from cert_loader.errors import CatalogError, CertLoaderError, ConfigError
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


# Every load (and unload) holds this advisory lock of each PostgreSQL store it writes, shared; a bulk-FK
# load holds it exclusively, so its ACCESS EXCLUSIVE locks never meet another load of the same database
# (advisory locks are per database: one key per store). Session-level, on the pre-flight connection the
# store's transaction runs on; closing it (the load's end) frees it.
WRITERS_KEY = "cert_loader:store-writers"
# How long a load waits for it before it is refused (CERT_STORE_LOCK_WAIT seconds).
DEFAULT_LOCK_WAIT_S = 30.0


def lock_wait_s(env=None) -> float:
    import os

    raw = (env if env is not None else os.environ).get("CERT_STORE_LOCK_WAIT", "")
    try:
        return max(0.0, float(raw)) if raw.strip() else DEFAULT_LOCK_WAIT_S
    except ValueError as exc:
        raise ConfigError(f"CERT_STORE_LOCK_WAIT={raw!r} is not a number of seconds",
                          hint="set it to e.g. 30, or unset it") from exc


def store_order(stores: dict[str, PgStore]) -> list[str]:
    """The fixed order every load takes the stores' writer locks in: by server, database, then name."""
    def key(name: str):
        info = stores[name].conn.info
        return (info.host or "", int(info.port or 0), info.dbname or "", name)

    return sorted(stores, key=key)


def lock_writers(stores: dict[str, PgStore], *, exclusive: bool, wait_s: float | None = None,
                 district: str | None = None) -> None:
    """Take each store's writer lock (shared, or exclusive for bulk-FK) in ``store_order``, waiting at most ``wait_s``.

    Always the same order, and never a blocking wait inside the server (a try, then a short sleep), so
    two loads cannot deadlock on these locks across servers. A lock not had in time refuses the load,
    naming the store; the locks already taken are freed with the sessions when the caller closes them.
    """
    import time

    from cert_loader.errors import LoadLockedError

    wait_s = lock_wait_s() if wait_s is None else wait_s
    fn = "pg_try_advisory_lock" if exclusive else "pg_try_advisory_lock_shared"
    query = sql.SQL("SELECT {}(hashtextextended(%s, 0))").format(sql.Identifier(fn))
    deadline = time.monotonic() + wait_s
    for name in store_order(stores):
        while not stores[name].scalar(query, (WRITERS_KEY,)):
            if time.monotonic() >= deadline:
                raise LoadLockedError(_refusal(name, exclusive, wait_s), store=name, district=district,
                                      hint=_refusal_hint(exclusive))
            time.sleep(0.2)


def _refusal(store: str, exclusive: bool, wait_s: float) -> str:
    if exclusive:
        return (f"--bulk-fk needs store {store} to itself (it takes ACCESS EXCLUSIVE locks on the loaded tables), "
                f"but other loads were still writing to it after {wait_s:g} s")
    return f"a --bulk-fk load holds store {store} exclusively (ACCESS EXCLUSIVE locks) and did not end within {wait_s:g} s"


def _refusal_hint(exclusive: bool) -> str:
    if exclusive:
        return ("run the bulk-FK load when no other load writes to this store (or without --bulk-fk); "
                "CERT_STORE_LOCK_WAIT sets how long it waits")
    return "run this load again when the bulk-FK load has finished; CERT_STORE_LOCK_WAIT sets how long it waits"
