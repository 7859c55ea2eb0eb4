"""Turn the inputs and the live catalog into a LoadPlan: which tables, which files, which columns, in which order.

Everything that can be refused without writing is refused here (DESIGN.md section 5, step 1). A plan
collects its problems instead of stopping at the first, so ``cert-loader plan`` can list them all.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from cert_loader.constants import DISTRICT_COLUMN, KEYED_STRATEGIES
from cert_loader.catalog import Catalog, ForeignKey, Table
from cert_loader.convert import ColumnConversion, plan_column
from cert_loader.errors import CatalogError, CertLoaderError, InputError
from cert_loader.fk_order import find_cycle, topological
from cert_loader.inputs import DistrictPaths, ParquetSource


@dataclass
class TablePlan:
    """One table of one store: its catalog entry, its source file and how each column converts."""

    store: str
    entry: str  # the name as extraction-order.json (or the file name) gives it
    table: Table
    source: ParquetSource | None = None
    conversions: list[ColumnConversion] = field(default_factory=list)
    defaulted: list[str] = field(default_factory=list)
    fill_district: bool = False
    skipped: str | None = None

    @property
    def rows(self) -> int:
        return self.source.num_rows if self.source else 0

    @property
    def columns(self) -> list[str]:
        cols = [c.column.name for c in self.conversions]
        return cols + [DISTRICT_COLUMN] if self.fill_district else cols


@dataclass
class StorePlan:
    store: str
    catalog: Catalog
    tables: list[TablePlan] = field(default_factory=list)
    order_source: str = "extraction-order.json"
    deferrable_cycles: list[list[str]] = field(default_factory=list)

    @property
    def loaded(self) -> list[TablePlan]:
        return [t for t in self.tables if not t.skipped]

    @property
    def rows(self) -> int:
        return sum(t.rows for t in self.loaded)


@dataclass
class LoadPlan:
    district: str
    strategy: str
    stores: dict[str, StorePlan] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    problems: list[CertLoaderError] = field(default_factory=list)

    @property
    def rows(self) -> int:
        return sum(s.rows for s in self.stores.values())

    def raise_for_problems(self) -> None:
        if not self.problems:
            return
        first = self.problems[0]
        if len(self.problems) == 1:
            raise first
        others = "; ".join(str(p) for p in self.problems[1:6])
        more = f" (and {len(self.problems) - 6} more)" if len(self.problems) > 6 else ""
        raise type(first)(
            f"{first.reason} — {len(self.problems)} problems in all: {others}{more}",
            store=first.store,
            table=first.table,
            district=first.district,
            hint=first.hint,
        )


def plan_store(
    store: str,
    catalog: Catalog,
    order: list[str] | None,
    paths: DistrictPaths,
    plan: LoadPlan,
    *,
    strict: bool = False,
    only: set[str] | None = None,
) -> StorePlan:
    """Plan one store; problems and warnings go to ``plan``."""
    sp = StorePlan(store, catalog, order_source="extraction-order.json" if order is not None else "catalog")
    store_dir = paths.store_dir(store)
    files = {p.name[: -len(".parquet")]: p for p in store_dir.glob("*.parquet")} if store_dir.is_dir() else {}
    names = list(order) if order is not None else sorted(files)
    if order is not None:
        for extra in sorted(set(files) - set(order)):
            _warn_or_fail(plan, strict, store, extra, f"file {files[extra]} is not listed in extraction-order.json; not loaded")
    seen: dict[tuple[str, str], str] = {}
    for name in names:
        try:
            table = catalog.resolve(name)
        except CatalogError as exc:
            plan.problems.append(exc)
            continue
        if table.key_id in seen:
            plan.problems.append(CatalogError(
                f'"{name}" and "{seen[table.key_id]}" are the same table {table.qualname}', store=store))
            continue
        seen[table.key_id] = name
        if only is not None and table.qualname not in only:
            continue
        tp = TablePlan(store, name, table)
        path = paths.source_file(store, name)
        if not path.is_file():
            tp.skipped = f"no file {path}"
            _warn_or_fail(plan, strict, store, table.qualname, f"file {path} is missing; table skipped")
        else:
            _plan_columns(tp, path, plan)
        sp.tables.append(tp)
    _order_tables(sp, plan, given=order is not None)
    if plan.strategy == "replace":
        warn_unindexed_references(sp, plan, "replace")
    return sp


def plan_unload(store: str, catalog: Catalog, plan: LoadPlan) -> StorePlan:
    """Every CERT table of the store (it has district_id), parents first by the catalog's FKs; for unload.

    The caller deletes in reverse (children first). Problems (a cycle of non-deferrable FKs) go to ``plan``.
    """
    sp = StorePlan(store, catalog, order_source="catalog")
    sp.tables = [TablePlan(store, t.qualname, t) for t in catalog.tables.values() if t.column(DISTRICT_COLUMN)]
    _order_tables(sp, plan, given=False)
    warn_unindexed_references(sp, plan, "unload")
    return sp


def warn_unindexed_references(sp: StorePlan, plan: LoadPlan, action: str) -> None:
    """Warn where deleting the district's rows of a table checks a referencing FK without an index.

    PostgreSQL checks such an FK once per deleted parent row; with no index starting with the FK's columns
    on the referencing table, each check reads all of the district's rows there (its own deleted ones too,
    still visible to the check), so deleting a district already in CERT grows with parents x children —
    minutes where the load itself takes seconds (seen on the seed's shape: > 5 min for one 60k-row table).
    """
    deleted = {tp.table.key_id for tp in sp.loaded}
    for child in sp.catalog.tables.values():
        for fk in child.foreign_keys:
            if fk.ref_key not in deleted or child.indexed_by(fk.columns):
                continue
            cols = ", ".join(fk.columns)
            plan.warnings.append(
                f"{sp.store}: {fk.ref_schema}.{fk.ref_table}: {action} deletes the district's rows here and "
                f"{child.qualname} ({cols}) references it with no index on those columns: each deleted row's "
                f"check reads {child.qualname}'s district rows, slow on a large district "
                f"(CREATE INDEX ON {child.qualname} ({cols}), or --bulk-fk for a load)")


def _warn_or_fail(plan: LoadPlan, strict: bool, store: str, table: str, message: str) -> None:
    if strict:
        plan.problems.append(InputError(message, store=store, table=table, hint="--strict makes this an error"))
    else:
        plan.warnings.append(f"{store}: {table}: {message}")


def _plan_columns(tp: TablePlan, path: Path, plan: LoadPlan) -> None:
    store, table = tp.store, tp.table
    where = dict(store=store, table=table.qualname)
    try:
        tp.source = ParquetSource.open(path, store=store, table=table.qualname)
    except InputError as exc:
        plan.problems.append(exc)
        tp.skipped = "unreadable file"
        return
    if table.column(DISTRICT_COLUMN) is None:
        plan.problems.append(CatalogError(
            f'table has no "{DISTRICT_COLUMN}" column', **where,
            hint="every CERT table needs one: the loader touches a district's rows only through it"))
        return
    file_cols = set(tp.source.schema.names)
    for fld in tp.source.schema:
        column = table.column(fld.name)
        if column is None:
            plan.problems.append(CatalogError(
                f'column "{fld.name}" of {path.name} is not in the table', **where,
                hint="drop it from the file or add it to the table"))
            continue
        if column.generated:
            plan.warnings.append(
                f'{store}: {table.qualname}: column "{fld.name}" is generated; the file\'s values are ignored')
            continue
        try:
            tp.conversions.append(plan_column(store, table.qualname, fld, column))
        except CatalogError as exc:
            plan.problems.append(exc)
    tp.fill_district = DISTRICT_COLUMN not in file_cols
    if tp.fill_district:
        plan.warnings.append(f'{store}: {table.qualname}: {path.name} has no "{DISTRICT_COLUMN}" column; '
                             f"every row is loaded as district {plan.district!r}")
    for column in table.columns:
        if column.name in file_cols or column.generated or column.name == DISTRICT_COLUMN:
            continue
        if column.not_null and not column.has_default and not column.identity:
            plan.problems.append(CatalogError(
                f'NOT NULL column "{column.name}" has no default and is not in {path.name}', **where,
                hint="add the column to the file"))
        else:
            tp.defaulted.append(column.name)
    if plan.strategy in KEYED_STRATEGIES:
        key = table.key
        if not key:
            plan.problems.append(CatalogError(
                f"{plan.strategy} needs a primary or unique key and the table has none", **where,
                hint="use insert or replace for this table, or add a key"))
        else:
            absent = [k for k in key if k not in file_cols and k != DISTRICT_COLUMN]
            if absent:
                plan.problems.append(CatalogError(
                    f"{plan.strategy} matches rows by key ({', '.join(key)}) but the file lacks "
                    f"{', '.join(absent)}", **where, hint="add the key columns to the file"))


def _edges(sp: StorePlan) -> list[tuple[TablePlan, TablePlan, ForeignKey]]:
    """(parent, child, fk) for every FK between two different tables of this load."""
    by_key = {tp.table.key_id: tp for tp in sp.loaded}
    edges = []
    for child in sp.loaded:
        for fk in child.table.foreign_keys:
            parent = by_key.get(fk.ref_key)
            if parent is not None and parent is not child:
                edges.append((parent, child, fk))
    return edges


def _order_tables(sp: StorePlan, plan: LoadPlan, *, given: bool) -> None:
    """Check the given order against the catalog FKs, or compute one; refuse non-deferrable cycles."""
    edges = _edges(sp)
    hard = [(p, c, fk) for p, c, fk in edges if not fk.deferrable]
    cycle = find_cycle(sp.loaded, _pairs(hard), id)
    if cycle:
        names = " -> ".join(t.table.qualname for t in cycle)
        plan.problems.append(CatalogError(
            f"tables form a cycle of foreign keys that are not DEFERRABLE ({names}); no load order "
            "can satisfy them", store=sp.store,
            hint="make one of these foreign keys DEFERRABLE (the loader defers them until commit)"))
        return
    soft_cycle = find_cycle(sp.loaded, _pairs(edges), id)
    if soft_cycle:
        sp.deferrable_cycles.append([t.table.qualname for t in soft_cycle])
    if given:
        pos = {id(t): i for i, t in enumerate(sp.tables)}
        for parent, child, fk in hard:
            if pos[id(child)] < pos[id(parent)]:
                plan.problems.append(CatalogError(
                    f"extraction-order.json loads {child.table.qualname} before its parent "
                    f"{parent.table.qualname} (foreign key {fk.name})", store=sp.store,
                    hint=f"move {parent.entry} before {child.entry}"))
        return
    # Parents first; ties keep name order so the same catalog always gives the same order.
    sp.tables = topological(sp.tables, _pairs(hard), id, lambda t: t.table.qualname)


def _pairs(edges: list[tuple[TablePlan, TablePlan, ForeignKey]]) -> list[tuple[TablePlan, TablePlan]]:
    return [(parent, child) for parent, child, _ in edges]
