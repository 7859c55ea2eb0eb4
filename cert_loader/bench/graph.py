"""The graph measurement: the product's load (strategy, verification, marker, commit) next to a raw driver UNWIND of the same data."""

from __future__ import annotations

import json
import secrets
import statistics
import time
from pathlib import Path
from typing import Any, Callable

import neo4j
import pyarrow as pa
import pyarrow.parquet as pq

from cert_loader.config import GraphConfig
from cert_loader.graph_input import GraphInput, read_graph_input
from cert_loader.stores.graph import GraphStore
from cert_loader.stores.graph_cypher import rel_groups
from cert_loader.verify.graph import verify_graph

BATCH = 10_000


def write_graph(folder: Path, district: str, nodes: int, rels: int, labels: int = 4, types: int = 3) -> tuple[Path, Path]:
    """Nodes over a few labels with three properties each; relationships over a few types with one."""
    folder.mkdir(parents=True, exist_ok=True)
    label_names = ["Student", "School", "Staff", "Course", "Section", "Parent"][:labels]
    type_names = ["ATTENDS", "KNOWS", "TEACHES", "ENROLLED_IN"][:types]
    pq.write_table(pa.table({
        "id": [f"n{i}" for i in range(nodes)],
        "labels": [label_names[i % labels] for i in range(nodes)],
        "district_id": [district] * nodes,
        "properties": [json.dumps({"name": f"x{i}", "k": i, "f": i / 3}) for i in range(nodes)],
    }), folder / "nodes.parquet")
    pq.write_table(pa.table({
        "start": [f"n{i % nodes}" for i in range(rels)],
        "end": [f"n{(i * 7919 + 13) % nodes}" for i in range(rels)],
        "type": [type_names[i % types] for i in range(rels)],
        "properties": [json.dumps({"w": i}) for i in range(rels)],
    }), folder / "relationships.parquet")
    return folder / "nodes.parquet", folder / "relationships.parquet"


def product(store: GraphStore, data: GraphInput) -> float:
    """What a load does on the graph: one transaction, the strategy, the verification, the run marker, commit."""
    started = time.perf_counter()
    tx = store.begin(data.district, "bench-" + secrets.token_hex(4))
    try:
        tx.load(data, "insert")
        failed = [c for c in verify_graph(tx.cypher, data, "insert") if not c.passed]
        assert not failed, failed
        tx.commit({"bench": True})
    finally:
        tx.rollback()
    return time.perf_counter() - started


def raw(config: GraphConfig, data: GraphInput, *, inline: bool) -> float:
    """The same nodes and relationships through the bare driver, one transaction, no checks.

    ``inline=False`` is the UNWIND of cert_loader_tests/test_graph.py (``SET n += r.props``); ``inline=True``
    puts the properties in CREATE's map, the statement shape the product uses.
    """
    d = data.district
    with neo4j.GraphDatabase.driver(config.uri, auth=(config.user, config.password)) as driver, \
            driver.session(database=config.database) as session:
        started = time.perf_counter()
        tx = session.begin_transaction()
        for label, rows in data.nodes.items():
            keys = tuple(rows[0]["props"]) if rows else ()
            for i in range(0, len(rows), BATCH):
                chunk = rows[i:i + BATCH]
                if inline:
                    props = "".join(f", `{k}`: r.props.`{k}`" for k in keys)
                    tx.run(f"UNWIND $rows AS r CREATE (n:`{label}` {{district_id: $d, id: r.id{props}}})", rows=chunk, d=d).consume()
                else:
                    tx.run(f"UNWIND $rows AS r CREATE (n:`{label}` {{district_id: $d, id: r.id}}) SET n += r.props",
                           rows=chunk, d=d).consume()
        for rtype, rows in data.relationships.items():
            for (a, b), items in rel_groups(rows, data.label_of).items():
                keys = tuple(items[0]["props"]) if items else ()
                match = f"UNWIND $rows AS r MATCH (a:`{a}` {{district_id: $d, id: r.start}}) MATCH (b:`{b}` {{district_id: $d, id: r.end}}) "
                for i in range(0, len(items), BATCH):
                    if inline:
                        props = "".join(f", `{k}`: r.props.`{k}`" for k in keys)
                        q = match + f"CREATE (a)-[x:`{rtype}` {{district_id: $d{props}}}]->(b)"
                    else:
                        q = match + f"CREATE (a)-[x:`{rtype}`]->(b) SET x += r.props, x.district_id = $d"
                    tx.run(q, rows=items[i:i + BATCH], d=d).consume()
        tx.commit()
        return time.perf_counter() - started


def measure_graph(config: GraphConfig, nodes: int, rels: int, repeat: int, work: Path,
                  say: Callable[[str], None]) -> dict[str, Any]:
    """Product and both raw shapes, ``repeat`` rounds in rotating order; each run on a fresh district, unloaded after."""
    from cert_loader.bench.relational import rotated, summary

    with GraphStore(config) as store:
        def fresh(tag: str) -> GraphInput:
            district = f"bench-{tag}-{secrets.token_hex(3)}"
            n, r = write_graph(work / district, district, nodes, rels)
            return read_graph_input(n, r, district)

        warm = fresh("warm")
        store.ensure_schema(warm.labels)
        product(store, warm)  # the server's JIT warms on both statement shapes
        warm_raw = fresh("warm")
        raw(config, warm_raw, inline=False)
        store.unload(warm_raw.district)
        times: dict[str, list[float]] = {"product": [], "raw_set": [], "raw_inline": []}
        for i in range(repeat):
            for what in rotated(list(times), i):
                data = fresh(what)
                if what == "product":
                    seconds = product(store, data)
                else:
                    seconds = raw(config, data, inline=what == "raw_inline")
                times[what].append(seconds)
                store.unload(data.district)
            say(f"graph round {i + 1}/{repeat}: " + ", ".join(f"{k} {v[-1]:.2f}s" for k, v in times.items()))
        store.unload(warm.district)
    items = nodes + rels
    out: dict[str, Any] = {"nodes": nodes, "relationships": rels}
    for what, ts in times.items():
        out[what] = summary(ts, items)
        out[what]["items_per_s"] = out[what].pop("rows_per_s")
    for what in ("raw_set", "raw_inline"):
        out[f"ratio_vs_{what}"] = round(statistics.median(times[what]) / statistics.median(times["product"]), 3)
    return out
