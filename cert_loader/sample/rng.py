"""Seeded, vectorized random columns (pyarrow buffers into polars, no numpy) so sample districts are reproducible and fast."""

from __future__ import annotations

import datetime as dt
import hashlib
import random
from typing import Sequence

import polars as pl
import pyarrow as pa

_EPOCH = dt.date(1970, 1, 1)
_DAY_US = 86_400_000_000


def derive_seed(*parts: object) -> int:
    """A stable 63-bit seed from any printable parts (unlike ``hash()``, the same in every process)."""
    digest = hashlib.sha256("\x1f".join(str(p) for p in parts).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def epoch_days(day: dt.date) -> int:
    return (day - _EPOCH).days


class Rng:
    """One independent random stream (per table), so adding a table never shifts another table's data."""

    def __init__(self, seed: int, stream: str) -> None:
        self._random = random.Random(derive_seed(seed, stream))

    def raw(self, n: int) -> pl.Series:
        """``n`` non-negative Int64 values, uniform over [0, 2**63)."""
        if n <= 0:
            return pl.Series("raw", [], dtype=pl.Int64)
        buffer = pa.py_buffer(self._random.randbytes(8 * n))
        words = pl.from_arrow(pa.Array.from_buffers(pa.uint64(), n, [None, buffer]))
        return (words // 2).cast(pl.Int64).alias("raw")

    def ints(self, n: int, low: int, high: int) -> pl.Series:
        """``n`` Int64 values uniform in the inclusive range [low, high]."""
        return (self.raw(n) % (high - low + 1) + low).alias("ints")

    def uniform(self, n: int) -> pl.Series:
        """``n`` floats uniform in [0, 1)."""
        return ((self.raw(n) // 1024).cast(pl.Float64) / float(1 << 53)).alias("uniform")

    def chance(self, n: int, p: float) -> pl.Series:
        """``n`` booleans, each True with probability ``p``."""
        return (self.uniform(n) < p).alias("chance")

    def choice(self, n: int, pool: Sequence[object], dtype: pl.DataType | None = None) -> pl.Series:
        """``n`` values drawn uniformly (with repetition) from ``pool``; repeat an entry to weight it."""
        values = pl.Series("pool", list(pool), dtype=dtype)
        return values.gather(self.ints(n, 0, len(pool) - 1)).alias("choice")

    def dates(self, n: int, start: dt.date, span_days: int) -> pl.Series:
        """``n`` dates uniform in [start, start + span_days)."""
        return (self.ints(n, 0, span_days - 1) + epoch_days(start)).cast(pl.Int32).cast(pl.Date).alias("dates")

    def timestamps(self, n: int, start: dt.date, span_days: int, tz: str | None = "UTC") -> pl.Series:
        """``n`` microsecond timestamps (whole seconds) in [start, start + span_days); tz None = naive."""
        seconds = self.ints(n, 0, span_days * 86_400 - 1)
        micros = seconds * 1_000_000 + epoch_days(start) * _DAY_US
        return micros.cast(pl.Datetime("us", tz)).alias("timestamps")


def null_where(values: pl.Series | pl.Expr, mask: pl.Series | pl.Expr) -> pl.Expr:
    """``values`` with NULL wherever ``mask`` is True."""
    values = pl.lit(values) if isinstance(values, pl.Series) else values
    mask = pl.lit(mask) if isinstance(mask, pl.Series) else mask
    return pl.when(mask).then(None).otherwise(values)


def decimal_text(units: pl.Expr, scale: int) -> pl.Expr:
    """Exact decimal text of ``units / 10**scale`` for non-negative integer units (cast to decimal128 later)."""
    if scale == 0:
        return units.cast(pl.String)
    factor = 10**scale
    whole = (units // factor).cast(pl.String)
    frac = (units % factor).cast(pl.String).str.zfill(scale)
    return whole + pl.lit(".") + frac


def zero_padded(values: pl.Expr, width: int) -> pl.Expr:
    return values.cast(pl.String).str.zfill(width)


def repeat_rows(frame: pl.DataFrame, counts: pl.Series, index: str = "j") -> pl.DataFrame:
    """Each row of ``frame`` repeated ``counts`` times (0 drops it), with ``index`` = 0..count-1 per row."""
    return (
        frame.with_columns(counts.alias("_n"))
        .filter(pl.col("_n") > 0)
        .with_columns(pl.int_ranges(0, pl.col("_n")).alias(index))
        .explode(index)
        .drop("_n")
    )
