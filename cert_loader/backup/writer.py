"""One load's backup under way: each store captures in its own transaction (and thread), the manifest is written last.

The order of a load with ``--backup`` (DESIGN.md section 5, point 5): BEGIN, capture the tables the
load touches, then the strategy; the graph captures inside its transaction before its load; once every
store has loaded and verified, :meth:`BackupRun.finish` writes the extraction order, the validation
report and the manifest, each fsynced — all before the commit decision. A failed capture fails the load.
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import pyarrow as pa

from cert_loader.backup.graph import GraphCapture, Run, capture_graph
from cert_loader.backup.layout import BackupError, BackupPaths, fsync_tree, write_json_durably
from cert_loader.backup.record import FORMAT, VERSION, seal, table_entry
from cert_loader.backup.relational import TableCapture, capture_table, render_settings, set_settings
from cert_loader.catalog import Table
from cert_loader.constants import GRAPH_STORE
from cert_loader.data_root import data_root as data_root_of
from cert_loader.inputs import read_validation_gate
from cert_loader.manifest import GRAPH_ASSETS
from cert_loader.stores.postgres import PgStore

log = logging.getLogger(__name__)
# The stores' captures take turns: side by side, each thread's allocator heap grew at once (the seed's four
# stores, measured with mimalloc: +104 MB RSS together, +56 MB one after another, 1.0 vs 1.4 s), while the
# graph's capture, the longest (~4 s alone, 11-12 s beside the stores' loads on the seed shape), runs alongside
# them anyway (issue 13).
_ONE_STORE_AT_A_TIME = threading.Lock()


def release_memory() -> None:
    """Give the capture's freed memory back to the system, from the thread that captured.

    An allocator keeps freed pages for reuse; the store's and the graph's threads go on to load, so without
    this the capture's peak stays resident under the load's own (issue 13: after the graph capture the replace
    --backup stayed at 341 MB, against 284 MB for the replace).
    """
    pa.default_memory_pool().release_unused()


def utc_now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class BackupSummary:
    """What the load report says about the backup (DESIGN.md section 3 gains a ``backup`` section)."""

    run_id: str
    path: str
    rows: int
    bytes: int
    seconds: float
    files: int
    stores: dict[str, dict[str, float]] = field(default_factory=dict)  # rows, bytes, seconds per store

    def to_json(self) -> dict:
        return {"run_id": self.run_id, "path": self.path, "rows": self.rows, "bytes": self.bytes,
                "seconds": round(self.seconds, 3), "files": self.files, "stores": self.stores}


def _file_name_ok(name: str) -> bool:
    return bool(name) and not name.startswith(".") and not any(c in name for c in "/\\\x00")


class BackupRun:
    """The backup of one run of district ``district``, in ``data/backups/D/<run id>/`` under ``data_root``."""

    def __init__(self, data_root: Path, district: str, run_id: str, strategy: str) -> None:
        self.paths = BackupPaths(data_root_of(data_root), district, run_id)
        self.strategy = strategy
        self.created_at = utc_now()
        self._lock = threading.Lock()
        self._tables: dict[str, list[TableCapture]] = {}
        self._store_seconds: dict[str, float] = {}
        self._graph: dict[str, GraphCapture] | None = None
        if self.paths.dir.exists():
            raise BackupError(f"backup directory {self.paths.dir} already exists", district=district,
                              hint="each load takes its backup under a new run id; remove the directory if it is stale")
        self.paths.dir.mkdir(parents=True)

    @property
    def district(self) -> str:
        return self.paths.district

    def capture_store(self, pg: PgStore, tables: list[Table]) -> list[TableCapture]:
        """Capture ``tables`` (parents first, as the load will touch them) in the store's open transaction."""
        started = time.monotonic()
        for table in tables:
            if not _file_name_ok(table.qualname):
                raise BackupError(f"table name {table.qualname!r} cannot be a backup file name", store=pg.name,
                                  table=table.qualname, hint="load without --backup")
        with _ONE_STORE_AT_A_TIME:
            previous = render_settings(pg)
            captured = [capture_table(pg, t, self.district, self.paths.table_file(pg.name, t.qualname))
                        for t in tables]
            set_settings(pg, previous)
            release_memory()
        with self._lock:
            self._tables[pg.name] = captured
            self._store_seconds[pg.name] = time.monotonic() - started
        return captured

    def capture_graph(self, run: Run) -> dict[str, GraphCapture]:
        """Capture the district's subgraph through the open graph transaction's ``run``."""
        started = time.monotonic()
        inputs = self.paths.inputs
        nodes, rels = (inputs.source_file(GRAPH_STORE, kind) for kind in GRAPH_ASSETS)
        got = capture_graph(run, self.district, nodes, rels)
        release_memory()
        with self._lock:
            self._graph = got
            self._store_seconds[GRAPH_STORE] = time.monotonic() - started
        return got

    def finish(self) -> BackupSummary:
        """Write the extraction order, the validation report and, last, the manifest; fsync the whole tree."""
        finish_started = time.monotonic()
        paths, inputs = self.paths, self.paths.inputs
        files: dict[str, dict] = {}
        tables: dict[str, dict[str, dict]] = {}
        order: dict[str, list[str]] = {}
        stores: dict[str, dict[str, float]] = {}
        for store, caps in self._tables.items():
            order[store] = [c.table.qualname for c in caps]
            tables[store] = {}
            for c in caps:
                rel = paths.relative(c.path)
                files[rel] = {"store": store, "table": c.table.qualname, "rows": c.rows, "bytes": c.bytes,
                              "sha256": c.sha256}
                tables[store][c.table.qualname] = {**table_entry(c.table), "file": rel}
            stores[store] = {"rows": sum(c.rows for c in caps), "bytes": sum(c.bytes for c in caps),
                             "seconds": round(self._store_seconds.get(store, 0.0), 3)}
        graph: dict[str, dict] = {}
        if self._graph is not None:
            order[GRAPH_STORE] = list(GRAPH_ASSETS)
            for name, g in self._graph.items():
                rel = paths.relative(g.path)
                files[rel] = {"store": GRAPH_STORE, "table": name, "rows": g.rows, "bytes": g.bytes, "sha256": g.sha256}
                graph[name] = g.counts
            stores[GRAPH_STORE] = {"rows": sum(g.rows for g in self._graph.values()),
                                   "bytes": sum(g.bytes for g in self._graph.values()),
                                   "seconds": round(self._store_seconds.get(GRAPH_STORE, 0.0), 3)}
        for path, body in ((inputs.order_file, order), (inputs.validation_report, self._validation_report())):
            size, sha = write_json_durably(path, body)
            files[paths.relative(path)] = {"rows": None, "bytes": size, "sha256": sha}
        read_validation_gate(inputs)  # the engine's own gate must pass it
        # The load's extra time: the stores capture side by side, each before its own load, so the cost on the
        # critical path is the slowest capture plus this final write (the manifest below takes no measurable time).
        seconds = max(self._store_seconds.values(), default=0.0) + (time.monotonic() - finish_started)
        manifest = seal({
            "format": FORMAT, "version": VERSION, "run_id": paths.run_id, "district": self.district,
            "strategy": self.strategy, "created_at": self.created_at, "completed_at": utc_now(),
            "seconds": round(seconds, 3), "order": order, "tables": tables, "graph": graph, "files": files,
        })
        fsync_tree(paths.dir, paths.data_root)
        write_json_durably(paths.manifest, manifest)  # last: a backup without it is incomplete
        summary = BackupSummary(paths.run_id, str(paths.dir), sum(f["rows"] or 0 for f in files.values()),
                                sum(f["bytes"] for f in files.values()), seconds, len(files), stores)
        log.info("backup of district %s before run %s: %d rows, %d bytes in %.2fs (%s)", self.district,
                 paths.run_id, summary.rows, summary.bytes, seconds, paths.dir)
        return summary

    def _validation_report(self) -> dict:
        return {"district_id": self.district, "overall_status": "PASSED",
                "summary": {"total_errors": 0, "total_warnings": 0},
                "backup_of_run": self.paths.run_id,
                "note": f"pre-image of district {self.district} taken by cert_loader before load {self.paths.run_id} "
                        f"({self.strategy}); restore it with `cert-loader restore {self.district} --run {self.paths.run_id}`",
                "created_at": self.created_at}

    def discard(self) -> None:
        """Remove the backup (its load failed before the commit decision: the stores still hold the pre-image)."""
        shutil.rmtree(self.paths.dir, ignore_errors=True)
