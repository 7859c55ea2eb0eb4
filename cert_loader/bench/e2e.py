"""The seed's district shape end to end: `cert-loader load` (stores in parallel and one after another) and `dagster asset materialize`."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

from cert_loader.bench.seed import NODES, RELATIONSHIPS, SHAPE, seed_ddl, seed_tables, write_seed_district
from cert_loader.bench.workload import create_database, drop_database
from cert_loader.config import GraphConfig
from cert_loader.constants import GRAPH_STORE

BIN = Path(sys.executable).parent
REPO_DAGSTER_YAML = Path(__file__).resolve().parents[2] / "dagster.yaml"


def cli_env(urls: dict[str, str], graph: GraphConfig | None, root: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CERT_", "DAGSTER_"))}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env.update({f"CERT_{n.upper()}_URL": u for n, u in urls.items()}, CERT_DATA_ROOT=str(root), **extra)
    if graph is not None:
        env.update(CERT_SP_URI=graph.uri, CERT_SP_USER=graph.user, CERT_SP_PASSWORD=graph.password,
                   CERT_SP_DATABASE=graph.database)
    return env


def run_measured(args: list[str], env: dict[str, str], cwd: Path, timeout: int = 900) -> tuple[float, subprocess.CompletedProcess]:
    """Run a command of the measurement: (seconds, result); a failure stops the benchmark with its output."""
    started = time.perf_counter()
    proc = subprocess.run(args, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    seconds = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError(f"{Path(args[0]).name} {args[1]} failed: {proc.stdout[-3000:]} {proc.stderr[-3000:]}")
    return seconds, proc


def measure_seed(admin_url: str, graph: GraphConfig | None, repeat: int, work: Path, say: Callable[[str], None],
                 *, dagster: bool = True) -> dict[str, Any]:
    """``repeat`` rounds of `cert-loader load` with --parallel and --no-parallel (rotating), then one Dagster run."""
    from cert_loader.bench.relational import rotated, summary

    prefix = f"cert_bench_{os.getpid()}_seed"
    names = {store: f"{prefix}_{store}" for store in SHAPE}
    urls = {store: create_database(admin_url, name, seed_ddl(store)) for store, name in names.items()}
    root = work / "seed"
    stores = ",".join(list(SHAPE) + ([GRAPH_STORE] if graph is not None else []))
    rows = sum(total for _, total in SHAPE.values())
    out: dict[str, Any] = {"tables": {s: n for s, (n, _) in SHAPE.items()}, "rows": rows,
                           "nodes": NODES if graph else 0, "relationships": RELATIONSHIPS if graph else 0}
    try:
        # *_content: the same load with --verify content, to price the content check (issue 12: its default
        # is content only if it adds at most 15% to the seed district's load).
        modes = ["parallel", "sequential", "pg_only_parallel", "pg_only_sequential", "parallel_content",
                 "pg_only_parallel_content"]
        times: dict[str, list[float]] = {m: [] for m in modes}
        reported: dict[str, list[float]] = {m: [] for m in modes}
        for i in range(repeat):
            for mode in rotated(modes, i):
                district = f"seed-{mode.replace('_', '-')}-{secrets.token_hex(3)}"
                write_seed_district(root, district, graph=graph is not None)
                only_pg = mode.startswith("pg_only") or graph is None
                args = [str(BIN / "cert-loader"), "load", district, "--stores", ",".join(SHAPE) if only_pg else stores,
                        "--json", "--no-parallel" if "sequential" in mode else "--parallel"]
                args += ["--verify", "content"] if mode.endswith("_content") else []
                seconds, proc = run_measured(args, cli_env(urls, graph, root), root)
                report = json.loads(proc.stdout)
                assert report["totals"]["records_loaded"] == rows, report["totals"]
                times[mode].append(seconds)
                reported[mode].append(report["duration_seconds"])
                t0 = time.perf_counter()
                reset_stores(urls, None if only_pg else graph, district)
                say(f"seed {mode}: {seconds:.1f}s (report {reported[mode][-1]:.1f}s); stores emptied in {time.perf_counter() - t0:.1f}s")
                shutil.rmtree(root / "data" / "anonymized" / district, ignore_errors=True)
            say(f"seed round {i + 1}/{repeat}: " + ", ".join(f"{k} {v[-1]:.1f}s" for k, v in times.items()))
        for mode, ts in times.items():
            out[f"load_{mode}"] = {**summary(ts, rows), "report_duration_s": [round(t, 1) for t in reported[mode]]}
            del out[f"load_{mode}"]["rows_per_s"]
        out["parallel_speedup"] = round(out["load_sequential"]["median_s"] / out["load_parallel"]["median_s"], 3)
        out["pg_only_parallel_speedup"] = round(
            out["load_pg_only_sequential"]["median_s"] / out["load_pg_only_parallel"]["median_s"], 3)
        out["content_cost"] = round(out["load_parallel_content"]["median_s"] / out["load_parallel"]["median_s"] - 1, 3)
        out["pg_only_content_cost"] = round(
            out["load_pg_only_parallel_content"]["median_s"] / out["load_pg_only_parallel"]["median_s"] - 1, 3)
        if dagster:
            out["dagster"] = _dagster(admin_url, urls, graph, root, stores, rows, repeat, work, say)
            # Issue 15, point 6: the whole `dagster asset materialize` against the CLI's --parallel load, medians.
            out["dagster"]["vs_cli_parallel"] = round(out["dagster"]["command_s"] / out["load_parallel"]["median_s"], 3)
    finally:
        for name in names.values():
            drop_database(admin_url, name)
    return out


def reset_stores(urls: dict[str, str], graph: GraphConfig | None, district: str) -> None:
    """Empty the stores between runs (not timed): TRUNCATE, since the seed's FKs have no index for a DELETE."""
    import psycopg
    from psycopg import sql

    from cert_loader.stores.graph import GraphStore

    for store, url in urls.items():
        with psycopg.connect(url, autocommit=True) as conn:
            tables = sql.SQL(", ").join(sql.Identifier(t.name) for t in seed_tables(store))
            conn.execute(sql.SQL("TRUNCATE {}").format(tables))
            conn.execute("VACUUM ANALYZE")
            conn.execute("CHECKPOINT")
    if graph is not None:
        with GraphStore(graph) as store:
            store.unload(district)


def _dagster(admin_url: str, urls: dict[str, str], graph: GraphConfig | None, root: Path, stores: str, rows: int,
             repeat: int, work: Path, say: Callable[[str], None]) -> dict[str, Any]:
    """``repeat`` districts through `dagster asset materialize` (every CERT asset of the district, one step)."""
    from statistics import median

    home = work / "dagster_home"
    home.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO_DAGSTER_YAML, home / "dagster.yaml")
    name = f"cert_bench_{os.getpid()}_dagster"
    dagster_url = create_database(admin_url, name, None, mark=False)
    commands: list[float] = []
    loads: list[float] = []
    try:
        env = cli_env(urls, graph, root, DAGSTER_HOME=str(home),
                   DAGSTER_PG_URL=dagster_url.replace("postgresql://", "postgresql+psycopg2://", 1))
        run_measured([str(BIN / "cert-loader"), "snapshot", "--stores", stores], env, root)
        for i in range(repeat):
            district = f"seed-dagster-{secrets.token_hex(3)}"
            write_seed_district(root, district, graph=graph is not None)
            run_measured([str(BIN / "cert-loader"), "register", district], env, root)
            seconds, _ = run_measured([str(BIN / "dagster"), "asset", "materialize", "-m", "cert_loader.definitions",
                               "--select", "*", "--partition", district], env, root)
            report = json.loads((root / "data" / "loads" / district / "load-report.json").read_text())
            assert report["overall_status"] == "SUCCESS" and report["totals"]["records_loaded"] == rows, report["totals"]
            commands.append(seconds)
            loads.append(report["duration_seconds"])
            say(f"seed through dagster asset materialize {i + 1}/{repeat}: {seconds:.1f}s "
                f"(the load itself {report['duration_seconds']:.1f}s)")
            reset_stores(urls, graph, district)
            shutil.rmtree(root / "data" / "anonymized" / district, ignore_errors=True)
        return {"command_s": round(median(commands), 1), "load_s": round(median(loads), 1),
                "command_rounds_s": [round(t, 1) for t in commands], "load_rounds_s": [round(t, 1) for t in loads]}
    finally:
        drop_database(admin_url, name)
