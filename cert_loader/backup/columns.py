"""How each catalog column is read back for a backup: what the SELECT renders, how its text parses, which Arrow type the file holds.

The file's type is the one convert.py maps the column to (``plan_column`` of it is the identity), so the
restore, an ordinary load of the file, writes back exactly what was read. Only the types convert.py
can load are captured; any other column refuses the backup (a restore could not write it back).
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
from psycopg import sql

from cert_loader.backup.layout import BackupError
from cert_loader.catalog import Column, Table
from cert_loader.convert import FLOAT_TYPES, INT_TYPES, TEXTUAL_TYPES, numeric_type, plan_column
from cert_loader.errors import CatalogError

# A day in microseconds: time '24:00:00' is a valid PostgreSQL time that no Arrow time64 holds.
_DAY_US = 86_400_000_000
# Session settings the text rendering depends on, set for the capture and put back after it (transaction-local):
# ISO dates parse exactly, and any extra_float_digits > 0 prints the shortest text that reads back to the same
# float (PostgreSQL 12+); the server default is 1, but a database or role may have set 0.
RENDER_SETTINGS = {"DateStyle": "ISO, YMD", "extra_float_digits": "1"}


@dataclass(frozen=True)
class ColumnCapture:
    """One column of a backup: ``expr`` is selected, its CSV text parsed as ``read``, then made ``arrow``."""

    column: Column
    arrow: pa.DataType
    expr: sql.Composable
    read: pa.DataType
    post: str = ""  # "" | uuid | hex | utc | time | interval

    @property
    def name(self) -> str:
        return self.column.name


def needs_scan(column: Column) -> bool:
    """Columns whose backup needs a look at the district's values first (unconstrained numeric, interval)."""
    return (column.base_type == "numeric" and column.typmod < 4) or column.base_type == "interval"


def scan_query(table: Table, columns: list[Column]) -> sql.Composable:
    """One pass over the district's rows: the largest scale of each unconstrained numeric, the intervals that
    carry days or months (the loader writes intervals as microseconds: those would not come back the same)."""
    parts = []
    for c in columns:
        ident = sql.Identifier(c.name)
        if c.base_type == "numeric":
            parts.append(sql.SQL("coalesce(max(scale({})), 0)").format(ident))
        else:
            parts.append(sql.SQL("count(*) FILTER (WHERE date_part('day', {c}) <> 0 OR date_part('month', {c}) <> 0 "
                                 "OR date_part('year', {c}) <> 0)").format(c=ident))
    return sql.SQL("SELECT {} FROM {} WHERE district_id = %s").format(sql.SQL(", ").join(parts), table.ident)


def plan_capture(store: str, table: Table, scanned: dict[str, int]) -> list[ColumnCapture]:
    """Every non-generated column of ``table``; ``scanned`` is what :func:`scan_query` found per column."""
    out = []
    for column in table.columns:
        if column.generated:
            continue  # never written by a load: the restore recomputes it
        cap = _capture(store, table, column, scanned)
        _check_round_trip(store, table, cap)
        out.append(cap)
    return out


def _capture(store: str, table: Table, column: Column, scanned: dict[str, int]) -> ColumnCapture:
    ident = sql.Identifier(column.name)
    base = column.base_type

    def same(arrow: pa.DataType, post: str = "") -> ColumnCapture:
        return ColumnCapture(column, arrow, ident, arrow, post)

    if base in INT_TYPES and base != "oid":
        # oid: convert.py maps it to int64, but its binary COPY format is 4 bytes, so no load can write one
        # ("incorrect binary data format"); refused below like any type the loader cannot write back.
        return same(INT_TYPES[base])
    if base in FLOAT_TYPES:
        return same(FLOAT_TYPES[base])
    if base == "numeric":
        if column.typmod >= 4:
            return same(numeric_type(column, pa.string()))
        scale = scanned.get(column.name, 0)
        if scale > 38:
            raise BackupError(f'column "{column.name}" (numeric) holds values with {scale} decimal places; a backup '
                              "keeps at most 38", store=store, table=table.qualname,
                              hint="load without --backup, or give the column a numeric(p,s) type")
        return same(pa.decimal128(38, scale))
    if base == "bool":
        return same(pa.bool_())
    if base in TEXTUAL_TYPES or base == "jsonb" or column.type_kind == "e":
        return same(pa.string())
    if base == "uuid":
        return ColumnCapture(column, pa.binary(16), ident, pa.string(), "uuid")
    if base == "date":
        return same(pa.date32())
    if base == "timestamp":
        return same(pa.timestamp("us"))
    if base == "timestamptz":
        return ColumnCapture(column, pa.timestamp("us", tz="UTC"), sql.SQL("{} AT TIME ZONE 'UTC'").format(ident),
                             pa.timestamp("us"), "utc")
    if base in ("time", "interval"):
        if base == "interval" and scanned.get(column.name, 0):
            raise BackupError(
                f'column "{column.name}" (interval): {scanned[column.name]} row(s) carry days or months, which a '
                "restore (intervals are loaded as microseconds) would not give back the same",
                store=store, table=table.qualname, hint="load without --backup, or store such values as microseconds")
        micros = sql.SQL("(extract(epoch FROM {}) * 1000000)::int8").format(ident)
        arrow = pa.time64("us") if base == "time" else pa.duration("us")
        return ColumnCapture(column, arrow, micros, pa.int64(), base)
    if base == "bytea":
        return ColumnCapture(column, pa.binary(), sql.SQL("encode({}, 'hex')").format(ident), pa.string(), "hex")
    raise BackupError(f'column "{column.name}" has type {column.type_sql}, which the loader cannot write back',
                      store=store, table=table.qualname,
                      hint="load without --backup (a restore could not restore this column exactly)")


def _check_round_trip(store: str, table: Table, cap: ColumnCapture) -> None:
    """The restore converts the file's column with convert.py: it must map the backup's type to itself."""
    try:
        conv = plan_column(store, table.qualname, pa.field(cap.name, cap.arrow), cap.column)
    except CatalogError as exc:
        raise BackupError(f'column "{cap.name}" ({cap.column.type_sql}) would not load back from {cap.arrow}',
                          store=store, table=table.qualname) from exc
    if conv.target != cap.arrow:
        raise BackupError(f'column "{cap.name}" ({cap.column.type_sql}) would load back as {conv.target}, '
                          f"not {cap.arrow}", store=store, table=table.qualname)


def finish_column(store: str, table: str, cap: ColumnCapture, arr: pa.Array) -> pa.Array:
    """The parsed CSV column as the backup's Arrow type."""
    if cap.post == "":
        return arr
    if cap.post == "utc":
        return arr.cast(cap.arrow)
    if cap.post in ("uuid", "hex"):
        text = pl.from_arrow(arr)
        hexed = text.str.replace_all("-", "", literal=True) if cap.post == "uuid" else text
        return hexed.str.decode("hex").to_arrow().cast(cap.arrow)
    if cap.post == "time":
        bad = pc.fill_null(pc.or_(pc.less(arr, 0), pc.greater_equal(arr, _DAY_US)), False)
        if pc.any(bad).as_py():
            raise BackupError(f'column "{cap.name}" (time) holds 24:00:00, which the loader cannot write back',
                              store=store, table=table, hint="load without --backup, or change the value")
    return arr.cast(cap.arrow)


def fingerprint_columns(table: Table) -> list[dict]:
    """What must be unchanged for a backup to restore into the table: each column's name and type, in order."""
    return [{"name": c.name, "type": c.type_sql, "generated": c.generated} for c in table.columns]
