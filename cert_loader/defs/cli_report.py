"""A `cert-loader load` reported to the Dagster instance at $DAGSTER_HOME, so the UI shows what CERT holds however it was loaded (issue 14, point 7).

After a committed CLI load, each loaded table's asset gets a runless materialization of the district
partition with the metadata a Dagster run gives it (``metadata.py``), and each of its checks an
evaluation for that partition, tied to that materialization. The asset keys come from the schema
manifest exactly as the code location builds them (``build_specs``). Reporting is best effort: the
load is committed before it starts, so a failure here is a warning and never changes the load.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from cert_loader.report import LoadReport

# Said on every materialization reported this way, so the UI tells it from a Dagster run's.
LOADED_BY = "cert-loader load (CLI, reported without a Dagster run)"


@dataclass
class CliReportOutcome:
    reported: bool = False
    materializations: int = 0
    checks: int = 0
    message: str = ""  # one line for the user: what was reported, or why nothing was


def manifest_path(environ: Mapping[str, str], data_root: Path) -> Path:
    """The manifest the code location reads: CERT_SCHEMA_MANIFEST, else data/analysis/cert-schema.json under the data root."""
    from cert_loader.manifest import manifest_location

    return manifest_location(environ.get("CERT_SCHEMA_MANIFEST"), data_root)  # a file or an s3:// object


def report_cli_load(report: LoadReport, manifest: Path, environ: Mapping[str, str] = os.environ) -> CliReportOutcome:
    """Report a committed load's materializations and check results; never raises (the load is done)."""
    if report.status != "SUCCESS":
        return CliReportOutcome(message="not reported to Dagster: the load did not commit")
    if not environ.get("DAGSTER_HOME"):
        return CliReportOutcome(message="not reported to Dagster: DAGSTER_HOME is not set; point it at the "
                                        "directory holding dagster.yaml")
    if not manifest.is_file():
        return CliReportOutcome(message=f"not reported to Dagster: no schema manifest at {manifest} (run "
                                        "`cert-loader snapshot`); the load itself is committed")
    out = CliReportOutcome()
    try:
        _report(report, manifest, environ, out)
    except Exception as exc:  # noqa: BLE001 - any failure here must leave the committed load as it is
        reason = (str(exc).strip().splitlines() or [""])[0]  # one line: drivers add backgrounds and hints
        done = f" after {out.materializations} materializations" if out.materializations else ""
        out.message = (f"not reported to Dagster{done} ({type(exc).__name__}: {reason}); "
                       "the load itself is committed")
        return out
    out.reported = True
    out.message = (f"reported to Dagster: {out.materializations} materializations and {out.checks} check results "
                   f"of partition {report.district}")
    return out


def _report(report: LoadReport, manifest: Path, environ: Mapping[str, str], out: CliReportOutcome) -> None:
    import dagster as dg

    from cert_loader.defs.checks import to_check_results
    from cert_loader.defs.metadata import materialization_metadata, run_metadata, table_results
    from cert_loader.defs.partitions import register_districts
    from cert_loader.defs.translator import build_specs
    from cert_loader.manifest import read_manifest

    logging.getLogger("alembic").setLevel(logging.WARNING)  # dagster-postgres migrates a new instance's tables
    cert = build_specs(read_manifest(manifest))
    district = report.district
    by_key = table_results(cert, report)
    shared = run_metadata(report) | {"cert_loader/loaded_by": LOADED_BY}
    with dg.DagsterInstance.from_config(os.path.abspath(environ["DAGSTER_HOME"])) as instance:
        register_districts(instance, [district])
        for spec in cert.specs:  # parents first, as a run yields them
            tables = [t for t in by_key.get(spec.key, []) if not t.skipped]
            if not tables:
                continue
            instance.report_runless_asset_event(dg.AssetMaterialization(
                asset_key=spec.key, partition=district, description=LOADED_BY,
                metadata=materialization_metadata(report, shared, tables),
            ))
            out.materializations += 1
            target = _latest_materialization(instance, spec.key, district)
            checks = _unique(c for t in tables for c in t.checks)
            for result in to_check_results(spec.key, checks):
                instance.report_runless_asset_event(dg.AssetCheckEvaluation(
                    asset_key=spec.key, check_name=result.check_name, passed=result.passed,
                    metadata=result.metadata, severity=result.severity, description=result.description,
                    partition=district, target_materialization_data=target,
                ))
                out.checks += 1


def _latest_materialization(instance, key, district: str):
    """The materialization just reported, so its check results point at it (as a run's do)."""
    import dagster as dg

    try:  # not exported by dagster 1.13; without it the results still count, untied to the materialization
        from dagster._core.definitions.asset_checks.asset_check_evaluation import (
            AssetCheckEvaluationTargetMaterializationData,
        )
    except ImportError:
        return None
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=key, asset_partitions=[district]), limit=1).records
    if not records:
        return None
    record = records[0]
    return AssetCheckEvaluationTargetMaterializationData(
        storage_id=record.storage_id, run_id=record.run_id, timestamp=record.timestamp)


def _unique(items) -> list:
    seen: set[int] = set()
    return [c for c in items if not (id(c) in seen or seen.add(id(c)))]
