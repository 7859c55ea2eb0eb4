"""Read a store's tables, columns and keys from pg_catalog, so every identifier the loader uses comes from the database."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

from cert_loader.errors import CatalogError
from cert_loader.stores.postgres import mapped_errors

# Schemas that never hold CERT tables: the system ones and the loader's own bookkeeping schema.
SYSTEM_SCHEMAS = ("pg_catalog", "information_schema", "cert_loader")


@dataclass(frozen=True)
class Column:
    name: str
    type_sql: str  # format_type(): "numeric(6,2)", "character varying(20)", a domain's name
    base_type: str  # pg_type.typname of the column's type, or of a domain's base type
    type_kind: str  # pg_type.typtype of that base type: b base, e enum, c composite, r range …
    typmod: int
    not_null: bool
    has_default: bool
    generated: bool
    identity: str  # "" | "a" (ALWAYS) | "d" (BY DEFAULT)


@dataclass(frozen=True)
class ForeignKey:
    name: str
    columns: tuple[str, ...]
    ref_schema: str
    ref_table: str
    ref_columns: tuple[str, ...]
    deferrable: bool

    @property
    def ref_key(self) -> tuple[str, str]:
        return (self.ref_schema, self.ref_table)


@dataclass(frozen=True)
class Table:
    schema: str
    name: str
    columns: tuple[Column, ...]
    primary_key: tuple[str, ...] | None
    unique_keys: tuple[tuple[str, ...], ...]
    foreign_keys: tuple[ForeignKey, ...]
    owner: str = ""
    # Column lists of every plain (not partial, not expression) valid index, unique or not: whether a
    # referencing FK has an index to check it by (plan.py warns when a delete would scan instead). Read from
    # the live catalog only; the schema manifest does not carry them (adding an index is not drift).
    indexes: tuple[tuple[str, ...], ...] = ()

    @property
    def qualname(self) -> str:
        return f"{self.schema}.{self.name}"

    @property
    def key_id(self) -> tuple[str, str]:
        return (self.schema, self.name)

    @property
    def ident(self) -> sql.Identifier:
        return sql.Identifier(self.schema, self.name)

    def column(self, name: str) -> Column | None:
        return self._by_name.get(name)

    @property
    def _by_name(self) -> dict[str, Column]:
        cache = self.__dict__.get("_cols")
        if cache is None:
            cache = {c.name: c for c in self.columns}
            object.__setattr__(self, "_cols", cache)
        return cache

    def indexed_by(self, columns: tuple[str, ...]) -> bool:
        """Whether an index starts with exactly these columns (in any order), as an FK check needs.

        The primary key (district_id, id) does not index an FK (district_id, parent_id): a check through it
        reads every row of the district.
        """
        return any(set(ix[: len(columns)]) == set(columns) for ix in self.indexes if len(ix) >= len(columns))

    @property
    def key(self) -> tuple[str, ...] | None:
        """The key used to match source rows with existing rows: the PK, else the first unique key."""
        if self.primary_key:
            return self.primary_key
        return self.unique_keys[0] if self.unique_keys else None

    def to_manifest(self) -> dict[str, Any]:
        return {
            "schema": self.schema,
            "name": self.name,
            "columns": [c.__dict__ for c in self.columns],
            "primary_key": list(self.primary_key) if self.primary_key else None,
            "unique_keys": [list(k) for k in self.unique_keys],
            "foreign_keys": [
                {**fk.__dict__, "columns": list(fk.columns), "ref_columns": list(fk.ref_columns)}
                for fk in self.foreign_keys
            ],
        }

    @classmethod
    def from_manifest(cls, data: dict[str, Any]) -> "Table":
        return cls(
            schema=data["schema"],
            name=data["name"],
            columns=tuple(Column(**c) for c in data["columns"]),
            primary_key=tuple(data["primary_key"]) if data.get("primary_key") else None,
            unique_keys=tuple(tuple(k) for k in data.get("unique_keys", [])),
            foreign_keys=tuple(
                ForeignKey(**{**fk, "columns": tuple(fk["columns"]), "ref_columns": tuple(fk["ref_columns"])})
                for fk in data.get("foreign_keys", [])
            ),
        )


@dataclass
class Catalog:
    """All user tables of one store, plus its effective search_path."""

    store: str
    tables: dict[tuple[str, str], Table]  # by (schema, name): names may contain dots
    search_path: tuple[str, ...]
    database: str = ""

    def resolve(self, name: str) -> Table:
        """Find a table by the name extraction-order.json gives it, as PostgreSQL would.

        A qualified ``schema.table`` is looked up directly; an unqualified name goes through the
        database's search_path. Exact names win, then PostgreSQL's lower-case folding.
        """
        for candidate in (name, name.lower()):
            for table in self.tables.values():
                if table.qualname == candidate:
                    return table
            for schema in self.search_path:
                if (schema, candidate) in self.tables:
                    return self.tables[(schema, candidate)]
        raise CatalogError(
            f'table "{name}" is not in database "{self.database}" '
            f"(search_path: {', '.join(self.search_path) or 'empty'})",
            store=self.store,
            hint="create it, or fix its name in extraction-order.json",
        )


_COLUMNS = """
SELECT n.nspname, c.relname, pg_get_userbyid(c.relowner), a.attname,
       format_type(a.atttypid, a.atttypmod),
       coalesce(bt.typname, t.typname), coalesce(bt.typtype, t.typtype)::text,
       CASE WHEN t.typtype = 'd' THEN t.typtypmod ELSE a.atttypmod END,
       a.attnotnull OR coalesce(t.typnotnull, false), a.atthasdef,
       a.attgenerated <> '', a.attidentity::text
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
JOIN pg_type t ON t.oid = a.atttypid
LEFT JOIN pg_type bt ON t.typtype = 'd' AND bt.oid = t.typbasetype
WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition
  AND n.nspname <> ALL(%(system)s) AND n.nspname NOT LIKE 'pg\\_%%'
ORDER BY n.nspname, c.relname, a.attnum
"""

_INDEXES = """
SELECT n.nspname, c.relname, i.indisprimary, i.indisunique,
       array(SELECT a.attname FROM unnest(i.indkey) WITH ORDINALITY k(attnum, ord)
             JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum ORDER BY k.ord)
FROM pg_index i
JOIN pg_class c ON c.oid = i.indrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE i.indpred IS NULL AND i.indexprs IS NULL AND i.indisvalid
  AND c.relkind IN ('r', 'p') AND n.nspname <> ALL(%(system)s) AND n.nspname NOT LIKE 'pg\\_%%'
ORDER BY n.nspname, c.relname, NOT i.indisprimary, NOT i.indisunique, i.indexrelid
"""

_FKS = """
SELECT n.nspname, c.relname, con.conname, con.condeferrable,
       array(SELECT a.attname FROM unnest(con.conkey) WITH ORDINALITY k(attnum, ord)
             JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.attnum ORDER BY k.ord),
       rn.nspname, rc.relname,
       array(SELECT a.attname FROM unnest(con.confkey) WITH ORDINALITY k(attnum, ord)
             JOIN pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.attnum ORDER BY k.ord)
FROM pg_constraint con
JOIN pg_class c ON c.oid = con.conrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_class rc ON rc.oid = con.confrelid
JOIN pg_namespace rn ON rn.oid = rc.relnamespace
WHERE con.contype = 'f' AND n.nspname <> ALL(%(system)s) AND n.nspname NOT LIKE 'pg\\_%%'
ORDER BY n.nspname, c.relname, con.conname
"""


def read_catalog(conn: psycopg.Connection, store: str) -> Catalog:
    """Read every user table of the connected database in five queries (not one per table).

    A driver error is a StoreError naming the store, like every other statement's (stores/postgres.py).
    """
    params = {"system": list(SYSTEM_SCHEMAS)}
    cols: dict[tuple[str, str], list[Column]] = {}
    owners: dict[tuple[str, str], str] = {}
    with mapped_errors(store), conn.cursor() as cur:
        for schema, rel, owner, *rest in cur.execute(_COLUMNS, params):
            qual = (schema, rel)
            owners[qual] = owner
            cols.setdefault(qual, []).append(Column(*rest))
        pks: dict[tuple[str, str], tuple[str, ...]] = {}
        uniques: dict[tuple[str, str], list[tuple[str, ...]]] = {}
        indexes: dict[tuple[str, str], list[tuple[str, ...]]] = {}
        for schema, rel, primary, unique, names in cur.execute(_INDEXES, params):
            qual = (schema, rel)
            indexes.setdefault(qual, []).append(tuple(names))
            if not unique:
                continue
            if primary:
                pks[qual] = tuple(names)
            else:
                uniques.setdefault(qual, []).append(tuple(names))
        fks: dict[tuple[str, str], list[ForeignKey]] = {}
        for schema, rel, name, deferrable, names, rschema, rrel, rnames in cur.execute(_FKS, params):
            fks.setdefault((schema, rel), []).append(
                ForeignKey(name, tuple(names), rschema, rrel, tuple(rnames), deferrable)
            )
        search_path = tuple(cur.execute("SELECT unnest(current_schemas(false))").fetchall())
        database = cur.execute("SELECT current_database()").fetchone()[0]
    tables = {}
    for qual, columns in cols.items():
        schema, name = qual
        tables[qual] = Table(
            schema=schema,
            name=name,
            columns=tuple(columns),
            primary_key=pks.get(qual),
            unique_keys=tuple(uniques.get(qual, ())),
            foreign_keys=tuple(fks.get(qual, ())),
            owner=owners[qual],
            indexes=tuple(indexes.get(qual, ())),
        )
    return Catalog(store, tables, tuple(s for (s,) in search_path), database)
