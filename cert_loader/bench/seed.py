"""The seed's district shape — ~750k rows over 45/32/28/52 tables in four stores, 100k nodes, 250k relationships — loaded end to end."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from cert_loader.bench.graph import write_graph
from cert_loader.constants import GRAPH_STORE

# (tables, rows) per store: the seed's example report (ids 45 tables, 250,000 records; 750,000 in all).
SHAPE = {"ids": (45, 250_000), "hcp1": (32, 150_000), "hcp2": (28, 120_000), "adb": (52, 230_000)}
NODES, RELATIONSHIPS = 100_000, 250_000
# Extra columns, cycled per table, so tables differ in width (4 to 11 columns) and types.
_EXTRA = [("label", "text"), ("amount", "numeric(10,2)"), ("score", "float8"), ("flag", "boolean"),
          ("day", "date"), ("at", "timestamptz"), ("code", "varchar(32)"), ("qty", "integer")]


@dataclass(frozen=True)
class SeedTable:
    name: str
    rows: int
    parent: str | None  # FK (district_id, parent_id) -> parent (district_id, id)
    root: str | None  # a second FK (district_id, root_id) -> the store's first table, on every fifth table
    extra: tuple[tuple[str, str], ...]


def seed_tables(store: str, scale: float = 1.0) -> list[SeedTable]:
    """Tables parents first: a binary tree of FKs, sizes falling off like a real schema (a few large, many small).

    ``scale``: the store's rows times this (the same tables; the districts section uses small districts)."""
    count, total = SHAPE[store]
    total = max(100 * count, int(total * scale))  # room for every table's floor of 20 rows
    weights = [1 / (1 + (i * 7) % count) ** 1.1 for i in range(count)]
    scale = total / sum(weights)
    sizes = [max(20, int(w * scale)) for w in weights]
    sizes[0] += total - sum(sizes)  # exact total; the first (root) table absorbs the rounding
    out = []
    for i, rows in enumerate(sizes):
        name = f"{store}_t{i:02d}"
        parent = f"{store}_t{(i - 1) // 2:02d}" if i else None
        root = f"{store}_t00" if i > 2 and i % 5 == 0 else None
        extra = tuple(_EXTRA[(i + k) % len(_EXTRA)] for k in range(1 + i % len(_EXTRA)))
        out.append(SeedTable(name, rows, parent, root, extra))
    return out


def seed_ddl(store: str, *, fk_indexes: bool = False) -> str:
    """The store's tables; ``fk_indexes`` adds an index on each referencing FK's columns.

    Without them a delete of a district already in CERT (replace, restore, unload) checks each parent row's
    FKs by reading the children's district rows (plan.py warns): the undo section measures with them, as a
    schema that replaces districts would have; the load sections without, as the seed's schema is.
    """
    statements = []
    for t in seed_tables(store):
        cols = ["district_id text NOT NULL", "id bigint NOT NULL"]
        cols += ["parent_id bigint NOT NULL"] if t.parent else []
        cols += ["root_id bigint NOT NULL"] if t.root else []
        cols += [f"{name} {kind}" for name, kind in t.extra]
        cols += ["PRIMARY KEY (district_id, id)"]
        if t.parent:
            cols.append(f"FOREIGN KEY (district_id, parent_id) REFERENCES {t.parent} (district_id, id)")
        if t.root:
            cols.append(f"FOREIGN KEY (district_id, root_id) REFERENCES {t.root} (district_id, id)")
        statements.append(f"CREATE TABLE {t.name} ({', '.join(cols)});")
        if fk_indexes:
            statements += [f"CREATE INDEX ON {t.name} (district_id, {c});"
                           for c, ref in (("parent_id", t.parent), ("root_id", t.root)) if ref]
    return "\n".join(statements)


def _column(name: str, kind: str, ids: pa.Array) -> pa.Array:
    if kind in ("text", "varchar(32)"):
        return pc.binary_join_element_wise(f"{name} ", pc.cast(ids, pa.string()), "")
    if kind == "numeric(10,2)":
        return pc.cast(pc.binary_join_element_wise(pc.cast(pc.bit_wise_and(ids, 65535), pa.string()), "25", "."),
                       pa.decimal128(10, 2))
    if kind == "float8":
        return pc.divide(pc.cast(ids, pa.float64()), 3.0)
    if kind == "boolean":
        return pc.equal(pc.bit_wise_and(ids, 1), 0)
    if kind == "date":
        return pc.cast(pc.cast(pc.add(pc.bit_wise_and(ids, 4095), 12000), pa.int32()), pa.date32())
    if kind == "timestamptz":
        return pc.cast(pc.multiply(ids, 1_000_000), pa.timestamp("us", tz="UTC"))
    return pc.cast(pc.bit_wise_and(ids, 1023), pa.int32())


def write_seed_district(root: Path, district: str, *, graph: bool = True, scale: float = 1.0) -> dict[str, int]:
    """Write the district's files (all four stores, the graph, the order, a passing report); returns rows per store."""
    base = root / "data" / "anonymized" / district
    order: dict[str, list[str]] = {}
    counts: dict[str, int] = {}
    for store in SHAPE:
        (base / store).mkdir(parents=True, exist_ok=True)
        tables = seed_tables(store, scale)
        size = {t.name: t.rows for t in tables}
        for t in tables:
            ids = pa.array(range(t.rows), pa.int64())
            cols: dict[str, pa.Array] = {"district_id": pa.array([district] * t.rows), "id": ids}
            if t.parent:
                cols["parent_id"] = pc.divide(ids, max(1, math.ceil(t.rows / size[t.parent])))
            if t.root:
                cols["root_id"] = pc.bit_wise_and(ids, 15) if size[t.root] > 15 else pc.multiply(ids, 0)
            for name, kind in t.extra:
                cols[name] = _column(name, kind, ids)
            pq.write_table(pa.table(cols), base / store / f"{t.name}.parquet")
        order[store] = [t.name for t in tables]
        counts[store] = sum(size.values())
    if graph:
        write_graph(base / GRAPH_STORE, district, NODES, RELATIONSHIPS)
        order[GRAPH_STORE] = ["nodes", "relationships"]
    (root / "data" / "analysis").mkdir(parents=True, exist_ok=True)
    (root / "data" / "analysis" / "extraction-order.json").write_text(json.dumps(order))
    (base / "validation-report.json").write_text(json.dumps(
        {"district_id": district, "overall_status": "PASSED", "summary": {"total_errors": 0, "total_warnings": 0}}))
    return counts
