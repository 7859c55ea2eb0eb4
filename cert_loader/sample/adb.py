"""The `adb` store's sample tables (assessments, windows, items, levels, student results), drawn from the `ids` students."""

from __future__ import annotations

import datetime as dt

import polars as pl
import pyarrow as pa

from cert_loader.sample import pools
from cert_loader.sample.rng import Rng, decimal_text, null_where, repeat_rows

INT, STR, DATE, BOOL, F64 = pa.int64(), pa.string(), pa.date32(), pa.bool_(), pa.float64()
TSTZ = pa.timestamp("us", tz="UTC")

ARROW_TYPES: dict[str, dict[str, pa.DataType]] = {
    "assessment": {"district_id": STR, "assessment_id": INT, "title": STR, "subject": STR,
                   "max_score": pa.decimal128(6, 2), "administered_year": INT},
    "assessment_window": {"district_id": STR, "window_id": INT, "assessment_id": INT, "opens_on": DATE,
                          "closes_on": DATE, "season": STR},
    "assessment_item": {"district_id": STR, "assessment_id": INT, "item_number": INT, "item_type": STR,
                        "points": pa.decimal128(4, 1), "metadata": STR},
    "performance_level": {"district_id": STR, "assessment_id": INT, "level_code": STR, "label": STR,
                          "min_score": pa.decimal128(6, 2), "max_score": pa.decimal128(6, 2)},
    "student_assessment": {"district_id": STR, "student_assessment_id": INT, "student_id": INT, "assessment_id": INT,
                           "window_id": INT, "administered_on": DATE, "scale_score": pa.decimal128(6, 2),
                           "percentile": F64, "accommodations": STR, "submitted_at": TSTZ},
    "objective_score": {"district_id": STR, "student_assessment_id": INT, "objective_code": STR, "raw_score": INT,
                        "mastery": BOOL},
}

ITEMS_PER_ASSESSMENT = 8


def _definitions(rng: Rng, count: int) -> dict[str, pl.DataFrame]:
    i = pl.int_range(0, count, eager=True)
    spec = pl.DataFrame(pools.ASSESSMENTS, schema=["title", "subject"], orient="row")
    picked = spec.select(pl.all().gather(i % spec.height))
    assessment = pl.DataFrame({"assessment_id": i + 1}).with_columns(
        title=picked["title"] + " " + (i // spec.height + 1).cast(pl.String),
        subject=picked["subject"],
        max_score=pl.lit("100.00"),
        administered_year=pl.lit(2025, pl.Int64),
    )

    seasons = repeat_rows(assessment.select("assessment_id"), pl.Series([2] * count), "season_no")
    w = seasons.height
    window = seasons.select(
        window_id=pl.int_range(1, w + 1), assessment_id="assessment_id",
        opens_on=pl.when(pl.col("season_no") == 0).then(pl.date(2024, 9, 15)).otherwise(pl.date(2025, 4, 1)),
        season=pl.when(pl.col("season_no") == 0).then(pl.lit("Fall")).otherwise(pl.lit("Spring")),
    ).with_columns(closes_on=pl.col("opens_on") + pl.duration(days=21)).select(
        "window_id", "assessment_id", "opens_on", "closes_on", "season")

    items = repeat_rows(assessment.select("assessment_id"), pl.Series([ITEMS_PER_ASSESSMENT] * count))
    m = items.height
    meta = pl.struct(
        standard=pl.lit("CCSS.") + pl.lit(rng.choice(m, ("MATH.3.OA.A.1", "ELA.RL.4.2", "SCI.MS-LS1", "MATH.6.EE"))),
        dok=pl.lit(rng.ints(m, 1, 4)),
        weight=pl.lit(rng.choice(m, (1.0, 1.0, 1.5, 2.0))),
        released=pl.lit(rng.chance(m, 0.3)),
        tags=pl.lit(rng.choice(m, (["fluency"], ["number sense", "fractions"], ["inférence"], ["问题解决"]),
                               dtype=pl.List(pl.String))),
    ).struct.json_encode()
    item = items.select(
        "assessment_id", item_number=pl.col("j") + 1,
        item_type=pl.lit(rng.choice(m, pools.ITEM_TYPES)),
        points=decimal_text(pl.lit(rng.choice(m, (5, 10, 10, 20, 25))), 1),
        metadata=meta,
    )

    levels = repeat_rows(assessment.select("assessment_id"), pl.Series([len(pools.LEVELS)] * count), "lv")
    codes = pl.DataFrame(pools.LEVELS, schema=["level_code", "label"], orient="row")
    level = levels.join(codes.with_row_index("lv").with_columns(pl.col("lv").cast(pl.Int64)), on="lv").select(
        "assessment_id", "level_code", "label",
        min_score=decimal_text(pl.col("lv") * 2500, 2),
        max_score=decimal_text(pl.col("lv") * 2500 + 2499, 2),
    ).sort("assessment_id", "level_code")
    return {"assessment": assessment, "assessment_window": window, "assessment_item": item,
            "performance_level": level}


def generate(seed: int, ids_tables: dict[str, pl.DataFrame]) -> dict[str, pl.DataFrame]:
    """The `adb` tables (without district_id, added by the writer)."""
    student = ids_tables["edfi.student"]
    count = 6 + student.height // 20_000
    tables = _definitions(Rng(seed, "adb.definitions"), count)

    rng = Rng(seed, "adb.student_assessment")
    rows = repeat_rows(student.select("student_id"), rng.ints(student.height, 1, 3))
    m = rows.height
    window_id = rng.ints(m, 1, 2 * count)
    result = rows.select(
        student_assessment_id=pl.int_range(1, m + 1), student_id="student_id",
        assessment_id=pl.lit((window_id - 1) // 2 + 1), window_id=pl.lit(window_id),
        administered_on=pl.lit(rng.dates(m, dt.date(2024, 9, 15), 200)),
        scale_score=decimal_text(pl.lit(rng.ints(m, 2000, 10000)), 2),
        percentile=null_where(rng.ints(m, 1, 99).cast(pl.Float64), rng.chance(m, 0.15)),
        accommodations=null_where(rng.choice(m, pools.ACCOMMODATIONS_JSON), ~rng.chance(m, 0.12)),
        submitted_at=pl.lit(rng.timestamps(m, dt.date(2024, 9, 15), 220)),
    )

    rng = Rng(seed, "adb.objective_score")
    rows = repeat_rows(result.select("student_assessment_id").with_columns(o0=rng.ints(m, 0, 4)), rng.ints(m, 1, 3))
    k = rows.height
    objective = rows.select(
        "student_assessment_id",
        objective_code=pl.lit(pl.Series(pools.OBJECTIVES)).gather((pl.col("o0") + pl.col("j")) % len(pools.OBJECTIVES)),
        raw_score=pl.lit(rng.ints(k, 0, 20)),
        mastery=null_where(rng.chance(k, 0.6), rng.chance(k, 0.1)),
    )
    return {**tables, "student_assessment": result, "objective_score": objective}
