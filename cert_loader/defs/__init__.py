"""The Dagster layer over the engine: specs from the schema manifest, one multi_asset, checks, resources, the
validation-report and recovery sensors, the restore job and the district executor (DESIGN.md section 8)."""

from __future__ import annotations

import logging
from pathlib import Path

import dagster as dg

from cert_loader.constants import GRAPH_STORE, PG_STORES
from cert_loader.manifest import Manifest, read_manifest

log = logging.getLogger(__name__)
JOB_NAME = "cert_district_job"


def no_manifest_hint(path: Path) -> str:
    return (f"no schema manifest at {path}, so no CERT assets: run `cert-loader snapshot` "
            "(it reads the live CERT catalogs), then reload the code location")


def build_definitions(manifest_path: Path, *, resources: dict | None = None,
                      references_path: Path | None = None) -> dg.Definitions:
    """Everything from one manifest file; no database is touched. An absent manifest gives zero CERT assets.

    The cross-store references (``references_path``, default: cross-store-references.json beside the
    manifest, both in data/analysis/) become one asset check each on the child table's asset.
    """
    from cert_loader.defs.assets import build_cert_asset
    from cert_loader.defs.recovery import build_recovery_sensor
    from cert_loader.defs.resources import env_resources
    from cert_loader.defs.sensors import build_validation_sensor
    from cert_loader.defs.translator import build_specs

    from cert_loader.data_root import data_root as data_root_of

    manifest_path = data_root_of(manifest_path)  # a file, or an s3:// object (S3Path) under an object-store root
    manifest: Manifest | None = read_manifest(manifest_path) if manifest_path.is_file() else None
    cert = build_specs(manifest) if manifest is not None else None
    if cert is None or not cert.specs:
        hint = no_manifest_hint(manifest_path) if cert is None else (
            f"the schema manifest {manifest_path} has no CERT table (no table with a district_id column): "
            "check the CERT_*_URL variables, run `cert-loader snapshot` again, then reload the code location")
        log.warning(hint)
        return dg.Definitions(
            sensors=[build_validation_sensor(None, hint)],
            resources=resources if resources is not None else env_resources(()),
            metadata={"cert_loader/manifest": hint},
        )
    from cert_loader.defs.references import bind_from_manifest
    from cert_loader.references import REFERENCES_FILE

    cert.references = bind_from_manifest(manifest, data_root_of(references_path or manifest_path.parent / REFERENCES_FILE))
    # Every run (of the job, or the asset graph's implicit job) waits for a slot of the pool named after the
    # servers it writes to, and every run of the job carries them as tags too: per-server limits (defs/servers.py).
    from cert_loader.defs.servers import server_pool, server_tags

    pool = server_pool()
    asset = build_cert_asset(cert, manifest_path, pool)
    # A district load is one step (one transaction), so a step worker process buys no parallelism; it only
    # costs a Python start and a second instance (~2 s of a ~20 s district run, issue 6). The step runs in
    # the run worker, which `dagster dev` and the sensor's runs already start as a process of its own.
    # CERT_DAGSTER_EXECUTOR=celery sends the one step to a Celery worker instead (defs/executor.py, issue 15).
    from cert_loader.defs.executor import district_executor

    executor = district_executor()
    job = dg.define_asset_job(JOB_NAME, selection=dg.AssetSelection.assets(asset), executor_def=executor,
                              run_tags=server_tags())
    stores = tuple(s for s in PG_STORES if s in manifest.stores) + ((GRAPH_STORE,) if manifest.graph_assets else ())
    from cert_loader.defs.restore import build_restore_job

    return dg.Definitions(
        assets=[asset],
        jobs=[job, build_restore_job(stores, cert, executor, pool)],
        sensors=[build_validation_sensor(job), build_recovery_sensor(stores)],
        executor=executor,
        resources=resources if resources is not None else env_resources(stores),
        metadata={"cert_loader/manifest": str(manifest_path), "cert_loader/manifest_written_at": manifest.written_at},
    )
