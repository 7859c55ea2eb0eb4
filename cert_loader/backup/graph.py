"""Capture the district's subgraph, inside the graph load's transaction, as the section 2 files nodes.parquet and relationships.parquet.

Nodes are read per label through the ``(district_id, id)`` key index, relationships from the district's
nodes (as the graph checks reach them, stores/graph_cypher.py), so other districts are never scanned.
A node's ``properties`` is its JSON object without ``id`` and ``district_id``; JSON keeps the types
(int stays int, 1.0 stays a float, lists stay lists), so a ``replace`` load of the files gives the
same nodes and relationships back.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import pyarrow as pa
import pyarrow.parquet as pq

from cert_loader.backup.layout import BackupError, HashingFile
from cert_loader.constants import GRAPH_STORE
from cert_loader.faults import checkpoint
from cert_loader.results import GraphTable
from cert_loader.stores.graph_cypher import quoted
from cert_loader.graph_input import IDENTIFIER_RE, MARKER_LABEL, NODE_COLUMNS, REL_COLUMNS

# run(query, table, **params) -> records as dicts: the graph transaction's own (GraphTransaction.cypher.run).
Run = Callable[..., list[dict[str, Any]]]
# Rows per parquet row group (and per write): the graph's rows are held per label by the read anyway.
ROW_GROUP_ROWS = 65_536
NODES_SCHEMA = pa.schema([pa.field(c, pa.string(), nullable=c == "properties") for c in NODE_COLUMNS])
RELS_SCHEMA = pa.schema([pa.field(c, pa.string(), nullable=c == "properties") for c in REL_COLUMNS])
_HINT = "load without --backup: a restore could not give this back (the loader never writes it)"


@dataclass
class GraphCapture:
    """What the graph capture wrote: one entry per file."""

    path: Path
    rows: int
    bytes: int
    sha256: str
    counts: dict[str, int]  # per label (nodes) or per type (relationships)


def _labels(run: Run) -> list[str]:
    rows = run("CALL db.labels() YIELD label RETURN label", None)
    return sorted(r["label"] for r in rows if r["label"] != MARKER_LABEL)


def _json_value(value: Any, where: Callable[[], str]) -> Any:
    """A property value as JSON keeps it, or BackupError (a temporal or spatial value the loader never writes)."""
    if isinstance(value, bool) or isinstance(value, (str, int)):
        return value
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            raise BackupError(f"{where()} is {value}, which JSON cannot hold", store=GRAPH_STORE, hint=_HINT)
        return value
    if isinstance(value, list):
        return [_json_value(v, where) for v in value]
    raise BackupError(f"{where()} is a {type(value).__name__}, which the loader cannot write back",
                      store=GRAPH_STORE, hint=_HINT)


def _props(props: dict[str, Any], drop: tuple[str, ...], where: Callable[[str], str]) -> str:
    out = {k: _json_value(v, lambda k=k: where(k)) for k, v in props.items() if k not in drop}
    return json.dumps(out, ensure_ascii=False, allow_nan=False)


def _node_rows(run: Run, district: str, counts: dict[str, int]) -> Iterator[dict[str, str]]:
    for label in _labels(run):
        if not IDENTIFIER_RE.match(label):
            continue  # never the loader's: formatted into no query
        rows = run(f"MATCH (n:{quoted(label)} {{district_id: $d}}) RETURN n.id AS id, labels(n) AS labels, "
                   "properties(n) AS p", label, d=district)
        for r in rows:
            if not isinstance(r["id"], str) or r["labels"] != [label]:
                raise BackupError(f"node {r['id']!r} of district {district!r} has labels {r['labels']} and id "
                                  f"{r['id']!r}; the loader writes one label and a string id",
                                  store=GRAPH_STORE, table=GraphTable.nodes(label).display, district=district, hint=_HINT)
            yield {"id": r["id"], "labels": label, "district_id": district,
                   "properties": _props(r["p"], ("id", "district_id"),
                                        lambda k, r=r: f"node {label} {r['id']!r}: property {k!r}")}
        counts[label] = len(rows)


def _rel_rows(run: Run, district: str, labels: list[str], counts: dict[str, int]) -> Iterator[dict[str, str]]:
    for label in labels:
        rows = run(f"MATCH (a:{quoted(label)} {{district_id: $d}})-[x]->(b) WHERE x.district_id = $d "
                   "RETURN a.id AS start, b.id AS end, b.district_id AS ed, type(x) AS t, properties(x) AS p",
                   label, d=district)
        for r in rows:
            if r["ed"] != district:
                raise BackupError(
                    f"relationship {r['t']} ({r['start']!r})->({r['end']!r}) ends outside district {district!r}",
                    store=GRAPH_STORE, table=GraphTable.relationships(r["t"]).display, district=district, hint=_HINT)
            counts[r["t"]] = counts.get(r["t"], 0) + 1
            yield {"start": r["start"], "end": r["end"], "type": r["t"],
                   "properties": _props(r["p"], ("district_id",),
                                        lambda k, r=r: f"relationship {r['t']} ({r['start']!r})->({r['end']!r}): "
                                                       f"property {k!r}")}
        inbound = run(f"MATCH (b:{quoted(label)} {{district_id: $d}})<-[x]-(a) WHERE x.district_id = $d "
                      "AND coalesce(a.district_id, '') <> $d RETURN count(x) AS c", label, d=district)
        if inbound and inbound[0]["c"]:
            raise BackupError(f"{inbound[0]['c']} relationship(s) of district {district!r} start outside it "
                              f"(at {label} nodes)", store=GRAPH_STORE, district=district, hint=_HINT)


def _write(path: Path, schema: pa.Schema, rows: Iterator[dict[str, str]]) -> tuple[int, HashingFile]:
    sink = HashingFile(path)
    total = 0
    try:
        with pq.ParquetWriter(sink, schema, compression="zstd") as writer:
            chunk: list[dict[str, str]] = []
            for row in rows:
                chunk.append(row)
                if len(chunk) >= ROW_GROUP_ROWS:
                    writer.write_table(pa.Table.from_pylist(chunk, schema))
                    total += len(chunk)
                    chunk = []
                    checkpoint(f"mid-backup:{GRAPH_STORE}")
            if chunk:
                writer.write_table(pa.Table.from_pylist(chunk, schema))
                total += len(chunk)
                checkpoint(f"mid-backup:{GRAPH_STORE}")
        sink.close()
    except BaseException:
        sink.abort()
        path.unlink(missing_ok=True)
        raise
    return total, sink


def capture_graph(run: Run, district: str, nodes_path: Path, rels_path: Path) -> dict[str, GraphCapture]:
    """Write the district's nodes and relationships (fsynced); ``run`` is the open graph transaction's."""
    node_counts: dict[str, int] = {}
    n, nodes_sink = _write(nodes_path, NODES_SCHEMA, _node_rows(run, district, node_counts))
    rel_counts: dict[str, int] = {}
    labels = sorted(node_counts)
    r, rels_sink = _write(rels_path, RELS_SCHEMA, _rel_rows(run, district, labels, rel_counts))
    return {
        "nodes": GraphCapture(nodes_path, n, nodes_sink.size, nodes_sink.sha256,
                              {k: v for k, v in node_counts.items() if v}),
        "relationships": GraphCapture(rels_path, r, rels_sink.size, rels_sink.sha256, rel_counts),
    }
