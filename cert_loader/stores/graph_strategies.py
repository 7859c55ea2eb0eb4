"""The four load strategies on the graph (DESIGN.md section 6): batched, portable Cypher in the load's transaction."""

from __future__ import annotations

import math
import re
import time
from collections import defaultdict
from typing import Any, Callable, Iterable

from cert_loader.constants import GRAPH_STORE, STRATEGIES
from cert_loader.errors import StoreError
from cert_loader.graph_input import IDENTIFIER_RE, MARKER_LABEL, GraphInput
from cert_loader.results import TableResult

STORE = GRAPH_STORE
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

# run(query, table, **params) -> records as dicts; the transaction maps driver errors to StoreError.
Run = Callable[..., list[dict[str, Any]]]


def quoted(name: str) -> str:
    """A label or type for formatting into Cypher: only after the one identifier pattern matched (section 6)."""
    if not isinstance(name, str) or not IDENTIFIER_RE.match(name):
        raise StoreError(f"{name!r} is not a valid label or relationship type", store=STORE)
    return f"`{name}`"


def batches(rows: list, size: int = BATCH) -> Iterable[list]:
    for i in range(0, len(rows), size):
        yield rows[i:i + size]


def same_value(a: Any, b: Any) -> bool:
    """Typed equality: 1 and 1.0 and True differ here, as they do for Neo4j's property types."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    if isinstance(a, list):
        return len(a) == len(b) and all(same_value(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same_value(a[k], b[k]) for k in a)
    return a == b


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


def _covers(old: dict, new: dict) -> bool:
    """Whether ``SET x += new`` would leave ``old`` as it is (upsert's "unchanged")."""
    return all(k in old and same_value(old[k], v) for k, v in new.items())


class GraphLoader:
    """Strategy work of one district inside one open transaction; every key is ``(district_id, id)`` (section 2)."""

    def __init__(self, run: Run, district: str) -> None:
        self.run, self.district = run, district

    def _one(self, query: str, table: str, **params: Any) -> int:
        rows = self.run(query, table, d=self.district, **params)
        return int(rows[0]["c"]) if rows else 0

    # -- what the district holds ------------------------------------------------------------------
    def graph_labels(self) -> list[str]:
        """Every label in the database the loader could have written (the district's are among them)."""
        rows = self.run("CALL db.labels() YIELD label RETURN label", None)
        return sorted(r["label"] for r in rows if IDENTIFIER_RE.match(r["label"]) and r["label"] != MARKER_LABEL)

    def count_nodes(self, label: str) -> int:
        return self._one(f"MATCH (n:{quoted(label)} {{district_id: $d}}) RETURN count(n) AS c", f"nodes:{label}")

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
                f"nodes:{label}", d=self.district,
            ):
                out[r["t"]]["count"] += r["c"]
                out[r["t"]]["end_outside"] += r["o"]
            for r in self.run(
                f"MATCH (b:{lab} {{district_id: $d}})<-[x]-(a) WHERE x.district_id = $d "
                "AND coalesce(a.district_id, '') <> $d RETURN type(x) AS t, count(x) AS c",
                f"nodes:{label}", d=self.district,
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
                    f"relationships:{rtype}", d=self.district, k=limit,
                )
                found += [[r["a"], r["b"]] if arrow.startswith("-") else [r["b"], r["a"]] for r in rows]
        return found[:limit]

    # -- deletes -------------------------------------------------------------------------------------
    def delete_batch(self, label: str) -> int:
        """Delete up to DELETE_BATCH district nodes of ``label`` with their relationships (section 9)."""
        return self._one(
            f"MATCH (n:{quoted(label)} {{district_id: $d}}) WITH n LIMIT $k DETACH DELETE n RETURN count(*) AS c",
            f"nodes:{label}", k=DELETE_BATCH,
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
        return sum(self._one(q, f"nodes:{label}", ids=chunk) for chunk in batches(ids))

    # -- nodes -----------------------------------------------------------------------------------------
    def create_nodes(self, label: str, rows: list[dict], *, check_existing: bool) -> int:
        table, lab = f"nodes:{label}", quoted(label)
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
                        store=STORE, table=table, district=self.district,
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
        inserted = sum(self._one(q, f"nodes:{label}", rows=chunk) for chunk in batches(rows))
        return inserted, len(rows) - inserted

    def existing_nodes(self, label: str) -> dict[str, dict]:
        rows = self.run(
            f"MATCH (n:{quoted(label)} {{district_id: $d}}) RETURN n.id AS id, properties(n) AS p",
            f"nodes:{label}", d=self.district,
        )
        return {r["id"]: r["p"] for r in rows}

    def set_nodes(self, label: str, rows: list[dict]) -> int:
        """Make each node's properties exactly ``props`` plus its key (merge's update)."""
        q = (f"UNWIND $rows AS r MATCH (n:{quoted(label)} {{district_id: $d, id: r.id}}) SET n = r.props "
             "RETURN count(n) AS c")
        full = [{"id": r["id"], "props": {**r["props"], "id": r["id"], "district_id": self.district}} for r in rows]
        return sum(self._one(q, f"nodes:{label}", rows=chunk) for chunk in batches(full))

    # -- relationships ------------------------------------------------------------------------------
    def create_rels(self, rtype: str, pair: tuple[str, str], rows: list[dict]) -> int:
        """Create relationships between district nodes found by their key, never by internal ids (section 2)."""
        table = f"relationships:{rtype}"
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
                    store=STORE, table=table, district=self.district,
                    hint="the nodes of this load should all exist by now; re-run and report if it persists",
                )
            created += n
        return created

    def _on_pairs(self, verb: str, rtype: str, pair: tuple[str, str], rows: list[dict]) -> int:
        q = (
            f"UNWIND $rows AS r MATCH (a:{quoted(pair[0])} {{district_id: $d, id: r.start}})"
            f"-[x:{quoted(rtype)}]->(b:{quoted(pair[1])} {{district_id: $d, id: r.end}}) "
            f"WHERE x.district_id = $d {verb} RETURN count(*) AS c"
        )
        return sum(self._one(q, f"relationships:{rtype}", rows=chunk) for chunk in batches(rows))

    def existing_rels(self, rtype: str, labels: Iterable[str]) -> list[dict]:
        """The district's ``rtype`` relationships that start at a district node, with both ends' keys."""
        rows: list[dict] = []
        for label in labels:
            rows += [{**r, "sl": label} for r in self.run(
                f"MATCH (a:{quoted(label)} {{district_id: $d}})-[x:{quoted(rtype)}]->(b) WHERE x.district_id = $d "
                "RETURN a.id AS start, b.id AS end, labels(b) AS el, b.district_id AS ed, properties(x) AS p",
                f"relationships:{rtype}", d=self.district,
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
                    f"relationships:{rtype}",
                )
        return deleted

    def sync_rels(self, rtype: str, rows: list[dict], label_of: dict[str, str], labels: list[str], *,
                  exact: bool) -> TableResult:
        """Upsert (``exact=False``) or merge (``exact=True``) one relationship type.

        A relationship has no key of its own: it is identified by its type and its two end keys. Where the
        source and the graph each hold one between the same ends, it is updated in place; parallel
        relationships (several of one type between the same ends) are matched by their whole property map,
        and under merge a group that still differs is deleted and created again.
        """
        res = TableResult(store=STORE, table=f"relationships:{rtype}", source_rows=len(rows),
                          inserted=0, updated=0, deleted=0, unchanged=0)
        if exact:
            res.deleted += self.delete_outside(rtype, labels)
        old: dict[tuple, list[dict]] = defaultdict(list)
        for r in self.existing_rels(rtype, labels):
            if r["ed"] != self.district or not r["el"]:
                continue  # upsert leaves them; merge deleted them above
            props = {k: v for k, v in r["p"].items() if k != "district_id"}
            old[(r["start"], r["sl"], r["end"], r["el"][0])].append(props)
        new: dict[tuple, list[dict]] = defaultdict(list)
        for r in rows:
            new[(r["start"], label_of[r["start"]], r["end"], label_of[r["end"]])].append(r["props"])
        todo: dict[str, dict[tuple, list]] = {k: defaultdict(list) for k in ("create", "delete", "set", "add")}
        for key in old.keys() | new.keys():
            o, n = old.get(key, []), new.get(key, [])
            pair, ends = (key[1], key[3]), {"start": key[0], "end": key[2]}
            if not o:
                todo["create"][pair] += [{**ends, "props": p} for p in n]
                res.inserted += len(n)
            elif not n:
                if exact:
                    todo["delete"][pair].append(ends)
                    res.deleted += len(o)
            elif len(o) == 1 and len(n) == 1:
                fits = same_value(o[0], n[0]) if exact else _covers(o[0], n[0])
                if fits:
                    res.unchanged += 1
                else:
                    todo["set" if exact else "add"][pair].append({**ends, "props": n[0]})
                    res.updated += 1
            else:
                o_left, n_left = list(o), []
                for p in n:
                    hit = next((i for i, q in enumerate(o_left) if same_value(q, p)), None)
                    if hit is None:
                        n_left.append(p)
                    else:
                        o_left.pop(hit)
                res.unchanged += len(n) - len(n_left)
                if not exact:
                    todo["create"][pair] += [{**ends, "props": p} for p in n_left]
                    res.inserted += len(n_left)
                elif o_left or n_left:
                    todo["delete"][pair].append(ends)
                    todo["create"][pair] += [{**ends, "props": p} for p in n]
                    both = min(len(o_left), len(n_left))
                    res.updated += both
                    res.inserted += len(n_left) - both
                    res.deleted += len(o_left) - both
        for pair, items in todo["delete"].items():
            self._on_pairs("DELETE x", rtype, pair, items)
        for pair, items in todo["set"].items():
            full = [{**i, "props": {**i["props"], "district_id": self.district}} for i in items]
            self._on_pairs("SET x = r.props", rtype, pair, full)
        for pair, items in todo["add"].items():
            self._on_pairs("SET x += r.props", rtype, pair, items)
        for pair, items in todo["create"].items():
            self.create_rels(rtype, pair, items)
        return res


def rel_groups(rows: list[dict], label_of: dict[str, str]) -> dict[tuple[str, str], list[dict]]:
    """Relationships grouped by the labels of their ends, so each MATCH uses the label's key index."""
    out: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for r in rows:
        out[(label_of[r["start"]], label_of[r["end"]])].append(r)
    return out


def run_strategy(loader: GraphLoader, data: GraphInput, strategy: str) -> list[TableResult]:
    """Apply ``strategy`` to the district's graph; one TableResult per label and per relationship type."""
    if strategy not in STRATEGIES:
        raise StoreError(f"unknown strategy {strategy!r}", store=STORE, hint=f"choose from {', '.join(STRATEGIES)}")
    node_src, rel_src = str(data.nodes_path or "") or None, str(data.rels_path or "") or None
    results: dict[str, TableResult] = {}

    def result(table: str, rows: int, src: str | None) -> TableResult:
        return results.setdefault(table, TableResult(store=STORE, table=table, source_rows=rows, source_file=src))

    def timed(res: TableResult, started: float) -> None:
        res.duration_s += time.monotonic() - started

    labels = loader.graph_labels() if strategy in ("replace", "merge") else []
    if strategy == "replace":  # delete the district's subgraph: DETACH DELETE takes the relationships along
        for rtype, seen in loader.rel_census(labels).items():
            res = result(f"relationships:{rtype}", len(data.relationships.get(rtype, [])), rel_src)
            res.deleted = seen["count"] + seen["start_outside"]
        for label in labels:
            t0 = time.monotonic()
            res = result(f"nodes:{label}", len(data.nodes.get(label, [])), node_src)
            res.deleted = loader.delete_label(label)
            timed(res, t0)
    removed: dict[str, list[str]] = {}
    for label, rows in data.nodes.items():
        t0 = time.monotonic()
        res = result(f"nodes:{label}", len(rows), node_src)
        if strategy in ("insert", "replace"):
            res.inserted = loader.create_nodes(label, rows, check_existing=strategy == "insert")
            if strategy == "replace":
                res.deleted = res.deleted or 0
        elif strategy == "upsert":
            res.inserted, res.updated = loader.upsert_nodes(label, rows)
        else:
            old = loader.existing_nodes(label)
            fresh, changed = [], []
            for r in rows:
                before = old.pop(r["id"], None)
                if before is None:
                    fresh.append(r)
                elif not same_value(before, {**r["props"], "id": r["id"], "district_id": data.district}):
                    changed.append(r)
            res.inserted = loader.create_nodes(label, fresh, check_existing=False)
            res.updated = loader.set_nodes(label, changed)
            res.unchanged = len(rows) - len(fresh) - len(changed)
            removed[label] = list(old)  # deleted after the relationships, so those are counted per type
        timed(res, t0)
    if strategy == "merge":
        labels = sorted(set(labels) | set(data.nodes))
        for rtype in sorted(set(loader.rel_census(labels)) | set(data.relationships)):
            t0 = time.monotonic()
            synced = loader.sync_rels(rtype, data.relationships.get(rtype, []), data.label_of, labels, exact=True)
            synced.source_file = rel_src
            results[synced.table] = synced
            timed(synced, t0)
        for label in labels:
            t0 = time.monotonic()
            if label in data.nodes:
                res = results[f"nodes:{label}"]
                res.deleted = loader.delete_node_ids(label, removed[label])
            else:
                res = result(f"nodes:{label}", 0, node_src)
                res.deleted, res.inserted, res.updated, res.unchanged = loader.delete_label(label), 0, 0, 0
            timed(res, t0)
        return [r for r in results.values() if r.source_rows or r.deleted or r.inserted]
    for rtype, rows in data.relationships.items():
        t0 = time.monotonic()
        if strategy == "upsert":
            synced = loader.sync_rels(rtype, rows, data.label_of, sorted(data.nodes), exact=False)
            synced.source_file, synced.deleted = rel_src, None
            results[synced.table] = synced
        else:
            res = result(f"relationships:{rtype}", len(rows), rel_src)
            res.inserted = sum(loader.create_rels(rtype, pair, items)
                               for pair, items in rel_groups(rows, data.label_of).items())
            if strategy == "replace":
                res.deleted = res.deleted or 0
        timed(results[f"relationships:{rtype}"], t0)
    return [r for r in results.values() if r.source_rows or r.deleted]
