"""The sample-district generator writes the input contract faithfully, and its DDL accepts its data in PostgreSQL."""

from __future__ import annotations

import io
import json
import time
from pathlib import Path

import polars as pl
import psycopg
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from psycopg import sql

from cert_loader.sample import SAMPLE_STORES, apply_schema, generate_district, load_ddl

STUDENTS = 150


def D(*cols: str) -> tuple[str, ...]:
    return ("district_id", *cols)


# Independent oracle of the sample schema (checked against the live catalog in the PostgreSQL test).
FKS: dict[str, list[tuple[str, tuple[str, ...], str, tuple[str, ...]]]] = {
    "ids": [
        ("school", D("principal_staff_id"), "staff", D("staff_id")),  # the one DEFERRABLE FK (cycle)
        ("staff", D("school_id"), "school", D("school_id")),
        ("staff", D("supervisor_id"), "staff", D("staff_id")),  # self-reference
        ("school_calendar", D("school_id"), "school", D("school_id")),
        ("edfi.student", D("school_id"), "school", D("school_id")),
        ("edfi.section", D("course_code"), "edfi.course", D("course_code")),
        ("edfi.section", D("school_id"), "school", D("school_id")),
        ("edfi.section", D("teacher_staff_id"), "staff", D("staff_id")),
        ("edfi.enrollment", D("student_id"), "edfi.student", D("student_id")),
        ("edfi.enrollment", D("section_id"), "edfi.section", D("section_id")),
        ("edfi.attendance_event", D("student_id"), "edfi.student", D("student_id")),
        ("edfi.attendance_event", D("school_id"), "school", D("school_id")),
    ],
    "hcp1": [
        ("patient", D("clinic_id"), "clinic", D("clinic_id")),
        ("visit", D("patient_id"), "patient", D("patient_id")),
        ("visit", D("clinic_id"), "clinic", D("clinic_id")),
        ("immunization", D("patient_id"), "patient", D("patient_id")),
        ("screening", D("patient_id"), "patient", D("patient_id")),
    ],
    "hcp2": [
        ("provider_credential", D("provider_id"), "provider", D("provider_id")),
        ("service_plan", D("provider_id"), "provider", D("provider_id")),
        ("service_session", ("plan_uuid",), "service_plan", ("plan_uuid",)),
        ("referral", D("provider_id"), "provider", D("provider_id")),
    ],
    "adb": [
        ("assessment_window", D("assessment_id"), "assessment", D("assessment_id")),
        ("assessment_item", D("assessment_id"), "assessment", D("assessment_id")),
        ("performance_level", D("assessment_id"), "assessment", D("assessment_id")),
        ("student_assessment", D("assessment_id"), "assessment", D("assessment_id")),
        ("student_assessment", D("window_id"), "assessment_window", D("window_id")),
        ("objective_score", D("student_assessment_id"), "student_assessment", D("student_assessment_id")),
    ],
}
DEFERRABLE = {("ids", "school", "staff")}
KEYS: dict[str, dict[str, tuple[str, ...]]] = {  # primary keys, plus the extra unique keys as "table#n"
    "ids": {"school": D("school_id"), "staff": D("staff_id"), "school_calendar": D("school_id", "calendar_date"),
            "edfi.student": D("student_id"), "edfi.student#u": D("student_unique_id"),
            "edfi.course": D("course_code"), "edfi.section": D("section_id"),
            "edfi.enrollment": D("student_id", "section_id"), "edfi.attendance_event": D("attendance_id")},
    "hcp1": {"clinic": D("clinic_id"), "patient": D("patient_id"), "patient#u": D("student_id"),
             "visit": D("visit_id"), "immunization": D("patient_id", "vaccine_code", "dose_number"),
             "screening": D("screening_id")},
    "hcp2": {"provider": D("provider_id"), "provider#u": D("license_number"),
             "provider_credential": D("provider_id", "credential_code"), "service_plan": ("plan_uuid",),
             "service_session": D("session_id"), "referral": D("referral_id")},
    "adb": {"assessment": D("assessment_id"), "assessment_window": D("window_id"),
            "assessment_item": D("assessment_id", "item_number"), "performance_level": D("assessment_id", "level_code"),
            "student_assessment": D("student_assessment_id"),
            "objective_score": D("student_assessment_id", "objective_code")},
}
# Generated or defaulted columns that must never be in the parquet.
NOT_IN_FILES = {"full_name", "score_ratio", "loaded_at", "status"}


def _order(root: Path) -> dict[str, list[str]]:
    return json.loads((root / "data" / "analysis" / "extraction-order.json").read_text(encoding="utf-8"))


def _read(root: Path, district: str, store: str, table: str) -> pl.DataFrame:
    return pl.read_parquet(root / "data" / "anonymized" / district / store / f"{table}.parquet")


@pytest.fixture(scope="module")
def district(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, dict]:
    root = tmp_path_factory.mktemp("sample")
    counts = generate_district(root, "district-042", students=STUDENTS, seed=7)
    return root, "district-042", counts


def test_layout_counts_and_report(district):
    root, name, counts = district
    order = _order(root)
    assert list(order) == ["ids", "hcp1", "hcp2", "adb", "sp"] and order["sp"] == ["nodes", "relationships"]
    assert {t for t in order["ids"] if "." in t} >= {"edfi.student", "edfi.section"}
    for store, tables in order.items():
        assert list(counts[store]) == tables
        for table in tables:
            frame = _read(root, name, store, table)
            assert frame.height == counts[store][table] > 0, (store, table)
            assert not NOT_IN_FILES & set(frame.columns), (store, table)
            if "district_id" in frame.columns:
                assert frame["district_id"].unique().to_list() == [name]
    assert counts["ids"]["edfi.student"] == STUDENTS
    total = sum(n for tables in counts.values() for n in tables.values())
    assert 2_000 < total < 10_000
    report = json.loads((root / "data" / "anonymized" / name / "validation-report.json").read_text(encoding="utf-8"))
    assert report["district_id"] == name and report["overall_status"] == "PASSED"
    assert report["summary"] == {**report["summary"], "total_errors": 0, "total_warnings": 0}
    assert report["validated_at"].endswith("Z")


def test_parquet_types_are_what_extractors_write(district):
    root, name, _ = district
    schema = lambda store, table: pq.read_schema(root / "data" / "anonymized" / name / store / f"{table}.parquet")
    student = schema("ids", "edfi.student")
    assert student.field("Grade Level").type == pa.int64() and student.field("created_at").type == pa.timestamp("us")
    assert schema("ids", "edfi.attendance_event").field("recorded_at").type == pa.timestamp("us", tz="UTC")
    assert schema("hcp2", "service_plan").field("plan_uuid").type == pa.string()
    assert schema("ids", "edfi.course").field("credits").type == pa.decimal128(3, 1)  # column is numeric(4,2)
    assert schema("hcp1", "visit").field("temperature_f").type == pa.float64()  # column is numeric(4,1)
    temps = _read(root, name, "hcp1", "visit")["temperature_f"].drop_nulls()
    assert all(round(t, 1) == t and len(repr(t)) <= 5 for t in temps)
    allergies = _read(root, name, "hcp1", "patient")["allergies"]
    assert all(isinstance(json.loads(v), dict) for v in allergies)
    notes = "".join(_read(root, name, "ids", "edfi.student")["notes"].drop_nulls().unique().to_list())
    names = "".join(_read(root, name, "ids", "staff")["last_name"].to_list())
    for tricky in ("\t", "\n", "\\", '"', "'", "é"):
        assert tricky in notes + names, repr(tricky)
    for store, table, column in [("ids", "edfi.student", "email"), ("ids", "staff", "supervisor_id"),
                                 ("ids", "school", "principal_staff_id"), ("hcp1", "visit", "temperature_f")]:
        assert _read(root, name, store, table)[column].null_count() > 0, (table, column)


def test_keys_unique_and_order_parents_first(district):
    root, name, _ = district
    order = _order(root)
    for store, keys in KEYS.items():
        for table, cols in keys.items():
            frame = _read(root, name, store, table.split("#")[0])
            assert frame.select(cols).is_duplicated().sum() == 0, (store, table)
    for store, fks in FKS.items():
        for child, _, parent, _ in fks:
            if child != parent and (store, child, parent) not in DEFERRABLE:
                assert order[store].index(parent) < order[store].index(child), (store, child, parent)


def test_every_foreign_key_value_exists_in_its_parent(district):
    root, name, _ = district
    for store, fks in FKS.items():
        for child, ccols, parent, pcols in fks:
            values = _read(root, name, store, child).select(ccols).drop_nulls()
            assert values.height > 0, (child, ccols)
            parents = _read(root, name, store, parent).select(pcols).rename(dict(zip(pcols, ccols)))
            orphans = values.join(parents, on=list(ccols), how="anti")
            assert orphans.height == 0, (store, child, ccols, orphans.head(3))


def test_self_reference_puts_children_before_parents(district):
    root, name, _ = district
    staff = _read(root, name, "ids", "staff").with_row_index("row")
    rows = staff.join(staff.select(supervisor_id="staff_id", parent_row="row"), on="supervisor_id")
    assert (rows["row"] < rows["parent_row"]).sum() > 0
    assert staff.filter(pl.col("supervisor_id").is_null()).height >= 1


def test_graph_matches_the_relational_sample(district):
    root, name, counts = district
    nodes, rels = _read(root, name, "sp", "nodes"), _read(root, name, "sp", "relationships")
    assert nodes["id"].is_unique().all() and nodes["district_id"].unique().to_list() == [name]
    assert set(nodes.columns) == {"id", "labels", "district_id", "properties"}
    assert set(rels.columns) == {"start", "end", "type", "properties"}
    ids = set(nodes["id"])
    assert set(rels["start"]) <= ids and set(rels["end"]) <= ids
    by_label = dict(nodes.group_by("labels").len().iter_rows())
    assert by_label == {"School": counts["ids"]["school"], "Staff": counts["ids"]["staff"],
                        "Student": counts["ids"]["edfi.student"], "Section": counts["ids"]["edfi.section"]}
    by_type = dict(rels.group_by("type").len().iter_rows())
    assert by_type["ENROLLED_IN"] == counts["ids"]["edfi.enrollment"]
    assert by_type["TEACHES"] == counts["ids"]["edfi.section"]
    assert by_type["ATTENDS"] == counts["ids"]["edfi.student"]
    seen: dict[tuple[str, str], set[str]] = {}
    saw_whole_float = saw_null = False
    for frame, kind in ((nodes, "labels"), (rels, "type")):
        for label, text in frame.select(kind, "properties").iter_rows():
            props = json.loads(text)
            assert isinstance(props, dict) and "id" not in props and "district_id" not in props
            for key, value in props.items():
                saw_null |= value is None
                if value is None:
                    continue
                if isinstance(value, list):
                    assert value and None not in value and len({type(v) for v in value}) == 1, (label, key)
                    value = value[0]
                    kind_name = "list:" + type(value).__name__
                else:
                    kind_name = type(value).__name__
                saw_whole_float |= isinstance(value, float) and value.is_integer()
                seen.setdefault((label, key), set()).add(kind_name)
    assert all(len(kinds) == 1 for kinds in seen.values()), {k: v for k, v in seen.items() if len(v) > 1}
    kinds = {k for v in seen.values() for k in v}
    assert {"int", "float", "bool", "str", "list:str"} <= kinds
    assert saw_whole_float and saw_null


def test_deterministic_per_seed_and_per_district(tmp_path):
    a = generate_district(tmp_path / "a", "district-x", students=60)
    b = generate_district(tmp_path / "b", "district-x", students=60)
    c = generate_district(tmp_path / "c", "district-x", students=60, seed=99)
    assert a == b
    for store, tables in _order(tmp_path / "a").items():
        for table in tables:
            assert _read(tmp_path / "a", "district-x", store, table).equals(
                _read(tmp_path / "b", "district-x", store, table)), (store, table)
    assert not _read(tmp_path / "a", "district-x", "ids", "edfi.student").equals(
        _read(tmp_path / "c", "district-x", "ids", "edfi.student"))
    assert c["ids"]["edfi.student"] == 60


def test_two_districts_share_the_order_and_never_collide(tmp_path):
    generate_district(tmp_path, "d-one", students=40, status="PASSED_WITH_WARNINGS")
    generate_district(tmp_path, "d-two", students=40, status="FAILED")
    one = _read(tmp_path, "d-one", "hcp2", "service_plan")["plan_uuid"]
    two = _read(tmp_path, "d-two", "hcp2", "service_plan")["plan_uuid"]
    assert not set(one) & set(two)
    report = json.loads((tmp_path / "data/anonymized/d-two/validation-report.json").read_text(encoding="utf-8"))
    assert report["overall_status"] == "FAILED" and report["summary"]["total_errors"] == 1
    report = json.loads((tmp_path / "data/anonymized/d-one/validation-report.json").read_text(encoding="utf-8"))
    assert report["summary"]["total_warnings"] == len(report["warnings"]) > 0
    path = tmp_path / "data/analysis/extraction-order.json"
    path.write_text(json.dumps({"ids": ["school"]}), encoding="utf-8")
    with pytest.raises(ValueError, match="different table order"):
        generate_district(tmp_path, "d-three", students=10)
    with pytest.raises(ValueError):
        generate_district(tmp_path, "d-four", status="MAYBE")


def test_ddl_is_plain_schema_text():
    for store in SAMPLE_STORES:
        ddl = load_ddl(store)
        assert "district_id" in ddl and "DROP" not in ddl.upper() and "INSERT" not in ddl.upper()
        assert "cert_loader" not in ddl
    with pytest.raises(ValueError):
        load_ddl("sp")


@pytest.mark.slow
def test_generates_a_large_district(tmp_path):
    started = time.monotonic()
    counts = generate_district(tmp_path, "district-big", students=200_000)
    print(f"\n{sum(sum(c.values()) for c in counts.values()):,} rows generated in {time.monotonic() - started:.1f} s")
    assert counts["ids"]["edfi.enrollment"] > 800_000


# --- PostgreSQL: the DDL applies to an empty database and the generated data commits under its FKs ---------------

CATALOG_FKS = """
SELECT c.conrelid::regclass::text, c.confrelid::regclass::text, c.condeferrable,
       ARRAY(SELECT a.attname::text FROM unnest(c.conkey) WITH ORDINALITY k(n, i)
             JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.n ORDER BY k.i),
       ARRAY(SELECT a.attname::text FROM unnest(c.confkey) WITH ORDINALITY k(n, i)
             JOIN pg_attribute a ON a.attrelid = c.confrelid AND a.attnum = k.n ORDER BY k.i)
FROM pg_constraint c WHERE c.contype = 'f'
"""


def _copy_district(conn: psycopg.Connection, root: Path, district: str, store: str, tables: list[str]) -> None:
    """One transaction, constraints deferred, one CSV COPY per table in extraction order."""
    with conn.transaction():
        conn.execute("SET CONSTRAINTS ALL DEFERRED")
        for table in tables:
            arrow = pq.read_table(root / "data" / "anonymized" / district / store / f"{table}.parquet")
            buffer = io.BytesIO()
            pacsv.write_csv(arrow, buffer, pacsv.WriteOptions(include_header=True, quoting_style="needed"))
            statement = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT csv, HEADER true)").format(
                sql.Identifier(*table.split(".")), sql.SQL(", ").join(map(sql.Identifier, arrow.column_names)))
            with conn.cursor().copy(statement) as copy:
                copy.write(buffer.getvalue())


def test_ddl_and_data_commit_in_postgres(tmp_path, make_database):
    """Plain empty databases (no mark, no loader schema): the DDL alone, then the data in one COPY each."""
    districts = ("district-a", "district-b")
    counts = {d: generate_district(tmp_path, d, students=80) for d in districts}
    order = _order(tmp_path)
    types: set[str] = set()
    for store in SAMPLE_STORES:
        url = make_database(f"sample_{store}", mark=False)
        apply_schema(url, store)
        with psycopg.connect(url) as conn:
            catalog = {(child, parent, tuple(cc), tuple(pc)): deferrable
                       for child, parent, deferrable, cc, pc in conn.execute(CATALOG_FKS).fetchall()}
            assert set(catalog) == {(c, p, cc, pc) for c, cc, p, pc in FKS[store]}
            assert {(store, c, p) for (c, p, _, _), d in catalog.items() if d} == {
                k for k in DEFERRABLE if k[0] == store}
            for district in districts:  # two districts side by side: no key collisions
                _copy_district(conn, tmp_path, district, store, order[store])
            for table in order[store]:
                stmt = sql.SQL("SELECT district_id, count(*) FROM {} GROUP BY 1").format(
                    sql.Identifier(*table.split(".")))
                got = dict(conn.execute(stmt).fetchall())
                assert got == {d: counts[d][store][table] for d in districts}, (store, table)
            if store == "ids":
                row = conn.execute("SELECT count(*) FILTER (WHERE full_name = first_name || ' ' || last_name),"
                                   " count(*) FILTER (WHERE status = 'active' AND loaded_at IS NOT NULL),"
                                   " count(*) FILTER (WHERE notes LIKE E'%\\t%' OR notes LIKE E'%\\n%'),"
                                   " count(*) FROM edfi.student").fetchone()
                assert row[0] == row[1] == row[3] and row[2] > 0
            types |= {r[0] for r in conn.execute(
                "SELECT udt_name FROM information_schema.columns WHERE table_schema IN ('public', 'edfi')")}
            if store == "adb":
                assert conn.execute("SELECT count(*) FROM student_assessment WHERE score_ratio IS NULL"
                                    " OR score_ratio <> scale_score / 100.0").fetchone()[0] == 0
    assert {"int2", "int4", "int8", "numeric", "float8", "bool", "date", "timestamp", "timestamptz", "text",
            "varchar", "uuid", "jsonb"} <= types
