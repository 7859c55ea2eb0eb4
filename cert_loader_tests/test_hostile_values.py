"""Issue 7, point 4: parquet metadata, text values, JSON properties, validation-report text and district ids are data, never SQL or Cypher.

Hostile table, column and schema names are covered by test_plan.py; labels and relationship types with a
backtick or a space are refused before anything is written anywhere.
"""

from __future__ import annotations

import json

import neo4j
import psycopg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from cert_loader.config import LoaderConfig
from cert_loader.engine import LoadOptions, load_district, unload_district
from cert_loader.inputs import DistrictPaths
from cert_loader_tests.fix_district import store_snapshot
from cert_loader_tests.fix_graph import graph_counts

pytestmark = pytest.mark.usefixtures("no_prepared_left")
STUDENTS = 20
SQL_TEXT = "x'); DROP TABLE edfi.student; DELETE FROM public.school; --"
CYPHER_TEXT = "x'}) MATCH (n) DETACH DELETE n // `) CALL db.clearQueryCaches()"


def rewrite(data_root, district, store, name, fn):
    path = DistrictPaths(data_root, district).source_file(store, name)
    pq.write_table(fn(pq.read_table(path)), path)


def set_row(table: pa.Table, column: str, row: int, value) -> pa.Table:
    values = table.column(column).to_pylist()
    values[row] = value
    idx = table.schema.get_field_index(column)
    return table.set_column(idx, table.field(idx), pa.array(values, table.field(idx).type))


def tables_of(url: str) -> set[str]:
    with psycopg.connect(url, autocommit=True) as conn:
        return {r[0] for r in conn.execute(
            "SELECT schemaname || '.' || tablename FROM pg_tables WHERE schemaname IN ('public', 'edfi')")}


@pytest.fixture
def full_config(pg_config, graph_config):
    def make(root=None) -> LoaderConfig:
        base = pg_config(root=root)
        return LoaderConfig(base.data_root, base.pg, graph_config)
    return make


def nodes_outside(graph_config, district: str) -> int:
    """The nodes of other districts (run markers excluded)."""
    with neo4j.GraphDatabase.driver(graph_config.uri, auth=(graph_config.user, graph_config.password)) as driver:
        records, _, _ = driver.execute_query(
            "MATCH (n) WHERE NOT n:CertLoaderRun AND coalesce(n.district_id, '') <> $d RETURN count(n) AS c", {"d": district},
            database_=graph_config.database)
    return records[0]["c"]


def test_parquet_metadata_and_text_values_are_data(pg_config, make_district, data_root, sample_stores):
    district = make_district(students=STUDENTS)
    tables_before = {s: tables_of(u) for s, u in sample_stores.items()}
    hostile_meta = {SQL_TEXT.encode(): b'"); DELETE FROM edfi.student; --', b"pandas": b'{"x": "\'; DROP"}',
                    b"COPY edfi.student FROM PROGRAM 'id'": b";"}

    def student(t: pa.Table) -> pa.Table:
        t = set_row(set_row(t, "first_name", 0, "Robert'); DROP TABLE edfi.student;--"), "last_name", 0,
                    '$$;\tDELETE\\N FROM "x";\n--')
        fields = [f.with_metadata({b"comment": SQL_TEXT.encode()}) for f in t.schema]
        return t.cast(pa.schema(fields, metadata=hostile_meta))

    rewrite(data_root, district, "ids", "edfi.student", student)
    assert pq.read_schema(DistrictPaths(data_root, district).source_file("ids", "edfi.student")).metadata[SQL_TEXT.encode()]
    report = load_district(pg_config(), district)
    assert report.status == "SUCCESS", report.error
    with psycopg.connect(sample_stores["ids"], autocommit=True) as conn:
        first, last = conn.execute(
            "SELECT first_name, last_name FROM edfi.student WHERE district_id = %s ORDER BY student_id LIMIT 1",
            (district,)).fetchone()
    source = pq.read_table(DistrictPaths(data_root, district).source_file("ids", "edfi.student"))
    assert (first, last) == (source.column("first_name")[0].as_py(), source.column("last_name")[0].as_py())
    assert last == '$$;\tDELETE\\N FROM "x";\n--'
    assert {s: tables_of(u) for s, u in sample_stores.items()} == tables_before
    assert all(n > 0 for n in store_snapshot(sample_stores, district)["ids"].values())


def test_validation_report_text_is_carried_as_data(pg_config, make_district, data_root, sample_stores):
    district = make_district(students=STUDENTS)
    path = DistrictPaths(data_root, district).validation_report
    report_in = json.loads(path.read_text())
    warnings = [SQL_TEXT, {"table": "edfi.student'; DROP TABLE x; --", "message": CYPHER_TEXT}]
    report_in.update(overall_status="PASSED_WITH_WARNINGS", warnings=warnings,
                     summary={"total_errors": 0, "total_warnings": 2},
                     notes="'; DROP DATABASE postgres; --")
    path.write_text(json.dumps(report_in))
    report = load_district(pg_config(), district)
    assert report.status == "SUCCESS", report.error
    written = json.loads(DistrictPaths(data_root, district).report_file.read_text())
    assert f"validation: {SQL_TEXT}" in written["warnings"]
    assert any(CYPHER_TEXT in w for w in written["warnings"])
    assert all(n > 0 for t in store_snapshot(sample_stores, district).values() for n in t.values())


def test_validation_report_for_another_district_is_refused(pg_config, make_district, data_root):
    district = make_district(students=STUDENTS)
    path = DistrictPaths(data_root, district).validation_report
    data = json.loads(path.read_text())
    data["district_id"] = "x'; DROP TABLE school; --"
    path.write_text(json.dumps(data))
    report = load_district(pg_config(), district)
    assert report.status == "FAILED"
    assert "is for district \"x'; DROP TABLE school; --\"" in report.error["message"]


def test_district_id_with_quotes_and_separators(full_config, make_district, sample_stores, graph_config, data_root):
    """The id goes through parameters, the advisory lock, the prepared-transaction gid and the graph as a value."""
    district = make_district("d'q\"; DROP TABLE school; --|x`) DETACH DELETE n", students=STUDENTS)
    report = load_district(full_config(), district)
    assert report.status == "SUCCESS", report.error
    assert report.as_dict()["stores"]["ids"]["transaction"] == "PREPARED-then-COMMITTED"
    rows = store_snapshot(sample_stores, district)
    assert all(n > 0 for t in rows.values() for n in t.values())
    assert graph_counts(graph_config, district)["nodes"]
    again = load_district(full_config(), district, LoadOptions(strategy="merge"))
    assert again.status == "SUCCESS", again.error
    assert store_snapshot(sample_stores, district) == rows
    unload_district(full_config(), district)
    assert not any(n for t in store_snapshot(sample_stores, district).values() for n in t.values())
    assert graph_counts(graph_config, district) == {"nodes": {}, "relationships": {}}


def test_path_like_district_id_is_refused(pg_config):
    report = load_district(pg_config(), "../d-x")
    assert report.status == "FAILED" and "is not a plain name" in report.error["message"]


def test_cypher_looking_properties_are_data(full_config, make_district, data_root, graph_config):
    district = make_district(students=STUDENTS)
    hostile = {"name": CYPHER_TEXT, "note": "}) WITH n MATCH (m) DETACH DELETE m RETURN 1 //",
               "key with space": "v", "tick`key": "w", "$param": "$d"}

    def nodes(t: pa.Table) -> pa.Table:
        props = t.column("properties").to_pylist()
        props[0] = json.dumps({**json.loads(props[0]), **hostile})
        return set_row(t, "properties", 0, props[0])

    rewrite(data_root, district, "sp", "nodes", nodes)
    node = pq.read_table(DistrictPaths(data_root, district).source_file("sp", "nodes")).slice(0, 1).to_pylist()[0]
    witness = make_district(students=STUDENTS)  # another district's nodes must stay as they are
    assert load_district(full_config(), witness).status == "SUCCESS"
    others_before = nodes_outside(graph_config, district)
    assert others_before > 0
    for strategy in ("insert", "merge"):
        report = load_district(full_config(), district, LoadOptions(strategy=strategy))
        assert report.status == "SUCCESS", report.error
    with neo4j.GraphDatabase.driver(graph_config.uri, auth=(graph_config.user, graph_config.password)) as driver:
        records, _, _ = driver.execute_query(
            "MATCH (n {district_id: $d, id: $id}) RETURN properties(n) AS p", {"d": district, "id": node["id"]},
            database_=graph_config.database)
    (props,) = [r["p"] for r in records]
    assert {k: props.get(k) for k in hostile} == hostile
    assert graph_counts(graph_config, district)["nodes"]
    assert nodes_outside(graph_config, district) == others_before


@pytest.mark.parametrize("file,column,value", [
    ("nodes", "labels", "Stu`dent"),
    ("nodes", "labels", "Student) DETACH DELETE (n"),
    ("relationships", "type", "ENROLLED IN"),
    ("relationships", "type", "X`]->() DELETE r //"),
])
def test_hostile_label_or_type_is_refused_before_any_write(file, column, value, full_config, make_district,
                                                          data_root, sample_stores, graph_config):
    district = make_district(students=STUDENTS)
    rewrite(data_root, district, "sp", file, lambda t: set_row(t, column, 0, value))
    report = load_district(full_config(), district)
    assert report.status == "FAILED"
    what = "label" if column == "labels" else "relationship type"
    assert f"{what} {value!r} is not a valid identifier" in report.error["message"]
    assert f"rename the {what} upstream" in report.error["message"]
    assert report.stores == {}  # refused in pre-flight: no store was begun
    assert not any(n for t in store_snapshot(sample_stores, district).values() for n in t.values())
    assert graph_counts(graph_config, district) == {"nodes": {}, "relationships": {}}


def test_whole_decimals_and_float_specials_load_exactly(pg_config, make_district, data_root, sample_stores):
    """decimal(10,0) ids into bigint, and NaN/±inf through a float32 → float8 cast, reach PostgreSQL unchanged."""
    district = make_district(students=STUDENTS)
    specials = [float("nan"), float("inf"), float("-inf")]

    def screening(t: pa.Table) -> pa.Table:
        for name in ("screening_id", "patient_id"):
            idx = t.schema.get_field_index(name)
            t = t.set_column(idx, name, pa.array(t.column(name).to_pylist(), pa.decimal128(10, 0)))
        bmi = specials + t.column("bmi").to_pylist()[len(specials):]
        return t.set_column(t.schema.get_field_index("bmi"), "bmi", pa.array(bmi, pa.float32()))

    rewrite(data_root, district, "hcp1", "screening", screening)
    source = pq.read_table(DistrictPaths(data_root, district).source_file("hcp1", "screening"))
    assert source.schema.field("screening_id").type == pa.decimal128(10, 0)
    report = load_district(pg_config(), district)
    assert report.status == "SUCCESS", report.error
    with psycopg.connect(sample_stores["hcp1"], autocommit=True) as conn:
        got = dict(conn.execute("SELECT screening_id, bmi::text FROM screening WHERE district_id = %s",
                                (district,)).fetchall())
    ids = [int(v) for v in source.column("screening_id").to_pylist()]
    assert sorted(got) == sorted(ids)
    assert [got[i] for i in ids[:3]] == ["NaN", "Infinity", "-Infinity"]
    rest = source.column("bmi").to_pylist()[3:]
    assert [None if got[i] is None else float(got[i]) for i in ids[3:]] == rest
