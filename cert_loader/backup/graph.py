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
    out = {k: v for k, v in props.items() if k not in drop}
    try:  # the usual map: str, int, float, bool and lists of them, dumped at once
        return json.dumps(out, ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError):  # a value JSON cannot hold: name it
        out = {k: _json_value(v, lambda k=k: where(k)) for k, v in out.items()}
        return json.dumps(out, ensure_ascii=False, allow_nan=False)


def _node_page(run: Run, district: str, label: str, ids: list[str]) -> list[list]:
    return run(f"UNWIND $ids AS i MATCH (n:{quoted(label)} {{district_id: $d, id: i}}) "
               "RETURN collect([n.id, labels(n), properties(n)]) AS page", label, d=district, ids=ids)[0]["page"]


def _rel_page(run: Run, district: str, label: str, ids: list[str]) -> list[list]:
    return run(f"UNWIND $ids AS i MATCH (a:{quoted(label)} {{district_id: $d, id: i}})-[x]->(b) "
               "WHERE x.district_id = $d RETURN collect([a.id, b.id, b.district_id, type(x), properties(x)]) AS page",
               label, d=district, ids=ids)[0]["page"]


def _label_pages(run: Run, district: str, label: str, counts: tuple[dict, dict]) -> Iterator[tuple[list, list]]:
    """One label's nodes and the relationships they start, a page of PAGE_IDS nodes at a time (as rows).

    A row is a tuple in the file's column order (NODE_COLUMNS, REL_COLUMNS), not a dict: no key dict per row.
    """
    ids = [r["id"] for r in run(f"MATCH (n:{quoted(label)} {{district_id: $d}}) RETURN n.id AS id", label,
                                d=district)]
    counts[0][label] = len(ids)
    for at in range(0, len(ids), PAGE_IDS):
        page = ids[at:at + PAGE_IDS]
        nodes = []
        for node_id, labels, p in _node_page(run, district, label, page):
            if not isinstance(node_id, str) or labels != [label]:
                raise BackupError(f"node {node_id!r} of district {district!r} has labels {labels} and id "
                                  f"{node_id!r}; the loader writes one label and a string id",
                                  store=GRAPH_STORE, table=GraphTable.nodes(label).display, district=district, hint=_HINT)
            nodes.append((node_id, label, district,
                          _props(p, ("id", DISTRICT_COLUMN), lambda k, i=node_id: f"node {label} {i!r}: property {k!r}")))
        rels = []
        for start, end, ed, t, p in _rel_page(run, district, label, page):
            if ed != district:
                raise BackupError(f"relationship {t} ({start!r})->({end!r}) ends outside district {district!r}",
                                  store=GRAPH_STORE, table=GraphTable.relationships(t).display, district=district,
                                  hint=_HINT)
            counts[1][t] = counts[1].get(t, 0) + 1
            rels.append((start, end, t, _props(
                p, (DISTRICT_COLUMN,), lambda k, s=start, e=end, t=t: f"relationship {t} ({s!r})->({e!r}): property {k!r}")))
        yield nodes, rels
    inbound = run(f"MATCH (b:{quoted(label)} {{district_id: $d}})<-[x]-(a) WHERE x.district_id = $d "
                  "AND coalesce(a.district_id, '') <> $d RETURN count(x) AS c", label, d=district)
    if inbound and inbound[0]["c"]:
        raise BackupError(f"{inbound[0]['c']} relationship(s) of district {district!r} start outside it "
                          f"(at {label} nodes)", store=GRAPH_STORE, district=district, hint=_HINT)


class _GroupWriter:
    """A parquet file written a row group at a time (ROW_GROUP_ROWS rows), sha256 and fsync on close."""

    def __init__(self, path: Path, schema: pa.Schema) -> None:
        self.path, self.schema, self.rows = path, schema, 0
        self.sink = HashingFile(path)
        self.writer = pq.ParquetWriter(self.sink, schema, compression="zstd")
        self.pending: list[tuple[str, ...]] = []

    def add(self, rows: list[tuple[str, ...]], *, flush: bool = False) -> None:
        self.pending.extend(rows)
        while len(self.pending) >= ROW_GROUP_ROWS or (flush and self.pending):
            group, self.pending = self.pending[:ROW_GROUP_ROWS], self.pending[ROW_GROUP_ROWS:]
            columns = [pa.array(col, f.type) for col, f in zip(zip(*group), self.schema)]
            self.writer.write_table(pa.Table.from_arrays(columns, schema=self.schema))
            self.rows += len(group)
            checkpoint(f"mid-backup:{GRAPH_STORE}")

    def close(self) -> None:
        self.add([], flush=True)
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
