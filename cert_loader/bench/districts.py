"""Throughput: 1, 2, 4, 8 districts loading at once through `cert-loader load` and `dagster asset materialize` (issue 15, point 7).

Each level starts its N processes together on the same four PostgreSQL stores (the seed shape's tables, each
district ``district_rows`` rows) and waits for all; the aggregate rate is N districts' rows over the wall time of
the level, compared with the one-at-a-time figure of the same run (the machine is noisy, ratios travel).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any, Callable

from cert_loader.bench.e2e import BIN, REPO_DAGSTER_YAML, reset_stores, cli_env, run_measured
from cert_loader.bench.seed import SHAPE, seed_ddl, write_seed_district
from cert_loader.bench.workload import create_database, drop_database

TARGET_AT_FOUR = 1.6


def measure_districts(admin_url: str, district_rows: int, levels: tuple[int, ...], work: Path,
                      say: Callable[[str], None]) -> dict[str, Any]:
    """Both engines, every level, on fresh stores; the four PostgreSQL stores only (the graph has its own section)."""
    prefix = f"cert_bench_{os.getpid()}_districts"
    scale = district_rows / sum(total for _, total in SHAPE.values())
    names = {store: f"{prefix}_{store}" for store in SHAPE}
    urls = {store: create_database(admin_url, name, seed_ddl(store)) for store, name in names.items()}
    dagster_db = f"{prefix}_dagster"
    dagster_url = create_database(admin_url, dagster_db, None, mark=False)
    root = work / "districts"
    home = work / "districts_dagster_home"
    home.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO_DAGSTER_YAML, home / "dagster.yaml")
    env = cli_env(urls, None, root)
    dag_env = cli_env(urls, None, root, DAGSTER_HOME=str(home),
                      DAGSTER_PG_URL=dagster_url.replace("postgresql://", "postgresql+psycopg2://", 1))
    out: dict[str, Any] = {"district_rows": 0, "levels": list(levels), "stores": list(SHAPE)}
    try:
        root.mkdir(parents=True, exist_ok=True)
        run_measured([str(BIN / "cert-loader"), "snapshot", "--stores", ",".join(SHAPE)], dag_env, root)
        for engine in ("cli", "dagster"):
            out[engine] = {}
            for n in levels:
                rows, seconds, busy = _level(engine, n, scale, root, env if engine == "cli" else dag_env, urls)
                out["district_rows"] = rows // n
                out[engine][str(n)] = {"districts": n, "wall_s": round(seconds, 2), "rows_per_s": round(rows / seconds),
                                       "districts_per_hour": round(n * 3600 / seconds, 1), "cpu_busy": round(busy, 3)}
                say(f"districts {engine} x{n}: {seconds:.1f}s, {rows / seconds:,.0f} rows/s aggregate, "
                    f"machine {busy:.0%} busy")
            one = out[engine][str(levels[0])]["rows_per_s"] if levels and levels[0] == 1 else None
            for entry in out[engine].values():
                entry["vs_one"] = round(entry["rows_per_s"] / one, 3) if one else None
    finally:
        for name in [*names.values(), dagster_db]:
            drop_database(admin_url, name)
    return out


def cpu_times() -> tuple[float, float]:
    """(busy, total) jiffies of the whole machine so far, from /proc/stat's first line (every process: the
    loaders, PostgreSQL's backends, Dagster)."""
    fields = [float(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0.0)  # idle + iowait
    return sum(fields) - idle, sum(fields)


def _level(engine: str, n: int, scale: float, root: Path, env: dict[str, str],
           urls: dict[str, str]) -> tuple[int, float, float]:
    """N districts written (and, for Dagster, registered) untimed, then N processes started together.

    Returns (rows, wall s, machine busy fraction over the wall time): how close to the cores' ceiling it ran,
    which bounds what more districts at once can add."""
    districts = [f"tp-{engine}-{n}-{i}-{secrets.token_hex(2)}" for i in range(n)]
    rows = 0
    for d in districts:
        rows += sum(write_seed_district(root, d, graph=False, scale=scale).values())
        if engine == "dagster":
            run_measured([str(BIN / "cert-loader"), "register", d], env, root)
    busy0, total0 = cpu_times()
    started = time.perf_counter()
    procs = [subprocess.Popen(_command(engine, d), env=env, cwd=root, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for d in districts]
    outputs = [p.communicate(timeout=1800) for p in procs]
    seconds = time.perf_counter() - started
    busy1, total1 = cpu_times()
    busy = (busy1 - busy0) / max(total1 - total0, 1.0)
    for d, p, (stdout, stderr) in zip(districts, procs, outputs):
        if p.returncode != 0:
            raise RuntimeError(f"{engine} load of {d} failed: {stdout[-2000:]} {stderr[-3000:]}")
        report = json.loads((root / "data" / "loads" / d / "load-report.json").read_text())
        assert report["overall_status"] == "SUCCESS", (d, report["overall_status"])
    for d in districts:
        reset_stores(urls, None, d)
        shutil.rmtree(root / "data" / "anonymized" / d, ignore_errors=True)
    return rows, seconds, busy


def _command(engine: str, district: str) -> list[str]:
    if engine == "cli":
        return [str(BIN / "cert-loader"), "load", district, "--stores", ",".join(SHAPE), "--json", "--parallel"]
    return [str(BIN / "dagster"), "asset", "materialize", "-m", "cert_loader.definitions", "--select", "*",
            "--partition", district]


def render_districts(d: dict[str, Any]) -> list[str]:
    lines = [f"\nthroughput, {d['district_rows']:,}-row districts (seed shape scaled, four PostgreSQL stores), "
             "N loading at once:",
             f"  {'engine':8} {'N':>3} {'wall s':>8} {'rows/s':>10} {'districts/h':>12} {'vs one':>7} {'CPU busy':>9}"]
    for engine in ("cli", "dagster"):
        for n, e in (d.get(engine) or {}).items():
            lines.append(f"  {engine:8} {n:>3} {e['wall_s']:>8} {e['rows_per_s']:>10,} {e['districts_per_hour']:>12} "
                         f"{e['vs_one'] if e['vs_one'] is not None else '-':>7} "
                         f"{format(e['cpu_busy'], '.0%') if e.get('cpu_busy') is not None else '-':>9}")
        four = (d.get(engine) or {}).get("4", {}).get("vs_one")
        if four is not None:
            verdict = "met" if four >= TARGET_AT_FOUR else "NOT MET"
            lines.append(f"  {engine}: 4 at once = {four}x one at a time (target >= {TARGET_AT_FOUR}x): {verdict}")
    return lines
