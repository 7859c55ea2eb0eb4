"""cert_restore: `cert-loader restore` as a Dagster job — run config ``district``, ``run_id`` (and ``force``) (issue 13).

One op, one unit of work (backup/restore.py). After the commit each restored table's asset gets a
materialization of the district's partition, so the UI shows the rows that are there now.
"""

# No `from __future__ import annotations`: Dagster reads the op's Config annotation at runtime.
import dagster as dg
from pydantic import Field

from cert_loader.defs.resources import DATA_KEY, loader_config, resource_key

JOB_NAME = "cert_restore"


class RestoreConfig(dg.Config):
    district: str = Field(description="the district whose pre-image to put back")
    run_id: str = Field(description="the load run whose backup to restore (`cert-loader backups D` lists them)")
    force: bool = Field(default=False, description="restore even though later loads of the district committed")


def build_restore_job(stores: tuple[str, ...], cert=None, executor: dg.ExecutorDefinition | None = None,
                      pool: str | None = None) -> dg.JobDefinition:
    """The job over the code location's stores; ``cert`` (translator.CertAssets) maps tables to asset keys;
    ``executor`` (defs/executor.py) is where its one op runs, in the run worker unless given; ``pool`` the
    per-server concurrency pool it shares with district loads (defs/servers.py)."""

    @dg.op(name="cert_restore_op", required_resource_keys={resource_key(s) for s in stores} | {DATA_KEY}, pool=pool,
           description="Restore a district's backup into every store it covers, all-or-nothing (cert_loader).")
    def cert_restore_op(context: dg.OpExecutionContext, config: RestoreConfig):
        from cert_loader.backup.restore import restore_district
        from cert_loader.defs.metadata import table_results
        from cert_loader.report import render_summary

        report = restore_district(loader_config(context.resources, set(stores)), config.district, config.run_id,
                                  force=config.force)
        context.log.info(render_summary(report))
        if report.status != "SUCCESS":
            raise dg.Failure(description=(report.error or {}).get("message", "the restore failed"),
                             metadata={"cert_loader/load_report": dg.MetadataValue.json(report.as_dict())})
        for key, tables in (table_results(cert, report) if cert is not None else {}).items():
            context.log_event(dg.AssetMaterialization(
                asset_key=key, partition=config.district,
                metadata={"cert_loader/restored_run": config.run_id, "cert_loader/strategy": "restore",
                          "cert_loader/rows": sum(t.source_rows for t in tables),
                          "cert_loader/restore_run_id": report.run_id}))
        return report.run_id

    @dg.job(name=JOB_NAME, executor_def=executor or dg.in_process_executor,
            description="Undo loads of a district: put back the pre-image a load with backup wrote (README, Undo).")
    def cert_restore():
        cert_restore_op()

    return cert_restore
