"""The load report (DESIGN.md section 3): the JSON the users' tooling reads, and the terminal summary."""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable

from cert_loader.constants import COUNT_FIELDS, GRAPH_STORE
from cert_loader.data_root import S3Path
from cert_loader.results import CheckResult, StoreResult, TableResult


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def iso(ts: datetime | None) -> str | None:
    return ts.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z" if ts else None


@dataclass
class LoadReport:
    run_id: str
    district: str
    strategy: str
    started_at: datetime = field(default_factory=utcnow)
    completed_at: datetime | None = None
    status: str = "RUNNING"  # SUCCESS | FAILED
    stores: dict[str, StoreResult] = field(default_factory=dict)
    graph: dict[str, Any] = field(default_factory=dict)
    warnings: list[Any] = field(default_factory=list)
    validation_status: str | None = None
    error: dict[str, Any] | None = None
    atomicity: str = "atomic"
    atomicity_reason: str | None = None
    recovered: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    report_path: Path | None = None
    backup: dict[str, Any] | None = None  # the pre-image this load wrote (backup.BackupSummary.to_json)
    cross_store: list[Any] = field(default_factory=list)  # verify.cross_store.ReferenceResult per reference checked

    @property
    def checks(self) -> list[CheckResult]:
        return [c for s in self.stores.values() for c in s.checks]

    @property
    def duration_s(self) -> float:
        end = self.completed_at or utcnow()
        return (end - self.started_at).total_seconds()

    def finish(self, status: str) -> None:
        self.status = status
        self.completed_at = utcnow()

    def validation(self) -> dict[str, Any]:
        checks = self.checks
        cross = [r.check for r in self.cross_store]
        # A reference whose child table is not in this load (merge of its parent) has no table to join.
        checks += [c for c in cross if not any(c is have for have in checks)]
        counts = [c for c in checks if c.check in ("row_count", "node_count", "relationship_count")]
        fks = [c for c in checks if c.check in ("fk_integrity", "dangling")]
        content = [c for c in checks if c.check == "content"]  # only with verify=content (verify/content.py)

        def verdict(items: list[CheckResult]) -> str:
            if not items:
                return "NOT_RUN"
            return "PASSED" if all(c.passed for c in items) else "FAILED"

        failed = [c for c in checks if not c.passed]
        overall = "PASSED" if checks and not failed else ("FAILED" if failed else "NOT_RUN")
        if overall == "PASSED" and self.status == "FAILED":
            overall = "INCOMPLETE"  # the load failed before every store was verified
        return {
            "status": overall,
            "record_count_verification": verdict(counts),
            "fk_integrity_verification": verdict(fks),
            "cross_store_verification": verdict(cross),
            "content_verification": verdict(content),
            # Per table, the columns the content check did not compare and why (generated, not in the file …).
            "content_outside_comparison": _outside(content),
            "errors": len(failed),
            "checks_run": len(checks),
            "tables": [c.as_dict() for c in checks],
        }

    def as_dict(self) -> dict[str, Any]:
        stores: dict[str, Any] = {}
        for name, sr in self.stores.items():
            entry: dict[str, Any] = {
                "status": sr.status,
                "duration_minutes": round(sr.duration_s / 60, 3),
                "transaction": sr.transaction,
            }
            if name == GRAPH_STORE:
                entry.update(self.graph)
            else:
                entry["tables_loaded"] = sr.tables_loaded
                entry["records_loaded"] = sr.records_loaded
            entry.update({f"records_{key}": n for key, n in count_sums(sr.tables).items()})
            entry["tables"] = [t.as_dict() | {"checks": None} for t in sr.tables]
            for t in entry["tables"]:
                t.pop("checks")
            if sr.error:
                entry["error"] = sr.error
            stores[name] = entry
        relational = [s for n, s in self.stores.items() if n != GRAPH_STORE]
        out: dict[str, Any] = {
            "load_run_id": self.run_id,
            "district_id": self.district,
            "started_at": iso(self.started_at),
            "completed_at": iso(self.completed_at),
            "duration_minutes": round(self.duration_s / 60, 3),
            "duration_seconds": round(self.duration_s, 3),
            "overall_status": self.status,
            "strategy": self.strategy,
            "atomicity": self.atomicity,
            "stores": stores,
            "totals": {
                "tables_loaded": sum(s.tables_loaded for s in relational),
                "records_loaded": sum(s.records_loaded for s in relational),
                "nodes_loaded": self.graph.get("nodes_loaded", 0),
                "relationships_loaded": self.graph.get("relationships_loaded", 0),
            },
            "post_load_validation": self.validation(),
            "cross_store_verification": {
                "status": "NOT_RUN" if not self.cross_store else (
                    "PASSED" if all(r.passed for r in self.cross_store) else "FAILED"),
                "references": [r.as_dict() for r in self.cross_store],
            },
            "validation_report_status": self.validation_status,
            "warnings": self.warnings,
        }
        if self.atomicity_reason:
            out["atomicity_reason"] = self.atomicity_reason
        if self.recovered:
            out["recovered_before_load"] = self.recovered
        if self.backup:
            out["backup"] = self.backup
        if self.notes:
            out["notes"] = self.notes
        if self.error:
            out["error"] = self.error
        return out

    def write(self, path: Path) -> Path:
        """Write atomically (temp file + rename; on S3 one whole-object PUT) so a reader never sees half a report."""
        if isinstance(path, S3Path):
            path.write_text(json.dumps(self.as_dict(), indent=2, ensure_ascii=False, default=str) + "\n")
            self.report_path = path
            return path
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".load-report.", suffix=".json")
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(self.as_dict(), fh, indent=2, ensure_ascii=False, default=str)
            fh.write("\n")
        os.replace(tmp, path)
        self.report_path = path
        return path


def graph_totals(tables: Iterable[TableResult]) -> dict[str, Any]:
    """The graph store's entry of the report (``LoadReport.graph``): records loaded by label and by type."""
    nodes = {t.graph.name: t.records_loaded for t in tables if t.graph is not None and t.graph.kind == "nodes"}
    rels = {t.graph.name: t.records_loaded for t in tables if t.graph is not None and t.graph.kind == "relationships"}
    return {
        "nodes_loaded": sum(nodes.values()),
        "relationships_loaded": sum(rels.values()),
        "nodes_by_label": nodes,
        "relationships_by_type": rels,
    }


def _outside(content: list[CheckResult]) -> dict[str, dict[str, dict[str, str]]]:
    """store → table → column → why the content check left it out."""
    out: dict[str, dict[str, dict[str, str]]] = {}
    for c in content:
        if c.outside:
            out.setdefault(c.store, {})[c.table] = c.outside
    return out


def render_summary(report: LoadReport) -> str:
    """The terminal summary, in the spirit of the seed's."""
    ok = report.status == "SUCCESS"
    lines = [
        "",
        f"{'✓' if ok else '✗'} CERT Load {'Complete' if ok else 'FAILED'}",
        f"  District:  {report.district}",
        f"  Run:       {report.run_id}",
        f"  Duration:  {report.duration_s:.1f} s",
        f"  Strategy:  {report.strategy}",
        f"  Commit:    {report.atomicity}" + (f" ({report.atomicity_reason})" if report.atomicity_reason else ""),
        "",
    ]
    for name, sr in report.stores.items():
        mark = "✓" if sr.status == "SUCCESS" else "✗"
        if name == GRAPH_STORE:
            lines.append(
                f"  {name.upper():5} {report.graph.get('nodes_loaded', 0):,} nodes, "
                f"{report.graph.get('relationships_loaded', 0):,} relationships {mark} {sr.transaction}"
            )
        else:
            lines.append(
                f"  {name.upper():5} {sr.records_loaded:,} records ({sr.tables_loaded} tables) {mark} {sr.transaction}"
                + _breakdown(sr)
            )
    totals = report.as_dict()["totals"]
    lines.append(f"  TOTAL {totals['records_loaded']:,} records ({totals['tables_loaded']} tables)")
    val = report.validation()
    lines += [
        "",
        f"  Post-load validation: {val['status']}",
        f"    record counts: {val['record_count_verification']}",
        f"    FK integrity:  {val['fk_integrity_verification']}",
    ]
    if report.cross_store:
        lines.append(f"    cross-store:   {val['cross_store_verification']} ({len(report.cross_store)} reference(s))")
    if val["content_verification"] != "NOT_RUN":
        outside = sum(len(cols) for tables in val["content_outside_comparison"].values() for cols in tables.values())
        lines.append(f"    content:       {val['content_verification']}"
                     + (f" ({outside} column(s) outside the comparison, listed in the report)" if outside else ""))
    for c in report.checks + [r.check for r in report.cross_store if r.check not in report.checks]:
        if not c.passed:
            lines.append(f"    ✗ {c.store}: {c.table}: {c.check}: {c.detail}")
    if report.warnings:
        lines.append(f"  Warnings: {len(report.warnings)}")
        lines += [f"    - {w}" for w in report.warnings[:10]]
    if report.backup and not report.backup.get("discarded"):
        b = report.backup
        lines.append(f"  Backup: {b['rows']:,} rows, {b['bytes'] / 1e6:.1f} MB in {b['seconds']:.1f}s -> {b['path']} "
                     f"(undo: cert-loader restore {report.district} --run {report.run_id})")
    if report.error:
        lines += ["", f"  Error: {report.error.get('message')}"]
        lines.append("  CERT was left as it was before the load." if report.error.get("rolled_back", True) else "")
    if report.report_path:
        lines += ["", f"  Report: {report.report_path}"]
    return "\n".join(lines)


def count_sums(tables: Iterable[TableResult]) -> dict[str, int]:
    """Each of COUNT_FIELDS summed over the loaded tables, where every one of them counted it (none: absent)."""
    loaded = [t for t in tables if not t.skipped]
    out = {}
    for key in COUNT_FIELDS:
        values = [getattr(t, key) for t in loaded]
        if values and all(v is not None for v in values):
            out[key] = sum(values)
    return out


def _breakdown(sr: StoreResult) -> str:
    """"  — 12 inserted, 3 updated, 1 deleted, 2,308 unchanged" where the strategy counts more than inserts."""
    sums = count_sums(sr.tables)
    if set(sums) <= {"inserted"}:
        return ""
    return "  — " + ", ".join(f"{n:,} {key}" for key, n in sums.items())
