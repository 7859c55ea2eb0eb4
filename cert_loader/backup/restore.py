"""`cert-loader restore D --run R`: make every store the backup covers hold its pre-image again, as one unit of work.

A restore is a ``replace`` load whose data root is the backup (DESIGN.md section 5, point 5): the same
pre-flight, district lock, two-phase commit, verification and recovery as any load. Before anything is
written the backup is checked (manifest, files, checksums, columns against the live catalogs) and the loads
that committed after it are named (``force`` needed). The report lands with the district's other reports.
"""

from __future__ import annotations

import logging
from dataclasses import replace as dc_replace

from cert_loader.backup.catalogue import plan_restore, restore_config
from cert_loader.catalog import Catalog, read_catalog
from cert_loader.config import LoaderConfig
from cert_loader.engine import LoadOptions, load_district, new_run_id
from cert_loader.errors import CertLoaderError
from cert_loader.inputs import DistrictPaths, check_district_name
from cert_loader.report import LoadReport
from cert_loader.stores.postgres import PgStore

log = logging.getLogger(__name__)

RESTORE_STRATEGY = "restore"  # what the report says (DESIGN.md section 3); the work is a replace load


def new_restore_id() -> str:
    return new_run_id().replace("load-", "restore-", 1)


def live_catalogs(config: LoaderConfig) -> dict[str, Catalog]:
    """Each configured PostgreSQL store's catalog, read on a short autocommit connection (nothing written)."""
    out = {}
    for name, cfg in config.pg.items():
        with PgStore(cfg) as store:
            out[name] = read_catalog(store.conn, name)
    return out


def restore_district(config: LoaderConfig, district: str, run_id: str, *, force: bool = False,
                     options: LoadOptions | None = None) -> LoadReport:
    """Restore the pre-image that run ``run_id`` backed up; always returns (and writes) the report."""
    options = options or LoadOptions()
    restore_id = options.run_id or new_restore_id()
    home = DistrictPaths(config.data_root, district)
    try:
        check_district_name(district)
        plan = plan_restore(config.data_root, district, run_id, live_catalogs(config), force=force)
        target = restore_config(config, plan)
    except CertLoaderError as exc:
        report = LoadReport(run_id=restore_id, district=district, strategy=RESTORE_STRATEGY)
        report.error = exc.attrs() | {"rolled_back": True, "restored_run": run_id}
        report.notes.append(f"restore of run {run_id} refused before any write")
        report.finish("FAILED")
        log.error("restore of district %s (run %s) refused: %s", district, run_id, exc)
        _write(report, home)
        return report
    if plan.later:
        log.warning("restoring run %s of district %s over %d later load(s) (--force): %s", run_id, district,
                    len(plan.later), ", ".join(h["run_id"] for h in plan.later))
    report = load_district(target, district, dc_replace(
        options, strategy="replace", run_id=restore_id, home=config.data_root, restored_run=run_id))
    report.notes.append(f"restored the pre-image that run {run_id} backed up ({plan.paths.dir})"
                        + (f", over later load(s) {', '.join(h['run_id'] for h in plan.later)} (--force)"
                           if plan.later else ""))
    _write(report, home)
    return report


def _write(report: LoadReport, home: DistrictPaths) -> None:
    try:
        report.write(home.report_file)
    except OSError as exc:
        log.error("could not write the restore report %s: %s", home.report_file, exc)
