"""The benchmark's 1M-row workload (DESIGN.md section 10) and its measurements: the product in a child process, the server's COPY limit."""

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

from cert_loader.testing import databases
from cert_loader.testing.databases import drop_database  # noqa: F401 - bench.relational and bench.e2e import it from here

# The workload of DESIGN.md section 10: a child table, 12 columns, an FK to a 500-row parent.
CHILD_DDL = """
CREATE TABLE bench_parent (district_id text NOT NULL, parent_id int NOT NULL, name text NOT NULL,
  PRIMARY KEY (district_id, parent_id));
CREATE TABLE bench_child (district_id text NOT NULL, child_id bigint NOT NULL, parent_id int NOT NULL,
  code varchar(16) NOT NULL, score numeric(8,2), ratio float8, active boolean NOT NULL, born date,
  seen_at timestamptz, note text, qty int, amount bigint,
  PRIMARY KEY (district_id, child_id),
  CONSTRAINT bench_child_parent_fk FOREIGN KEY (district_id, parent_id) REFERENCES bench_parent (district_id, parent_id));
"""
PARENTS = 500


def make_workload(root: Path, district: str, rows: int) -> None:
    """Write the parent/child parquet files and the district's validation report under ``root``."""
    base = root / "data" / "anonymized" / district / "ids"
    base.mkdir(parents=True, exist_ok=True)
    (base.parent / "validation-report.json").write_text(json.dumps(
        {"district_id": district, "overall_status": "PASSED", "summary": {"total_errors": 0, "total_warnings": 0}}))
    order = root / "data" / "analysis" / "extraction-order.json"
    order.parent.mkdir(parents=True, exist_ok=True)
    order.write_text(json.dumps({"ids": ["bench_parent", "bench_child"]}))
    pq.write_table(pa.table({
        "district_id": pa.array([district] * PARENTS),
        "parent_id": pa.array(range(PARENTS), pa.int64()),
        "name": pa.array([f"parent {i}" for i in range(PARENTS)]),
    }), base / "bench_parent.parquet")
    writer = None
    chunk = 250_000
    for start in range(0, rows, chunk):
        n = min(chunk, rows - start)
        ids = pa.array(range(start, start + n), pa.int64())
        table = pa.table({
            "district_id": pa.array([district] * n),
            "child_id": ids,
            "parent_id": pc.subtract(ids, pc.multiply(pc.divide(ids, PARENTS), PARENTS)),
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


def create_database(admin_url: str, name: str, ddl: str | None = CHILD_DDL, *, mark: bool = True) -> str:
    """A fresh database ``name`` (marked as a CERT store) with the bench tables unless told otherwise; returns its URL."""
    return databases.create_database(admin_url, name, ddl, mark=mark)


_CHILD = """
import json, resource, sys, time
from pathlib import Path
from cert_loader.config import LoaderConfig, PgStoreConfig
from cert_loader.engine import LoadOptions, load_district
url, root, district, options = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
config = LoaderConfig(Path(root), {"ids": PgStoreConfig("ids", url)})
started = time.perf_counter()
report = load_district(config, district, LoadOptions(**options))
elapsed = time.perf_counter() - started
# VmHWM is this process's own peak; ru_maxrss would report the parent's RSS at fork when that was larger.
hwm = [l.split()[1] for l in open("/proc/self/status") if l.startswith("VmHWM:")]
rss = int(hwm[0]) * 1024 if hwm else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({"elapsed": elapsed, "rss": rss, "report": report.as_dict()}, default=str))
"""


def product_load(url: str, root: Path, district: str, strategy: str = "insert", **options: Any) -> tuple[float, int, dict]:
    """Load in a child process: time from parquet to a verified commit (imports excluded), and its peak RSS."""
    proc = subprocess.run(
        [sys.executable, "-c", _CHILD, url, str(root), district, json.dumps({"strategy": strategy, **options})],
        capture_output=True, text=True, check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"the load failed: {proc.stderr[-3000:]}")
    data = json.loads(proc.stdout.strip().splitlines()[-1])
    if data["report"]["overall_status"] != "SUCCESS":
        raise RuntimeError(f"the load failed: {data['report'].get('error')}")
    return data["elapsed"], data["rss"], data["report"]


class ChildTable:
    """The bench table's states and the server-side COPY limit, on one autocommit admin connection."""

    def __init__(self, url: str) -> None:
        self.conn = psycopg.connect(url, autocommit=True)
        self.files = {t: Path(tempfile.gettempdir()) / f"cert_bench_{os.getpid()}_{t}.bin" for t in ("parent", "child")}

    def close(self) -> None:
        self.conn.close()
        for path in self.files.values():
            path.unlink(missing_ok=True)

    def save(self) -> None:
        """Keep the loaded rows as binary COPY files the server reads (the same data the product loaded)."""
        for table, path in self.files.items():
            self.conn.execute(sql.SQL("COPY {} TO {} (FORMAT BINARY)").format(
                sql.Identifier(f"bench_{table}"), sql.Literal(str(path))))

    def settle(self) -> None:
        """What a weekly load finds: the table vacuumed and analyzed, nothing dirty in shared buffers."""
        self.conn.execute("VACUUM ANALYZE bench_parent, bench_child")
        self.conn.execute("CHECKPOINT")

    def empty(self, *, parents: bool) -> None:
        """Both measurements start from the same state: empty, vacuumed, checkpointed (parents back for COPY)."""
        self.conn.execute("TRUNCATE bench_child, bench_parent")
        if parents:
            self.conn.execute(sql.SQL("COPY bench_parent FROM {} (FORMAT BINARY)").format(sql.Literal(str(self.files["parent"]))))
        self.settle()

    def server_copy(self, rows: int, *, drop_fk: bool = False) -> float:
        """The limit: server-side binary COPY FROM a file of the same rows, committed (FK dropped and re-added if asked)."""
        started = time.perf_counter()
        with self.conn.transaction():
            if drop_fk:
                definition = self.conn.execute(
                    "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conname = 'bench_child_parent_fk'").fetchone()[0]
                self.conn.execute("ALTER TABLE bench_child DROP CONSTRAINT bench_child_parent_fk")
            self.conn.execute(sql.SQL("COPY bench_child FROM {} (FORMAT BINARY)").format(sql.Literal(str(self.files["child"]))))
            if drop_fk:
                self.conn.execute("ALTER TABLE bench_child ADD CONSTRAINT bench_child_parent_fk " + definition)
        elapsed = time.perf_counter() - started
        assert self.conn.execute("SELECT count(*) FROM bench_child").fetchone()[0] == rows
        return elapsed


def value_inserts(url: str, root: Path, district: str, sample: int = 50_000) -> float:
    """The approach this product replaces: values formatted into multi-row INSERT text (on a sample)."""
    table = pq.read_table(root / "data" / "anonymized" / district / "ids" / "bench_child.parquet").slice(0, sample)
    rows = table.to_pylist()
    cols = table.column_names
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("TRUNCATE bench_child")
        started = time.perf_counter()
        with conn.transaction():
            for i in range(0, len(rows), 1000):
                values = ",".join(
                    "(" + ",".join(sql.Literal(r[c]).as_string(conn) for c in cols) + ")" for r in rows[i:i + 1000]
                )
                conn.execute(f"INSERT INTO bench_child ({','.join(cols)}) VALUES {values}")  # the seed's way, measured only
        return time.perf_counter() - started
