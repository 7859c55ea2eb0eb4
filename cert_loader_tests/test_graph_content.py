"""The graph's content check against a real Bolt server: clean loads pass, every kind of stored change is caught.

"What happens between the file and the stored node" is simulated inside the load's own open transaction:
the strategy loads, a statement changes what was stored, then the check runs — as the engine runs it.
"""

from __future__ import annotations

from pathlib import Path
from uuid import uuid4

import pytest

from cert_loader.results import CheckResult
from cert_loader.stores.graph import GraphStore, GraphTransaction
from cert_loader.verify import verify_graph
from cert_loader_tests.fix_graph import graph_input

NODES = [
    ("s1", "Student", {"name": "Ann", "age": 12, "gpa": 1.0, "tags": ["a", "b"], "ok": True, "gone": None}),
    ("s2", "Student", {"name": "Bob", "age": 13, "gpa": 3.5, "tags": [], "scores": [1, 2, 3]}),
    ("s3", "Student", {"name": "Nguyễn", "age": 14, "gpa": -0.25, "ratios": [0.5, 1.0]}),
    ("k1", "School", {"name": "North", "founded": 1901}),
]
RELS = [
    ("s1", "k1", "ENROLLED_AT", {"since": 2020, "full_time": True}),
    ("s2", "k1", "ENROLLED_AT", {"since": 2021}),
    ("s3", "k1", "ENROLLED_AT", {"since": 2022}),
    ("s1", "s2", "KNOWS", {}),
    ("s1", "s2", "KNOWS", {}),  # parallel relationships: a multiset, not a set
    ("s1", "s2", "KNOWS", {"w": 1.5}),
    ("s2", "s3", "KNOWS", {"w": 2.0}),
]


@pytest.fixture
def store(graph_config):
    with GraphStore(graph_config) as s:
        yield s


def content(tx: GraphTransaction, data, strategy: str) -> dict[str, CheckResult]:
    checks = verify_graph(tx.cypher, data, strategy, "content")
    return {c.table: c for c in checks if c.check == "content"}


def loaded(store: GraphStore, data, strategy: str) -> GraphTransaction:
    store.ensure_schema(data.labels)
    tx = store.begin(data.district, f"run-{uuid4().hex[:8]}")
    tx.load(data, strategy)
    return tx


def test_clean_loads_pass_for_every_strategy(store: GraphStore, tmp_path: Path, graph_district: str) -> None:
    data = graph_input(tmp_path, graph_district, NODES, RELS)
    for strategy in ("insert", "upsert", "merge", "replace", "upsert"):
        tx = loaded(store, data, strategy)
        try:
            checks = verify_graph(tx.cypher, data, strategy, "content")
            assert all(c.passed for c in checks), (strategy, [c for c in checks if not c.passed])
            got = {c.table: (c.expected, c.actual) for c in checks if c.check == "content"}
            assert got == {"nodes:School": (1, 1), "nodes:Student": (3, 3), "relationships:ENROLLED_AT": (3, 3),
                           "relationships:KNOWS": (4, 4)}, strategy
            tx.commit({"strategy": strategy})
        finally:
            tx.rollback()
    assert store.unload(graph_district) == 4


def test_changed_values_are_caught(store: GraphStore, tmp_path: Path, graph_district: str) -> None:
    data = graph_input(tmp_path, graph_district, NODES, RELS)
    with loaded(store, data, "insert") as tx:
        run = tx.cypher.run
        run("MATCH (n:Student {district_id: $d, id: 's1'}) SET n.name = 'ANN', n.age = 12.0, n.tags = ['b', 'a']",
            None, d=graph_district)
        run("MATCH (n:Student {district_id: $d, id: 's2'}) SET n.scores = [1.0, 2.0, 3.0], n.extra = 'x'",
            None, d=graph_district)
        run("MATCH (n:School {district_id: $d, id: 'k1'}) SET n.founded = true", None, d=graph_district)
        run("MATCH (a:Student {district_id: $d, id: 's2'})-[x:ENROLLED_AT]->() SET x.since = 2021.0",
            None, d=graph_district)
        run("MATCH (a:Student {district_id: $d, id: 's1'})-[x:KNOWS]->() WHERE x.w = 1.5 SET x.w = 1.25",
            None, d=graph_district)
        checks = content(tx, data, "insert")
    student = checks["nodes:Student"]
    assert not student.passed and "2 node(s) differ" in student.detail
    assert student.examples == [
        {"id": "s1", "property": "age", "file": 12, "stored": 12.0},
        {"id": "s1", "property": "name", "file": "Ann", "stored": "ANN"},
        {"id": "s1", "property": "tags", "file": ["a", "b"], "stored": ["b", "a"]},
        {"id": "s2", "property": "extra", "file": None, "stored": "x"},
        {"id": "s2", "property": "scores", "file": [1, 2, 3], "stored": [1.0, 2.0, 3.0]},
    ]
    assert type(student.examples[0]["stored"]) is float
    school = checks["nodes:School"]
    assert not school.passed and school.examples == [{"id": "k1", "property": "founded", "file": 1901, "stored": True}]
    enrolled = checks["relationships:ENROLLED_AT"]
    assert not enrolled.passed and "1 relationship(s) differ" in enrolled.detail
    assert enrolled.examples == [{"start": "s2", "end": "k1", "property": "since", "file": 2021, "stored": 2021.0}]
    knows = checks["relationships:KNOWS"]
    assert not knows.passed and knows.examples == [
        {"start": "s1", "end": "s2", "property": "w", "file": 1.5, "stored": 1.25}]
    assert store.counts(graph_district) == {"nodes": {}, "relationships": {}}  # rolled back


def test_missing_and_extra_nodes_and_relationships(store: GraphStore, tmp_path: Path, graph_district: str) -> None:
    data = graph_input(tmp_path, graph_district, NODES, RELS)
    with loaded(store, data, "replace") as tx:
        run = tx.cypher.run
        run("MATCH (n:Student {district_id: $d, id: 's3'}) DETACH DELETE n", None, d=graph_district)
        run("CREATE (:Student {district_id: $d, id: 's9', name: 'Eve'})", None, d=graph_district)
        run("CREATE (:Teacher {district_id: $d, id: 't1'})", None, d=graph_district)  # a label the source lacks
        run("MATCH (a:Student {district_id: $d, id: 's1'})-[x:KNOWS]->() WHERE x.w IS NULL "
            "WITH x LIMIT 1 DELETE x", None, d=graph_district)  # one of the two equal parallel ones
        run("MATCH (a:Student {district_id: $d, id: 's1'}), (b:School {district_id: $d, id: 'k1'}) "
            "CREATE (a)-[:ENROLLED_AT {district_id: $d, since: 2020, full_time: true}]->(b)", None, d=graph_district)
        checks = content(tx, data, "replace")
    student = checks["nodes:Student"]
    assert (student.passed, student.expected, student.actual) == (False, 3, 3)
    assert student.examples == [{"id": "s3", "missing": True}, {"id": "s9", "extra": True}]
    assert checks["nodes:Teacher"].examples == [{"id": "t1", "extra": True}] and checks["nodes:School"].passed
    assert checks["relationships:KNOWS"].examples == [{"start": "s1", "end": "s2", "missing": {}},
                                                      {"start": "s2", "end": "s3", "missing": {"w": 2.0}}]
    enrolled = checks["relationships:ENROLLED_AT"]  # a duplicate of an equal relationship is one too many
    assert enrolled.examples[0] == {"start": "s1", "end": "k1", "extra": {"since": 2020, "full_time": True}}


def test_upsert_compares_only_the_source(store: GraphStore, tmp_path: Path, graph_district: str) -> None:
    before = graph_input(tmp_path, graph_district, NODES + [("s8", "Student", {"name": "Old"})],
                         RELS + [("s8", "k1", "ENROLLED_AT", {"since": 1999})])
    tx = loaded(store, before, "insert")
    tx.commit()
    # s1 keeps `ok` (SET += keeps what the source no longer gives); s8 and its relationship stay.
    data = graph_input(tmp_path, graph_district, [("s1", "Student", {"name": "Ann", "age": 13})] + NODES[1:],
                       [r for r in RELS if r[0] != "s1"])
    try:
        with loaded(store, data, "upsert") as tx:
            checks = content(tx, data, "upsert")
            assert all(c.passed for c in checks.values()), checks
            tx.cypher.run("MATCH (n:Student {district_id: $d, id: 's1'}) SET n.age = 14", None, d=graph_district)
            assert content(tx, data, "upsert")["nodes:Student"].examples == [
                {"id": "s1", "property": "age", "file": 13, "stored": 14}]
            exact = content(tx, data, "merge")  # the same district under merge: s8 is one too many
            assert {"id": "s8", "extra": True} in exact["nodes:Student"].examples
    finally:
        store.unload(graph_district)


def test_examples_are_capped(store: GraphStore, tmp_path: Path, graph_district: str) -> None:
    nodes = [(f"n{i}", "Person", {"k": i}) for i in range(30)]
    data = graph_input(tmp_path, graph_district, nodes)
    with loaded(store, data, "insert") as tx:
        tx.cypher.run("MATCH (n:Person {district_id: $d}) SET n.k = toFloat(n.k)", None, d=graph_district)
        person = content(tx, data, "insert")["nodes:Person"]
    assert not person.passed and person.detail.startswith("30 node(s) differ") and len(person.examples) == 5
