"""The graph store against a real Bolt server: strategies, isolation, verification, rollback, markers."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any
from uuid import uuid4

import neo4j
import pytest

from cert_loader.config import GraphConfig
from cert_loader.errors import StoreError
from cert_loader.graph_input import MARKER_LABEL, GraphInput
from cert_loader.results import GraphTable
from cert_loader.stores.graph import GraphStore
from cert_loader.verify import verify_graph
from cert_loader_tests.fix_graph import graph_input

pytest_plugins = ["cert_loader_tests.fix_graph"]


def load(store: GraphStore, data: GraphInput, strategy: str, *, run_id: str | None = None) -> dict[str, Any]:
    """One district load as the engine runs it: schema, transaction, strategy, verification, marker commit."""
    store.ensure_schema(data.labels)
    tx = store.begin(data.district, run_id or f"run-{uuid4().hex[:8]}")
    try:
        results = tx.load(data, strategy)
        checks = verify_graph(tx.cypher, data, strategy)
        assert all(c.passed for c in checks), [c for c in checks if not c.passed]
        tx.commit({"strategy": strategy})
    finally:
        tx.rollback()
    return {r.table: r for r in results}


def node_props(config: GraphConfig, label: str, district: str) -> dict[str, dict]:
    with neo4j.GraphDatabase.driver(config.uri, auth=(config.user, config.password)) as driver:
        records, _, _ = driver.execute_query(
            f"MATCH (n:{label} {{district_id: $d}}) RETURN n.id AS id, properties(n) AS p",
            {"d": district}, database_=config.database)
    return {r["id"]: r["p"] for r in records}


def rel_props(config: GraphConfig, rtype: str, district: str) -> list[tuple]:
    with neo4j.GraphDatabase.driver(config.uri, auth=(config.user, config.password)) as driver:
        records, _, _ = driver.execute_query(
            f"MATCH (a)-[x:{rtype}]->(b) WHERE x.district_id = $d RETURN a.id AS s, b.id AS e, properties(x) AS p",
            {"d": district}, database_=config.database)
    return sorted((r["s"], r["e"], json.dumps(r["p"], sort_keys=True)) for r in records)


@pytest.fixture
def store(graph_config: GraphConfig):
    with GraphStore(graph_config) as s:
        yield s


NODES = [
    ("s1", "Student", {"name": "Ann", "age": 12, "gpa": 1.0, "tags": ["a", "b"], "gone": None, "id": "x"}),
    ("s2", "Student", {"name": "Bob", "age": 13, "gpa": 3.5, "tags": []}),
    ("s3", "Student", {"name": "Cy", "age": 14, "gpa": 2.0}),
    ("k1", "School", {"name": "North"}),
]
RELS = [
    ("s1", "k1", "ENROLLED_AT", {"since": 2020}),
    ("s2", "k1", "ENROLLED_AT", {"since": 2021}),
    ("s3", "k1", "ENROLLED_AT", {"since": 2022}),
    ("s1", "s2", "KNOWS", {}),
    ("s2", "s3", "KNOWS", {"district_id": "spoof"}),
]


def test_ping(store: GraphStore) -> None:
    assert "Neo4j/5" in store.ping()


def test_ping_bad_password_never_shows_it(graph_config: GraphConfig) -> None:
    bad = GraphConfig(graph_config.uri, graph_config.user, "wrong-password-123", graph_config.database)
    with GraphStore(bad) as s, pytest.raises(StoreError, match="authentication failed") as info:
        s.ping()
    assert info.value.store == "sp" and "wrong-password-123" not in str(info.value)
    assert graph_config.uri in str(info.value)


def test_ping_unreachable(graph_config: GraphConfig) -> None:
    cfg = GraphConfig("bolt://127.0.0.1:1", "root", "secret-pw-1", graph_config.database)
    with GraphStore(cfg) as s, pytest.raises(StoreError, match=r"cannot use bolt://127.0.0.1:1 .*unreachable") as info:
        s.ping()
    assert info.value.transient and "secret-pw-1" not in str(info.value)


def test_ping_unknown_database_names_the_setting(graph_config: GraphConfig) -> None:
    cfg = GraphConfig(graph_config.uri, graph_config.user, graph_config.password, "no_such_db")
    with GraphStore(cfg) as s, pytest.raises(StoreError, match="check CERT_SP_DATABASE") as info:
        s.ping()
    assert "DatabaseNotFound" in str(info.value) and not info.value.transient
    assert isinstance(info.value.driver_error, neo4j.exceptions.Neo4jError)


def test_bad_uri_scheme() -> None:
    with pytest.raises(StoreError, match="scheme 'http' is not Bolt"):
        GraphStore(GraphConfig("http://u:pw@h:1", "u", "pw"))


def test_ensure_schema_is_idempotent(store: GraphStore) -> None:
    first = store.ensure_schema(["Student", "School"])
    assert store.ensure_schema(["Student", "School"]) == first
    assert first["Student"] in ("constraint", "index") and first[MARKER_LABEL] == "index"


def test_insert_loads_typed_properties(store: GraphStore, graph_config: GraphConfig, tmp_path: Path,
                                       graph_district: str) -> None:
    data = graph_input(tmp_path, graph_district, NODES, RELS)
    store.ensure_schema(data.labels)
    with store.begin(graph_district, "run-typed") as tx:
        results = {r.table: r for r in tx.load(data, "insert")}
        checks = verify_graph(tx.cypher, data, "insert")
        tx.commit({"stores": ["ids", "sp"], "district": "ignored", "run_id": "ignored"})
    assert results["nodes:Student"].inserted == 3 and results["relationships:KNOWS"].inserted == 2
    assert results["nodes:Student"].source_file == str(data.nodes_path)
    assert results["nodes:Student"].graph == GraphTable("nodes", "Student")  # typed; ``table`` is its display name
    assert all(c.graph is not None and c.table == c.graph.display for c in checks)
    assert sorted((c.table, c.check, c.passed) for c in checks) == [
        ("nodes:School", "node_count", True), ("nodes:Student", "node_count", True),
        ("relationships:ENROLLED_AT", "dangling", True), ("relationships:ENROLLED_AT", "relationship_count", True),
        ("relationships:KNOWS", "dangling", True), ("relationships:KNOWS", "relationship_count", True)]
    assert store.decision("run-typed")
    assert store.counts(graph_district) == {"nodes": {"Student": 3, "School": 1},
                                            "relationships": {"ENROLLED_AT": 3, "KNOWS": 2}}
    ann = node_props(graph_config, "Student", graph_district)["s1"]
    assert ann == {"id": "s1", "district_id": graph_district, "name": "Ann", "age": 12, "gpa": 1.0, "tags": ["a", "b"]}
    assert type(ann["gpa"]) is float and type(ann["age"]) is int
    knows = {p for *_, p in rel_props(graph_config, "KNOWS", graph_district)}
    assert knows == {json.dumps({"district_id": graph_district})}  # the partition wins over the JSON's


def test_insert_of_existing_node_fails_and_rollback_leaves_graph(store: GraphStore, graph_config: GraphConfig,
                                                                 tmp_path: Path, graph_district: str) -> None:
    load(store, graph_input(tmp_path, graph_district, NODES, RELS), "insert")
    before = (store.counts(graph_district), node_props(graph_config, "Student", graph_district))
    again = graph_input(tmp_path, graph_district, [("s9", "Student", {"name": "New"}), *NODES], RELS)
    tx = store.begin(graph_district, "run-dup")
    with pytest.raises(StoreError) as info:
        tx.load(again, "insert")
    tx.rollback()
    tx.rollback()  # idempotent
    assert info.value.table == "nodes:Student" and "'s1', 's2', 's3'" in str(info.value)
    assert "already exist" in str(info.value) and "use upsert, merge or replace" in str(info.value)
    assert (store.counts(graph_district), node_props(graph_config, "Student", graph_district)) == before
    assert not store.decision("run-dup")


def test_rollback_is_real_and_uncommitted_data_is_invisible(store: GraphStore, graph_config: GraphConfig,
                                                            tmp_path: Path, graph_district: str) -> None:
    load(store, graph_input(tmp_path, graph_district, NODES[:2]), "insert")
    tx = store.begin(graph_district, "run-rb")
    tx.load(graph_input(tmp_path, graph_district, NODES, RELS), "replace")
    # Another session does not see the open transaction's work (read committed on Neo4j and ArcadeDB).
    assert store.counts(graph_district) == {"nodes": {"Student": 2}, "relationships": {}}
    tx.rollback()
    assert store.counts(graph_district) == {"nodes": {"Student": 2}, "relationships": {}}
    assert set(node_props(graph_config, "Student", graph_district)) == {"s1", "s2"}
    with pytest.raises(StoreError, match="already closed"):
        tx.load(graph_input(tmp_path, graph_district, NODES), "insert")


def test_upsert_updates_and_adds(store: GraphStore, graph_config: GraphConfig, tmp_path: Path,
                                 graph_district: str) -> None:
    load(store, graph_input(tmp_path, graph_district, NODES, RELS), "insert")
    nodes = [("s1", "Student", {"age": 99}), ("s2", "Student", {"name": "Bob"}),
             ("s4", "Student", {"name": "Dee", "age": 9}), ("k1", "School", {})]
    rels = [("s1", "k1", "ENROLLED_AT", {"since": 1999}), ("s4", "k1", "ENROLLED_AT", {}),
            ("s1", "s2", "KNOWS", {})]
    results = load(store, graph_input(tmp_path, graph_district, nodes, rels), "upsert")
    st, en = results["nodes:Student"], results["relationships:ENROLLED_AT"]
    assert (st.inserted, st.updated) == (1, 2)  # MERGE cannot tell an unchanged match from an updated one
    assert (en.inserted, en.updated, en.unchanged, en.deleted) == (1, 1, 0, None)
    assert (results["relationships:KNOWS"].unchanged, results["relationships:KNOWS"].updated) == (1, 0)
    people = node_props(graph_config, "Student", graph_district)
    assert people["s1"]["age"] == 99 and people["s1"]["name"] == "Ann"  # SET += keeps the rest
    assert len(people) == 4
    assert store.counts(graph_district)["relationships"] == {"ENROLLED_AT": 4, "KNOWS": 2}


def test_merge_makes_district_equal_source(store: GraphStore, graph_config: GraphConfig, tmp_path: Path,
                                           graph_district: str) -> None:
    first = [*NODES, ("t1", "Teacher", {"name": "T"})]
    load(store, graph_input(tmp_path, graph_district, first, [*RELS, ("t1", "k1", "TEACHES", {})]), "insert")
    nodes = [("s1", "Student", {"name": "Ann", "age": 12, "gpa": 1.0, "tags": ["a", "b"]}),  # unchanged
             ("s2", "Student", {"name": "Bob", "age": 14}),  # changed (and drops gpa, tags)
             ("s4", "Student", {"name": "New"}), ("k1", "School", {"name": "North"})]
    rels = [("s1", "k1", "ENROLLED_AT", {"since": 2020}), ("s2", "k1", "ENROLLED_AT", {"since": 2000}),
            ("s4", "k1", "ENROLLED_AT", {}), ("s1", "s2", "KNOWS", {"w": 1}), ("s1", "s2", "KNOWS", {"w": 2})]
    results = load(store, graph_input(tmp_path, graph_district, nodes, rels), "merge")
    st = results["nodes:Student"]
    assert (st.inserted, st.updated, st.deleted, st.unchanged) == (1, 1, 1, 1)
    assert (results["nodes:Teacher"].deleted, results["nodes:Teacher"].source_rows) == (1, 0)
    en = results["relationships:ENROLLED_AT"]
    assert (en.inserted, en.updated, en.deleted, en.unchanged) == (1, 1, 1, 1)
    kn = results["relationships:KNOWS"]  # s1->s2 {} becomes two parallel ones; s2->s3 goes with s3
    assert (kn.inserted, kn.updated, kn.deleted, kn.unchanged) == (1, 1, 1, 0)
    assert results["relationships:TEACHES"].deleted == 1
    assert store.counts(graph_district) == {"nodes": {"Student": 3, "School": 1},
                                            "relationships": {"ENROLLED_AT": 3, "KNOWS": 2}}
    bob = node_props(graph_config, "Student", graph_district)["s2"]
    assert bob == {"id": "s2", "district_id": graph_district, "name": "Bob", "age": 14}
    again = load(store, graph_input(tmp_path, graph_district, nodes, rels), "merge")
    assert all((r.inserted, r.updated, r.deleted) == (0, 0, 0) for r in again.values()), again


def test_replace_twice(store: GraphStore, tmp_path: Path, graph_district: str) -> None:
    data = graph_input(tmp_path, graph_district, NODES, RELS)
    first = load(store, data, "replace")
    second = load(store, data, "replace")
    assert first["nodes:Student"].inserted == second["nodes:Student"].inserted == 3
    assert second["nodes:Student"].deleted == 3 and second["relationships:ENROLLED_AT"].deleted == 3
    assert store.counts(graph_district) == {"nodes": {"Student": 3, "School": 1},
                                            "relationships": {"ENROLLED_AT": 3, "KNOWS": 2}}


def test_districts_side_by_side(store: GraphStore, graph_config: GraphConfig, tmp_path: Path) -> None:
    one, two = f"d-{uuid4().hex[:8]}", f"d-{uuid4().hex[:8]}"
    load(store, graph_input(tmp_path, one, NODES, RELS), "insert")
    load(store, graph_input(tmp_path, two, NODES, RELS), "insert")  # same ids, other district
    def state() -> tuple:
        return store.counts(two), node_props(graph_config, "Student", two), rel_props(graph_config, "KNOWS", two)

    before = state()
    load(store, graph_input(tmp_path, one, NODES[:1], []), "merge")
    load(store, graph_input(tmp_path, one, NODES, RELS), "replace")
    load(store, graph_input(tmp_path, one, [("s1", "Student", {"age": 1})], []), "upsert")
    assert store.unload(one) == 4
    assert store.counts(one) == {"nodes": {}, "relationships": {}}
    assert state() == before


def test_verify_catches_count_mismatch_and_dangling(store: GraphStore, tmp_path: Path, graph_district: str) -> None:
    data = graph_input(tmp_path, graph_district, NODES, RELS)
    store.ensure_schema(data.labels)
    with store.begin(graph_district, "run-bad") as tx:
        tx.load(data, "insert")
        tx._run("MATCH (n:Student {district_id: $d, id: 's3'}) DETACH DELETE n", None, d=graph_district)
        tx._run("CREATE (:School {district_id: 'elsewhere', id: 'k9'})", None)
        tx._run("MATCH (a:Student {district_id: $d, id: 's1'}), (b:School {district_id: 'elsewhere', id: 'k9'}) "
                "CREATE (a)-[:KNOWS {district_id: $d}]->(b)", None, d=graph_district)
        checks = {(c.table, c.check): c for c in verify_graph(tx.cypher, data, "insert")}
    bad = checks[("nodes:Student", "node_count")]
    assert (bad.passed, bad.expected, bad.actual, bad.examples) == (False, 3, 2, ["s3"])
    en = checks[("relationships:ENROLLED_AT", "relationship_count")]
    assert (en.passed, en.expected, en.actual, en.examples) == (False, 3, 2, [["s3", "k1"]])
    kn = checks[("relationships:KNOWS", "relationship_count")]
    assert (kn.passed, kn.expected, kn.actual) == (True, 2, 2)  # s2->s3 went, s1->k9 came
    dangling = checks[("relationships:KNOWS", "dangling")]
    assert (dangling.passed, dangling.actual, dangling.examples) == (False, 1, [["s1", "k9"]])
    assert checks[("nodes:School", "node_count")].passed
    assert store.counts(graph_district) == {"nodes": {}, "relationships": {}}  # rolled back on exit


def test_decision_marker(store: GraphStore, graph_config: GraphConfig, tmp_path: Path, graph_district: str) -> None:
    run_id = f"load-{uuid4().hex[:8]}"
    load(store, graph_input(tmp_path, graph_district, NODES[:1]), "insert", run_id=run_id)
    assert store.decision(run_id) and not store.decision("load-never")
    with neo4j.GraphDatabase.driver(graph_config.uri, auth=(graph_config.user, graph_config.password)) as driver:
        records, _, _ = driver.execute_query("MATCH (m:CertLoaderRun {run_id: $r}) RETURN properties(m) AS p",
                                             {"r": run_id}, database_=graph_config.database)
    marker = records[0]["p"]
    assert "id" not in marker and "district_id" not in marker
    assert (marker["district"], marker["decision"], marker["strategy"]) == (graph_district, "COMMIT", "insert")
    assert marker["committed_at"].endswith("Z")
    assert store.unload(graph_district) == 1 and store.decision(run_id)  # unload keeps markers
    tx = store.begin(graph_district, "run-x")
    with pytest.raises(ValueError, match="marker keys district_id, id are refused"):
        tx.commit({"district_id": graph_district, "id": "x"})
    tx.rollback()
    assert not store.decision("run-x")


def test_unknown_strategy_and_wrong_district(store: GraphStore, tmp_path: Path, graph_district: str) -> None:
    with store.begin(graph_district, "run-u") as tx:
        with pytest.raises(StoreError, match="unknown strategy 'upsrt'; choose from insert, upsert, merge, replace"):
            tx.load(graph_input(tmp_path, graph_district, NODES[:1]), "upsrt")
        with pytest.raises(StoreError, match="input is for district 'other'"):
            tx.load(graph_input(tmp_path, "other", NODES[:1]), "insert")


# -- scale ------------------------------------------------------------------------------------------------------

def _big_graph(tmp_path: Path, district: str, n: int, r: int) -> GraphInput:
    nodes = [(f"n{i}", "Person" if i % 4 else "School", {"name": f"x{i}", "k": i, "f": i / 3}) for i in range(n)]
    rels = [(f"n{i % n}", f"n{(i * 7919 + 13) % n}", "KNOWS" if i % 3 else "ATTENDS", {"w": i}) for i in range(r)]
    return graph_input(tmp_path, district, nodes, rels)


def _raw_load(config: GraphConfig, data: GraphInput, district: str) -> tuple[float, float]:
    """The same data through the bare driver: plain CREATE batches in one transaction, no checks, no verify."""
    with neo4j.GraphDatabase.driver(config.uri, auth=(config.user, config.password)) as driver:
        with driver.session(database=config.database) as session:
            t0 = time.monotonic()
            tx = session.begin_transaction()
            for label, rows in data.nodes.items():
                for i in range(0, len(rows), 10_000):
                    tx.run(f"UNWIND $rows AS r CREATE (n:{label} {{district_id: $d, id: r.id}}) SET n += r.props",
                           rows=rows[i:i + 10_000], d=district).consume()
            t1 = time.monotonic()
            for rtype, rows in data.relationships.items():
                by_pair: dict[tuple, list] = {}
                for row in rows:
                    by_pair.setdefault((data.label_of[row["start"]], data.label_of[row["end"]]), []).append(row)
                for (a, b), items in by_pair.items():
                    for i in range(0, len(items), 10_000):
                        tx.run(f"UNWIND $rows AS r MATCH (a:{a} {{district_id: $d, id: r.start}}) "
                               f"MATCH (b:{b} {{district_id: $d, id: r.end}}) "
                               f"CREATE (a)-[x:{rtype}]->(b) SET x += r.props, x.district_id = $d",
                               rows=items[i:i + 10_000], d=district).consume()
            tx.commit()
            return t1 - t0, time.monotonic() - t1


@pytest.mark.slow
def test_scale_100k_nodes_250k_relationships(store: GraphStore, graph_config: GraphConfig, tmp_path: Path,
                                             capsys: pytest.CaptureFixture) -> None:
    n, r = 100_000, 250_000
    district, raw_district = f"d-{uuid4().hex[:8]}", f"d-{uuid4().hex[:8]}"
    t0 = time.monotonic()
    data = _big_graph(tmp_path, district, n, r)
    read_s = time.monotonic() - t0
    store.ensure_schema(data.labels)
    warm = _big_graph(tmp_path, f"d-{uuid4().hex[:8]}", 10_000, 25_000)  # JIT-warm the server for both paths
    load(store, warm, "insert")
    _raw_load(graph_config, warm, f"d-{uuid4().hex[:8]}")
    t0 = time.monotonic()
    results = load(store, data, "insert")
    total_s = time.monotonic() - t0
    node_s = sum(t.duration_s for t in results.values() if t.graph.kind == "nodes")
    rel_s = sum(t.duration_s for t in results.values() if t.graph.kind == "relationships")
    raw_node_s, raw_rel_s = _raw_load(graph_config, data, raw_district)
    assert store.counts(district) == store.counts(raw_district) == {
        "nodes": {"Person": 75_000, "School": 25_000},
        "relationships": {"ATTENDS": r // 3 + 1, "KNOWS": r - r // 3 - 1}}
    t0 = time.monotonic()
    replaced = load(store, data, "replace")
    replace_s = time.monotonic() - t0
    t0 = time.monotonic()
    merged = load(store, data, "merge")
    merge_s = time.monotonic() - t0
    assert all(t.unchanged == t.source_rows for t in merged.values())
    assert replaced["nodes:Person"].deleted == 75_000
    with capsys.disabled():
        print(f"\nsp scale ({n:,} nodes, {r:,} relationships): read+validate {read_s:.1f}s")
        print(f"  cert_loader insert: nodes {n / node_s:,.0f}/s, relationships {r / rel_s:,.0f}/s, "
              f"whole load with verify + commit {total_s:.1f}s")
        print(f"  raw driver UNWIND CREATE: nodes {n / raw_node_s:,.0f}/s, relationships {r / raw_rel_s:,.0f}/s")
        print(f"  replace (delete + create) {replace_s:.1f}s, merge with nothing changed {merge_s:.1f}s")
    assert store.unload(district) == n and store.unload(raw_district) == n
