"""The Cypher the graph strategies and checks are made of: batched, portable statements in one open transaction."""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Sequence
from typing import Any, Callable, Iterable

from cert_loader.constants import DISTRICT_COLUMN, GRAPH_STORE
from cert_loader.errors import StoreError
from cert_loader.graph_diff import Pair, RelDiff
from cert_loader.graph_input import IDENTIFIER_RE, MARKER_LABEL, RelRows
from cert_loader.results import GraphTable

# Rows per UNWIND statement: big enough to amortise a round trip, small enough for the server's per-statement memory.
BATCH = 10_000
# Nodes per `WITH n LIMIT k DETACH DELETE n` statement (DESIGN.md section 9).
DELETE_BATCH = 10_000
# Created nodes and relationships get their properties inside CREATE's map, not through a later
# `SET n += map`: the server then writes each record once, not twice (on the test server 100k nodes and
# 250k relationships commit in ~1 s instead of ~4 s, issue 6). Keys are inlined only when they are
# plain names (nothing to escape); each distinct key set is one statement shape, at most SHAPES of them
# per label or type, and rows of any other shape go through `SET += map` as before.
SHAPES = 16
_PLAIN_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

# run(query, table, **params) -> records as dicts; the transaction maps driver errors to StoreError naming
# the table (a GraphTable, or None for statements that are about no one label or type).
Run = Callable[..., list[dict[str, Any]]]


def quoted(name: str) -> str:
    """A label or type for formatting into Cypher: only after the one identifier pattern matched (section 6)."""
    if not isinstance(name, str) or not IDENTIFIER_RE.match(name):
        raise StoreError(f"{name!r} is not a valid label or relationship type", store=GRAPH_STORE)
    return f"`{name}`"


def batches(rows: Sequence, size: int = BATCH) -> Iterable[list]:
    """``rows`` a batch at a time (a NodeRows or RelRows builds each batch's dicts as it is asked)."""
    for i in range(0, len(rows), size):
        yield rows[i:i + size]


def shapes(rows: list[dict]) -> list[tuple[tuple[str, ...] | None, list[dict]]]:
    """Rows grouped by their property keys, biggest groups first: (keys, rows) to inline, (None, rows) for the rest."""
    groups: dict[tuple[str, ...], list[dict]] = defaultdict(list)
    for r in rows:
        groups[tuple(r["props"])].append(r)
    out: list[tuple[tuple[str, ...] | None, list[dict]]] = []
    rest: list[dict] = []
    for keys, items in sorted(groups.items(), key=lambda kv: -len(kv[1])):
        if len(out) < SHAPES and all(_PLAIN_KEY.match(k) for k in keys):
            out.append((keys, items))
        else:
            rest.extend(items)
    return out + ([(None, rest)] if rest else [])


def inline_map(keys: tuple[str, ...]) -> str:
    """`k1`: r.p0, `k2`: r.p1 … for a CREATE map (keys already matched _PLAIN_KEY)."""
    return "".join(f", `{k}`: r.p{i}" for i, k in enumerate(keys))


def flat(row: dict, keys: tuple[str, ...], *fixed: str) -> dict:
    """The parameter row of an inlined shape: the fixed fields, then each property as p0, p1 …"""
    out = {f: row[f] for f in fixed}
    props = row["props"]
    out.update((f"p{i}", props[k]) for i, k in enumerate(keys))
    return out


# The queries below write the key property ``district_id`` (constants.DISTRICT_COLUMN) into their text, where
# it reads as Cypher; the values built in Python (property maps, keys to drop) use the constant.
class GraphCypher:
    """The statements of one district inside one open transaction; every key is ``(district_id, id)`` (section 2)."""

    def __init__(self, run: Run, district: str) -> None:
        self.run, self.district = run, district

    def _one(self, query: str, table: GraphTable | None, **params: Any) -> int:
        rows = self.run(query, table, d=self.district, **params)
        return int(rows[0]["c"]) if rows else 0

    # -- what the district holds ------------------------------------------------------------------
    def graph_labels(self) -> list[str]:
        """Every label in the database the loader could have written (the district's are among them)."""
        rows = self.run("CALL db.labels() YIELD label RETURN label", None)
        return sorted(r["label"] for r in rows if IDENTIFIER_RE.match(r["label"]) and r["label"] != MARKER_LABEL)

    def count_nodes(self, label: str) -> int:
        return self._one(f"MATCH (n:{quoted(label)} {{district_id: $d}}) RETURN count(n) AS c",
                         GraphTable.nodes(label))

    def present_ids(self, label: str, ids: list[str]) -> set[str]:
        """Which of ``ids`` are district nodes of ``label`` (upsert's count check)."""
        return {r["id"] for r in self.run(
            f"UNWIND $ids AS id MATCH (n:{quoted(label)} {{district_id: $d, id: id}}) RETURN n.id AS id",
            GraphTable.nodes(label), d=self.district, ids=ids)}

    def rel_census(self, labels: Iterable[str]) -> dict[str, dict[str, int]]:
        """The district's relationships per type, found from its nodes through the key index.

        A type scan would read every district's relationships (a CERT graph holds many districts), so
        relationships are reached from the district's nodes: ``count`` starts at a district node,
        ``end_outside``/``start_outside`` have the other end outside the district (dangling, section 7).
        A district relationship with both ends outside the district is not seen; the loader never makes one.
        """
        out: dict[str, dict[str, int]] = defaultdict(lambda: {"count": 0, "end_outside": 0, "start_outside": 0})
        for label in labels:
            lab = quoted(label)
            for r in self.run(
                f"MATCH (a:{lab} {{district_id: $d}})-[x]->(b) WHERE x.district_id = $d RETURN type(x) AS t, "
                "count(x) AS c, sum(CASE WHEN coalesce(b.district_id, '') <> $d THEN 1 ELSE 0 END) AS o",
                GraphTable.nodes(label), d=self.district,
            ):
                out[r["t"]]["count"] += r["c"]
                out[r["t"]]["end_outside"] += r["o"]
            for r in self.run(
                f"MATCH (b:{lab} {{district_id: $d}})<-[x]-(a) WHERE x.district_id = $d "
                "AND coalesce(a.district_id, '') <> $d RETURN type(x) AS t, count(x) AS c",
                GraphTable.nodes(label), d=self.district,
            ):
                out[r["t"]]["start_outside"] += r["c"]
        return {t: dict(v) for t, v in out.items() if IDENTIFIER_RE.match(t)}

    def dangling(self, rtype: str, labels: Iterable[str], limit: int) -> list[list[str]]:
        """A few (start, end) ids of the district's ``rtype`` relationships with an end outside the district."""
        found: list[list[str]] = []
        for label in labels:
            for arrow in ("-[x:{t}]->(b)", "<-[x:{t}]-(b)"):
                pattern = arrow.format(t=quoted(rtype))
                rows = self.run(
                    f"MATCH (a:{quoted(label)} {{district_id: $d}}){pattern} WHERE x.district_id = $d "
                    "AND coalesce(b.district_id, '') <> $d RETURN a.id AS a, b.id AS b LIMIT $k",
                    GraphTable.relationships(rtype), d=self.district, k=limit,
                )
                found += [[r["a"], r["b"]] if arrow.startswith("-") else [r["b"], r["a"]] for r in rows]
        return found[:limit]

    # -- deletes -------------------------------------------------------------------------------------
    def delete_batch(self, label: str) -> int:
        """Delete up to DELETE_BATCH district nodes of ``label`` with their relationships (section 9)."""
        return self._one(
            f"MATCH (n:{quoted(label)} {{district_id: $d}}) WITH n LIMIT $k DETACH DELETE n RETURN count(*) AS c",
            GraphTable.nodes(label), k=DELETE_BATCH,
        )

    def delete_label(self, label: str) -> int:
        total = 0
        while True:
            n = self.delete_batch(label)
            total += n
            if n < DELETE_BATCH:
                return total

    def delete_node_ids(self, label: str, ids: list[str]) -> int:
        q = (f"UNWIND $ids AS id MATCH (n:{quoted(label)} {{district_id: $d, id: id}}) DETACH DELETE n "
             "RETURN count(*) AS c")
        return sum(self._one(q, GraphTable.nodes(label), ids=chunk) for chunk in batches(ids))

    # -- nodes -----------------------------------------------------------------------------------------
    def create_nodes(self, label: str, rows: list[dict], *, check_existing: bool) -> int:
        table, lab = GraphTable.nodes(label), quoted(label)
        # An empty district (the usual insert) cannot clash: one index count instead of a check per batch.
        check_existing = check_existing and bool(rows) and self.count_nodes(label) > 0
        created = 0
        for chunk in batches(rows):
            if check_existing:
                # Constraints may be only indexes (ensure_schema's fallback), so insert checks first (section 6).
                found = self.run(
                    f"UNWIND $ids AS id MATCH (n:{lab} {{district_id: $d, id: id}}) RETURN n.id AS id LIMIT 5",
                    table, d=self.district, ids=[r["id"] for r in chunk],
                )
                if found:
                    ids = ", ".join(repr(r["id"]) for r in found)
                    raise StoreError(
                        f"node(s) {ids} of district {self.district!r} already exist",
                        store=GRAPH_STORE, table=table.display, district=self.district,
                        hint="strategy insert adds new nodes only; use upsert, merge or replace to load over them",
                        details={"existing_ids": [r["id"] for r in found]},
                    )
            for keys, items in shapes(chunk):
                if keys is None:
                    created += self._one(
                        f"UNWIND $rows AS r CREATE (n:{lab} {{district_id: $d, id: r.id}}) SET n += r.props "
                        "RETURN count(n) AS c", table, rows=items,
                    )
                else:
                    created += self._one(
                        f"UNWIND $rows AS r CREATE (n:{lab} {{district_id: $d, id: r.id{inline_map(keys)}}}) "
                        "RETURN count(n) AS c", table, rows=[flat(r, keys, "id") for r in items],
                    )
        return created

    def upsert_nodes(self, label: str, rows: list[dict]) -> tuple[int, int]:
        """MERGE on the key, ``SET n += props``; returns (inserted, updated)."""
        q = (
            f"UNWIND $rows AS r OPTIONAL MATCH (old:{quoted(label)} {{district_id: $d, id: r.id}}) "
            f"WITH r, old IS NULL AS fresh MERGE (n:{quoted(label)} {{district_id: $d, id: r.id}}) SET n += r.props "
            "RETURN sum(CASE WHEN fresh THEN 1 ELSE 0 END) AS c"
        )
        inserted = sum(self._one(q, GraphTable.nodes(label), rows=chunk) for chunk in batches(rows))
        return inserted, len(rows) - inserted

    def existing_nodes(self, label: str) -> dict[str, dict]:
        rows = self.run(
            f"MATCH (n:{quoted(label)} {{district_id: $d}}) RETURN n.id AS id, properties(n) AS p",
            GraphTable.nodes(label), d=self.district,
        )
        return {r["id"]: r["p"] for r in rows}

    def stored_nodes(self, label: str, ids: list[str]) -> dict[str, dict]:
        """The properties of those of ``ids`` the district holds, found through the key index (one batch).

        The content check reads a label this way, batch by batch, so memory stays one batch of nodes. The
        batch comes back as one collected record: ~20% faster than a record per node on the test server.
        """
        rows = self.run(
            f"UNWIND $ids AS id MATCH (n:{quoted(label)} {{district_id: $d, id: id}}) "
            "RETURN collect([n.id, properties(n)]) AS nodes", GraphTable.nodes(label), d=self.district, ids=ids,
        )
        return {node_id: props for r in rows for node_id, props in r["nodes"]}

    def node_ids(self, label: str) -> list[str]:
        """Every district node id of ``label``, without properties (naming nodes the source lacks)."""
        return [r["id"] for r in self.run(f"MATCH (n:{quoted(label)} {{district_id: $d}}) RETURN n.id AS id",
                                          GraphTable.nodes(label), d=self.district)]

    def set_nodes(self, label: str, rows: list[dict]) -> int:
        """Make each node's properties exactly ``props`` plus its key (merge's update)."""
        q = (f"UNWIND $rows AS r MATCH (n:{quoted(label)} {{district_id: $d, id: r.id}}) SET n = r.props "
             "RETURN count(n) AS c")
        return sum(self._one(q, GraphTable.nodes(label), rows=[
            {"id": r["id"], "props": {**r["props"], "id": r["id"], DISTRICT_COLUMN: self.district}} for r in chunk
        ]) for chunk in batches(rows))

    # -- relationships ------------------------------------------------------------------------------
    def create_rels(self, rtype: str, pair: Pair, rows: list[dict]) -> int:
        """Create relationships between district nodes found by their key, never by internal ids (section 2)."""
        table = GraphTable.relationships(rtype)
        match = (f"UNWIND $rows AS r MATCH (a:{quoted(pair[0])} {{district_id: $d, id: r.start}}) "
                 f"MATCH (b:{quoted(pair[1])} {{district_id: $d, id: r.end}}) ")
        created = 0
        for chunk in batches(rows):
            n = 0
            for keys, items in shapes(chunk):
                if keys is None:
                    n += self._one(match + f"CREATE (a)-[x:{quoted(rtype)}]->(b) SET x += r.props, x.district_id = $d "
                                   "RETURN count(x) AS c", table, rows=items)
                else:
                    n += self._one(match + f"CREATE (a)-[x:{quoted(rtype)} {{district_id: $d{inline_map(keys)}}}]->(b) "
                                   "RETURN count(x) AS c", table, rows=[flat(r, keys, "start", "end") for r in items])
            if n != len(chunk):
                raise StoreError(
                    f"created {n} of {len(chunk)} relationships ({pair[0]})->({pair[1]}): an end node is missing",
                    store=GRAPH_STORE, table=table.display, district=self.district,
                    hint="the nodes of this load should all exist by now; re-run and report if it persists",
                )
            created += n
        return created

    def _on_pairs(self, verb: str, rtype: str, pair: Pair, rows: list[dict]) -> int:
        q = (
            f"UNWIND $rows AS r MATCH (a:{quoted(pair[0])} {{district_id: $d, id: r.start}})"
            f"-[x:{quoted(rtype)}]->(b:{quoted(pair[1])} {{district_id: $d, id: r.end}}) "
            f"WHERE x.district_id = $d {verb} RETURN count(*) AS c"
        )
        return sum(self._one(q, GraphTable.relationships(rtype), rows=chunk) for chunk in batches(rows))

    def existing_rels(self, rtype: str, labels: Iterable[str]) -> list[dict]:
        """The district's ``rtype`` relationships that start at a district node, with both ends' keys."""
        rows: list[dict] = []
        for label in labels:
            rows += [{**r, "sl": label} for r in self.run(
                f"MATCH (a:{quoted(label)} {{district_id: $d}})-[x:{quoted(rtype)}]->(b) WHERE x.district_id = $d "
                "RETURN a.id AS start, b.id AS end, labels(b) AS el, b.district_id AS ed, properties(x) AS p",
                GraphTable.relationships(rtype), d=self.district,
            )]
        return rows

    def delete_outside(self, rtype: str, labels: Iterable[str]) -> int:
        """Delete the district's relationships with an end outside the district (merge cleans them up)."""
        deleted = 0
        for label in labels:
            for arrow in ("-[x:{t}]->(b)", "<-[x:{t}]-(b)"):
                deleted += self._one(
                    f"MATCH (a:{quoted(label)} {{district_id: $d}}){arrow.format(t=quoted(rtype))} "
                    "WHERE x.district_id = $d AND coalesce(b.district_id, '') <> $d DELETE x RETURN count(*) AS c",
                    GraphTable.relationships(rtype),
                )
        return deleted

    def apply_rel_diff(self, rtype: str, diff: RelDiff) -> None:
        """Run what graph_diff worked out for one type, in its order: delete, overwrite, add, create."""
        for pair, items in diff.delete.items():
            self._on_pairs("DELETE x", rtype, pair, items)
        for pair, items in diff.overwrite.items():
            full = [{**i, "props": {**i["props"], DISTRICT_COLUMN: self.district}} for i in items]
            self._on_pairs("SET x = r.props", rtype, pair, full)
        for pair, items in diff.add.items():
            self._on_pairs("SET x += r.props", rtype, pair, items)
        for pair, items in diff.create.items():
            self.create_rels(rtype, pair, items)


def rel_groups(rows: Sequence[dict], label_of: dict[str, str]) -> dict[Pair, Sequence[dict]]:
    """Relationships grouped by the labels of their ends, so each MATCH uses the label's key index.

    A RelRows is grouped without building its rows: each group is a RelRows too, built batch by batch.
    """
    if isinstance(rows, RelRows):
        return rows.by_pair(label_of)
    out: dict[Pair, list[dict]] = defaultdict(list)
    for r in rows:
        out[(label_of[r["start"]], label_of[r["end"]])].append(r)
    return out
