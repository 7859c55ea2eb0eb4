"""Each strategy against the real stores: counts, re-runs, merge deleting rows, districts side by side."""

from __future__ import annotations

import pyarrow.parquet as pq
import psycopg
import pytest

from cert_loader.engine import LoadOptions, load_district
from cert_loader.inputs import DistrictPaths
from cert_loader_tests.fix_district import district_rows, store_snapshot

pytestmark = pytest.mark.usefixtures("no_prepared_left")


def _load(config, district, strategy="insert", **kw):
    return load_district(config, district, LoadOptions(strategy=strategy, **kw))


def _expected(data_root, district, store):
    paths = DistrictPaths(data_root, district)
    out = {}
    for f in paths.store_dir(store).glob("*.parquet"):
        name = f.name[: -len(".parquet")]
        out[name if "." in name else f"public.{name}"] = pq.read_metadata(f).num_rows
    return out


def test_insert_loads_every_store_and_reports(pg_config, make_district, data_root, sample_stores):
    district = make_district(students=60)
    report = _load(pg_config(), district)
    assert report.status == "SUCCESS", report.error
    for store, url in sample_stores.items():
        assert district_rows(url, district) == _expected(data_root, district, store)
        assert report.stores[store].transaction == "PREPARED-then-COMMITTED"
    data = report.as_dict()
    assert data["post_load_validation"]["status"] == "PASSED"
    assert data["post_load_validation"]["fk_integrity_verification"] == "PASSED"
    assert data["totals"]["records_loaded"] == sum(
        sum(_expected(data_root, district, s).values()) for s in sample_stores
    )
    assert (data_root / "data" / "loads" / district / "load-report.json").is_file()


def test_insert_twice_fails_and_leaves_everything(pg_config, make_district, sample_stores):
    district = make_district(students=30)
    assert _load(pg_config(), district).status == "SUCCESS"
    before = store_snapshot(sample_stores, district)
    report = _load(pg_config(), district)
    assert report.status == "FAILED"
    assert "already exists" in report.error["message"]
    assert report.error["store"] == "ids" and report.error["table"] == "public.school"
    assert store_snapshot(sample_stores, district) == before
    assert all(s.transaction == "ROLLED_BACK" for s in report.stores.values() if s.transaction != "NOT_STARTED")


def test_replace_is_safe_to_rerun(pg_config, make_district, sample_stores, data_root):
    district = make_district(students=30)
    for _ in range(2):
        report = _load(pg_config(), district, "replace")
        assert report.status == "SUCCESS", report.error
    assert district_rows(sample_stores["ids"], district) == _expected(data_root, district, "ids")
    assert report.stores["ids"].tables[0].deleted == report.stores["ids"].tables[0].inserted


def test_upsert_updates_changed_rows_only(pg_config, make_district, sample_stores, data_root):
    district = make_district(students=30)
    assert _load(pg_config(), district).status == "SUCCESS"
    with psycopg.connect(sample_stores["ids"], autocommit=True) as conn:
        conn.execute("UPDATE edfi.student SET first_name = 'Changed' WHERE district_id = %s AND student_id IN "
                     "(SELECT student_id FROM edfi.student WHERE district_id = %s ORDER BY student_id LIMIT 3)",
                     (district, district))
    report = _load(pg_config(), district, "upsert")
    assert report.status == "SUCCESS", report.error
    student = next(t for t in report.stores["ids"].tables if t.table == "edfi.student")
    assert (student.inserted, student.updated, student.unchanged) == (0, 3, student.source_rows - 3)
    with psycopg.connect(sample_stores["ids"], autocommit=True) as conn:
        assert conn.execute("SELECT count(*) FROM edfi.student WHERE first_name = 'Changed' AND district_id = %s",
                            (district,)).fetchone()[0] == 0


def test_merge_inserts_updates_deletes_and_leaves_identical(pg_config, make_district, sample_stores, data_root):
    district = make_district(students=30)
    assert _load(pg_config(), district).status == "SUCCESS"
    with psycopg.connect(sample_stores["adb"], autocommit=True) as conn:
        # A row the source does not have (must be deleted) and a changed row (must be updated).
        row = conn.execute("SELECT * FROM objective_score WHERE district_id = %s LIMIT 1", (district,)).fetchone()
        conn.execute("DELETE FROM objective_score WHERE district_id = %s AND ctid IN "
                     "(SELECT ctid FROM objective_score WHERE district_id = %s LIMIT 2)", (district, district))
    extra = _extra_objective_score(sample_stores["adb"], district)
    report = _load(pg_config(), district, "merge")
    assert report.status == "SUCCESS", report.error
    score = next(t for t in report.stores["adb"].tables if t.table == "public.objective_score")
    assert score.inserted == 2 and score.deleted == 1
    assert score.unchanged == score.source_rows - 2 - score.updated
    assert district_rows(sample_stores["adb"], district) == _expected(data_root, district, "adb")
    with psycopg.connect(sample_stores["adb"], autocommit=True) as conn:
        assert conn.execute("SELECT count(*) FROM objective_score WHERE district_id = %s AND objective_code = %s",
                            (district, extra)).fetchone()[0] == 0
    assert row is not None
    # A second merge of the same files changes nothing.
    again = _load(pg_config(), district, "merge")
    assert again.status == "SUCCESS"
    assert all((t.inserted, t.updated, t.deleted) == (0, 0, 0) for s in again.stores.values() for t in s.tables)


def _extra_objective_score(url: str, district: str) -> str:
    """Copy one existing row under a new key, so merge has a row the source lacks."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO objective_score (district_id, student_assessment_id, objective_code, raw_score, mastery) "
            "SELECT district_id, student_assessment_id, 'ZZZ', raw_score, mastery FROM objective_score "
            "WHERE district_id = %s LIMIT 1",
            (district,),
        )
    return "ZZZ"


def test_two_districts_side_by_side(pg_config, make_district, sample_stores):
    a, b = make_district(students=30), make_district(students=40)
    assert _load(pg_config(), a).status == "SUCCESS"
    snap_a = store_snapshot(sample_stores, a)
    for strategy in ("insert", "merge", "replace", "upsert"):
        assert _load(pg_config(), b, strategy).status == "SUCCESS"
        assert store_snapshot(sample_stores, a) == snap_a
    # Unloading b leaves a alone.
    from cert_loader.engine import unload_district

    unload_district(pg_config(), b)
    assert store_snapshot(sample_stores, a) == snap_a
    assert all(n == 0 for s in store_snapshot(sample_stores, b).values() for n in s.values())


def test_unload_then_load_again(pg_config, make_district, sample_stores):
    from cert_loader.engine import unload_district

    district = make_district(students=20)
    assert _load(pg_config(), district).status == "SUCCESS"
    deleted = unload_district(pg_config(), district)
    assert sum(deleted["ids"].values()) > 0
    assert _load(pg_config(), district).status == "SUCCESS"
