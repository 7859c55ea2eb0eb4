"""The cost of Undo (issue 13) on the seed's district shape: a replace load over the district with and without --backup, and its restore."""

from __future__ import annotations

import json
import os
import resource
import secrets
import shutil
from pathlib import Path
from typing import Any, Callable

from cert_loader.bench.e2e import BIN, cli_env, run_measured
from cert_loader.bench.seed import NODES, RELATIONSHIPS, SHAPE, seed_ddl, write_seed_district
from cert_loader.config import GraphConfig
from cert_loader.testing.databases import create_database, drop_database


def measure_undo(admin_url: str, graph: GraphConfig | None, repeat: int, work: Path,
                 say: Callable[[str], None]) -> dict[str, Any]:
    """Load the district once (not timed), then ``repeat`` rounds of: replace, replace --backup, restore of that backup.

    Targets (issue 13): --backup adds at most 20% to the replace; the restore takes at most 1.2x the replace.
    """
    from cert_loader.bench.relational import summary

    prefix = f"cert_bench_{os.getpid()}_undo"
    names = {store: f"{prefix}_{store}" for store in SHAPE}
    urls = {store: create_database(admin_url, name, seed_ddl(store)) for store, name in names.items()}
    root = work / "undo"
    stores = ",".join(list(SHAPE) + (["sp"] if graph is not None else []))
    district = f"seed-undo-{secrets.token_hex(3)}"
    rows = sum(total for _, total in SHAPE.values())
    out: dict[str, Any] = {"rows": rows, "nodes": NODES if graph else 0, "relationships": RELATIONSHIPS if graph else 0}
    env = cli_env(urls, graph, root)
    cli = [str(BIN / "cert-loader")]
    try:
        write_seed_district(root, district, graph=graph is not None)
        run_measured(cli + ["load", district, "--stores", stores, "--json"], env, root)
        times: dict[str, list[float]] = {"replace": [], "replace_backup": [], "restore": []}
        backup_s: list[float] = []
        for i in range(repeat):
            t, _ = run_measured(cli + ["load", district, "--stores", stores, "--strategy", "replace", "--json"], env, root)
            times["replace"].append(t)
            t, proc = run_measured(cli + ["load", district, "--stores", stores, "--strategy", "replace", "--backup", "--json"],
                           env, root)
            times["replace_backup"].append(t)
            report = json.loads(proc.stdout)
            backup_s.append(report["backup"]["seconds"])
            out["backup_bytes"] = report["backup"]["bytes"]
            t, _ = run_measured(cli + ["restore", district, "--run", report["load_run_id"], "--stores", stores, "--json"],
                        env, root)
            times["restore"].append(t)
            say(f"undo round {i + 1}/{repeat}: " + ", ".join(f"{k} {v[-1]:.1f}s" for k, v in times.items())
                + f" (capture {backup_s[-1]:.1f}s)")
            shutil.rmtree(root / "data" / "backups", ignore_errors=True)
        for what, ts in times.items():
            out[what] = summary(ts, rows)
        out["backup_capture_s"] = [round(s, 2) for s in backup_s]
        out["backup_cost"] = round(out["replace_backup"]["median_s"] / out["replace"]["median_s"] - 1, 3)
        out["restore_ratio"] = round(out["restore"]["median_s"] / out["replace"]["median_s"], 3)
        out["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024)  # any child so far
    finally:
        for name in names.values():
            drop_database(admin_url, name)
    return out
