"""Every refused input ends the load with a message naming the place, and leaves every store as it was."""

from __future__ import annotations

import json
from decimal import Decimal

import pyarrow as pa
import pytest

from cert_loader.engine import LoadOptions, load_district, plan_district
from cert_loader.errors import InputError
from cert_loader.inputs import DistrictPaths
from cert_loader_tests.fix_cli import run_cli
from cert_loader_tests.fix_district import rewrite, set_value, store_snapshot

pytestmark = pytest.mark.usefixtures("no_prepared_left")


@pytest.fixture
def baseline(pg_config, make_district, sample_stores):
    """A loaded district (so 'unchanged' means something) and a fresh one to break."""
    loaded = make_district(students=20)
    assert load_district(pg_config(), loaded).status == "SUCCESS"
    district = make_district(students=20)
    before = {d: store_snapshot(sample_stores, d) for d in (loaded, district)}

    def unchanged():
        return {d: store_snapshot(sample_stores, d) for d in (loaded, district)} == before

    return district, unchanged


def _fails(pg_config, district, *fragments, strategy="insert", **kw):
    report = load_district(pg_config(), district, LoadOptions(strategy=strategy, **kw))
    assert report.status == "FAILED"
    message = report.error["message"]
    for fragment in fragments:
        assert fragment in message, message
    return report


def test_failed_validation_is_refused(pg_config, baseline, data_root):
    district, unchanged = baseline
    path = DistrictPaths(data_root, district).validation_report
    path.write_text(json.dumps({"district_id": district, "overall_status": "FAILED",
                                "summary": {"total_errors": 3, "total_warnings": 0}}))
    report = _fails(pg_config, district, "did not pass", "FAILED", "3 error(s)")
    assert report.stores == {}
    assert unchanged()


def test_errors_in_a_passed_report_are_refused(pg_config, baseline, data_root):
    district, unchanged = baseline
    path = DistrictPaths(data_root, district).validation_report
    path.write_text(json.dumps({"district_id": district, "overall_status": "PASSED",
                                "summary": {"total_errors": 1, "total_warnings": 0}}))
    _fails(pg_config, district, "did not pass", "1 error(s)")
    assert unchanged()


def test_cli_exit_code_for_refused_validation(data_root, baseline, sample_stores):
    district, unchanged = baseline
    path = DistrictPaths(data_root, district).validation_report
    path.write_text(json.dumps({"district_id": district, "overall_status": "FAILED",
                                "summary": {"total_errors": 1, "total_warnings": 0}}))
    env = {f"CERT_{s.upper()}_URL": u for s, u in sample_stores.items()}
    proc = run_cli("load", district, "--data-root", str(data_root), "--stores", "ids,hcp1,hcp2,adb",
                   env={**env, "PATH": "/usr/bin:/bin"}, timeout=120)
    assert proc.returncode != 0
    assert "did not pass" in proc.stdout
    assert unchanged()


def test_unknown_column_is_refused(pg_config, baseline, data_root):
    district, unchanged = baseline
    rewrite(data_root, district, "ids", "edfi.student",
            lambda t: t.append_column("birth_dt", pa.array(["x"] * t.num_rows)))
    _fails(pg_config, district, "ids: edfi.student", 'column "birth_dt"', "not in the table")
    assert unchanged()


def test_value_the_column_cannot_take(pg_config, baseline, data_root):
    district, unchanged = baseline
    # 2**40 does not fit the int4 column edfi.course.course_id... use the first int column of course.
    rewrite(data_root, district, "hcp2", "provider_credential",
            lambda t: set_value(t, "provider_id", 2, 2**40, pa.int64()))
    _fails(pg_config, district, "hcp2: public.provider_credential", "column \"provider_id\"", "row 3", str(2**40))
    assert unchanged()


def test_numeric_that_would_round(pg_config, baseline, data_root):
    district, unchanged = baseline
    rewrite(data_root, district, "ids", "edfi.course",
            lambda t: set_value(t, "credits", 0, Decimal("1.5"), pa.decimal128(10, 3)).set_column(
                t.schema.get_field_index("credits"), "credits",
                pa.array([Decimal("1.125")] + [Decimal("1.000")] * (t.num_rows - 1), pa.decimal128(10, 3))))
    _fails(pg_config, district, "ids: edfi.course", 'column "credits"', "row 1", "1.125")
    assert unchanged()


def test_string_that_is_not_a_number(pg_config, baseline, data_root):
    district, unchanged = baseline

    def bad(t):
        values = [str(v) for v in t.column("provider_id").to_pylist()]
        values[1] = "twelve"
        return t.set_column(t.schema.get_field_index("provider_id"), "provider_id", pa.array(values))

    rewrite(data_root, district, "hcp2", "provider_credential", bad)
    _fails(pg_config, district, 'column "provider_id"', "row 2", "twelve")
    assert unchanged()


def test_null_in_not_null_column(pg_config, baseline, data_root):
    district, unchanged = baseline
    rewrite(data_root, district, "adb", "assessment",
            lambda t: set_value(t, "title", 1, None))
    _fails(pg_config, district, "adb: public.assessment", 'column "title" is NOT NULL', "row 2")
    assert unchanged()


def test_duplicate_key_in_the_file(pg_config, baseline, data_root):
    district, unchanged = baseline
    rewrite(data_root, district, "ids", "school", lambda t: pa.concat_tables([t, t.slice(0, 1)]))
    report = _fails(pg_config, district, "ids: public.school", "already exists")
    assert report.error["details"]["row"] == report.stores["ids"].tables[0].source_rows
    assert unchanged()


def test_duplicate_key_in_the_file_under_upsert(pg_config, baseline, data_root):
    district, unchanged = baseline
    rewrite(data_root, district, "ids", "school", lambda t: pa.concat_tables([t, t.slice(0, 1)]))
    _fails(pg_config, district, "ids: public.school", "more than once", strategy="upsert")
    assert unchanged()


def test_fk_orphan_non_deferrable(pg_config, baseline, data_root):
    district, unchanged = baseline
    rewrite(data_root, district, "ids", "edfi.enrollment",
            lambda t: set_value(t, "section_id", 0, 999_999))
    _fails(pg_config, district, "ids: edfi.enrollment", "is not present in table", "999999", "enrollment_district_id_section_id_fkey")
    assert unchanged()


@pytest.mark.parametrize("seq_scan_rows", [None, 1], ids=["index", "seq-scan-verify"])
def test_fk_orphan_deferrable_caught_by_verification(pg_config, baseline, data_root, seq_scan_rows, monkeypatch):
    if seq_scan_rows:  # verified by a sequential scan (as a large district that is most of its table is)
        monkeypatch.setattr("cert_loader.verify.tables.SEQ_SCAN_ROWS", seq_scan_rows)
    district, unchanged = baseline
    rewrite(data_root, district, "ids", "school",
            lambda t: set_value(t, "principal_staff_id", 0, 999_999))
    report = _fails(pg_config, district, "verification failed", "public.school", "fk_integrity", "999999")
    failed = [c for c in report.checks if not c.passed]
    assert failed and failed[0].examples
    assert report.as_dict()["post_load_validation"]["fk_integrity_verification"] == "FAILED"
    assert unchanged()


def test_row_of_another_district(pg_config, baseline, data_root):
    district, unchanged = baseline
    rewrite(data_root, district, "hcp1", "clinic", lambda t: set_value(t, "district_id", 1, "other-district"))
    _fails(pg_config, district, "hcp1: public.clinic", "row 2 belongs to district 'other-district'")
    assert unchanged()


def test_missing_file_is_a_warning_then_strict_error(pg_config, baseline, data_root, sample_stores):
    district, unchanged = baseline
    DistrictPaths(data_root, district).source_file("adb", "objective_score").unlink()
    _fails(pg_config, district, "objective_score", "missing", strict=True)
    assert unchanged()
    report = load_district(pg_config(), district)
    assert report.status == "SUCCESS", report.error
    assert any("objective_score" in w and "missing" in w for w in report.warnings)


def test_unknown_table_in_order(pg_config, baseline, data_root):
    district, unchanged = baseline
    order_path = DistrictPaths(data_root, district).order_file
    order = json.loads(order_path.read_text())
    order["hcp1"].append("no_such_table")
    order_path.write_text(json.dumps(order))
    _fails(pg_config, district, "hcp1", 'table "no_such_table" is not in database')
    assert unchanged()


def test_unmarked_database_is_refused(make_database, make_district, data_root):
    from cert_loader.config import LoaderConfig, PgStoreConfig
    from cert_loader.sample import apply_schema

    url = make_database("unmarked", mark=False)
    apply_schema(url, "hcp2")
    district = make_district(students=10)
    config = LoaderConfig(data_root, {"hcp2": PgStoreConfig("hcp2", url)})
    report = load_district(config, district)
    assert report.status == "FAILED"
    assert "is not marked as a CERT store" in report.error["message"]
    assert "ALTER DATABASE" in report.error["message"]


def test_unreachable_store_fails_preflight_with_redacted_url(pg_config, make_district, data_root):
    from cert_loader.config import LoaderConfig, PgStoreConfig

    district = make_district(students=10)
    config = LoaderConfig(data_root, {"ids": PgStoreConfig("ids", "postgresql://u:s3cretpw@127.0.0.1:1/x")})
    report = load_district(config, district)
    assert report.status == "FAILED"
    assert "cannot connect" in report.error["message"]
    text = json.dumps(report.as_dict())
    assert "s3cretpw" not in text
    assert "***" in report.error["message"]


def test_a_district_id_too_long_for_the_transaction_ids_is_refused_before_any_store(pg_config, make_district,
                                                                                     sample_stores, data_root):
    """PostgreSQL allows 200 bytes per prepared transaction's id, and the district id is part of each one."""
    district = make_district("d-" + "x" * 188, students=5)
    report = load_district(pg_config(), district)
    assert report.status == "FAILED"
    assert report.error["type"] == "InputError" and report.error["district"] == district
    message = report.error["message"]
    assert "unexpected" not in message
    assert "is 190 bytes long" in message and "use a district id of at most 128 bytes" in message, message
    assert report.stores == {}  # refused before pre-flight opened any store
    assert not any(n for tables in store_snapshot(sample_stores, district).values() for n in tables.values())
    assert DistrictPaths(data_root, district).report_file.is_file()
    with pytest.raises(InputError, match="is 190 bytes long"):
        plan_district(pg_config(), district)
