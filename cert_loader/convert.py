"""Cast each parquet column to the exact Arrow type its catalog column takes, refusing any value that would change.

Binary COPY needs each Arrow column to have exactly the target column's type (DESIGN.md section 10),
and PostgreSQL itself silently rounds some values (numeric scale, timestamp precision, float4). So
every value is converted here, checked, and the first one that cannot be converted exactly is
reported with its row number — nothing is truncated or rounded.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
from pgpq import ArrowToPostgresBinaryEncoder
from pgpq.encoders import LargeStringEncoderBuilder, StringEncoderBuilder
from pgpq.schema import Jsonb

from cert_loader.catalog import Column
from cert_loader.errors import CatalogError, InputError

INT_TYPES = {"int2": pa.int16(), "int4": pa.int32(), "int8": pa.int64(), "oid": pa.int64()}
FLOAT_TYPES = {"float4": pa.float32(), "float8": pa.float64()}
# Types whose binary wire format is their text: Arrow strings go through unchanged.
TEXTUAL_TYPES = {"text", "varchar", "bpchar", "name", "json", "citext", "xml"}


def _is_string(t: pa.DataType) -> bool:
    return pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t)


def _is_number(t: pa.DataType) -> bool:
    return pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t)


def numeric_type(column: Column, source: pa.DataType) -> pa.DataType:
    """numeric(p,s) → decimal128(p,s); unconstrained numeric keeps the source's scale."""
    if column.typmod >= 4:
        mod = column.typmod - 4
        precision, scale = (mod >> 16) & 0xFFFF, mod & 0xFFFF
        return pa.decimal128(min(precision, 38), scale)
    if pa.types.is_decimal(source):
        return pa.decimal128(38, min(source.scale, 38))
    if pa.types.is_integer(source):
        return pa.decimal128(38, 0)
    return pa.decimal128(38, 16)


def _timestamp_precision(column: Column) -> int:
    """timestamp(p) keeps p fractional digits; -1 typmod means the default, 6."""
    return column.typmod if 0 <= column.typmod < 6 else 6


@dataclass(frozen=True)
class ColumnConversion:
    """How one source column becomes one table column."""

    source: str
    column: Column
    target: pa.DataType
    kind: str = "cast"  # cast | uuid | jsonb


def plan_column(store: str, table: str, field: pa.Field, column: Column) -> ColumnConversion:
    """Decide the target Arrow type for a column, or refuse a source type the column cannot take."""
    src, base = field.type, column.base_type
    target: pa.DataType | None = None
    kind = "cast"
    if base in INT_TYPES and (_is_number(src) or _is_string(src)):
        target = INT_TYPES[base]
    elif base in FLOAT_TYPES and (_is_number(src) or _is_string(src)):
        target = FLOAT_TYPES[base]
    elif base == "numeric" and (_is_number(src) or _is_string(src)):
        target = numeric_type(column, src)
    elif base == "bool" and pa.types.is_boolean(src):
        target = pa.bool_()
    elif (base in TEXTUAL_TYPES or column.type_kind == "e") and (
        _is_string(src) or pa.types.is_integer(src) or pa.types.is_decimal(src) or pa.types.is_boolean(src)
    ):
        target = src if _is_string(src) else pa.string()
    elif base == "jsonb" and _is_string(src):
        target, kind = src, "jsonb"
    elif base == "uuid" and (_is_string(src) or pa.types.is_fixed_size_binary(src) or pa.types.is_binary(src)):
        target, kind = pa.binary(16), "uuid"
    elif base == "date" and (pa.types.is_date(src) or pa.types.is_timestamp(src) or _is_string(src)):
        target = pa.date32()
    elif base == "timestamp" and (pa.types.is_timestamp(src) or pa.types.is_date(src) or _is_string(src)):
        target = pa.timestamp("us")
    elif base == "timestamptz" and (pa.types.is_timestamp(src) or _is_string(src)):
        target = pa.timestamp("us", tz="UTC")
    elif base == "time" and (pa.types.is_time(src) or _is_string(src)):
        target = pa.time64("us")
    elif base == "interval" and pa.types.is_duration(src):
        target = pa.duration("us")
    elif base == "bytea" and (pa.types.is_binary(src) or pa.types.is_large_binary(src) or pa.types.is_fixed_size_binary(src)):
        target = pa.binary() if not pa.types.is_large_binary(src) else src
    if target is None:
        raise CatalogError(
            f'column "{column.name}" is {column.type_sql} but the file has {src}',
            store=store,
            table=table,
            hint="export the column with a type that converts exactly, or change the column",
        )
    return ColumnConversion(field.name, column, target, kind)


class BatchConverter:
    """Converts the batches of one table's file, checking every value, and encodes them for binary COPY."""

    def __init__(self, store: str, table: str, conversions: list[ColumnConversion]) -> None:
        self.store = store
        self.table = table
        self.conversions = conversions

    def _fail(self, conv: ColumnConversion, row: int, value: object, why: str) -> InputError:
        return InputError(
            f'column "{conv.column.name}" ({conv.column.type_sql}), row {row}: value {value!r} {why}',
            store=self.store,
            table=self.table,
            hint="fix the value upstream; the loader never truncates or rounds",
            details={"column": conv.column.name, "row": row},
        )

    def convert(self, batch: pa.RecordBatch, first_row: int) -> pa.RecordBatch:
        """Return the batch with exactly the target types; ``first_row`` is the 1-based file row of row 0."""
        arrays = []
        for conv in self.conversions:
            arr = batch.column(conv.source)
            if conv.column.not_null and arr.null_count:
                row = first_row + _first_true(arr.is_null())
                raise InputError(
                    f'column "{conv.column.name}" is NOT NULL but row {row} has no value',
                    store=self.store,
                    table=self.table,
                    hint="fill the value upstream or make the column nullable",
                    details={"column": conv.column.name, "row": row},
                )
            arrays.append(self._convert_column(conv, arr, first_row))
        return pa.RecordBatch.from_arrays(arrays, names=[c.column.name for c in self.conversions])

    def _convert_column(self, conv: ColumnConversion, arr: pa.Array, first_row: int) -> pa.Array:
        if conv.kind == "uuid":
            return self._uuid(conv, arr, first_row)
        original = arr
        if pa.types.is_decimal(conv.target) and pa.types.is_floating(arr.type):
            # A float's exact binary value is not what anyone meant: its shortest decimal text is,
            # and that text must fit the column's scale.
            arr = pc.cast(arr, pa.string())
        if arr.type == conv.target:
            out = arr
        else:
            try:
                out = pc.cast(arr, conv.target, safe=True)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                idx = _first_failing(arr, conv.target)
                raise self._fail(conv, first_row + idx, original[idx].as_py(), f"cannot be converted exactly ({exc})") from exc
            # The safe cast from a decimal to an integer already refuses a fractional part and an out-of-range
            # value; the round trip cannot even be made (an int64 needs a decimal of precision 19).
            exact = _is_string(arr.type) or (pa.types.is_decimal(arr.type) and pa.types.is_integer(conv.target))
            if not exact and (_is_number(conv.target) or pa.types.is_date(conv.target)):
                back = pc.cast(out, arr.type, safe=False)
                differs = _changed(back, arr)
                if pc.any(differs).as_py():
                    idx = _first_true(differs)
                    raise self._fail(conv, first_row + idx, arr[idx].as_py(), f"would change to {out[idx].as_py()!r}")
        if pa.types.is_timestamp(conv.target) or pa.types.is_time(conv.target):
            self._check_precision(conv, arr, out, first_row)
        return out

    def _check_precision(self, conv: ColumnConversion, arr: pa.Array, out: pa.Array, first_row: int) -> None:
        """timestamp(p)/time(p) with p < 6 would round the microseconds on the server: refuse instead."""
        precision = _timestamp_precision(conv.column)
        if precision >= 6:
            return
        step = 10 ** (6 - precision)
        micros = pc.cast(out, pa.int64()) if pa.types.is_time(out.type) else pc.cast(pc.cast(out, pa.timestamp("us")), pa.int64())
        rem = pc.fill_null(pc.not_equal(pc.subtract(micros, pc.multiply(pc.divide(micros, step), step)), 0), False)
        if pc.any(rem).as_py():
            idx = _first_true(rem)
            raise self._fail(conv, first_row + idx, arr[idx].as_py(), f"has more than {precision} fractional digits")

    def _uuid(self, conv: ColumnConversion, arr: pa.Array, first_row: int) -> pa.Array:
        if pa.types.is_fixed_size_binary(arr.type) or pa.types.is_binary(arr.type):
            lengths = pc.binary_length(arr)
            bad = pc.fill_null(pc.not_equal(lengths, 16), False)
            if pc.any(bad).as_py():
                idx = _first_true(bad)
                raise self._fail(conv, first_row + idx, arr[idx].as_py(), "is not 16 bytes")
            return pc.cast(arr, pa.binary(16))
        # Canonical, brace-wrapped or hyphen-less hex, as PostgreSQL's uuid_in accepts.
        series = pl.from_arrow(arr).cast(pl.String)
        hexed = series.str.strip_chars("{}").str.replace_all("-", "", literal=True)
        ok = hexed.str.contains(r"^[0-9a-fA-F]{32}$") | series.is_null()
        if not ok.all():
            idx = int(ok.not_().arg_max())
            raise self._fail(conv, first_row + idx, series[idx], "is not a valid uuid")
        decoded = hexed.str.decode("hex").to_arrow()
        return pc.cast(decoded, pa.binary(16))

    def encoder(self, schema: pa.Schema) -> ArrowToPostgresBinaryEncoder:
        """One pgpq encoder per COPY: jsonb columns need their version byte, the rest is inferred."""
        builders = {f.name: ArrowToPostgresBinaryEncoder.infer_encoder(f) for f in schema}
        for conv in self.conversions:
            if conv.kind == "jsonb":
                field = schema.field(conv.column.name)
                cls = LargeStringEncoderBuilder if pa.types.is_large_string(field.type) else StringEncoderBuilder
                builders[field.name] = cls.new_with_output(field, Jsonb())
        return ArrowToPostgresBinaryEncoder.new_with_encoders(schema, builders)


def _changed(back: pa.Array, arr: pa.Array) -> pa.Array:
    """Where the round-tripped value differs from the source; null means unchanged.

    NaN never equals itself, yet it (like ±inf) converts exactly between float widths, so a NaN that
    came back as NaN is unchanged.
    """
    differs = pc.not_equal(back, arr)
    if pa.types.is_floating(arr.type):
        differs = pc.and_kleene(differs, pc.invert(pc.and_kleene(pc.is_nan(arr), pc.is_nan(back))))
    return pc.fill_null(differs, False)


def _first_true(mask: pa.Array) -> int:
    return pc.index(pc.fill_null(mask, False), True).as_py()


def _first_failing(arr: pa.Array, target: pa.DataType) -> int:
    """Binary search for the first element whose cast fails (errors carry no row number)."""
    lo, hi = 0, len(arr)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        try:
            pc.cast(arr.slice(lo, mid - lo), target, safe=True)
            lo = mid
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            hi = mid
    return lo
