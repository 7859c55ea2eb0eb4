"""One canonical text per stored value, built twice — by PostgreSQL from the stored row, by Arrow from the file — for the content check.

The content check (DESIGN.md section 7, issue 12) hashes each row's canonical text on both sides, so
the two renderings must be byte-identical exactly when the value is stored unchanged. Text formats
carry traps (session time zones, float digits, Arrow's ``1E-7`` decimals, char(n) padding), so each type
is rendered in a form no session setting reaches:

- integers: decimal text; bool: ``true``/``false``.
- float4/float8: the IEEE bits as a signed integer (``float8send`` on the server, an Arrow view on the
  client), so ``-0.0`` stays distinct from ``0.0``; every NaN renders ``NaN`` (PostgreSQL itself treats
  all NaNs as one value, and a NaN's payload is not data).
- numeric(p,s): its text at the column's scale (both sides); unconstrained numeric: trailing zeros of
  the fraction trimmed on both sides (``trim_scale``), since its stored scale is the encoder's choice.
- timestamp/timestamptz/time: microseconds from their binary form (``*_send``), never the session's
  TimeZone or DateStyle; date: days since 1970-01-01; interval: total microseconds (PostgreSQL's own
  epoch of the interval).
- text, varchar, name, citext, enum, json: the text itself, length-prefixed (bytes of UTF-8); char(n):
  trailing spaces stripped on both sides (PostgreSQL's char semantics: padding is not data).
- jsonb: the server's normalised text; the client parses the file's JSON and writes it the way jsonb
  does (keys by length then bytes, last duplicate wins, numbers as numeric text, ``", "``/``": "``).
- uuid: 32 lowercase hex digits; bytea: ``x`` then lowercase hex.
- NULL: the empty field. Every value's rendering is non-empty, fields are comma-separated and the only
  renderings that may hold a comma are length-prefixed, so a row's text never stands for another row.

A type not listed here has no rendering: its column is left out of the comparison and named.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
from psycopg import sql

from cert_loader.catalog import Column

# 2000-01-01 (PostgreSQL's epoch for timestamps and times in their binary form) in Unix microseconds.
PG_EPOCH_US = 946_684_800_000_000
SEPARATOR = ","

Server = Callable[[sql.Composable], sql.Composable]
Client = Callable[[pa.Array], pa.Array]


class UnrenderableValue(Exception):
    """A file value the client rendering cannot take (the load accepted it): the column leaves the comparison."""


@dataclass(frozen=True)
class Rendering:
    """How one column's values become canonical text: ``server`` builds the SQL over the stored column,
    ``client`` the Arrow strings over the file's column. Both keep NULL as NULL."""

    kind: str
    server: Server
    client: Client


def _is_string(t: pa.DataType) -> bool:
    return pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t)


def _cast(arr: pa.Array, target: pa.DataType, *, safe: bool = True) -> pa.Array:
    try:
        return pc.cast(arr, target, safe=safe)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise UnrenderableValue(f"{arr.type} does not convert to {target} ({exc})") from exc


def _as_string(arr: pa.Array) -> pa.Array:
    """Any string (large, view) or castable value as a plain string array: one batch's text fits 32-bit offsets."""
    return arr if arr.type == pa.string() else _cast(arr, pa.string())


# --- the server side ------------------------------------------------------------------------------------

def _sql(template: str) -> Server:
    return lambda col: sql.SQL(template).format(c=col)


def _bits(send: str, width: int) -> str:
    """A fixed-width binary form as a signed integer's text: the bytes are big-endian two's complement."""
    cast = "bigint" if width == 64 else "int"
    return f"('x' || encode({send}({{c}}), 'hex'))::bit({width})::{cast}::text"


def _length_prefixed(inner: str) -> Server:
    return lambda col: sql.SQL("octet_length({v})::text || ':' || {v}").format(v=sql.SQL(inner).format(c=col))


# --- the client side ------------------------------------------------------------------------------------

def _int_text(arr: pa.Array) -> pa.Array:
    if not pa.types.is_integer(arr.type):
        arr = _cast(arr, pa.int64())  # a string, a float or a decimal that the load took as an integer
    return _cast(arr, pa.string())


def _float_bits(width: int) -> Client:
    target, view = (pa.float64(), pa.int64()) if width == 64 else (pa.float32(), pa.int32())

    def render(arr: pa.Array) -> pa.Array:
        if arr.type != target:
            # The load refused any value that would change (convert.py), so this cast is exact.
            arr = _cast(arr, target, safe=not pa.types.is_floating(arr.type) and not pa.types.is_integer(arr.type))
        bits = _cast(arr.view(view), pa.string())
        return pc.if_else(pc.is_nan(arr), pa.scalar("NaN"), bits)

    return render


def _decimal_text(arr: pa.Array, scale: int) -> pa.Array:
    """Plain (never scientific) text with exactly ``scale`` fraction digits: polars writes it, Arrow does not."""
    if pa.types.is_floating(arr.type):
        arr = _cast(arr, pa.string())  # a float means its shortest decimal text (convert.py does the same)
    dec = _cast(arr, pa.decimal128(38, scale))
    return pl.from_arrow(dec).cast(pl.String).to_arrow().cast(pa.string())


def _numeric_scaled(scale: int) -> Client:
    return lambda arr: _decimal_text(arr, scale)


def _numeric_trimmed(arr: pa.Array) -> pa.Array:
    if pa.types.is_integer(arr.type):
        return _cast(arr, pa.string())
    scale = arr.type.scale if pa.types.is_decimal(arr.type) else 16  # the scale convert.py gives text and floats
    text = pl.from_arrow(_decimal_text(arr, min(scale, 38)))
    trimmed = text.str.strip_chars_end("0").str.strip_chars_end(".")  # 1.50 -> 1.5, 2.00 -> 2, 0.0 -> 0 ("" below)
    out = pl.select(pl.when(text.str.contains(".", literal=True)).then(trimmed).otherwise(text)).to_series()
    return pl.select(pl.when(out == "").then(pl.lit("0")).otherwise(out)).to_series().to_arrow().cast(pa.string())


def _bool_text(arr: pa.Array) -> pa.Array:
    return _cast(arr, pa.string())


def _with_length(text: pa.Array) -> pa.Array:
    return pc.binary_join_element_wise(_cast(pc.binary_length(text), pa.string()), text, ":")


def _text(arr: pa.Array) -> pa.Array:
    return _with_length(_as_string(arr))


def _bpchar(arr: pa.Array) -> pa.Array:
    return _with_length(pc.utf8_rtrim(_as_string(arr), characters=" "))


def _hex(arr: pa.Array) -> pa.Array:
    if not pa.types.is_binary(arr.type) and not pa.types.is_large_binary(arr.type):
        arr = _cast(arr, pa.binary())
    return pl.from_arrow(arr).bin.encode("hex").to_arrow().cast(pa.string())


def _uuid(arr: pa.Array) -> pa.Array:
    if not _is_string(arr.type):
        return _hex(arr)
    series = pl.from_arrow(arr).cast(pl.String)
    return series.str.strip_chars("{}").str.replace_all("-", "", literal=True).str.to_lowercase().to_arrow().cast(pa.string())


def _bytea(arr: pa.Array) -> pa.Array:
    return pc.binary_join_element_wise(pa.scalar("x"), _hex(arr), "")


def _micros(target: pa.DataType, offset: int) -> Client:
    """A temporal column as microseconds since its PostgreSQL epoch (``offset`` Unix microseconds)."""

    def render(arr: pa.Array) -> pa.Array:
        # Unsafe: a date or a coarser time widens exactly, and the load refused any value it would change.
        values = _cast(_cast(arr, target, safe=_is_string(arr.type)).view(pa.int64()), pa.int64())
        if offset:
            values = pc.subtract(values, pa.scalar(offset, pa.int64()))
        return _cast(values, pa.string())

    return render


def _days(arr: pa.Array) -> pa.Array:
    days = _cast(arr, pa.date32(), safe=_is_string(arr.type))
    return _cast(days.view(pa.int32()), pa.string())


def _duration(arr: pa.Array) -> pa.Array:
    return _cast(_cast(arr, pa.duration("us")).view(pa.int64()), pa.string())


def _jsonb(arr: pa.Array) -> pa.Array:
    """The file's JSON as jsonb prints it: one Python pass per value (jsonb columns are few and small)."""
    out = []
    for text in _as_string(arr).to_pylist():
        if text is None:
            out.append(None)
            continue
        try:
            value = json.loads(text, parse_float=Decimal, parse_int=Decimal, parse_constant=_no_constant)
        except ValueError as exc:
            raise UnrenderableValue(f"not JSON the check can read ({exc})") from exc
        out.append(jsonb_text(value))
    return _with_length(pa.array(out, pa.string()))


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def jsonb_text(value: object) -> str:
    """``value`` (parsed with Decimal numbers) as PostgreSQL's jsonb output writes it."""
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, Decimal):
        text = format(value, "f")
        return text[1:] if value.is_zero() and text.startswith("-") else text  # numeric has no -0
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ", ".join(jsonb_text(v) for v in value) + "]"
    if isinstance(value, dict):
        keys = sorted(value, key=lambda k: (len(k.encode()), k.encode()))  # jsonb's key order
        return "{" + ", ".join(f"{json.dumps(k, ensure_ascii=False)}: {jsonb_text(value[k])}" for k in keys) + "}"
    raise TypeError(f"not a JSON value: {value!r}")


# --- per column -----------------------------------------------------------------------------------------

_INT = Rendering("integer", _sql("{c}::text"), _int_text)
_FLOAT8 = Rendering("float8 bits",
                    _sql("CASE WHEN {c} = 'NaN'::float8 THEN 'NaN' ELSE " + _bits("float8send", 64) + " END"),
                    _float_bits(64))
_FLOAT4 = Rendering("float4 bits",
                    _sql("CASE WHEN {c} = 'NaN'::float4 THEN 'NaN' ELSE " + _bits("float4send", 32) + " END"),
                    _float_bits(32))
_NUMERIC_TRIMMED = Rendering("numeric, trailing zeros trimmed", _sql("trim_scale({c})::text"), _numeric_trimmed)
_BOOL = Rendering("boolean", _sql("{c}::text"), _bool_text)
_TEXT = Rendering("text", _length_prefixed("{c}::text"), _text)
_BPCHAR = Rendering("char(n), trailing spaces stripped", _length_prefixed("{c}::text"), _bpchar)
_JSONB = Rendering("jsonb normalised", _length_prefixed("{c}::text"), _jsonb)
_UUID = Rendering("uuid hex", _sql("encode(uuid_send({c}), 'hex')"), _uuid)
_BYTEA = Rendering("bytea hex", _sql("'x' || encode({c}, 'hex')"), _bytea)
_DATE = Rendering("days since 1970",
                  _sql("CASE WHEN isfinite({c}) THEN ({c} - DATE '1970-01-01')::text ELSE {c}::text END"), _days)
_TIMESTAMP = Rendering("microseconds since 2000", _sql(_bits("timestamp_send", 64)),
                       _micros(pa.timestamp("us"), PG_EPOCH_US))
_TIMESTAMPTZ = Rendering("microseconds since 2000 UTC", _sql(_bits("timestamptz_send", 64)),
                         _micros(pa.timestamp("us", tz="UTC"), PG_EPOCH_US))
_TIME = Rendering("microseconds of the day", _sql(_bits("time_send", 64)), _micros(pa.time64("us"), 0))
_INTERVAL = Rendering("interval microseconds", _sql("trim_scale(extract(epoch FROM {c}) * 1000000)::text"), _duration)

_BY_TYPE = {
    "int2": _INT, "int4": _INT, "int8": _INT, "oid": _INT,
    "float4": _FLOAT4, "float8": _FLOAT8,
    "bool": _BOOL,
    "text": _TEXT, "varchar": _TEXT, "name": _TEXT, "citext": _TEXT, "json": _TEXT,
    "bpchar": _BPCHAR, "jsonb": _JSONB, "uuid": _UUID, "bytea": _BYTEA,
    "date": _DATE, "timestamp": _TIMESTAMP, "timestamptz": _TIMESTAMPTZ, "time": _TIME, "interval": _INTERVAL,
}
# Renderings that compare text as the database encodes it: they need a UTF-8 database (md5 hashes its bytes).
TEXTUAL_KINDS = {_TEXT.kind, _BPCHAR.kind, _JSONB.kind}


def numeric_scale(column: Column) -> int | None:
    """numeric(p,s)'s s, or None when the column is unconstrained; PG15 keeps a signed 11-bit scale."""
    if column.typmod < 4:
        return None
    scale = (column.typmod - 4) & 0x7FF
    return scale - 0x800 if scale & 0x400 else scale


def rendering_for(column: Column) -> Rendering | str:
    """The column's rendering, or why it has none (its column is then outside the comparison)."""
    base = column.base_type
    if column.type_kind == "e":
        return _TEXT
    if base == "numeric":
        scale = numeric_scale(column)
        if scale is None:
            return _NUMERIC_TRIMMED
        if not 0 <= scale <= 38:
            return f"{column.type_sql}: a scale outside 0..38 has no exact Arrow decimal"
        return Rendering(f"numeric at scale {scale}", _sql("{c}::text"), _numeric_scaled(scale))
    found = _BY_TYPE.get(base) if column.type_kind == "b" else None  # arrays (_int4 …), ranges, composites: none
    if found is None:
        return f"{column.type_sql}: no canonical rendering for this type"
    return found


def join_fields(fields: list[sql.Composable]) -> sql.Composable:
    """The server's row text: ``concat`` turns a NULL field into the empty one."""
    parts: list[sql.Composable] = []
    for i, f in enumerate(fields):
        if i:
            parts.append(sql.Literal(SEPARATOR))
        parts.append(f)
    return sql.SQL("concat({})").format(sql.SQL(", ").join(parts)) if parts else sql.Literal("")


def join_arrays(fields: list[pa.Array | pa.Scalar], rows: int) -> pa.Array:
    """The client's row text, as ``join_fields`` builds it on the server."""
    if not fields:
        return pa.array([""] * rows, pa.string())
    if len(fields) == 1:
        one = fields[0]
        if isinstance(one, pa.Scalar):
            return pa.array([one.as_py()] * rows, pa.string())
        return pc.fill_null(one, "")
    big = sum(f.nbytes for f in fields if isinstance(f, pa.Array)) > (1 << 30)
    if big:  # 32-bit string offsets would overflow: join as large strings
        fields = [f.cast(pa.large_string()) for f in fields]
    return pc.binary_join_element_wise(*fields, SEPARATOR, null_handling="replace", null_replacement="")
