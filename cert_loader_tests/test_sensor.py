"""validation_report_sensor ticks with build_sensor_context: new, unchanged, re-validated, FAILED, half-written (issue 3, point 7)."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import pytest

from cert_loader.defs import JOB_NAME, build_definitions
from cert_loader.defs.resources import CertDataResource
from cert_loader.defs.sensors import SENSOR_NAME, content_hash, scan
from cert_loader.inputs import DISTRICT_ID_MAX_BYTES
from cert_loader_tests.dagster_support import SAMPLE_MANIFEST, instance_with, pg_resources, snapshot_to
from cert_loader_tests.fix_district import store_snapshot


def write_report(root: Path, district: str, status: str = "PASSED", errors: int = 0, text: str | None = None) -> bytes:
    path = root / "data" / "anonymized" / district / "validation-report.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    body = text if text is not None else json.dumps({
        "district_id": district, "overall_status": status, "summary": {"total_errors": errors, "total_warnings": 0},
    })
    path.write_text(body, encoding="utf-8")
    return body.encode()


class Ticker:
    """Evaluates the code location's sensor tick after tick, carrying the cursor like the daemon does."""

    def __init__(self, root: Path, defs: dg.Definitions | None = None):
        self.defs = defs or build_definitions(SAMPLE_MANIFEST)
        self.sensor = self.defs.resolve_sensor_def(SENSOR_NAME)
        # A persistent (sqlite) instance: run requests for dynamic partitions are resolved through its ref.
        home = root.parent / f"{root.name}-dagster-home"
        home.mkdir(parents=True, exist_ok=True)
        self.instance = dg.DagsterInstance.local_temp(str(home))
        self.root = root
        self.cursor: str | None = None

    def tick(self):
        with dg.build_sensor_context(
            instance=self.instance, instance_ref=self.instance.get_ref(), cursor=self.cursor, definitions=self.defs,
            resources={"cert_data": CertDataResource(data_root=str(self.root))},
        ) as context:
            data = self.sensor.evaluate_tick(context)
        self.cursor = data.cursor
        for request in data.dynamic_partitions_requests or []:
            self.instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
        return data


def test_new_unchanged_and_revalidated(tmp_path) -> None:
    ticker = Ticker(tmp_path)
    assert not ticker.tick().run_requests  # nothing there yet
    body = write_report(tmp_path, "d1")
    first = ticker.tick()
    (request,) = first.run_requests
    assert request.partition_key == "d1" and request.run_key == f"d1:{content_hash(body)}"
    assert request.job_name in (None, JOB_NAME) and ticker.sensor.job_name == JOB_NAME
    assert request.tags["district"] == "d1"
    assert request.run_config == {"ops": {"cert_district_load": {"config": {"strategy": "replace"}}}}
    assert [list(r.partition_keys) for r in first.dynamic_partitions_requests] == [["d1"]]
    assert ticker.instance.get_dynamic_partitions("district") == ["d1"]
    assert json.loads(ticker.cursor) == {"d1": content_hash(body)}

    unchanged = ticker.tick()
    assert not unchanged.run_requests and not unchanged.dynamic_partitions_requests

    body2 = write_report(tmp_path, "d1", status="PASSED_WITH_WARNINGS")
    (again,) = ticker.tick().run_requests
    assert again.run_key == f"d1:{content_hash(body2)}" != request.run_key


def test_failed_report_is_skipped_once(tmp_path) -> None:
    ticker = Ticker(tmp_path)
    write_report(tmp_path, "bad", status="FAILED", errors=3)
    write_report(tmp_path, "errs", status="PASSED", errors=1)  # errors > 0 is refused whatever the status says
    data = ticker.tick()
    assert not data.run_requests
    assert set(json.loads(ticker.cursor)) == {"bad", "errs"}  # recorded: not looked at again until it changes
    assert sorted(ticker.instance.get_dynamic_partitions("district")) == ["bad", "errs"]
    assert not ticker.tick().run_requests


def test_half_written_report_is_retried_next_tick(tmp_path) -> None:
    ticker = Ticker(tmp_path)
    whole = json.dumps({"district_id": "d2", "overall_status": "PASSED", "summary": {"total_errors": 0}})
    write_report(tmp_path, "d2", text=whole[:25])
    write_report(tmp_path, "d3", text="")
    data = ticker.tick()
    assert not data.run_requests and json.loads(ticker.cursor or "{}") == {}
    assert not ticker.instance.get_dynamic_partitions("district")
    write_report(tmp_path, "d2", text=whole)
    (request,) = ticker.tick().run_requests
    assert request.partition_key == "d2"


def test_scan_says_why(tmp_path) -> None:
    write_report(tmp_path, "a", status="FAILED", errors=2)
    write_report(tmp_path, "b", text="{\"district_id\": ")
    write_report(tmp_path, "c", text=json.dumps({"district_id": "zzz", "overall_status": "PASSED"}))
    lines: list[str] = []
    log = type("Log", (), {"info": lambda self, m: lines.append(m), "warning": lambda self, m: lines.append(m)})()
    new, requests, cursor = scan(tmp_path, {}, log)
    assert (new, requests, sorted(cursor)) == (["a", "c"], [], ["a", "c"])
    assert lines[0].startswith("a: skipped: validation of district a did not pass (overall_status FAILED, 2 error(s))")
    assert lines[0].endswith("; no run requested")
    assert lines[1].startswith("b: ") and lines[1].endswith("is not a complete report yet (JSONDecodeError: "
                                                              "Expecting value: line 1 column 17 (char 16)); retrying next tick")
    assert lines[2].startswith("c: skipped: ") and "is for district 'zzz'" in lines[2]


def test_report_that_proves_no_clean_validation_adds_the_partition_only(tmp_path) -> None:
    """The sensor uses the load's own gate (it fails closed): no summary, no total_errors, no district_id."""
    write_report(tmp_path, "nosum", text=json.dumps({"district_id": "nosum", "overall_status": "PASSED"}))
    write_report(tmp_path, "noerr", text=json.dumps({"district_id": "noerr", "overall_status": "PASSED",
                                                      "summary": {"total_warnings": 0}}))
    write_report(tmp_path, "noid", text=json.dumps({"overall_status": "PASSED", "summary": {"total_errors": 0}}))
    lines: list[str] = []
    log = type("Log", (), {"info": lambda self, m: lines.append(m), "warning": lambda self, m: lines.append(m)})()
    new, requests, cursor = scan(tmp_path, {}, log)
    assert (new, requests, sorted(cursor)) == (["noerr", "noid", "nosum"], [], ["noerr", "noid", "nosum"])
    assert "has no summary.total_errors" in lines[0] and lines[0].startswith("noerr: skipped: ")
    assert "has no district_id (expected 'noid')" in lines[1]
    assert "has no summary, so it does not prove zero errors" in lines[2]
    assert all(line.endswith("; no run requested") for line in lines)


def test_a_directory_name_that_cannot_be_a_district_is_named_and_gets_no_partition_or_run(tmp_path) -> None:
    """The load's own name check (inputs.check_district_name): a backslash, more than 128 bytes."""
    backslash, too_long = "bad\\name", "x" * (DISTRICT_ID_MAX_BYTES + 1)
    for name in (backslash, too_long, "ok"):
        write_report(tmp_path, name)  # each report passes and names its own directory
    lines: list[str] = []
    log = type("Log", (), {"info": lambda self, m: lines.append(m), "warning": lambda self, m: lines.append(m)})()
    new, requests, cursor = scan(tmp_path, {}, log)
    assert new == ["ok"] and [r.partition_key for r in requests] == ["ok"]
    assert sorted(cursor) == [backslash, "ok", too_long]  # recorded: not looked at again until it changes
    assert lines[0].startswith(f"{backslash!r}: skipped: district id {backslash!r} is not a plain name")
    assert lines[1].startswith("ok: validation PASSED: requesting a replace load")
    assert lines[2].startswith(f"{too_long!r}: skipped: district id 'xxxx") and "is 129 bytes long" in lines[2]
    assert lines[0].endswith("; no run requested") and lines[2].endswith("; no run requested")
    lines.clear()
    assert scan(tmp_path, cursor, log)[:2] == ([], []) and not lines

    ticker = Ticker(tmp_path)
    assert [r.partition_key for r in ticker.tick().run_requests] == ["ok"]
    assert ticker.instance.get_dynamic_partitions("district") == ["ok"]


@pytest.mark.usefixtures("no_prepared_left")
def test_the_requested_run_loads_the_district(sample_stores, make_district, data_root, tmp_path) -> None:
    manifest = snapshot_to(sample_stores, tmp_path / "cert-schema.json")
    defs = build_definitions(manifest, resources=pg_resources(sample_stores, data_root))
    ticker = Ticker(data_root, defs)
    district = make_district(students=30)
    requests = [r for r in ticker.tick().run_requests if r.partition_key == district]
    assert len(requests) == 1
    job = defs.resolve_job_def(JOB_NAME)
    instance = instance_with([district])  # in memory: the sqlite instance writes every event to disk
    for _ in range(2):  # the sensor's replace is safe to re-run when the district is validated again
        result = job.execute_in_process(
            run_config=requests[0].run_config, partition_key=district, instance=instance, tags=requests[0].tags,
        )
        assert result.success
    assert all(n > 0 for rows in store_snapshot(sample_stores, district).values() for n in rows.values())
