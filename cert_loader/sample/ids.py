"""The `ids` store's sample tables (schools, staff, students, schedules), the backbone the other stores and the graph reuse."""

from __future__ import annotations

import datetime as dt

import polars as pl
import pyarrow as pa

from cert_loader.sample import pools
from cert_loader.sample.rng import Rng, decimal_text, null_where, repeat_rows, zero_padded

INT, STR, DATE, BOOL, F64 = pa.int64(), pa.string(), pa.date32(), pa.bool_(), pa.float64()
TSTZ, TS = pa.timestamp("us", tz="UTC"), pa.timestamp("us")

# Parents first. school -> staff is the deferrable cycle edge (school.principal_staff_id); staff.school_id is not
# deferrable, so school must come first.
ARROW_TYPES: dict[str, dict[str, pa.DataType]] = {
    "school": {"district_id": STR, "school_id": INT, "name": STR, "school_type": STR, "address": STR, "phone": STR,
               "principal_staff_id": INT, "opened_on": DATE, "enrollment_capacity": INT},
    "staff": {"district_id": STR, "staff_id": INT, "first_name": STR, "last_name": STR, "preferred_name": STR,
              "title": STR, "school_id": INT, "supervisor_id": INT, "hire_date": DATE,
              "salary": pa.decimal128(10, 2), "fte": F64, "is_certified": BOOL},
    "school_calendar": {"district_id": STR, "school_id": INT, "calendar_date": DATE, "is_instructional": BOOL,
                        "day_type": STR},
    "edfi.student": {"district_id": STR, "student_id": INT, "student_unique_id": STR, "first_name": STR,
                     "last_name": STR, "birth_date": DATE, "Grade Level": INT, "school_id": INT, "email": STR,
                     "is_active": BOOL, "notes": STR, "created_at": TS},
    "edfi.course": {"district_id": STR, "course_code": STR, "title": STR, "subject": STR,
                    "credits": pa.decimal128(3, 1), "is_ap": BOOL},
    "edfi.section": {"district_id": STR, "section_id": INT, "course_code": STR, "school_id": INT,
                     "teacher_staff_id": INT, "term": STR, "room": STR, "capacity": INT},
    "edfi.enrollment": {"district_id": STR, "student_id": INT, "section_id": INT, "begin_date": DATE,
                        "end_date": DATE, "final_grade": pa.decimal128(5, 2)},
    "edfi.attendance_event": {"district_id": STR, "attendance_id": INT, "student_id": INT, "school_id": INT,
                              "event_date": DATE, "event_type": STR, "minutes_absent": INT, "comment": STR,
                              "recorded_at": TSTZ},
}

YEAR_START = dt.date(2024, 8, 19)
CALENDAR_DAYS = 180


def sizes(students: int) -> dict[str, int]:
    schools = max(3, students // 400)
    return {
        "students": students,
        "schools": schools,
        "teachers": max(2 * schools, students // 15),
        "sections": max(6 * schools, students // 8),
        "courses": 20 + students // 2000,
    }


def _schools(rng: Rng, n: dict[str, int]) -> pl.DataFrame:
    s = n["schools"]
    ids = pl.Series("school_id", range(1, s + 1), dtype=pl.Int64)
    types = pl.Series(pools.SCHOOL_TYPES).gather((ids - 1) % 3)
    return pl.DataFrame({"school_id": ids}).with_columns(
        name=rng.choice(s, pools.SCHOOL_STEMS) + " " + types + " #" + ids.cast(pl.String),
        school_type=types,
        address=null_where(rng.ints(s, 1, 9999).cast(pl.String) + " " + rng.choice(s, pools.STREETS),
                           rng.chance(s, 0.1)),
        phone=null_where("555-" + zero_padded(rng.ints(s, 0, 9999), 4), rng.chance(s, 0.2)),
        # Principals are staff 1..S; the last school and every fifth one have a vacancy (NULL).
        principal_staff_id=null_where(ids, (ids % 5 == 0) | (ids == s)),
        opened_on=rng.dates(s, dt.date(1950, 1, 1), 65 * 365),
        enrollment_capacity=rng.ints(s, 300, 2000),
    )


def _staff(rng: Rng, n: dict[str, int]) -> pl.DataFrame:
    s, t = n["schools"], n["teachers"]
    chief = s + t + 1
    # File order: teachers, then principals, then the superintendent, so most children precede their supervisor.
    ids = pl.concat([pl.Series("staff_id", range(s + 1, s + t + 1)), pl.Series("staff_id", range(1, s + 1)),
                     pl.Series("staff_id", [chief])]).cast(pl.Int64)
    k = len(ids)
    is_teacher, is_principal = pl.col("staff_id") > s, pl.col("staff_id") <= s
    teacher_school = (pl.col("staff_id") - s - 1) % s + 1
    return pl.DataFrame({"staff_id": ids}).with_columns(
        first_name=rng.choice(k, pools.FIRST_NAMES),
        last_name=rng.choice(k, pools.LAST_NAMES),
        preferred_name=null_where(rng.choice(k, pools.NICKNAMES), ~rng.chance(k, 0.15)),
        title=pl.when(is_principal).then(pl.lit("Principal")).when(is_teacher & (pl.col("staff_id") < chief))
        .then(rng.choice(k, pools.STAFF_TITLES)).otherwise(pl.lit("Superintendent")),
        school_id=pl.when(is_principal).then(pl.col("staff_id"))
        .when(pl.col("staff_id") < chief).then(teacher_school).otherwise(None),
        supervisor_id=pl.when(is_principal).then(pl.lit(chief, pl.Int64))
        .when(pl.col("staff_id") < chief).then(teacher_school).otherwise(None),
        hire_date=rng.dates(k, dt.date(1995, 7, 1), 29 * 365),
        salary=null_where(decimal_text(pl.lit(rng.ints(k, 3_500_000, 12_000_000)), 2), rng.chance(k, 0.05)),
        fte=rng.choice(k, (1.0, 1.0, 1.0, 0.5, 0.8, 0.6)),
        is_certified=rng.chance(k, 0.85),
    )


def _calendar(rng: Rng, n: dict[str, int]) -> pl.DataFrame:
    schools = pl.DataFrame({"school_id": pl.int_range(1, n["schools"] + 1, eager=True)})
    days = repeat_rows(schools, pl.Series([CALENDAR_DAYS] * n["schools"]), "day")
    k = days.height
    date = (pl.col("day") + (YEAR_START - dt.date(1970, 1, 1)).days).cast(pl.Int32).cast(pl.Date)
    holiday = rng.chance(k, 0.04)
    return days.with_columns(calendar_date=date).with_columns(
        is_instructional=(date.dt.weekday() <= 5) & ~pl.lit(holiday),
        day_type=pl.when(date.dt.weekday() > 5).then(pl.lit("Weekend"))
        .when(pl.lit(holiday)).then(pl.lit("Holiday")).otherwise(pl.lit("Instructional")),
    ).drop("day")


def _students(rng: Rng, n: dict[str, int]) -> pl.DataFrame:
    k = n["students"]
    ids = pl.int_range(100_001, 100_001 + k, eager=True).alias("student_id")
    grade = rng.ints(k, 0, 12)
    birth_days = (dt.date(2019, 9, 1) - dt.date(1970, 1, 1)).days - grade * 365 - rng.ints(k, 0, 364)
    return pl.DataFrame({"student_id": ids}).with_columns(
        student_unique_id="STU-" + zero_padded(pl.col("student_id"), 9),
        first_name=rng.choice(k, pools.FIRST_NAMES),
        last_name=rng.choice(k, pools.LAST_NAMES),
        birth_date=birth_days.cast(pl.Int32).cast(pl.Date),
        **{"Grade Level": grade},
        school_id=rng.ints(k, 1, n["schools"]),
        email=null_where("student" + pl.col("student_id").cast(pl.String) + "@example.org", rng.chance(k, 0.1)),
        is_active=rng.chance(k, 0.95),
        notes=null_where(rng.choice(k, pools.NOTES), ~rng.chance(k, 0.3)),
        created_at=rng.timestamps(k, dt.date(2023, 6, 1), 300, tz=None),
    )


def _courses(rng: Rng, n: dict[str, int]) -> pl.DataFrame:
    k = n["courses"]
    i = pl.int_range(0, k, eager=True)
    spec = pl.DataFrame(pools.COURSES, schema=["abbr", "subject", "title"], orient="row")[(i % len(pools.COURSES))]
    level = (i // len(pools.COURSES) + 1).cast(pl.String)
    return pl.DataFrame({
        "course_code": spec["abbr"] + "-" + (i + 101).cast(pl.String),
        "title": spec["title"] + " " + level,
        "subject": spec["subject"],
    }).with_columns(
        credits=decimal_text(pl.lit(rng.choice(k, (5, 10, 10, 10, 15))), 1),
        is_ap=rng.chance(k, 0.15),
    )


def _sections(rng: Rng, n: dict[str, int], courses: pl.DataFrame) -> pl.DataFrame:
    s, t, k = n["schools"], n["teachers"], n["sections"]
    ids = pl.int_range(1, k + 1, eager=True).alias("section_id")
    school = (ids - 1) % s + 1
    teachers_here = (t - school) // s + 1  # teachers of school x are staff s + x + j*s, j < teachers_here
    return pl.DataFrame({"section_id": ids, "school_id": school}).with_columns(
        course_code=courses["course_code"].gather(rng.ints(k, 0, courses.height - 1)),
        teacher_staff_id=s + school + (rng.raw(k) % teachers_here) * s,
        term=rng.choice(k, pools.TERMS),
        room=null_where("R" + rng.ints(k, 100, 350).cast(pl.String), rng.chance(k, 0.1)),
        capacity=rng.ints(k, 20, 35),
    )


def _enrollments(rng: Rng, n: dict[str, int], students: pl.DataFrame) -> pl.DataFrame:
    s, k = n["schools"], students.height
    base = students.select("student_id", "school_id").with_columns(
        start=rng.raw(k), sections_here=(n["sections"] - pl.col("school_id")) // s + 1
    ).with_columns(start=pl.col("start") % pl.col("sections_here"))
    rows = repeat_rows(base, rng.ints(k, 4, 6))
    m = rows.height
    return rows.select(
        "student_id",
        section_id=pl.col("school_id") + ((pl.col("start") + pl.col("j")) % pl.col("sections_here")) * s,
        begin_date=rng.dates(m, YEAR_START, 10),
        end_date=null_where(rng.dates(m, dt.date(2024, 10, 1), 200), ~rng.chance(m, 0.1)),
        final_grade=null_where(decimal_text(pl.lit(rng.ints(m, 5000, 10000)), 2), rng.chance(m, 0.4)),
    )


def _attendance(rng: Rng, students: pl.DataFrame) -> pl.DataFrame:
    rows = repeat_rows(students.select("student_id", "school_id"), rng.ints(students.height, 0, 5))
    m = rows.height
    day = rng.ints(m, 0, CALENDAR_DAYS - 1) + (YEAR_START - dt.date(1970, 1, 1)).days
    recorded = (day * 86_400 + 8 * 3600 + rng.ints(m, 0, 36_000)) * 1_000_000
    return rows.select(
        attendance_id=pl.int_range(1, m + 1),
        student_id="student_id", school_id="school_id",
        event_date=pl.lit(day.cast(pl.Int32).cast(pl.Date)),
        event_type=pl.lit(rng.choice(m, pools.ATTENDANCE_TYPES)),
        minutes_absent=pl.lit(rng.ints(m, 0, 420)),
        comment=null_where(rng.choice(m, pools.NOTES), ~rng.chance(m, 0.2)),
        recorded_at=pl.lit(recorded.cast(pl.Datetime("us", "UTC"))),
    )


def generate(seed: int, students: int) -> dict[str, pl.DataFrame]:
    """The `ids` tables (without district_id, added by the writer), keyed by extraction-order name."""
    n = sizes(students)
    courses = _courses(Rng(seed, "ids.edfi.course"), n)
    student = _students(Rng(seed, "ids.edfi.student"), n)
    return {
        "school": _schools(Rng(seed, "ids.school"), n),
        "staff": _staff(Rng(seed, "ids.staff"), n),
        "school_calendar": _calendar(Rng(seed, "ids.school_calendar"), n),
        "edfi.student": student,
        "edfi.course": courses,
        "edfi.section": _sections(Rng(seed, "ids.edfi.section"), n, courses),
        "edfi.enrollment": _enrollments(Rng(seed, "ids.edfi.enrollment"), n, student),
        "edfi.attendance_event": _attendance(Rng(seed, "ids.edfi.attendance_event"), student),
    }
