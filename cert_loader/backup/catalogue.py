"""A district's backups over time: the load history, listing, pruning, and what a restore must know before it starts.

Which loads of D committed after a backup is read from ``data/loads/D/history.jsonl``: one JSON line
appended (and fsynced) per committed load or restore. ``load-report.json`` alone cannot tell — each
load overwrites it — but its last run counts too, for loads made before the history existed.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from cert_loader.backup.layout import BackupError, BackupPaths, backups_dir, fsync_dir
from cert_loader.backup.record import BackupCheck, BackupManifest, check_backup
from cert_loader.catalog import Catalog
from cert_loader.config import LoaderConfig
from cert_loader.constants import GRAPH_STORE
from cert_loader.data_root import S3Path, data_root as data_root_of
from cert_loader.inputs import DistrictPaths

log = logging.getLogger(__name__)

HISTORY = "history.jsonl"


def history_file(data_root: Path, district: str) -> Path:
    return DistrictPaths(data_root_of(data_root), district).load_dir / HISTORY


def record_load(data_root: Path, district: str, entry: dict[str, Any]) -> None:
    """Append one committed load (run_id, strategy, completed_at, backup, restored_run) to the history, fsynced."""
    path = history_file(data_root, district)
    path.parent.mkdir(parents=True, exist_ok=True)
    line = json.dumps({"district": district, **entry}, ensure_ascii=False) + "\n"
    if isinstance(path, S3Path):  # no append on S3: the object is rewritten whole (one PUT)
        path.write_text((path.read_text() if path.is_file() else "") + line)
        return
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(line)
        fh.flush()
        os.fsync(fh.fileno())
    fsync_dir(path.parent)


def read_history(data_root: Path, district: str) -> list[dict[str, Any]]:
    """The committed loads of the district, oldest first; the last load report counts when the history lacks it."""
    out: list[dict[str, Any]] = []
    path = history_file(data_root, district)
    if path.is_file():
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            try:
                item = json.loads(line)
            except json.JSONDecodeError:
                log.warning("%s line %d is not JSON (a crash mid-write?); ignored", path, n)
                continue
            if isinstance(item, dict) and item.get("run_id") and all(h["run_id"] != item["run_id"] for h in out):
                out.append(item)
    report = DistrictPaths(data_root_of(data_root), district).report_file
    try:
        last = json.loads(report.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        last = None
    if isinstance(last, dict) and last.get("overall_status") == "SUCCESS" and last.get("load_run_id") and \
            all(item["run_id"] != last["load_run_id"] for item in out):
        out.append({"run_id": last["load_run_id"], "strategy": last.get("strategy"),
                    "completed_at": last.get("completed_at"), "source": "load-report.json"})
    return out


@dataclass
class BackupInfo:
    """One line of `cert-loader backups D`."""

    run_id: str
    created_at: str = ""
    strategy: str = ""
    rows: int = 0
    bytes: int = 0
    restorable: bool = False
    why_not: str = ""
    committed: bool | None = None  # whether the load it precedes committed (None: incomplete backup)
    complete: bool = False  # its manifest was written (the load reached its commit decision)

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


def list_backups(data_root: Path, district: str, catalogs: dict[str, Catalog] | None = None, *,
                 checksums: bool = True) -> list[BackupInfo]:
    """Every backup of the district, newest first, each checked (files, checksums, columns when ``catalogs``)."""
    top = backups_dir(data_root, district)
    if not top.is_dir():
        return []
    committed = {h["run_id"] for h in read_history(data_root, district)}
    out = []
    for entry in top.iterdir():
        if not entry.is_dir() or entry.name.startswith("."):
            continue
        check = check_backup(BackupPaths(data_root_of(data_root), district, entry.name), catalogs, checksums=checksums)
        out.append(_info(entry, check, committed))
    return sorted(out, key=lambda b: (b.created_at, b.run_id), reverse=True)


def _info(entry: Path, check: BackupCheck, committed: set[str]) -> BackupInfo:
    m = check.manifest
    info = BackupInfo(entry.name, restorable=check.restorable, why_not="; ".join(check.problems))
    if m is None:
        # Incomplete (no manifest): its time is the directory's, so pruning orders it with the others.
        info.created_at = _mtime(entry)
        return info
    info.created_at, info.strategy = m.data.get("created_at", ""), m.data.get("strategy", "")
    info.rows, info.bytes, info.complete = m.rows, m.bytes, True
    info.committed = entry.name in committed
    return info


def _instant(text: str | None) -> datetime:
    """A report's or manifest's UTC time (with or without fractions); unreadable or absent: the epoch."""
    try:
        return datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        return datetime.fromtimestamp(0, timezone.utc)


def _mtime(path: Path) -> str:
    return datetime.fromtimestamp(path.stat().st_mtime, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def prune_backups(data_root: Path, district: str, keep: int, *, protect: tuple[str, ...] = ()) -> list[str]:
    """Remove all but the newest ``keep`` complete backups; returns the removed run ids.

    An incomplete backup (no manifest) goes too when a complete one is newer — never the newest, which may be
    a running load's. ``protect`` (the current run) is never removed.
    """
    if keep < 0:
        raise BackupError(f"cannot keep {keep} backups", district=district, hint="give --keep/--prune 0 or more")
    infos = list_backups(data_root, district, checksums=False)
    complete = [b for b in infos if b.complete]
    kept = {b.run_id for b in complete[:keep]} | set(protect)
    newest_complete = complete[0].created_at if complete else None
    removed = []
    for b in infos:
        if b.run_id in kept or (not b.complete and (newest_complete is None or b.created_at >= newest_complete)):
            continue
        gone = backups_dir(data_root, district) / b.run_id
        if isinstance(gone, S3Path):
            gone.remove_tree()
        else:
            shutil.rmtree(gone, ignore_errors=True)
        removed.append(b.run_id)
    if removed:
        fsync_dir(backups_dir(data_root, district))
        log.info("pruned %d backup(s) of district %s: %s", len(removed), district, ", ".join(removed))
    return removed


@dataclass
class RestorePlan:
    """What a restore of run ``run_id`` will do, decided before it writes anything."""

    paths: BackupPaths
    manifest: BackupManifest
    later: list[dict[str, Any]] = field(default_factory=list)  # committed loads after the backup's own

    @property
    def needs_force(self) -> bool:
        return bool(self.later)


def plan_restore(data_root: Path, district: str, run_id: str, catalogs: dict[str, Catalog] | None,
                 *, force: bool = False) -> RestorePlan:
    """Check the backup (refuse a damaged or schema-incompatible one) and find the loads that committed after it.

    Loads after run ``run_id`` (not the run itself: that is the load being undone) need ``force``.
    """
    paths = BackupPaths(data_root_of(data_root), district, run_id)
    check = check_backup(paths, catalogs)
    check.raise_for_problems()
    history = read_history(data_root, district)
    ids = [h["run_id"] for h in history]
    if run_id in ids:
        later = history[ids.index(run_id) + 1:]
    else:  # its load did not commit: every load that completed after the backup was taken is later
        created = _instant(check.manifest.data.get("created_at"))
        later = [h for h in history if _instant(h.get("completed_at")) > created]
    plan = RestorePlan(paths, check.manifest, later)
    if plan.needs_force and not force:
        names = ", ".join(f"{h['run_id']} ({h.get('strategy') or '?'}, {h.get('completed_at') or '?'})" for h in later)
        raise BackupError(
            f"{len(later)} load(s) of district {district} committed after run {run_id}: {names}; restoring "
            f"{run_id} also undoes them", district=district,
            hint=f"pass --force to restore anyway, or restore the backup of a later run (`cert-loader backups {district}`)",
            details={"later_loads": [h["run_id"] for h in later]})
    return plan


def restore_config(config: LoaderConfig, plan: RestorePlan) -> LoaderConfig:
    """The configuration a restore loads with: the backup as its data root, only the stores the backup covers."""
    stores = set(plan.manifest.stores)
    missing = sorted(s for s in stores if s != GRAPH_STORE and s not in config.pg)
    if missing or (plan.manifest.has_graph and config.graph is None):
        absent = missing + ([GRAPH_STORE] if plan.manifest.has_graph and config.graph is None else [])
        raise BackupError(f"the backup covers {', '.join(absent)}, which is not configured", district=plan.paths.district,
                          hint="set its CERT_*_URL (a restore puts back every store the backup covers, together)")
    return replace(config, data_root=plan.paths.dir, pg={n: c for n, c in config.pg.items() if n in stores},
                   graph=config.graph if plan.manifest.has_graph else None)
