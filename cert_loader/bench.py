"""`cert-loader bench`: the product's load rate next to the limits measured in the same run, as ratios (machines are noisy)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psycopg
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from psycopg import sql

# The workload of DESIGN.md section 10: a 1M-row child table, 12 columns, an FK to a 500-row parent.
CHILD_DDL = """
CREATE TABLE bench_parent (district_id text NOT NULL, parent_id int NOT NULL, name text NOT NULL,
  PRIMARY KEY (district_id, parent_id));
CREATE TABLE bench_child (district_id text NOT NULL, child_id bigint NOT NULL, parent_id int NOT NULL,
  code varchar(16) NOT NULL, score numeric(8,2), ratio float8, active boolean NOT NULL, born date,
  seen_at timestamptz, note text, qty int, amount bigint,
  PRIMARY KEY (district_id, child_id),
  FOREIGN KEY (district_id, parent_id) REFERENCES bench_parent (district_id, parent_id));
"""


def make_workload(root: Path, district: str, rows: int) -> None:
    """Write the parent/child parquet files and the district's validation report under ``root``."""
    base = root / "data" / "anonymized" / district / "ids"
    base.mkdir(parents=True, exist_ok=True)
    (base.parent / "validation-report.json").write_text(json.dumps(
        {"district_id": district, "overall_status": "PASSED", "summary": {"total_errors": 0, "total_warnings": 0}}))
    order = root / "data" / "analysis" / "extraction-order.json"
    order.parent.mkdir(parents=True, exist_ok=True)
    order.write_text(json.dumps({"ids": ["bench_parent", "bench_child"]}))
    parents = 500
    pq.write_table(pa.table({
        "district_id": pa.array([district] * parents),
        "parent_id": pa.array(range(parents), pa.int64()),
        "name": pa.array([f"parent {i}" for i in range(parents)]),
    }), base / "bench_parent.parquet")
    writer = None
    chunk = 250_000
    for start in range(0, rows, chunk):
        n = min(chunk, rows - start)
        ids = pa.array(range(start, start + n), pa.int64())
        table = pa.table({
            "district_id": pa.array([district] * n),
            "child_id": ids,
            "parent_id": pc.subtract(ids, pc.multiply(pc.divide(ids, parents), parents)),
            "code": pc.cast(ids, pa.string()),
            "score": pc.cast(pc.binary_join_element_wise(pc.cast(pc.bit_wise_and(ids, 8191), pa.string()), "25", "."),
                             pa.decimal128(8, 2)),
            "ratio": pc.divide(pc.cast(ids, pa.float64()), 7.0),
            "active": pc.equal(pc.bit_wise_and(ids, 1), 0),
            "born": pc.cast(pc.cast(pc.add(pc.bit_wise_and(ids, 4095), 10000), pa.int32()), pa.date32()),
            "seen_at": pc.cast(pc.multiply(ids, 1_000_000), pa.timestamp("us", tz="UTC")),
            "note": pc.binary_join_element_wise("note ", pc.cast(ids, pa.string()), ""),
            "qty": pc.bit_wise_and(ids, 1023),
            "amount": pc.multiply(ids, 3),
        })
        if writer is None:
            writer = pq.ParquetWriter(base / "bench_child.parquet", table.schema)
        writer.write_table(table)
    writer.close()


def _admin_db(admin_url: str, name: str) -> str:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = admin_url.rsplit("/", 1)[0] + "/" + name
    from cert_loader.preflight import mark_statements

    with psycopg.connect(url, autocommit=True) as conn:
        for statement in mark_statements(name):
            conn.execute(statement)
        conn.execute(CHILD_DDL)
    return url


def _drop_db(admin_url: str, name: str) -> None:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


_CHILD = """
import json, resource, sys, time
from pathlib import Path
from cert_loader.config import LoaderConfig, PgStoreConfig
from cert_loader.engine import LoadOptions, load_district
url, root, district, strategy = sys.argv[1:5]
config = LoaderConfig(Path(root), {"ids": PgStoreConfig("ids", url)})
started = time.perf_counter()
report = load_district(config, district, LoadOptions(strategy=strategy))
elapsed = time.perf_counter() - started
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({"elapsed": elapsed, "rss": rss, "report": report.as_dict()}, default=str))
"""


def _product_load(url: str, root: Path, district: str, strategy: str = "insert") -> tuple[float, int, dict]:
    """Load in a child process: time from parquet to a verified commit (imports excluded), and its peak RSS."""
    proc = subprocess.run(
        [sys.executable, "-c", _CHILD, url, str(root), district, strategy],
        capture_output=True, text=True, check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"the load failed: {proc.stderr[-3000:]}")
    data = json.loads(proc.stdout.strip().splitlines()[-1])
    return data["elapsed"], data["rss"], data["report"]


def _server_copy(url: str, district: str, rows: int) -> float:
    """The limit: server-side binary COPY FROM a file of the same rows into the same (emptied) table."""
    with psycopg.connect(url, autocommit=True) as conn:
        path = Path(tempfile.gettempdir()) / f"cert_bench_{os.getpid()}.bin"
        conn.execute(sql.SQL("COPY bench_child TO {} (FORMAT BINARY)").format(sql.Literal(str(path))))
        conn.execute("DELETE FROM bench_child")
        conn.execute("VACUUM bench_child")
        started = time.perf_counter()
        with conn.transaction():
            conn.execute(sql.SQL("COPY bench_child FROM {} (FORMAT BINARY)").format(sql.Literal(str(path))))
        elapsed = time.perf_counter() - started
        os.unlink(path) if os.path.exists(path) else None
        assert conn.execute("SELECT count(*) FROM bench_child").fetchone()[0] == rows
    return elapsed


def _value_inserts(url: str, root: Path, district: str, sample: int = 50_000) -> float:
    """The approach this product replaces: values formatted into multi-row INSERT text (on a sample)."""
    table = pq.read_table(root / "data" / "anonymized" / district / "ids" / "bench_child.parquet").slice(0, sample)
    rows = table.to_pylist()
    cols = table.column_names
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DELETE FROM bench_child")
        started = time.perf_counter()
        with conn.transaction():
            for i in range(0, len(rows), 1000):
                values = ",".join(
                    "(" + ",".join(sql.Literal(r[c]).as_string(conn) for c in cols) + ")" for r in rows[i:i + 1000]
                )
                conn.execute(f"INSERT INTO bench_child ({','.join(cols)}) VALUES {values}")  # the seed's way, measured only
        return time.perf_counter() - started


def run_bench(admin_url: str, rows: int, out: Path | None) -> dict[str, Any]:
    name = f"cert_bench_{os.getpid()}"
    district = "bench-district"
    results: dict[str, Any] = {"rows": rows, "machine": f"{os.cpu_count()} cores"}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        make_workload(root, district, rows)
        url = _admin_db(admin_url, name)
        try:
            elapsed, rss, report = _product_load(url, root, district)
            assert report["overall_status"] == "SUCCESS", report.get("error")
            results["product_insert_s"] = round(elapsed, 3)
            results["product_rows_per_s"] = round(rows / elapsed)
            results["product_peak_rss_mb"] = round(rss / 2**20)
            copy_s = _server_copy(url, district, rows)
            results["server_copy_rows_per_s"] = round(rows / copy_s)
            results["ratio_product_vs_server_copy"] = round(copy_s / elapsed, 3)
            sample = min(rows, 50_000)
            ins_s = _value_inserts(url, root, district, sample)
            results["value_insert_rows_per_s"] = round(sample / ins_s)
            results["ratio_product_vs_value_insert"] = round((rows / elapsed) / (sample / ins_s), 2)
        finally:
            _drop_db(admin_url, name)
    if out:
        out.write_text(json.dumps(results, indent=2) + "\n")
    return results
