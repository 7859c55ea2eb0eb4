"""Cross-store references checked across the stores' open transactions, after every store verified and before the first PREPARE (DESIGN.md section 7).

For each declared reference (references.py) the child store streams the district's distinct child keys
— every column set, MATCH SIMPLE — with their row counts as a binary COPY straight into a staging table
on the parent store's connection; one anti-join there counts the keys without a parent (of the district
when the parent table has ``district_id``, any row when not). Both ends read inside their transactions,
so a parent loaded by this load counts, and so does one already in CERT. A store outside the load is
read as committed (``committed_stores``).

Mechanism chosen by measurement (scratch benchmark, 2 cores, parent with 100k keys of the district among
200k, runs interleaved): 500k child rows / 100k distinct keys, COPY pass-through + anti-join median 277 ms
(9 runs, 251–391) against 379 ms for fetching the keys into Python and probing with ``unnest(%s::bigint[])``
(394 ms with binary transfer); 2M rows / 500k keys, 1.22 s against 1.53–1.63 s. The keys travel once, server
to server through the client, and the client never holds more than a COPY block (the array probe holds
every key twice).
"""

from __future__ import annotations

import contextlib
import itertools
import time
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from psycopg import sql
from psycopg.pq import TransactionStatus

from cert_loader.catalog import Catalog, read_catalog
from cert_loader.config import PgStoreConfig
from cert_loader.constants import DISTRICT_COLUMN, LOADER_SCHEMA
from cert_loader.errors import CatalogError, VerificationError
from cert_loader.plan import LoadPlan
from cert_loader.references import (
    BoundReference,
    bind_references,
    read_references,
    references_path,
    relevant_references,
)
from cert_loader.results import CheckResult, StoreResult
from cert_loader.stores.postgres import PgStore, mapped_errors
from cert_loader.verify.examples import EXAMPLES

# Stage names are unique within a run: the run's tag plus a counter (a load checks its references one by one).
_SEQ = itertools.count()


@dataclass
class ReferenceResult:
    """One reference's check: what was probed and what had no parent (the report's cross_store_verification)."""

    reference: BoundReference
    check: CheckResult
    child_rows: int = 0  # district rows of the child with every column set
    child_keys: int = 0  # their distinct keys
    orphan_rows: int = 0
    orphan_keys: int = 0
    parent_read: str = "transaction"  # "transaction" (this load's) or "committed" (a store outside the load)
    child_read: str = "transaction"
    duration_s: float = 0.0

    @property
    def passed(self) -> bool:
        return self.check.passed

    def as_dict(self) -> dict[str, Any]:
        ref = self.reference
        return {
            "name": ref.name,
            "child": {"store": ref.child.store, "table": ref.child.table.qualname, "columns": list(ref.child.names),
                      "read": self.child_read},
            "parent": {"store": ref.parent.store, "table": ref.parent.table.qualname, "columns": list(ref.parent.names),
                       "district_scoped": ref.parent.has_district, "read": self.parent_read},
            "checked_rows": self.child_rows,
            "checked_keys": self.child_keys,
            "orphans": self.orphan_rows,
            "orphan_keys": self.orphan_keys,
            "examples": list(self.check.examples),
            "status": "PASSED" if self.passed else "FAILED",
            "duration_s": round(self.duration_s, 3),
        }


@dataclass
class _Stage:
    """The staging table on the parent's connection: the child's distinct keys (k0…) and their row counts (n)."""

    name: sql.Identifier
    keys: list[sql.Identifier] = field(default_factory=list)


def verify_references(
    references: list[BoundReference],
    district: str,
    stores: Mapping[str, PgStore],
    *,
    committed: Mapping[str, PgStore] | None = None,
    run_tag: str = "x",
) -> list[ReferenceResult]:
    """Check every reference; ``stores`` are the load's open transactions, ``committed`` readers of stores outside it."""
    committed = committed or {}
    results = []
    for ref in references:
        child, child_committed = _store(ref.child.store, stores, committed, ref)
        parent, parent_committed = _store(ref.parent.store, stores, committed, ref)
        result = check_reference(ref, district, child, parent, parent_committed=parent_committed, run_tag=run_tag)
        result.child_read = "committed" if child_committed else "transaction"
        results.append(result)
    return results


def _store(name: str, stores: Mapping[str, PgStore], committed: Mapping[str, PgStore],
           ref: BoundReference) -> tuple[PgStore, bool]:
    if name in stores:
        return stores[name], False
    if name in committed:
        return committed[name], True
    raise CatalogError(f'cross-store reference "{ref.name}" needs store {name}, which this load has not opened',
                       store=name, hint="configure the store for this load")


def check_reference(ref: BoundReference, district: str, child: PgStore, parent: PgStore, *,
                    parent_committed: bool = False, run_tag: str = "x") -> ReferenceResult:
    """One reference: stream the child's keys to the parent's connection, anti-join, drop the stage."""
    started = time.monotonic()
    stage = _create_stage(ref, parent, temporary=parent_committed, run_tag=run_tag)
    try:
        keys = _copy_keys(ref, district, child, parent, stage)
        result = _probe(ref, district, parent, stage, keys)
    finally:
        if parent.conn.info.transaction_status != TransactionStatus.INERROR:  # else the caller rolls it all back
            parent.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(stage.name), table=ref.parent.table.qualname)
    result.parent_read = "committed" if parent_committed else "transaction"
    result.duration_s = time.monotonic() - started
    return result


def _create_stage(ref: BoundReference, parent: PgStore, *, temporary: bool, run_tag: str) -> _Stage:
    """An empty table with the compared types: the parent's own, or the family's cast (references.TYPE_FAMILIES).

    In the load's transaction it is an unlogged table in the loader's schema (PostgreSQL refuses to
    PREPARE a transaction that touched a temporary table); on a committed reader, which is never
    prepared and always rolled back, a temporary one.
    """
    suffix = f"xref_{run_tag}_{next(_SEQ)}"
    stage = _Stage(sql.Identifier(suffix) if temporary else sql.Identifier(LOADER_SCHEMA, suffix))
    cols = []
    for i, (column, cast) in enumerate(zip(ref.parent.columns, ref.casts)):
        key = sql.Identifier(f"k{i}")
        stage.keys.append(key)
        cols.append(sql.SQL("{} AS {}").format(_cast(sql.Identifier("p", column.name), cast), key))
    parent.execute(
        sql.SQL("CREATE {} TABLE {} AS SELECT {}, 0::bigint AS n FROM {} p WITH NO DATA").format(
            sql.SQL("TEMPORARY" if temporary else "UNLOGGED"), stage.name, sql.SQL(", ").join(cols),
            ref.parent.table.ident),
        table=ref.parent.table.qualname,
    )
    return stage


def _cast(expr: sql.Composable, cast: str | None) -> sql.Composable:
    # ``cast`` is one of the fixed keywords of references.TYPE_FAMILIES (bigint, text, numeric), never catalog text.
    return expr if cast is None else sql.SQL("{}::{}").format(expr, sql.SQL(cast))


def _copy_keys(ref: BoundReference, district: str, child: PgStore, parent: PgStore, stage: _Stage) -> int:
    """The child's distinct keys of the district (every column set) and their row counts, child → stage; keys sent."""
    cols = [sql.Identifier("c", c.name) for c in ref.child.columns]
    keys = [_cast(col, cast) for col, cast in zip(cols, ref.casts)]
    where = sql.SQL(" AND ").join(
        [sql.SQL("c.{} = {}").format(sql.Identifier(DISTRICT_COLUMN), sql.Literal(district))]
        + [sql.SQL("{} IS NOT NULL").format(col) for col in cols])
    out = sql.SQL("COPY (SELECT {k}, count(*) FROM {t} c WHERE {w} GROUP BY {g}) TO STDOUT (FORMAT BINARY)").format(
        k=sql.SQL(", ").join(keys), t=ref.child.table.ident, w=where,
        g=sql.SQL(", ").join(sql.SQL(str(i)) for i in range(1, len(keys) + 1)))
    into = sql.SQL("COPY {} ({}, n) FROM STDIN (FORMAT BINARY)").format(stage.name, sql.SQL(", ").join(stage.keys))
    with child.conn.cursor() as ccur, parent.conn.cursor() as pcur:
        with mapped_errors(parent.name, ref.parent.table.qualname), pcur.copy(into) as sink:
            with mapped_errors(child.name, ref.child.table.qualname), ccur.copy(out) as source:
                for block in source:
                    sink.write(block)
        return max(pcur.rowcount, 0)


def _probe(ref: BoundReference, district: str, parent: PgStore, stage: _Stage, keys: int) -> ReferenceResult:
    """Count the staged keys without a parent row, and name a few."""
    on = [sql.SQL("p.{} = s.{}").format(sql.Identifier(c.name), k) for c, k in zip(ref.parent.columns, stage.keys)]
    params: tuple = ()
    if ref.parent.has_district:
        on.append(sql.SQL("p.{} = %s").format(sql.Identifier(DISTRICT_COLUMN)))
        params = (district,)
    missing = sql.SQL("NOT EXISTS (SELECT 1 FROM {} p WHERE {})").format(ref.parent.table.ident, sql.SQL(" AND ").join(on))
    table = ref.parent.table.qualname
    rows = parent.scalar(sql.SQL("SELECT coalesce(sum(n), 0) FROM {}").format(stage.name), table=table)
    # The parent may have been loaded in this transaction, without statistics: the planner would take it
    # for a handful of rows and rescan it per key in a nested loop (verify/tables.py, issue 6).
    previous = parent.scalar("SELECT current_setting('enable_nestloop')")
    parent.execute("SELECT set_config('enable_nestloop', 'off', true)")
    orphan_keys, orphan_rows = parent.rows(
        sql.SQL("SELECT count(*), coalesce(sum(n), 0) FROM {} s WHERE {}").format(stage.name, missing),
        params, table=table)[0]
    examples: list[dict[str, str]] = []
    if orphan_keys:
        found = parent.rows(
            sql.SQL("SELECT {k} FROM {s} s WHERE {m} ORDER BY {k} LIMIT %s").format(
                k=sql.SQL(", ").join(sql.SQL("s.{}").format(k) for k in stage.keys), s=stage.name, m=missing),
            params + (EXAMPLES,), table=table)
        examples = [dict(zip(ref.child.names, map(str, row))) for row in found]
    parent.execute("SELECT set_config('enable_nestloop', %s, true)", (previous,))
    passed = orphan_keys == 0
    scope = f"of district {district}" if ref.parent.has_district else "(any district)"
    if passed:
        detail = (f"{rows} row(s) ({keys} distinct key(s)) of {ref.child.store}.{ref.child.table.qualname} "
                  f"have their row {scope} in {ref.parent.display}")
    else:
        detail = (f"{orphan_rows} row(s) of {ref.child.display} reference a row {scope} of "
                  f"{ref.parent.display} that does not exist ({orphan_keys} distinct key(s)), e.g. {examples[0]}")
    check = CheckResult(ref.child.store, ref.child.table.qualname, ref.check_name, passed, expected=0,
                        actual=int(orphan_rows), detail=detail, examples=examples)
    return ReferenceResult(ref, check, child_rows=int(rows), child_keys=keys,
                           orphan_rows=int(orphan_rows), orphan_keys=int(orphan_keys))


def open_readers(configs: Mapping[str, PgStoreConfig], district: str, *, lock: bool = True) -> dict[str, PgStore]:
    """Readers of CERT's committed rows for stores outside the load, holding the district's lock there (``lock``).

    The lock makes a concurrent load of the same district in that store fail fast (or this one), so the
    rows read cannot change under the check. Each reader's transaction is only ever rolled back (closing
    it does): the temporary stage it creates leaves nothing behind. A database not marked as CERT is refused.
    """
    from cert_loader.mark import inspect_store, mark_problems

    opened: dict[str, PgStore] = {}
    try:
        for name, cfg in configs.items():
            store = PgStore(cfg, application="cert_loader-references")
            store.connect(autocommit=True)
            opened[name] = store
            problems = mark_problems({name: inspect_store(store)})
            if problems:
                raise problems[0]
            if lock:
                store.lock_district(district)
            store.conn.autocommit = False
    except BaseException:
        close_readers(opened)
        raise
    return opened


def close_readers(readers: Mapping[str, PgStore]) -> None:
    for store in readers.values():
        store.close()  # the open transaction ends rolled back; the session's district lock is freed


@contextlib.contextmanager
def committed_stores(configs: Mapping[str, PgStoreConfig], district: str, *, lock: bool = True) -> Iterator[dict[str, PgStore]]:
    """``open_readers`` for the block, closed however it ends."""
    readers = open_readers(configs, district, lock=lock)
    try:
        yield readers
    finally:
        close_readers(readers)


def plan_references(data_root, plan: LoadPlan, catalogs: Mapping[str, Catalog],
                    reader_configs: Mapping[str, PgStoreConfig] | None, *, lock: bool) -> tuple[list[BoundReference], dict[str, PgStore]]:
    """Pre-flight: read and bind the declarations; problems and warnings go to ``plan`` (DESIGN.md section 5, step 1).

    ``catalogs`` are those of the load's stores. A store that a declaration pairs with one of them but that
    is outside the load is opened as a committed reader from ``reader_configs`` (when it has one); the
    caller closes the returned readers (``close_readers``).
    """
    refs, shape = read_references(references_path(data_root))
    plan.problems.extend(shape)
    if not refs:
        return [], {}
    wanted = {s.store for r in refs for s in (r.child, r.parent)
              if {r.child.store, r.parent.store} & set(catalogs) and s.store not in catalogs}
    configs = {n: c for n, c in (reader_configs or {}).items() if n in wanted}
    readers = open_readers(configs, plan.district, lock=lock)
    try:
        all_catalogs = dict(catalogs)
        for name, store in readers.items():
            all_catalogs[name] = read_catalog(store.conn, name)
        binding = bind_references(refs, all_catalogs, in_load=catalogs)
    except BaseException:
        close_readers(readers)
        raise
    plan.problems.extend(binding.problems)
    plan.warnings.extend(binding.warnings)
    return binding.references, readers


def check_load(references: list[BoundReference], district: str, touched: Mapping[str, Collection[tuple[str, str]]],
               stores: Mapping[str, PgStore], readers: Mapping[str, PgStore] | None, run_tag: str) -> list[ReferenceResult]:
    """The engine's step between the stores' verification and the first PREPARE: every reference the load touches."""
    return verify_references(relevant_references(references, touched), district, stores, committed=readers,
                             run_tag=run_tag)


def attach_results(results: list[ReferenceResult], store_results: Mapping[str, StoreResult]) -> None:
    """Each reference's check joins its child table's checks (report, Dagster), when the load has that table."""
    for r in results:
        sr = store_results.get(r.reference.child.store)
        for tr in sr.tables if sr is not None else ():
            if tr.table == r.reference.child.table.qualname and not tr.skipped:
                tr.checks.append(r.check)


def raise_for_failures(results: list[ReferenceResult], district: str, *,
                       hint: str = "load the parent rows first (this load or an earlier one), or fix the keys") -> None:
    """A violated reference fails the load: the caller rolls every store back (DESIGN.md section 7)."""
    failed = [r for r in results if not r.passed]
    if failed:
        first = failed[0].reference
        raise VerificationError(failed_message(results), store=first.child.store, table=first.child.table.qualname,
                                district=district, checks=[r.check for r in failed],
                                hint=hint)


def failed_message(results: list[ReferenceResult]) -> str:
    """The VerificationError text for failed references: the first in full, how many more."""
    failed = [r for r in results if not r.passed]
    first = failed[0]
    more = f" (and {len(failed) - 1} more reference(s))" if len(failed) > 1 else ""
    return f'cross-store reference "{first.reference.name}" failed: {first.check.detail}{more}'
