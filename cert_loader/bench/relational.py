"""The relational measurements: ordinary and bulk-FK inserts next to server-side COPY, unchanged upsert/merge, peak RSS."""

from __future__ import annotations

import os
import statistics
import tempfile
from pathlib import Path
from typing import Any, Callable

from cert_loader.bench.workload import (
    ChildTable, create_database, drop_database, make_workload, product_load, value_inserts,
)

DISTRICT = "bench-district"


def rotated(items: list[str], round_: int) -> list[str]:
    """A different order each round (rotated, every other round reversed): no measure always runs first."""
    k = round_ % len(items)
    out = items[k:] + items[:k]
    return out[::-1] if round_ % 2 else out


def summary(times: list[float], rows: int) -> dict[str, Any]:
    med = statistics.median(times)
    return {"runs_s": [round(t, 3) for t in times], "median_s": round(med, 3), "rows_per_s": round(rows / med),
            "spread": round((max(times) - min(times)) / med, 3)}


def measure_relational(admin_url: str, rows: int, repeat: int, say: Callable[[str], None]) -> dict[str, Any]:
    """1M rows (by default) into the FK'd child table: every measure ``repeat`` times, in rotating order."""
    name = f"cert_bench_{os.getpid()}"
    out: dict[str, Any] = {"rows": rows, "repeat": repeat}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        make_workload(root, DISTRICT, rows)
        url = create_database(admin_url, name)
        table = ChildTable(url)
        try:
            say(f"relational: warm-up load of {rows:,} rows")
            product_load(url, root, DISTRICT)  # not timed: gives the server its COPY file, warms the caches
            table.save()
            times: dict[str, list[float]] = {k: [] for k in ("server_copy", "insert", "bulk_fk", "server_copy_no_fk")}
            rss: dict[str, int] = {}
            ratios: dict[str, list[float]] = {"insert": [], "bulk_fk": []}
            for i in range(repeat):
                this_round: dict[str, float] = {}
                for what in rotated(list(times), i):
                    if what.startswith("server"):
                        table.empty(parents=True)
                        this_round[what] = table.server_copy(rows, drop_fk=what == "server_copy_no_fk")
                    else:
                        table.empty(parents=False)
                        this_round[what], peak, _ = product_load(url, root, DISTRICT, bulk_fk=what == "bulk_fk")
                        rss[what] = max(rss.get(what, 0), peak)
                    times[what].append(this_round[what])
                for what in ratios:
                    ratios[what].append(this_round["server_copy"] / this_round[what])
                say(f"relational round {i + 1}/{repeat}: " + ", ".join(f"{k} {v:.2f}s" for k, v in this_round.items()))
            for what, ts in times.items():
                out[what] = summary(ts, rows)
            for what in ("insert", "bulk_fk"):
                out[what]["peak_rss_mb"] = round(rss[what] / 2**20)
                out[what]["ratio_vs_server_copy"] = round(out["server_copy"]["median_s"] / out[what]["median_s"], 3)
                out[what]["ratio_per_round"] = [round(r, 3) for r in ratios[what]]
            out.update(_unchanged(url, root, rows, repeat, table, say))
            sample = min(rows, 50_000)
            table.empty(parents=True)
            seconds = value_inserts(url, root, DISTRICT, sample)
            out["value_insert"] = {"rows": sample, "rows_per_s": round(sample / seconds),
                                   "product_is_x_faster": round((rows / out["insert"]["median_s"]) / (sample / seconds), 1)}
        finally:
            table.close()
            drop_database(admin_url, name)
    return out


def _unchanged(url: str, root: Path, rows: int, repeat: int, table: ChildTable, say) -> dict[str, Any]:
    """Upsert and merge of the loaded, unchanged district (vacuumed between runs, as a weekly load finds it)."""
    table.empty(parents=False)
    product_load(url, root, DISTRICT)
    table.settle()
    times: dict[str, list[float]] = {"upsert": [], "merge": []}
    rss: dict[str, int] = {}
    for i in range(repeat):
        for strategy in rotated(list(times), i):
            elapsed, peak, report = product_load(url, root, DISTRICT, strategy)
            child = next(t for t in report["stores"]["ids"]["tables"] if t["table"] == "public.bench_child")
            assert (child["inserted"], child["updated"], child["unchanged"]) == (0, 0, rows), child
            times[strategy].append(elapsed)
            rss[strategy] = max(rss.get(strategy, 0), peak)
            table.settle()
        say(f"unchanged round {i + 1}/{repeat}: " + ", ".join(f"{k} {v[-1]:.2f}s" for k, v in times.items()))
    return {f"{k}_unchanged": {**summary(v, rows), "peak_rss_mb": round(rss[k] / 2**20)} for k, v in times.items()}


def measure_memory(admin_url: str, sizes: list[int], say: Callable[[str], None]) -> dict[str, Any]:
    """Peak RSS of an ordinary insert load whose largest table has each of ``sizes`` rows."""
    out: dict[str, Any] = {}
    for rows in sizes:
        name = f"cert_bench_{os.getpid()}_mem"
        with tempfile.TemporaryDirectory() as tmp:
            make_workload(Path(tmp), DISTRICT, rows)
            url = create_database(admin_url, name)
            try:
                elapsed, rss, _ = product_load(url, Path(tmp), DISTRICT)
            finally:
                drop_database(admin_url, name)
        out[str(rows)] = {"peak_rss_mb": round(rss / 2**20), "seconds": round(elapsed, 2), "rows_per_s": round(rows / elapsed)}
        say(f"memory: {rows:,} rows: peak RSS {rss / 2**20:.0f} MB ({elapsed:.1f}s)")
    return out
