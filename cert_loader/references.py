"""The references that cross databases (DESIGN.md section 2): read from cross-store-references.json, bound to the live catalogs.

No database can enforce a reference from ``hcp1`` to ``ids``; the district's data declares them so the
loader can check them across the stores' open transactions (verify/cross_store.py). Everything wrong
with a declaration is found here, before any write: the file's shape (InputError, naming the entry and
the field) and its fit with the catalogs (CatalogError: store, table, column, column count, types).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Collection, Mapping

from cert_loader.catalog import Catalog, Column, Table
from cert_loader.constants import DISTRICT_COLUMN, PG_STORES
from cert_loader.data_root import data_root as data_root_of
from cert_loader.errors import CatalogError, CertLoaderError, InputError

# data/analysis/ beside extraction-order.json (DESIGN.md section 2); optional: absent means no references.
REFERENCES_FILE = "cross-store-references.json"
_SIDE_FIELDS = ("store", "table", "columns")
_ENTRY_FIELDS = ("name", "child", "parent", "description")  # "description" is free text for people

# Type families whose members compare exactly across the family, and the type both sides are cast to
# for the check (a fixed SQL keyword, never a catalog string): an int4 child key equals an int8 parent
# key, a varchar one a text one, a numeric(10,2) one a numeric(12,2) one. Any other type must be the
# same type with the same modifier on both sides: char(n) pairs only with char(n) (its blank padding
# compares differently with text), timestamp(3) not with timestamp(6) (a cast would round), int not
# with numeric or float (1.5 has no integer parent).
TYPE_FAMILIES: dict[str, tuple[str, str]] = {
    "int2": ("integer", "bigint"), "int4": ("integer", "bigint"), "int8": ("integer", "bigint"),
    "text": ("string", "text"), "varchar": ("string", "text"),
    "numeric": ("numeric", "numeric"),
}


@dataclass(frozen=True)
class Side:
    """One end of a declared reference, as the file gives it."""

    store: str
    table: str
    columns: tuple[str, ...]


@dataclass(frozen=True)
class Reference:
    """One declaration of the file: ``child`` rows point at ``parent`` rows (columns pair up in order)."""

    name: str
    child: Side
    parent: Side
    entry: int  # 1-based position in the file, for messages


@dataclass(frozen=True)
class BoundSide:
    """One end of a reference resolved against its store's catalog."""

    store: str
    table: Table
    columns: tuple[Column, ...]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    @property
    def has_district(self) -> bool:
        return self.table.column(DISTRICT_COLUMN) is not None

    @property
    def display(self) -> str:
        """``hcp1.edfi.visit (student_id)``: how messages and the report name this end."""
        return f"{self.store}.{self.table.qualname} ({', '.join(self.names)})"


@dataclass(frozen=True)
class BoundReference:
    """A declaration that fits the catalogs; ``casts`` is the type each column pair is compared as (None: the parent's own)."""

    name: str
    child: BoundSide
    parent: BoundSide
    casts: tuple[str | None, ...]

    @property
    def check_name(self) -> str:
        return f"cross_store:{self.name}"

    @property
    def stores(self) -> tuple[str, str]:
        return (self.child.store, self.parent.store)

    def describe(self) -> str:
        """What the check proves, in one line (plan, report)."""
        scope = "of the same district" if self.parent.has_district else "(any district: shared reference data)"
        return (f"every row of district D in {self.child.display} whose columns are all set has a row "
                f"{scope} in {self.parent.display}")


@dataclass
class ReferenceBinding:
    """The declarations bound to this load's catalogs: the usable ones, the refused ones, what was left out."""

    references: list[BoundReference] = field(default_factory=list)
    problems: list[CertLoaderError] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def references_path(data_root: Path) -> Path:
    return data_root_of(data_root) / "data" / "analysis" / REFERENCES_FILE


def read_references(path: Path) -> tuple[list[Reference], list[InputError]]:
    """The declarations of ``path`` (none when the file is absent) and every shape problem found, all at once.

    An entry with a problem is left out of the list; the problems name the file, the entry (position and
    name) and the field, so a user fixes them in one pass.
    """
    if not path.is_file():
        return [], []
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        return [], [InputError(f"{path} is not readable JSON ({exc})", hint="fix the file or remove it")]
    return parse_references(data, path)


def parse_references(data: Any, path: Path) -> tuple[list[Reference], list[InputError]]:
    """Check the shape of the file's JSON value (DESIGN.md section 2) and build its declarations."""
    if not isinstance(data, list):
        return [], [InputError(f"{path} must hold a JSON list of references, found {_kind(data)}",
                               hint='write [{"name": …, "child": {…}, "parent": {…}}, …]')]
    refs: list[Reference] = []
    problems: list[InputError] = []
    seen: dict[str, int] = {}
    for i, entry in enumerate(data, start=1):
        where = f"{path}: entry {i}"
        if not isinstance(entry, dict):
            problems.append(InputError(f"{where} must be an object with name, child and parent, found {_kind(entry)}"))
            continue
        name = entry.get("name")
        if isinstance(name, str) and name:
            where = f'{where} ("{name}")'
        errors = [f"unknown field {k!r} (expected {', '.join(_ENTRY_FIELDS)})" for k in entry if k not in _ENTRY_FIELDS]
        if not isinstance(name, str) or not name.strip():
            errors.append(f"name must be a non-empty string, found {_shown(name)}")
        elif name in seen:
            errors.append(f"name {name!r} is already used by entry {seen[name]}; names must be unique")
        sides = {}
        for role in ("child", "parent"):
            side, side_errors = _side(entry.get(role), role)
            errors += side_errors
            sides[role] = side
        if isinstance(name, str) and name:
            seen.setdefault(name, i)
        if errors:
            problems.extend(InputError(f"{where}: {e}", hint=f"fix it in {path.name}") for e in errors)
        else:
            refs.append(Reference(name, sides["child"], sides["parent"], i))
    return refs, problems


def _side(value: Any, role: str) -> tuple[Side | None, list[str]]:
    if not isinstance(value, dict):
        return None, [f"{role} must be an object with store, table and columns, found {_shown(value)}"]
    errors = [f"{role}: unknown field {k!r} (expected {', '.join(_SIDE_FIELDS)})" for k in value if k not in _SIDE_FIELDS]
    for key in ("store", "table"):
        if not isinstance(value.get(key), str) or not value.get(key):
            errors.append(f"{role}.{key} must be a non-empty string, found {_shown(value.get(key))}")
    columns = value.get("columns")
    if not isinstance(columns, list) or not columns or not all(isinstance(c, str) and c for c in columns):
        errors.append(f"{role}.columns must be a non-empty list of column names, found {_shown(columns)}")
    else:
        dupes = sorted({c for c in columns if columns.count(c) > 1})
        if dupes:
            errors.append(f"{role}.columns lists {', '.join(dupes)} more than once")
    if errors:
        return None, errors
    return Side(value["store"], value["table"], tuple(columns)), []


def _kind(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), "a number")


def _shown(value: Any) -> str:
    return "nothing" if value is None else json.dumps(value)[:60]


def bind_references(
    refs: list[Reference],
    catalogs: Mapping[str, Catalog],
    *,
    in_load: Collection[str] | None = None,
) -> ReferenceBinding:
    """Resolve each declaration against the live catalogs and refuse what does not fit (DESIGN.md section 2).

    ``catalogs`` are the catalogs of the stores this load can read: its own (``in_load``, by default every
    one) and committed readers of others. A declaration between two stores that are both outside the load
    concerns another load: it is left out with a warning. One with an end in the load and the other end
    unreachable cannot be checked, so it is refused, like an unknown store, table or column, a column
    count or a type mismatch.
    """
    in_load = set(catalogs if in_load is None else in_load)
    out = ReferenceBinding()
    for ref in refs:
        label = f'cross-store reference "{ref.name}" (entry {ref.entry})'
        problems = _store_problems(label, ref, catalogs, in_load, out.warnings)
        if problems is None:
            continue
        bound = None if problems else _bind_tables(label, ref, catalogs, problems)
        if problems or bound is None:
            out.problems.extend(problems)
        else:
            out.references.append(bound)
    return out


def _store_problems(label: str, ref: Reference, catalogs: Mapping[str, Catalog], in_load: set[str],
                    warnings: list[str]) -> list[CertLoaderError] | None:
    """What is wrong with the declaration's stores; None when it concerns another load (a warning says so)."""
    problems: list[CertLoaderError] = [
        CatalogError(f"{label}: {role} store {side.store!r} is not a PostgreSQL store", table=side.table,
                     hint=f"references join the stores {', '.join(PG_STORES)}; fix it in {REFERENCES_FILE}")
        for role, side in (("child", ref.child), ("parent", ref.parent)) if side.store not in PG_STORES]
    if problems:
        return problems
    if ref.child.store == ref.parent.store:
        return [CatalogError(
            f"{label}: child and parent are both in store {ref.child.store}", store=ref.child.store,
            table=ref.child.table,
            hint="a reference inside one database is a FOREIGN KEY there; declare only references across stores")]
    if not {ref.child.store, ref.parent.store} & in_load:
        warnings.append(f"{label}: stores {ref.child.store} and {ref.parent.store} are not in this load; not checked")
        return None
    outside = [s.store for s in (ref.child, ref.parent) if s.store not in catalogs]
    if outside:
        inside = ref.parent.store if outside[0] == ref.child.store else ref.child.store
        return [CatalogError(
            f"{label}: store {outside[0]} is not configured for this load, so the reference from "
            f"{ref.child.store} to {ref.parent.store} cannot be checked", store=inside,
            hint=f"configure CERT_{outside[0].upper()}_URL for this load (its committed rows are read, "
                 f"not written), or remove the reference from {REFERENCES_FILE}")]
    return []


def _bind_tables(label: str, ref: Reference, catalogs: Mapping[str, Catalog], problems: list) -> BoundReference | None:
    """Tables, columns and column types of both ends; what does not fit goes to ``problems``."""
    child = _bind_side(label, "child", ref.child, catalogs[ref.child.store], problems)
    parent = _bind_side(label, "parent", ref.parent, catalogs[ref.parent.store], problems)
    if child is not None and not child.has_district:
        problems.append(CatalogError(
            f'{label}: child table has no "{DISTRICT_COLUMN}" column, so it has no rows of a district',
            store=child.store, table=child.table.qualname,
            hint="the child of a reference is a CERT table; swap child and parent if they are reversed"))
    if len(ref.child.columns) != len(ref.parent.columns):
        problems.append(CatalogError(
            f"{label}: child names {len(ref.child.columns)} column(s) ({', '.join(ref.child.columns)}), "
            f"parent {len(ref.parent.columns)} ({', '.join(ref.parent.columns)}); columns pair up in order",
            store=ref.child.store, table=ref.child.table,
            hint=f"give both ends the same number of columns in {REFERENCES_FILE}"))
        return None
    if child is None or parent is None:
        return None
    casts = _pair_types(label, child, parent, problems)
    return BoundReference(ref.name, child, parent, casts)


def _bind_side(label: str, role: str, side: Side, catalog: Catalog, problems: list) -> BoundSide | None:
    try:
        table = catalog.resolve(side.table)
    except CatalogError as exc:
        problems.append(CatalogError(
            f"{label}: {role} table: {exc.reason}", store=side.store,
            hint=f"create the table, or fix its name in {REFERENCES_FILE}"))
        return None
    columns = []
    for name in side.columns:
        column = table.column(name)
        if column is None:
            problems.append(CatalogError(
                f'{label}: {role} column "{name}" is not in the table', store=side.store, table=table.qualname,
                hint=f"fix the column name in {REFERENCES_FILE} (names are matched exactly, like the parquet columns)"))
        else:
            columns.append(column)
    return BoundSide(side.store, table, tuple(columns)) if len(columns) == len(side.columns) else None


def _pair_types(label: str, child: BoundSide, parent: BoundSide, problems: list) -> tuple[str | None, ...]:
    """The type each column pair is compared as; a pair of incompatible types is a problem."""
    casts: list[str | None] = []
    for c, p in zip(child.columns, parent.columns):
        cf, pf = TYPE_FAMILIES.get(c.base_type), TYPE_FAMILIES.get(p.base_type)
        if cf is not None and pf is not None and cf[0] == pf[0]:
            casts.append(cf[1])
        elif cf is None and pf is None and (c.base_type, c.typmod, c.type_kind) == (p.base_type, p.typmod, p.type_kind):
            casts.append(None)
        else:
            problems.append(CatalogError(
                f'{label}: child column "{c.name}" is {c.type_sql} but parent column {parent.table.qualname}."{p.name}" '
                f"is {p.type_sql}; their values cannot be compared exactly", store=child.store,
                table=child.table.qualname,
                hint="pair columns of one type family (int2/int4/int8; text/varchar; numeric) or of the same type"))
            casts.append(None)
    return tuple(casts)


def relevant_references(references: list[BoundReference], touched: Mapping[str, Collection[tuple[str, str]]]) -> list[BoundReference]:
    """The references a load or unload must check: those whose child or parent table it touches.

    ``touched`` maps each store to the (schema, table) keys written (loaded, or deleted by unload). A
    child table written may gain orphans; a parent table written (merge, replace, upsert, unload) may
    lose the rows another store's district rows point at.
    """
    return [r for r in references
            if r.child.table.key_id in touched.get(r.child.store, ()) or r.parent.table.key_id in touched.get(r.parent.store, ())]
