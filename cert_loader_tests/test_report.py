"""The load report (report.py): the keys DESIGN.md section 3 promises, the terminal summary, a failed run's report, no password."""

from __future__ import annotations

import json
from pathlib import Path

from cert_loader.config import LoaderConfig, PgStoreConfig
from cert_loader.engine import load_district
from cert_loader.inputs import DistrictPaths
from cert_loader.report import LoadReport, render_summary
from cert_loader.results import CheckResult, StoreResult, TableResult

# DESIGN.md section 3: the users' tooling reads these keys; more may be added, none removed.
TOP_KEYS = {"load_run_id", "district_id", "started_at", "completed_at", "duration_minutes", "overall_status",
            "strategy", "stores", "totals", "post_load_validation"}
STORE_KEYS = {"status", "tables_loaded", "records_loaded", "duration_minutes", "transaction"}
GRAPH_KEYS = {"status", "nodes_loaded", "relationships_loaded", "duration_minutes"}
TOTAL_KEYS = {"tables_loaded", "records_loaded"}
VALIDATION_KEYS = {"status", "record_count_verification", "fk_integrity_verification", "errors"}


def table(store: str, name: str, rows: int, *, fk_ok: bool = True, **counts) -> TableResult:
    tr = TableResult(store, name, rows, f"/data/{store}/{name}.parquet", inserted=counts.pop("inserted", rows), **counts)
    tr.checks = [
        CheckResult(store, name, "row_count", True, rows, rows),
        CheckResult(store, name, "fk_integrity", fk_ok, 0, 0 if fk_ok else 2,
                    "" if fk_ok else "2 row(s) violate school_fk (school_id) -> public.school, e.g. {'school_id': '9'}"),
    ]
    return tr


def successful_report() -> LoadReport:
    report = LoadReport("load-20251106-001", "district-001", "insert")
    report.stores["ids"] = StoreResult("ids", "SUCCESS", "PREPARED-then-COMMITTED",
                                       [table("ids", "public.school", 2_000), table("ids", "edfi.student", 248_000)],
                                       duration_s=18.0)
    report.stores["hcp1"] = StoreResult("hcp1", "SUCCESS", "PREPARED-then-COMMITTED",
                                        [table("hcp1", "public.clinic", 500)], duration_s=6.0)
    report.stores["sp"] = StoreResult("sp", "SUCCESS", "COMMITTED", duration_s=6.0)
    report.graph = {"nodes_loaded": 100_000, "relationships_loaded": 250_000,
                    "nodes_by_label": {"Student": 100_000}, "relationships_by_type": {"ENROLLED_AT": 250_000}}
    report.validation_status = "PASSED"
    report.finish("SUCCESS")
    return report


def test_the_report_has_the_keys_of_design_section_3():
    data = json.loads(json.dumps(successful_report().as_dict()))  # JSON as written
    assert TOP_KEYS <= set(data)
    assert (data["load_run_id"], data["district_id"], data["overall_status"]) == (
        "load-20251106-001", "district-001", "SUCCESS")
    assert data["started_at"].endswith("Z") and data["completed_at"].endswith("Z")
    for store in ("ids", "hcp1"):
        assert STORE_KEYS <= set(data["stores"][store]), store
    assert GRAPH_KEYS <= set(data["stores"]["sp"])
    ids = data["stores"]["ids"]
    assert (ids["tables_loaded"], ids["records_loaded"], ids["transaction"]) == (2, 250_000, "PREPARED-then-COMMITTED")
    assert ids["duration_minutes"] == 0.3
    assert data["stores"]["sp"]["nodes_loaded"] == 100_000
    assert TOTAL_KEYS <= set(data["totals"])
    assert (data["totals"]["tables_loaded"], data["totals"]["records_loaded"]) == (3, 250_500)
    assert VALIDATION_KEYS <= set(data["post_load_validation"])
    assert (data["post_load_validation"] | {"tables": None}).items() >= {
        "status": "PASSED", "record_count_verification": "PASSED", "fk_integrity_verification": "PASSED",
        "cross_store_verification": "NOT_RUN", "errors": 0, "checks_run": 6, "tables": None}.items()
    assert data["atomicity"] == "atomic" and "atomicity_reason" not in data and "error" not in data


def test_counts_appear_only_where_every_table_has_them():
    report = LoadReport("r", "d", "merge")
    report.stores["ids"] = StoreResult("ids", "SUCCESS", "COMMITTED", [
        table("ids", "a", 10, inserted=2, updated=3, deleted=1, unchanged=5),
        table("ids", "b", 4, inserted=4, updated=0, deleted=0, unchanged=0),
    ])
    report.stores["hcp1"] = StoreResult("hcp1", "SUCCESS", "COMMITTED", [
        table("hcp1", "c", 3, updated=1), table("hcp1", "d", 3)])  # d does not know its updates
    report.finish("SUCCESS")
    data = report.as_dict()
    assert {k: v for k, v in data["stores"]["ids"].items() if k.startswith("records_")} == {
        "records_loaded": 9, "records_inserted": 6, "records_updated": 3, "records_deleted": 1,
        "records_unchanged": 5}
    assert {k for k in data["stores"]["hcp1"] if k.startswith("records_")} == {"records_loaded", "records_inserted"}
    line = next(l for l in render_summary(report).splitlines() if l.startswith("  IDS"))
    assert line.endswith("— 6 inserted, 3 updated, 1 deleted, 5 unchanged")


def test_the_terminal_summary():
    report = successful_report()
    report.report_path = DistrictPaths(Path("/data"), "district-001").report_file
    lines = render_summary(report).splitlines()
    assert "✓ CERT Load Complete" in lines
    assert "  District:  district-001" in lines and "  Strategy:  insert" in lines and "  Commit:    atomic" in lines
    assert "  IDS   250,000 records (2 tables) ✓ PREPARED-then-COMMITTED" in lines
    assert "  HCP1  500 records (1 tables) ✓ PREPARED-then-COMMITTED" in lines
    assert "  SP    100,000 nodes, 250,000 relationships ✓ COMMITTED" in lines
    assert "  TOTAL 250,500 records (3 tables)" in lines
    assert "  Post-load validation: PASSED" in lines and "    FK integrity:  PASSED" in lines
    assert lines[-1] == "  Report: /data/data/loads/district-001/load-report.json"
    assert not any("Error" in line or "✗" in line for line in lines)


def test_a_failed_check_fails_the_validation_and_the_summary_names_it():
    report = LoadReport("r", "d", "insert")
    report.stores["ids"] = StoreResult("ids", "FAILED", "ROLLED_BACK", [table("ids", "edfi.student", 5, fk_ok=False)])
    report.error = {"type": "VerificationError", "message": "ids: edfi.student: verification failed",
                    "rolled_back": True}
    report.finish("FAILED")
    data = report.as_dict()
    validation = data["post_load_validation"]
    assert (validation["status"], validation["record_count_verification"], validation["fk_integrity_verification"],
            validation["errors"]) == ("FAILED", "PASSED", "FAILED", 1)
    assert data["overall_status"] == "FAILED" and data["error"]["message"].endswith("verification failed")
    lines = render_summary(report).splitlines()
    assert "✗ CERT Load FAILED" in lines
    assert "    ✗ ids: edfi.student: fk_integrity: 2 row(s) violate school_fk (school_id) -> public.school, " \
           "e.g. {'school_id': '9'}" in lines
    assert "  Error: ids: edfi.student: verification failed" in lines
    assert "  CERT was left as it was before the load." in lines


def test_validation_verdicts_when_nothing_or_not_everything_was_checked():
    empty = LoadReport("r", "d", "insert")
    empty.finish("FAILED")
    assert empty.validation()["status"] == "NOT_RUN" and empty.validation()["checks_run"] == 0
    partial = LoadReport("r", "d", "insert")
    partial.stores["ids"] = StoreResult("ids", "FAILED", "ROLLED_BACK", [table("ids", "public.school", 3)])
    partial.finish("FAILED")  # the checks that ran passed, but the load failed before the rest
    assert partial.validation()["status"] == "INCOMPLETE"


def test_in_doubt_is_not_reported_as_left_as_it_was():
    report = LoadReport("r", "d", "insert")
    report.error = {"message": "ids could not be committed yet; run `cert-loader recover`", "rolled_back": False}
    report.finish("FAILED")
    assert "  CERT was left as it was before the load." not in render_summary(report).splitlines()


def test_a_failed_runs_report_is_written_with_the_error_and_no_password(loader_role, sample_stores, make_district,
                                                                        data_root):
    district = make_district(students=10)
    urls = loader_role.urls(sample_stores)
    urls["adb"] = urls["adb"].replace(":5432/", ":1/")  # the password is in every URL; this server is not there
    config = LoaderConfig(data_root, {n: PgStoreConfig(n, u) for n, u in urls.items()})
    report = load_district(config, district)
    text = DistrictPaths(data_root, district).report_file.read_text()
    assert loader_role.password not in text
    data = json.loads(text)
    assert TOP_KEYS <= set(data) and data == json.loads(json.dumps(report.as_dict(), default=str))
    assert data["overall_status"] == "FAILED" and data["completed_at"].endswith("Z")
    assert data["error"]["store"] == "adb" and data["error"]["rolled_back"] is True
    assert f"{loader_role.name}:***@127.0.0.1:1/" in data["error"]["message"]
