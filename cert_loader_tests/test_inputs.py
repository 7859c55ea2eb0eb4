"""The validation gate fails closed (DESIGN.md section 2, issue 14 point 5), and a file without district_id is said."""

from __future__ import annotations

import json
import os

import pytest

from cert_loader.engine import load_district
from cert_loader.errors import InputError
from cert_loader.inputs import DistrictPaths, read_validation_gate
from cert_loader_tests.fix_cli import run_cli
from cert_loader_tests.fix_district import rewrite, store_snapshot

CLEAN = {"district_id": "d1", "overall_status": "PASSED", "summary": {"total_errors": 0, "total_warnings": 0}}

# (what the report lacks, the report, what the refusal names)
REFUSED = [
    ("no summary", {"district_id": "d1", "overall_status": "PASSED"}, "has no summary, so it does not prove zero errors"),
    ("summary without total_errors", {**CLEAN, "summary": {"total_warnings": 0}}, "has no summary.total_errors"),
    ("total_errors not an integer", {**CLEAN, "summary": {"total_errors": "0"}},
     "has summary.total_errors '0', expected an integer"),
    ("total_errors a boolean", {**CLEAN, "summary": {"total_errors": False}}, "has summary.total_errors False"),
    ("summary not an object", {**CLEAN, "summary": [0]}, "has summary [0], expected an object with total_errors"),
    ("no district_id", {k: v for k, v in CLEAN.items() if k != "district_id"}, "has no district_id (expected 'd1')"),
    ("district_id null", {**CLEAN, "district_id": None}, "has no district_id (expected 'd1')"),
    ("another district", {**CLEAN, "district_id": "d2"}, "is for district 'd2', not 'd1'"),
]


def write(root, district: str, report) -> DistrictPaths:
    paths = DistrictPaths(root, district)
    paths.validation_report.parent.mkdir(parents=True, exist_ok=True)
    paths.validation_report.write_text(json.dumps(report), encoding="utf-8")
    return paths


def test_a_clean_report_passes(tmp_path) -> None:
    gate = read_validation_gate(write(tmp_path, "d1", {**CLEAN, "warnings": ["w"]}))
    assert (gate.status, gate.total_errors, gate.total_warnings, gate.warnings) == ("PASSED", 0, 0, ["w"])
    # total_warnings is not needed to prove zero errors.
    assert read_validation_gate(write(tmp_path, "d1", {**CLEAN, "summary": {"total_errors": 0}})).total_warnings == 0


@pytest.mark.parametrize("report, named", [r[1:] for r in REFUSED], ids=[r[0] for r in REFUSED])
def test_a_report_that_does_not_prove_zero_errors_is_refused(tmp_path, report, named) -> None:
    with pytest.raises(InputError) as refused:
        read_validation_gate(write(tmp_path, "d1", report))
    assert named in str(refused.value)
    assert refused.value.district == "d1" and refused.value.hint  # says what to do


@pytest.mark.usefixtures("no_prepared_left")
@pytest.mark.parametrize("report, named", [r[1:] for r in REFUSED[:2] + REFUSED[5:6]],
                         ids=[r[0] for r in REFUSED[:2] + REFUSED[5:6]])
def test_a_refused_report_writes_nothing(pg_config, make_district, data_root, sample_stores, report, named) -> None:
    district = make_district(students=10)
    report = {**report, "district_id": district} if "district_id" in report else report
    named = named.replace("'d1'", repr(district))
    write(data_root, district, report)
    result = load_district(pg_config(), district)
    assert result.status == "FAILED" and named in result.error["message"], result.error
    assert result.stores == {}  # refused in pre-flight: no store was even begun
    assert all(n == 0 for rows in store_snapshot(sample_stores, district).values() for n in rows.values())
    written = json.loads(DistrictPaths(data_root, district).report_file.read_text())
    assert written["overall_status"] == "FAILED" and named in written["error"]["message"]


@pytest.mark.usefixtures("no_prepared_left")
def test_a_file_without_district_id_is_filled_and_said(pg_config, make_district, data_root, sample_stores) -> None:
    district = make_district(students=10)
    rewrite(data_root, district, "ids", "edfi.student", lambda t: t.drop(["district_id"]))
    warning = f'ids: edfi.student: edfi.student.parquet has no "district_id" column; every row is loaded as district {district!r}'
    env = {f"CERT_{s.upper()}_URL": u for s, u in sample_stores.items()}
    plan = run_cli("plan", district, "--data-root", str(data_root), "--stores", "ids", timeout=120,
                   env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **env})
    assert plan.returncode == 0, plan.stderr
    assert f"  - {warning}" in plan.stdout
    report = load_district(pg_config(["ids"]), district)
    assert report.status == "SUCCESS", report.error
    assert warning in report.warnings
    assert warning in json.loads(DistrictPaths(data_root, district).report_file.read_text())["warnings"]
    assert store_snapshot(sample_stores, district)["ids"]["edfi.student"] == 10
