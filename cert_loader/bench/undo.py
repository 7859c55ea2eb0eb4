"""The cost of Undo (issue 13) on the seed's district shape: a replace load over the district with and without --backup, and its restore."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

from cert_loader.bench.e2e import BIN, cli_env, run_measured
from cert_loader.bench.seed import NODES, RELATIONSHIPS, SHAPE, seed_ddl, write_seed_district
from cert_loader.config import GraphConfig
from cert_loader.constants import GRAPH_STORE
from cert_loader.testing.databases import create_database, drop_database


def run_rss(args: list[str], env: dict[str, str], cwd: Path) -> tuple[float, str, int]:
    """Run one command: (seconds, stdout, its own peak RSS in MB from wait4 — this process alone, not its siblings)."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        started = time.perf_counter()
        proc = subprocess.Popen(args, env=env, cwd=cwd, stdout=out, stderr=err, text=True)
        _pid, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0), err.seek(0)
        stdout = out.read()
        if proc.returncode != 0:
            raise RuntimeError(f"{Path(args[0]).name} {args[1]} failed: {stdout[-3000:]} {err.read()[-3000:]}")
    return seconds, stdout, round(usage.ru_maxrss / 1024)


def settle(urls: dict[str, str]) -> None:
    """VACUUM ANALYZE and CHECKPOINT every store between measured runs (not timed).

    Each replace leaves the district's old rows dead in the tables and indexes; back to back, every later run
    would check keys and FKs through the earlier runs' dead tuples (seen: 20 s, 26 s, 29 s, 33 s for four
    replaces in a row), which weighs on whichever runs last. Weekly loads have autovacuum in between.
    """
    import psycopg

    for url in urls.values():
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("VACUUM ANALYZE")
            conn.execute("CHECKPOINT")


def measure_undo(admin_url: str, graph: GraphConfig | None, repeat: int, work: Path,
                 say: Callable[[str], None]) -> dict[str, Any]:
    """Load the district once (not timed), then ``repeat`` rounds of: replace, replace --backup, restore of that backup.

    Targets (issue 13): --backup adds at most 20% to the replace; the restore takes at most 1.2x the replace.
    """
    from cert_loader.bench.relational import summary

    prefix = f"cert_bench_{os.getpid()}_undo"
    names = {store: f"{prefix}_{store}" for store in SHAPE}
    urls = {store: create_database(admin_url, name, seed_ddl(store, fk_indexes=True))
            for store, name in names.items()}
    root = work / "undo"
    stores = ",".join(list(SHAPE) + ([GRAPH_STORE] if graph is not None else []))
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
        rss: dict[str, int] = {"replace": 0, "replace_backup": 0, "restore": 0}
        load = cli + ["load", district, "--stores", stores, "--strategy", "replace", "--json"]
        for i in range(repeat):  # the three side by side in each round: the ratios compare runs of one window
            for what, args in (("replace", load), ("replace_backup", load + ["--backup"])):
                settle(urls)
                t, stdout, mb = run_rss(args, env, root)
                times[what].append(t)
                rss[what] = max(rss[what], mb)
            report = json.loads(stdout)
            backup_s.append(report["backup"]["seconds"])
            out["backup_bytes"] = report["backup"]["bytes"]
            settle(urls)
            t, _, mb = run_rss(cli + ["restore", district, "--run", report["load_run_id"], "--stores", stores, "--json"],
                               env, root)
            times["restore"].append(t)
            rss["restore"] = max(rss["restore"], mb)
            say(f"undo round {i + 1}/{repeat}: " + ", ".join(f"{k} {v[-1]:.1f}s" for k, v in times.items())
                + f" (capture {backup_s[-1]:.1f}s)")
            shutil.rmtree(root / "data" / "backups", ignore_errors=True)
        for what, ts in times.items():
            out[what] = summary(ts, rows)
        out["backup_capture_s"] = [round(s, 2) for s in backup_s]
        out["backup_cost"] = round(out["replace_backup"]["median_s"] / out["replace"]["median_s"] - 1, 3)
        out["restore_ratio"] = round(out["restore"]["median_s"] / out["replace"]["median_s"], 3)
        out["peak_rss_mb_by_run"] = rss  # each load/restore process's own peak (wait4), the largest over the rounds
        out["peak_rss_mb"] = max(rss.values())
        say(f"undo: --backup adds {out['backup_cost']:.1%} to a replace (target <= 20%); restore / replace "
            f"{out['restore_ratio']:.2f}x (target <= 1.2x); peak RSS {out['peak_rss_mb']} MB (target < 300 MB); "
            + ", ".join(f"{k} {out[k]['rows_per_s']:,} rows/s" for k in times))
    finally:
        for name in names.values():
            drop_database(admin_url, name)
    return out
