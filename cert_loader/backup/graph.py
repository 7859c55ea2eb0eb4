"""Capture the district's subgraph, inside the graph load's transaction, as the section 2 files nodes.parquet and relationships.parquet.

Nodes are read per label through the ``(district_id, id)`` key index, relationships from the district's
nodes (as the graph checks reach them, stores/graph_cypher.py), so other districts are never scanned.
A node's ``properties`` is its JSON object without ``id`` and ``district_id``; JSON keeps the types
(int stays int, 1.0 stays a float, lists stay lists), so a ``replace`` load of the files gives the
same nodes and relationships back.
"""

from __future__ import annotations

import contextlib
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import pyarrow as pa
import pyarrow.parquet as pq

from cert_loader.backup.layout import BackupError, HashingFile
from cert_loader.constants import DISTRICT_COLUMN, GRAPH_STORE
from cert_loader.faults import checkpoint
from cert_loader.results import GraphTable
from cert_loader.stores.graph_cypher import quoted
from cert_loader.graph_input import IDENTIFIER_RE, MARKER_LABEL, NODE_COLUMNS, REL_COLUMNS

# run(query, table, **params) -> records as dicts: the graph transaction's own (GraphTransaction.cypher.run).
Run = Callable[..., list[dict[str, Any]]]
# Rows per parquet row group: memory holds at most one group per file plus one page. 16k rows and 5k-node pages:
# the capture of 100k nodes / 250k relationships added nothing to the load's peak RSS (65k and 10k: +50 MB) and
# took 7.6 s instead of 9.1 s (/tmp/gprof/run.py, quiet machine, one run each).
ROW_GROUP_ROWS = 16_384
# Nodes per read: one statement returns a page's nodes (and one the relationships they start) as one list,
# through the (district_id, id) key index, as the content check reads them (verify/graph_content.py).
PAGE_IDS = 5_000
NODES_SCHEMA = pa.schema([pa.field(c, pa.string(), nullable=c == "properties") for c in NODE_COLUMNS])
RELS_SCHEMA = pa.schema([pa.field(c, pa.string(), nullable=c == "properties") for c in REL_COLUMNS])
# The keys the loader writes as columns of its own, dropped from the properties' JSON (NODE_COLUMNS, REL_COLUMNS).
NODE_KEYS = ("id", DISTRICT_COLUMN)
REL_KEYS = (DISTRICT_COLUMN,)
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


# One encoder for every row: json.dumps builds a new one per call unless its arguments are the defaults.
_encode = json.JSONEncoder(ensure_ascii=False, allow_nan=False).encode


def _props(props: dict[str, Any], drop: tuple[str, ...], where: Callable[[str], str]) -> str:
    """``props`` (a fresh dict from the driver, changed in place) without the ``drop`` keys, as JSON."""
    for k in drop:
        props.pop(k, None)
    try:  # the usual map: str, int, float, bool and lists of them, dumped at once
        return _encode(props)
    except (TypeError, ValueError):  # a value JSON cannot hold: name it
        return _encode({k: _json_value(v, lambda k=k: where(k)) for k, v in props.items()})


def _node_page(run: Run, district: str, label: str, ids: list[str]) -> list[list]:
    return run(f"UNWIND $ids AS i MATCH (n:{quoted(label)} {{district_id: $d, id: i}}) "
               "RETURN collect([n.id, labels(n), properties(n)]) AS page", label, d=district, ids=ids)[0]["page"]


def _rel_page(run: Run, district: str, label: str, ids: list[str]) -> list[list]:
    return run(f"UNWIND $ids AS i MATCH (a:{quoted(label)} {{district_id: $d, id: i}})-[x]->(b) "
               "WHERE x.district_id = $d RETURN collect([a.id, b.id, b.district_id, type(x), properties(x)]) AS page",
               label, d=district, ids=ids)[0]["page"]


def _label_pages(run: Run, district: str, label: str,
                 counts: tuple[dict, dict]) -> Iterator[tuple[pa.RecordBatch, pa.RecordBatch]]:
    """One label's nodes and the relationships they start, a page of PAGE_IDS nodes at a time.

    Each page becomes a record batch column by column (the label and district columns repeated in C): no
    tuple or dict per row, no transposing rows into columns later.
    """
    ids = run(f"MATCH (n:{quoted(label)} {{district_id: $d}}) RETURN collect(n.id) AS ids", label, d=district)[0]["ids"]
    counts[0][label] = len(ids)
    for at in range(0, len(ids), PAGE_IDS):
        page = ids[at:at + PAGE_IDS]
        found = _node_page(run, district, label, page)
        for node_id, labels, _p in found:
            if not isinstance(node_id, str) or labels != [label]:
                raise BackupError(f"node {node_id!r} of district {district!r} has labels {labels} and id "
                                  f"{node_id!r}; the loader writes one label and a string id",
                                  store=GRAPH_STORE, table=GraphTable.nodes(label).display, district=district, hint=_HINT)
        nodes = pa.RecordBatch.from_arrays([
            pa.array([n[0] for n in found], pa.string()),
            _repeated(label, len(found)),
            _repeated(district, len(found)),
            pa.array([_props(p, NODE_KEYS, lambda k, i=i: f"node {label} {i!r}: property {k!r}") for i, _l, p in found],
                     pa.string()),
        ], schema=NODES_SCHEMA)
        rels = _rel_page(run, district, label, page)
        for start, end, ed, t, _p in rels:
            if ed != district:
                raise BackupError(f"relationship {t} ({start!r})->({end!r}) ends outside district {district!r}",
                                  store=GRAPH_STORE, table=GraphTable.relationships(t).display, district=district,
                                  hint=_HINT)
            counts[1][t] = counts[1].get(t, 0) + 1
        yield nodes, pa.RecordBatch.from_arrays([
            pa.array([r[0] for r in rels], pa.string()),
            pa.array([r[1] for r in rels], pa.string()),
            pa.array([r[3] for r in rels], pa.string()),
            pa.array([_props(p, REL_KEYS, lambda k, s=s, e=e, t=t: f"relationship {t} ({s!r})->({e!r}): property {k!r}")
                      for s, e, _d, t, p in rels], pa.string()),
        ], schema=RELS_SCHEMA)
    inbound = run(f"MATCH (b:{quoted(label)} {{district_id: $d}})<-[x]-(a) WHERE x.district_id = $d "
                  "AND coalesce(a.district_id, '') <> $d RETURN count(x) AS c", label, d=district)
    if inbound and inbound[0]["c"]:
        raise BackupError(f"{inbound[0]['c']} relationship(s) of district {district!r} start outside it "
                          f"(at {label} nodes)", store=GRAPH_STORE, district=district, hint=_HINT)


def _repeated(value: str, n: int) -> pa.Array:
    return pa.repeat(pa.scalar(value, pa.string()), n)


class _GroupWriter:
    """A parquet file written a row group at a time (ROW_GROUP_ROWS rows), sha256 and fsync on close."""

    def __init__(self, path: Path, schema: pa.Schema) -> None:
        self.path, self.schema, self.rows = path, schema, 0
        self.sink = HashingFile(path)
        self.writer = pq.ParquetWriter(self.sink, schema, compression="zstd")
        self.pending: list[pa.RecordBatch] = []
        self.pending_rows = 0

    def add(self, batch: pa.RecordBatch | None, *, flush: bool = False) -> None:
        if batch is not None and batch.num_rows:
            self.pending.append(batch)
            self.pending_rows += batch.num_rows
        if self.pending_rows < ROW_GROUP_ROWS and not (flush and self.pending_rows):
            return
        table = pa.Table.from_batches(self.pending, self.schema)
        whole = self.pending_rows if flush else self.pending_rows - self.pending_rows % ROW_GROUP_ROWS
        for at in range(0, whole, ROW_GROUP_ROWS):  # slices share the batches' buffers: nothing copied
            group = table.slice(at, min(ROW_GROUP_ROWS, whole - at))
            self.writer.write_table(group, row_group_size=ROW_GROUP_ROWS)
            self.rows += group.num_rows
            checkpoint(f"mid-backup:{GRAPH_STORE}")
        rest = table.slice(whole)
        self.pending, self.pending_rows = rest.to_batches(), rest.num_rows

    def close(self) -> None:
        self.add(None, flush=True)
        self.writer.close()
        self.sink.close()

    def abort(self) -> None:
        with contextlib.suppress(Exception):  # the file goes anyway; the first error is the one to see
            self.writer.close()
        self.sink.abort()
        self.path.unlink(missing_ok=True)


def capture_graph(run: Run, district: str, nodes_path: Path, rels_path: Path) -> dict[str, GraphCapture]:
    """Write the district's nodes and relationships (fsynced); ``run`` is the open graph transaction's."""
    counts: tuple[dict[str, int], dict[str, int]] = ({}, {})
    writers: list[_GroupWriter] = []
    try:
        writers.append(_GroupWriter(nodes_path, NODES_SCHEMA))
        writers.append(_GroupWriter(rels_path, RELS_SCHEMA))
        for label in _labels(run):
            if not IDENTIFIER_RE.match(label):
                continue  # never the loader's: formatted into no query
            for nodes, rels in _label_pages(run, district, label, counts):
                writers[0].add(nodes)
                writers[1].add(rels)
        for w in writers:
            w.close()
    except BaseException:
        for w in writers:
            w.abort()
        raise
    nodes_w, rels_w = writers
    return {
        "nodes": GraphCapture(nodes_path, nodes_w.rows, nodes_w.sink.size, nodes_w.sink.sha256,
                              {k: v for k, v in counts[0].items() if v}),
        "relationships": GraphCapture(rels_path, rels_w.rows, rels_w.sink.size, rels_w.sink.sha256, counts[1]),
    }
