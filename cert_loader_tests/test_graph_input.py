"""Every refusal of the graph input reader, with its message (DESIGN.md section 2)."""

from __future__ import annotations

import gc
import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from cert_loader.errors import InputError
from cert_loader.graph_input import (
    NODE_COLUMNS, REL_COLUMNS, GraphInput, NodeRows, RelRows, _checked_nodes, _checked_relationships, _fast_read,
    _read_arrays, _read_columns, node_ids, read_graph_input, rel_ends, subset,
)
from cert_loader.stores.graph_cypher import rel_groups

D = "district-001"


def _props(value: Any) -> str | None:
    return value if value is None or isinstance(value, str) else json.dumps(value)


def write_graph(tmp_path: Path, nodes: list[tuple], rels: list[tuple] | None = None) -> tuple[Path, Path | None]:
    """Write nodes (id, label, district_id, props) and relationships (start, end, type, props) as parquet."""
    npath = tmp_path / "nodes.parquet"
    pq.write_table(pa.table({
        "id": pa.array([n[0] for n in nodes], pa.string()),
        "labels": pa.array([n[1] for n in nodes], pa.string()),
        "district_id": pa.array([n[2] for n in nodes], pa.string()),
        "properties": pa.array([_props(n[3]) for n in nodes], pa.string()),
    }), npath)
    if rels is None:
        return npath, None
    rpath = tmp_path / "relationships.parquet"
    pq.write_table(pa.table({
        "start": pa.array([r[0] for r in rels], pa.string()),
        "end": pa.array([r[1] for r in rels], pa.string()),
        "type": pa.array([r[2] for r in rels], pa.string()),
        "properties": pa.array([_props(r[3]) for r in rels], pa.string()),
    }), rpath)
    return npath, rpath


def refused(tmp_path: Path, nodes: list[tuple], rels: list[tuple] | None = None) -> InputError:
    with pytest.raises(InputError) as info:
        read_graph_input(*write_graph(tmp_path, nodes, rels), D)
    assert info.value.store == "sp"
    return info.value


def test_reads_and_groups(tmp_path: Path) -> None:
    nodes = [
        ("s1", "Student", D, {"name": "Ann", "age": 12, "gpa": 1.0, "tags": ["a", "b"], "gone": None,
                              "id": "other", "district_id": "other", "a b": True}),
        ("s2", "Student", D, {"name": "Bob", "age": 13, "gpa": 3.5, "tags": []}),
        ("k1", "School", D, None),
    ]
    rels = [("s1", "k1", "ENROLLED_AT", {"since": 2020, "district_id": "x"}), ("s1", "s2", "KNOWS", "{}")]
    data = read_graph_input(*write_graph(tmp_path, nodes, rels), D)
    first = data.nodes["Student"][0]
    assert first == {"id": "s1", "props": {"name": "Ann", "age": 12, "gpa": 1.0, "tags": ["a", "b"], "a b": True}}
    assert type(first["props"]["gpa"]) is float and type(first["props"]["age"]) is int
    assert data.nodes["School"] == [{"id": "k1", "props": {}}]
    assert data.relationships["ENROLLED_AT"] == [{"start": "s1", "end": "k1", "props": {"since": 2020}}]
    assert data.counts() == {"nodes": {"Student": 2, "School": 1}, "relationships": {"ENROLLED_AT": 1, "KNOWS": 1}}
    assert (data.node_count, data.relationship_count) == (3, 2)
    assert data.label_of == {"s1": "Student", "s2": "Student", "k1": "School"}


def test_no_relationships_file(tmp_path: Path) -> None:
    npath, _ = write_graph(tmp_path, [("a", "A", D, {})])
    assert read_graph_input(npath, None, D).relationships == {}


def test_other_district(tmp_path: Path) -> None:
    err = refused(tmp_path, [("a", "A", D, {}), ("b", "A", "district-002", {})])
    assert err.table == "nodes"
    assert "node 'b' (row 2): district_id is 'district-002', not the partition's 'district-001'" in str(err)


def test_duplicate_id(tmp_path: Path) -> None:
    err = refused(tmp_path, [("a", "A", D, {}), ("a", "B", D, {})])
    assert "node 'a' (row 2): duplicate node id 'a'" in str(err)
    assert "unique per district" in str(err)


def test_empty_id(tmp_path: Path) -> None:
    assert "row 1: id is empty" in str(refused(tmp_path, [(None, "A", D, {})]))


def test_dangling_relationship(tmp_path: Path) -> None:
    err = refused(tmp_path, [("a", "A", D, {})], [("a", "a", "R", {}), ("a", "zz", "R", {})])
    assert err.table == "relationships"
    assert "row 2 ('a')-[R]->('zz'): end node 'zz' is not among district 'district-001''s nodes" in str(err)


@pytest.mark.parametrize("label", ["Bad-Label", "1st", "A:B", "", "x" * 65, "`x`"])
def test_bad_label(tmp_path: Path, label: str) -> None:
    err = refused(tmp_path, [("a", label, D, {})])
    assert f"node 'a' (row 1): label {label!r} is not a valid identifier" in str(err)


def test_reserved_marker_label(tmp_path: Path) -> None:
    assert "label 'CertLoaderRun' is reserved" in str(refused(tmp_path, [("a", "CertLoaderRun", D, {})]))


def test_bad_relationship_type(tmp_path: Path) -> None:
    err = refused(tmp_path, [("a", "A", D, {})], [("a", "a", "HAS PART", {})])
    assert "relationship type 'HAS PART' is not a valid identifier" in str(err)


@pytest.mark.parametrize("raw, found", [("[1, 2]", "JSON list, not an object"), ('"x"', "JSON str, not an object"),
                                        ("{bad", "properties is not valid JSON")])
def test_properties_not_object(tmp_path: Path, raw: str, found: str) -> None:
    assert found in str(refused(tmp_path, [("a", "A", D, raw)]))


def test_relationship_properties_not_object(tmp_path: Path) -> None:
    err = refused(tmp_path, [("a", "A", D, {})], [("a", "a", "R", "7")])
    assert err.table == "relationships" and "JSON int, not an object" in str(err)


@pytest.mark.parametrize("value, found", [
    ({"x": 1}, "is a nested object"),
    ([1, None], "is a list containing null"),
    ([1, 2.5], "is a list of mixed types (float, integer)"),
    ([True, 1], "is a list of mixed types (boolean, integer)"),
    (["a", 1], "is a list of mixed types (integer, string)"),
    ([[1]], "is a list containing a list or an object"),
    (2**63, "integer 9223372036854775808 does not fit in 64 bits"),
])
def test_bad_values(tmp_path: Path, value: Any, found: str) -> None:
    err = refused(tmp_path, [("a", "A", D, {"p": value})])
    assert f"node 'a' (row 1): property 'p' {found}" in str(err)


@pytest.mark.parametrize("first, second, kinds", [
    (1, 1.5, "integer at node 'a' (row 1) but float"), (True, 1, "boolean at node 'a' (row 1) but integer"),
    ("1", 1, "string"), ([1], ["x"], "list<integer>"),
])
def test_type_differs_across_label(tmp_path: Path, first: Any, second: Any, kinds: str) -> None:
    err = refused(tmp_path, [("a", "A", D, {"p": first}), ("b", "A", D, {"p": second})])
    assert "property 'p' of label A is " in str(err) and kinds in str(err)
    assert "at node 'b' (row 2)" in str(err)


def test_types_may_differ_across_labels_and_empty_lists(tmp_path: Path) -> None:
    nodes = [("a", "A", D, {"p": 1, "l": []}), ("b", "B", D, {"p": "x", "l": ["s"]}), ("c", "B", D, {"l": []})]
    assert read_graph_input(*write_graph(tmp_path, nodes), D).node_count == 3


def test_relationship_type_differs(tmp_path: Path) -> None:
    err = refused(tmp_path, [("a", "A", D, {})], [("a", "a", "R", {"w": 1}), ("a", "a", "R", {"w": 1.0})])
    assert "property 'w' of relationship type R is integer at row 1" in str(err) and "but float at row 2" in str(err)


@pytest.mark.parametrize("key", ["", "a\x00b"])
def test_bad_property_key(tmp_path: Path, key: str) -> None:
    assert f"property key {key!r} is not a non-empty string" in str(refused(tmp_path, [("a", "A", D, {key: 1})]))


def test_missing_column(tmp_path: Path) -> None:
    path = tmp_path / "nodes.parquet"
    pq.write_table(pa.table({"id": ["a"], "labels": ["A"]}), path)
    with pytest.raises(InputError, match="column\\(s\\) district_id, properties missing"):
        read_graph_input(path, None, D)


def test_non_string_column(tmp_path: Path) -> None:
    path = tmp_path / "nodes.parquet"
    pq.write_table(pa.table({"id": [1], "labels": ["A"], "district_id": [D], "properties": ["{}"]}), path)
    with pytest.raises(InputError, match="column 'id' is int64, expected string"):
        read_graph_input(path, None, D)


def reference(npath: Path, rpath: Path | None) -> GraphInput:
    """The checked, row-by-row reader alone: what the fast path must reproduce exactly."""
    out = GraphInput(district=D, nodes_path=npath, rels_path=rpath)
    _checked_nodes(_read_columns(npath, NODE_COLUMNS, (), "nodes"), out)
    if rpath is not None:
        _checked_relationships(_read_columns(rpath, REL_COLUMNS, ("district_id",), "relationships"), out)
    return out


def fast_path_taken(npath: Path, rpath: Path | None) -> bool:
    out = GraphInput(district=D, nodes_path=npath, rels_path=rpath)
    rels = _read_arrays(rpath, REL_COLUMNS, ("district_id",), "relationships") if rpath else None
    return _fast_read(_read_arrays(npath, NODE_COLUMNS, (), "nodes"), rels, out)


def same_as_reference(data: GraphInput, ref: GraphInput) -> None:
    """Equal row for row, labels and types in the reference's order, and every key order as the reference's."""
    assert data == ref
    assert list(data.nodes) == list(ref.nodes) and list(data.relationships) == list(ref.relationships)
    for got, want in [*zip(data.nodes.values(), ref.nodes.values()),
                      *zip(data.relationships.values(), ref.relationships.values())]:
        assert [list(r["props"]) for r in got] == [list(r["props"]) for r in want]
        assert [{k: type(v) for k, v in r["props"].items()} for r in got] == \
            [{k: type(v) for k, v in r["props"].items()} for r in want]


@pytest.mark.parametrize("nodes, rels, fast", [
    # plain scalars of one type per property: the fast path vouches for them
    ([("a", "A", D, {"s": "x", "i": -(2**63), "f": 1e300, "b": False, "n": None}), ("b", "B", D, None),
      ("c", "A", D, {"i": 2**63 - 1, "id": "ignored", "district_id": "ignored", "é k": "ü"})],
     [("a", "b", "R", {"w": 0.5, "district_id": "x"}), ("b", "a", "R", None), ("a", "a", "S", "{}")], True),
    # anything unusual goes to the checked reader, which still accepts it
    ([("a", "A", D, {"l": [1, 2], "e": []})], None, False),
    ([("a", "A", D, ' {"p": 1} ')], None, False),
    ([("a", "A", D, {"p": 1})], [("a", "a", "R", '{"w": 1}\n')], False),
    # rows of one label with different keys, key orders and nulls: typed columns with nulls, one shape per order
    ([("a", "A", D, {"x": 1, "y": "s"}), ("b", "A", D, {"y": "t", "x": 2}), ("c", "A", D, {"x": None, "z": True}),
      ("d", "A", D, {}), ("e", "A", D, None), ("f", "A", D, '{"x": 3, "x": 4}'), ("g", "B", D, {"x": "other type"})],
     [("a", "b", "R", {"w": 1}), ("b", "a", "R", {}), ("a", "g", "R", {"v": 1.5, "w": 2}), ("g", "a", "S", None)], True),
    # a lone surrogate escaped in the JSON: Arrow cannot hold it, the checked reader keeps the text
    ([("a", "A", D, '{"s": "\\ud800"}'), ("b", "A", D, {"s": "x"})], None, False),
])
def test_fast_path_reads_exactly_what_the_checked_reader_reads(tmp_path: Path, nodes, rels, fast: bool) -> None:
    paths = write_graph(tmp_path, nodes, rels)
    assert fast_path_taken(*paths) is fast
    same_as_reference(read_graph_input(*paths, D), reference(*paths))


@pytest.mark.parametrize("props", ['{"": null}', '{"a\\u0000b": null}'])
def test_a_bad_key_is_refused_even_with_a_null_value(tmp_path: Path, props: str) -> None:
    """The fast path once skipped null values before looking at their keys and took what the checked reader refuses."""
    assert "is not a non-empty string without NUL bytes" in str(refused(tmp_path, [("a", "A", D, props)]))


@pytest.mark.parametrize("unusual", [False, True])
def test_rows_are_built_only_for_the_slice_asked(tmp_path: Path, unusual: bool) -> None:
    """Issue 13: GraphInput holds columns, not a dict per row; slices, indexes and iteration build the reference's dicts.

    ``unusual`` (a list property) takes the checked reader, whose rows are kept as JSON text the same way.
    """
    n, r = 5_000, 12_000
    nodes = [(f"n{i}", ("A", "B", "C")[i % 3], D, {"name": f"x{i}", "k": i, "f": i / 3, "b": i % 2 == 0,
                                                      **({"l": [i]} if unusual else {})}) for i in range(n)]
    rels = [(f"n{i % n}", f"n{(i * 7919 + 13) % n}", ("R", "S")[i % 2], {"w": i} if i % 5 else None)
            for i in range(r)]
    paths = write_graph(tmp_path, nodes, rels)
    assert fast_path_taken(*paths) is not unusual
    gc.collect()
    before = len(gc.get_objects())
    data = read_graph_input(*paths, D)
    gc.collect()
    assert len(gc.get_objects()) - before < 500  # the old reader kept two dicts per row: ~34,000 here
    assert all(type(v) is NodeRows for v in data.nodes.values())
    assert all(type(v) is RelRows for v in data.relationships.values())
    ref = reference(*paths)
    same_as_reference(data, ref)
    for got, want in [(data.nodes["B"], ref.nodes["B"]), (data.relationships["S"], ref.relationships["S"])]:
        assert len(got) == len(want)
        assert got[0] == want[0] and got[-1] == want[-1] and got[len(want) // 2] == want[len(want) // 2]
        for piece in (slice(0, 10), slice(995, 1_020), slice(-7, None), slice(None, None, 97), slice(5, 2),
                      slice(len(want) - 3, len(want) + 50)):
            assert got[piece] == want[piece]
            assert type(got[piece]) is list
        with pytest.raises(IndexError):
            got[len(want)]
        assert list(got) == want
    assert node_ids(data.nodes["A"]) == [row["id"] for row in ref.nodes["A"]]
    assert rel_ends(data.relationships["R"]) == [(row["start"], row["end"]) for row in ref.relationships["R"]]
    picked = [7, 3, 3, 1_000]
    assert list(subset(data.nodes["C"], picked)) == [ref.nodes["C"][i] for i in picked]
    # grouped by end labels like the lists are, each group still unbuilt
    groups = rel_groups(data.relationships["R"], data.label_of)
    assert all(type(g) is RelRows for g in groups.values())
    assert {pair: list(g) for pair, g in groups.items()} == dict(rel_groups(ref.relationships["R"], ref.label_of))
    assert list(groups) == list(rel_groups(ref.relationships["R"], ref.label_of))


def test_seed_sized_graph_takes_the_fast_path(tmp_path: Path) -> None:
    """100k nodes and 250k relationships (the seed's shape): columns checked at once, same result as row by row."""
    n, r = 100_000, 250_000
    npath, rpath = tmp_path / "n.parquet", tmp_path / "r.parquet"
    pq.write_table(pa.table({
        "id": [f"n{i}" for i in range(n)], "labels": ["Person" if i % 2 else "School" for i in range(n)],
        "district_id": [D] * n, "properties": [json.dumps({"k": i, "f": i / 3, "s": f"x{i}"}) for i in range(n)],
    }), npath)
    pq.write_table(pa.table({
        "start": [f"n{i % n}" for i in range(r)], "end": [f"n{(i * 7) % n}" for i in range(r)],
        "type": ["KNOWS"] * r, "properties": [json.dumps({"w": i}) for i in range(r)],
    }), rpath)
    data = read_graph_input(npath, rpath, D)
    assert (data.node_count, data.relationship_count) == (n, r)
    assert fast_path_taken(npath, rpath)
    same_as_reference(data, reference(npath, rpath))
