"""Exact conversion of parquet values to catalog types: what converts, and what is refused with its row."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal

import pyarrow as pa
import pytest

from cert_loader.catalog import Column
from cert_loader.convert import BatchConverter, plan_column
from cert_loader.errors import CatalogError, InputError


def col(name="c", base="int4", typmod=-1, not_null=False, type_sql=None, kind="b"):
    return Column(name, type_sql or base, base, kind, typmod, not_null, False, False, "")


def numeric(p, s):
    return col(base="numeric", typmod=((p << 16) | s) + 4, type_sql=f"numeric({p},{s})")


def convert(values, arrow_type, column, first_row=1):
    batch = pa.record_batch({"c": pa.array(values, arrow_type)})
    conv = plan_column("ids", "t", batch.schema.field("c"), column)
    return BatchConverter("ids", "t", [conv]).convert(batch, first_row).column(0)


def test_int64_that_fits_int4():
    assert convert([1, None, 2**31 - 1], pa.int64(), col()).type == pa.int32()


def test_int64_that_does_not_fit_names_the_row():
    with pytest.raises(InputError, match=r'ids: t: column "c" \(int4\), row 12: value 2147483648'):
        convert([1, 2**31], pa.int64(), col(), first_row=11)


def test_float_with_fraction_into_int_is_refused():
    with pytest.raises(InputError, match="row 2"):
        convert([1.0, 1.5], pa.float64(), col())


def test_float64_into_float4_refuses_rounding():
    assert convert([1.5, 0.25], pa.float64(), col(base="float4")).to_pylist() == [1.5, 0.25]
    with pytest.raises(InputError, match="row 1: value 0.1"):
        convert([0.1], pa.float64(), col(base="float4"))


def test_numeric_scale_and_precision():
    out = convert([Decimal("1.5"), Decimal("-2.25")], pa.decimal128(10, 3), numeric(6, 2))
    assert out.to_pylist() == [Decimal("1.50"), Decimal("-2.25")]
    with pytest.raises(InputError, match="row 1"):
        convert([Decimal("1.125")], pa.decimal128(10, 3), numeric(6, 2))
    with pytest.raises(InputError, match="row 2"):
        convert([Decimal("1"), Decimal("12345.67")], pa.decimal128(10, 2), numeric(6, 2))


def test_float_into_numeric_uses_its_shortest_text():
    assert convert([98.6, 100.8], pa.float64(), numeric(4, 1)).to_pylist() == [Decimal("98.6"), Decimal("100.8")]
    with pytest.raises(InputError, match="row 1: value 98.65"):
        convert([98.65], pa.float64(), numeric(4, 1))


def test_uuid_strings():
    u = uuid.uuid4()
    out = convert([str(u), None, u.hex.upper()], pa.string(), col(base="uuid"))
    assert out.to_pylist() == [u.bytes, None, u.bytes]
    with pytest.raises(InputError, match="row 2: value 'nope' is not a valid uuid"):
        convert([str(u), "nope"], pa.string(), col(base="uuid"))


def test_timestamp_precision():
    ts = dt.datetime(2024, 1, 1, 12, 0, 0, 500000)
    column = col(base="timestamp", typmod=0, type_sql="timestamp(0) without time zone")
    with pytest.raises(InputError, match="more than 0 fractional digits"):
        convert([ts], pa.timestamp("us"), column)
    assert convert([ts.replace(microsecond=0)], pa.timestamp("ms"), column).type == pa.timestamp("us")


def test_timestamp_into_date_must_be_midnight():
    with pytest.raises(InputError, match="row 1"):
        convert([dt.datetime(2024, 1, 1, 1)], pa.timestamp("us"), col(base="date"))
    assert convert([dt.datetime(2024, 1, 1)], pa.timestamp("us"), col(base="date")).to_pylist() == [dt.date(2024, 1, 1)]


def test_not_null():
    with pytest.raises(InputError, match='column "c" is NOT NULL but row 3 has no value'):
        convert([1, 2, None], pa.int64(), col(not_null=True))


def test_incompatible_types_refused_at_plan_time():
    with pytest.raises(CatalogError, match='column "c" is date but the file has bool'):
        convert([True], pa.bool_(), col(base="date", type_sql="date"))
