"""The `sp` graph sample (nodes and relationships), built from the same schools, staff, students and sections as `ids`."""

from __future__ import annotations

import polars as pl
import pyarrow as pa

from cert_loader.sample.rng import Rng, null_where

NODE_TYPES = {"id": pa.string(), "labels": pa.string(), "district_id": pa.string(), "properties": pa.string()}
REL_TYPES = {"start": pa.string(), "end": pa.string(), "type": pa.string(), "properties": pa.string()}

_GRADES = [["K", "1", "2", "3", "4", "5"], ["6", "7", "8"], ["9", "10", "11", "12"]]


def node_id(prefix: str, column: str) -> pl.Expr:
    return pl.lit(prefix + "-") + pl.col(column).cast(pl.String)


def _json(**fields: pl.Expr) -> pl.Expr:
    """A JSON object text; a null field is a whole-property null, lists never hold nulls."""
    if not fields:
        return pl.lit("{}")
    return pl.struct(**fields).struct.json_encode()


def _nodes(rng: Rng, ids: dict[str, pl.DataFrame]) -> pl.DataFrame:
    school, staff, student, section = (ids[t] for t in ("school", "staff", "edfi.student", "edfi.section"))
    s, k, n = school.height, staff.height, student.height
    schools = school.select(
        id=node_id("school", "school_id"), labels=pl.lit("School"),
        properties=_json(
            name=pl.col("name"), school_type=pl.col("school_type"), capacity=pl.col("enrollment_capacity"),
            rating=pl.lit(rng.choice(s, (3.0, 4.0, 4.5, 2.5, 5.0))),
            is_title_i=pl.lit(rng.chance(s, 0.4)),
            grades=pl.lit(pl.Series(_GRADES, dtype=pl.List(pl.String))).gather((pl.col("school_id") - 1) % 3),
        ),
    )
    staffs = staff.select(
        id=node_id("staff", "staff_id"), labels=pl.lit("Staff"),
        properties=_json(
            name=pl.col("first_name") + " " + pl.col("last_name"), title=pl.col("title"), fte=pl.col("fte"),
            certified=pl.col("is_certified"), nickname=pl.col("preferred_name"),
            subjects=pl.lit(rng.choice(k, (["math"], ["ela", "reading"], ["science"], ["art", "music", "drama"]),
                                       dtype=pl.List(pl.String))),
        ),
    )
    students = student.select(
        id=node_id("student", "student_id"), labels=pl.lit("Student"),
        properties=_json(
            name=pl.col("first_name") + " " + pl.col("last_name"), grade_level=pl.col("Grade Level"),
            gpa=pl.lit(rng.choice(n, (2.0, 2.5, 3.0, 3.25, 3.5, 3.75, 4.0))),
            active=pl.col("is_active"), email=pl.col("email"),
            languages=pl.lit(rng.choice(n, (["English"], ["English", "Español"], ["普通话", "English"], ["Français"]),
                                        dtype=pl.List(pl.String))),
        ),
    )
    sections = section.select(
        id=node_id("section", "section_id"), labels=pl.lit("Section"),
        properties=_json(course_code=pl.col("course_code"), term=pl.col("term"), capacity=pl.col("capacity"),
                         room=pl.col("room")),
    )
    return pl.concat([schools, staffs, students, sections])


def _relationships(rng: Rng, ids: dict[str, pl.DataFrame]) -> pl.DataFrame:
    staff, student, section, enrollment = (
        ids[t] for t in ("staff", "edfi.student", "edfi.section", "edfi.enrollment"))
    works_at = staff.filter(pl.col("school_id").is_not_null()).select(
        start=node_id("staff", "staff_id"), end=node_id("school", "school_id"), type=pl.lit("WORKS_AT"),
        properties=_json(title=pl.col("title"), since=pl.col("hire_date").cast(pl.String)),
    )
    reports_to = staff.filter(pl.col("supervisor_id").is_not_null()).select(
        start=node_id("staff", "staff_id"), end=node_id("staff", "supervisor_id"), type=pl.lit("REPORTS_TO"),
        properties=_json(),
    )
    attends = student.select(
        start=node_id("student", "student_id"), end=node_id("school", "school_id"), type=pl.lit("ATTENDS"),
        properties=_json(grade_level=pl.col("Grade Level"), current=pl.col("is_active")),
    )
    teaches = section.select(
        start=node_id("staff", "teacher_staff_id"), end=node_id("section", "section_id"), type=pl.lit("TEACHES"),
        properties=_json(term=pl.col("term")),
    )
    m = enrollment.height
    enrolled = enrollment.select(
        start=node_id("student", "student_id"), end=node_id("section", "section_id"), type=pl.lit("ENROLLED_IN"),
        properties=_json(
            begin_date=pl.col("begin_date").cast(pl.String),
            final_grade=pl.col("final_grade").cast(pl.Float64),
            credits_earned=null_where(rng.choice(m, (1.0, 0.5, 1.0)), pl.col("final_grade").is_null()),
        ),
    )
    return pl.concat([works_at, reports_to, attends, teaches, enrolled])


def generate(seed: int, ids_tables: dict[str, pl.DataFrame]) -> dict[str, pl.DataFrame]:
    """``{"nodes": ..., "relationships": ...}``; node ids are unique per district (``student-100001``)."""
    return {
        "nodes": _nodes(Rng(seed, "sp.nodes"), ids_tables),
        "relationships": _relationships(Rng(seed, "sp.relationships"), ids_tables),
    }
