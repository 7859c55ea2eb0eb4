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


@pytest.mark.parametrize("base,arrow_int,top", [("int2", pa.int16(), 2**15 - 1), ("int4", pa.int32(), 2**31 - 1),
                                                ("int8", pa.int64(), 2**63 - 1)])
def test_whole_decimal_into_every_int(base, arrow_int, top):
    """decimal(p,0) and whole decimal(p,s) values convert exactly; the first one out of range is refused by row."""
    for dtype in (pa.decimal128(10, 0), pa.decimal128(19, 0), pa.decimal128(22, 2)):
        ok = [Decimal(5), None, Decimal(-7)] + ([Decimal(top), Decimal(-top - 1)] if dtype.precision >= 19 else [])
        out = convert(ok, dtype, col(base=base))
        assert (out.type, out.to_pylist()) == (arrow_int, [int(v) if v is not None else None for v in ok])
    with pytest.raises(InputError, match=rf'column "c" \({base}\), row 6: value Decimal\(\'{top + 1}\'\)'):
        convert([Decimal(1), Decimal(top + 1)], pa.decimal128(20, 0), col(base=base), first_row=5)
    with pytest.raises(InputError, match=rf"row 2: value Decimal\('-{top + 2}'\)"):
        convert([Decimal(0), Decimal(-top - 2)], pa.decimal128(20, 0), col(base=base))


def test_decimal_with_a_fraction_into_int_is_refused_by_row():
    assert convert([Decimal("5.00"), Decimal("-3.00")], pa.decimal128(10, 2), col(base="int8")).to_pylist() == [5, -3]
    with pytest.raises(InputError, match=r"\(int8\), row 3: value Decimal\('5.50'\) cannot be converted exactly"):
        convert([Decimal("5.00"), None, Decimal("5.50")], pa.decimal128(10, 2), col(base="int8"))
    with pytest.raises(InputError, match=r"\(int4\), row 2: value Decimal\('-0.01'\)"):
        convert([Decimal("1.00"), Decimal("-0.01")], pa.decimal128(10, 2), col(base="int4"))


def test_nan_and_infinities_convert_between_float_widths():
    special = [float("nan"), None, float("inf"), float("-inf"), 1.5]
    for source, base in ((pa.float64(), "float4"), (pa.float32(), "float8")):
        out = convert(special, source, col(base=base)).to_pylist()
        assert out[0] != out[0] and out[1:] == special[1:]  # NaN is the only value not equal to itself


def test_float4_still_refuses_a_finite_value_that_rounds():
    with pytest.raises(InputError, match=r"row 3: value 0.1 would change to 0.10000000149011612"):
        convert([float("nan"), float("inf"), 0.1], pa.float64(), col(base="float4"))
    with pytest.raises(InputError, match=r"row 2: value 1e\+300 would change to inf"):
        convert([float("-inf"), 1e300], pa.float64(), col(base="float4"))
