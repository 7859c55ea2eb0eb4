"""validation_report_sensor: a district load is requested when a passing validation-report.json lands (DESIGN.md section 8, issue 3 point 7)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import dagster as dg

from cert_loader.defs.partitions import districts
from cert_loader.defs.resources import CertDataResource
from cert_loader.data_root import redact
from cert_loader.errors import InputError
from cert_loader.inputs import check_district_name, parse_validation_report, validation_gate

SENSOR_NAME = "validation_report_sensor"
# A re-validated district is loaded again, so the sensor asks for `replace`: it is safe to re-run
# (DESIGN.md section 6), where the default `insert` would fail on the district's existing keys.
SENSOR_STRATEGY = "replace"


def content_hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


def scan(root: Path, cursor: dict[str, str], log) -> tuple[list[str], list[dg.RunRequest], dict[str, str]]:
    """(districts to add, run requests, new cursor), judged by the load's own gate (inputs.validation_gate).

    A report that is not complete JSON yet is left for the next tick; a refused one adds the district's
    partition but requests no run, and is not looked at again until its content changes. A directory whose
    name cannot be a district id (inputs.check_district_name) gets neither a partition nor a run, only a log
    line naming it (again when its report changes).
    """
    seen = dict(cursor)
    new_districts: list[str] = []
    requests: list[dg.RunRequest] = []
    for path in sorted((root / "data" / "anonymized").glob("*/validation-report.json")):
        district = path.parent.name
        try:
            data = path.read_bytes()
        except (OSError, InputError) as exc:
            log.warning(f"{district}: cannot read {path} ({redact(str(exc))}); retrying next tick")
            continue
        digest = content_hash(data)
        if seen.get(district) == digest:
            continue
        try:
            check_district_name(district)
        except InputError as exc:
            seen[district] = digest
            log.warning(f"{district!r}: skipped: {exc}; no run requested")
            continue
        try:
            report = parse_validation_report(data, path, district)
        except InputError as exc:
            why = f"{type(exc.__cause__).__name__}: {exc.__cause__}"
            log.info(f"{district}: {path} is not a complete report yet ({why}); retrying next tick")
            continue
        seen[district] = digest
        new_districts.append(district)
        try:
            gate = validation_gate(report, path, district)
        except InputError as exc:
            log.warning(f"{district}: skipped: {exc}; no run requested")
            continue
        requests.append(dg.RunRequest(
            run_key=f"{district}:{digest}",
            partition_key=district,
            run_config={"ops": {"cert_district_load": {"config": {"strategy": SENSOR_STRATEGY}}}},
            tags={"district": district, "cert_loader/validation_sha256": digest},
        ))
        log.info(f"{district}: validation {gate.status}: requesting a {SENSOR_STRATEGY} load (report {digest})")
    return new_districts, requests, seen


def build_validation_sensor(job, manifest_hint: str | None = None) -> dg.SensorDefinition:
    """The sensor; without a job (no manifest, so no CERT assets) every tick says how to get one."""

    @dg.sensor(name=SENSOR_NAME, job=job, minimum_interval_seconds=30,
               description="Requests a district load when data/anonymized/<D>/validation-report.json lands or changes and passes.")
    def validation_report_sensor(context: dg.SensorEvaluationContext, cert_data: CertDataResource):
        if job is None:
            return dg.SkipReason(manifest_hint or "no CERT assets")
        cursor = json.loads(context.cursor) if context.cursor else {}
        known = set(context.instance.get_dynamic_partitions(districts.name))
        new, requests, cursor = scan(cert_data.root, cursor, context.log)
        add = [d for d in dict.fromkeys(new) if d not in known]
        return dg.SensorResult(
            run_requests=requests,
            dynamic_partitions_requests=[districts.build_add_request(add)] if add else [],
            cursor=json.dumps(cursor, sort_keys=True),
            skip_reason=None if requests else "no new passing validation report",
        )

    return validation_report_sensor
