"""Write one realistic sample district in the loader's input layout (DESIGN.md section 2), for demos and tests."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from cert_loader.data_root import S3Path, data_root as data_root_of
from cert_loader.sample import adb, graph, hcp, ids
from cert_loader.sample.rng import derive_seed

STATUSES = ("PASSED", "PASSED_WITH_WARNINGS", "FAILED")

# Every store's tables, parents first, with the Arrow type each parquet column gets (what extractors produce).
ARROW_TYPES: dict[str, dict[str, dict[str, pa.DataType]]] = {
    "ids": ids.ARROW_TYPES,
    "hcp1": hcp.HCP1_TYPES,
    "hcp2": hcp.HCP2_TYPES,
    "adb": adb.ARROW_TYPES,
    "sp": {"nodes": graph.NODE_TYPES, "relationships": graph.REL_TYPES},
}
EXTRACTION_ORDER: dict[str, list[str]] = {store: list(tables) for store, tables in ARROW_TYPES.items()}


def _to_arrow(frame: pl.DataFrame, types: dict[str, pa.DataType], district: str) -> pa.Table:
    if "district_id" in types and "district_id" not in frame.columns:
        frame = frame.with_columns(district_id=pl.lit(district))
    extra = set(frame.columns) - set(types)
    if extra:
        raise RuntimeError(f"sample generator produced unexpected columns {sorted(extra)}")
    arrow = frame.to_arrow()
    columns = []
    for name, target in types.items():
        column = arrow.column(name)
        if pa.types.is_decimal(target) or pa.types.is_string(target):
            column = column.cast(pa.string())  # polars hands out large/view strings; decimals are built as text
        columns.append(column.cast(target))
    return pa.Table.from_arrays(columns, schema=pa.schema([pa.field(n, t) for n, t in types.items()]))


def _write_parquet(table: pa.Table, path: Path | S3Path) -> None:
    """A local file as before; on S3 the file is built in memory and written as one whole object (no local copy)."""
    if not isinstance(path, S3Path):
        pq.write_table(table, path)
        return
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    path.write_bytes(sink.getvalue().to_pybytes())


def _write_extraction_order(data_root: Path | S3Path) -> None:
    path = data_root / "data" / "analysis" / "extraction-order.json"
    if path.exists():
        try:
            existing = json.loads(path.read_text(encoding="utf-8"))
        except ValueError:
            existing = None
        if existing != EXTRACTION_ORDER:
            raise ValueError(f"{path} exists with a different table order; remove it or use another data root")
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(EXTRACTION_ORDER, indent=2) + "\n", encoding="utf-8")


def _validation_report(district: str, status: str, counts: dict[str, dict[str, int]]) -> dict:
    warnings = []
    if status != "PASSED":
        warnings = [
            {"store": "ids", "table": "edfi.student", "column": "email", "check": "null_rate",
             "message": "email is null in about 10% of rows"},
            {"store": "hcp1", "table": "visit", "column": "temperature_f", "check": "null_rate",
             "message": "temperature_f is null in about 25% of rows"},
        ]
    report = {
        "district_id": district,
        "overall_status": status,
        "summary": {"total_errors": 1 if status == "FAILED" else 0, "total_warnings": len(warnings),
                    "tables_validated": sum(len(t) for s, t in counts.items() if s != "sp"),
                    "records_validated": sum(n for s, t in counts.items() if s != "sp" for n in t.values())},
        "warnings": warnings,
        "validated_at": dt.datetime.now(dt.timezone.utc).isoformat().replace("+00:00", "Z"),
    }
    if status == "FAILED":
        report["errors"] = [{"store": "ids", "table": "edfi.enrollment", "check": "referential_integrity",
                             "message": "1 enrollment row points to a missing section"}]
    return report


def generate_district(data_root: Path | S3Path | str, district: str, *, students: int = 200, seed: int | None = None,
                      status: str = "PASSED") -> dict[str, dict[str, int]]:
    """Write district ``district`` under ``data_root``; return ``{store: {table: rows}}`` (``sp``: nodes, relationships).

    ``data_root`` is a directory or an ``s3://bucket/prefix`` root (every file then one whole-object write).
    Deterministic for a given ``seed`` (default: derived from the district name). Keys are per district
    (``district_id`` is part of every composite key; the uuid-keyed table derives its uuids from the district).
    """
    if not district or "/" in district or "\\" in district or district in (".", ".."):
        raise ValueError(f"invalid district name {district!r}")
    if status not in STATUSES:
        raise ValueError(f"status must be one of {STATUSES}, not {status!r}")
    if students < 1:
        raise ValueError("students must be at least 1")
    data_root = data_root_of(data_root)
    seed = derive_seed("district", district) if seed is None else seed

    ids_tables = ids.generate(seed, students)
    frames = {"ids": ids_tables, **hcp.generate(seed, district, ids_tables),
              "adb": adb.generate(seed, ids_tables), "sp": graph.generate(seed, ids_tables)}

    _write_extraction_order(data_root)
    district_dir = data_root / "data" / "anonymized" / district
    counts: dict[str, dict[str, int]] = {}
    for store, tables in ARROW_TYPES.items():
        store_dir = district_dir / store
        store_dir.mkdir(parents=True, exist_ok=True)
        counts[store] = {}
        for table, types in tables.items():
            arrow = _to_arrow(frames[store][table], types, district)
            _write_parquet(arrow, store_dir / f"{table}.parquet")
            counts[store][table] = arrow.num_rows
    report = _validation_report(district, status, counts)
    (district_dir / "validation-report.json").write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n",
                                                         encoding="utf-8")
    return counts
