"""fk_order.py: parents before children with ties by name, the cycle the plan names, the DAG the translator keeps."""

from __future__ import annotations

import random

from cert_loader.fk_order import acyclic_parents, find_cycle, topological


def same(s: str) -> str:
    return s


def order(items, edges):
    return topological(items, edges, key=same, name=same)


def test_parents_come_first_and_ties_go_to_the_smallest_ready_name():
    # z_root sorts last by name but is a parent; b_grand sorts first but waits for m_child.
    items = ["m_child", "b_grand", "z_root", "a_child", "c_alone"]
    edges = [("z_root", "a_child"), ("z_root", "m_child"), ("m_child", "b_grand")]
    assert order(items, edges) == ["c_alone", "z_root", "a_child", "m_child", "b_grand"]


def test_no_edges_is_name_order():
    assert order(["b", "c", "a"], []) == ["a", "b", "c"]


def test_a_random_dag_keeps_every_edge_and_does_not_depend_on_the_input_order():
    rng = random.Random(7)
    names = [f"t{i:02d}" for i in range(40)]
    rank = names[:]
    rng.shuffle(rank)  # the hidden order the edges follow, unrelated to the names
    edges = [(rank[i], rank[j]) for i in range(40) for j in range(i + 1, 40) if rng.random() < 0.1]
    got = order(names, edges)
    assert sorted(got) == names
    at = {n: i for i, n in enumerate(got)}
    assert all(at[parent] < at[child] for parent, child in edges)
    shuffled = names[:]
    rng.shuffle(shuffled)
    assert order(shuffled, list(reversed(edges))) == got


def test_equal_names_keep_the_order_they_became_ready_in():
    # Two tables named alike in different schemas: the key tells them apart, the name ties.
    first, second = {"key": "s1.t", "name": "t"}, {"key": "s2.t", "name": "t"}
    by_key, by_name = (lambda t: t["key"]), (lambda t: t["name"])
    assert topological([first, second], [], key=by_key, name=by_name) == [first, second]
    assert topological([second, first], [], key=by_key, name=by_name) == [second, first]
    parent = {"key": "s0.a", "name": "a"}
    # second becomes ready only after its parent: first is ready from the start, so it goes first.
    assert topological([second, parent, first], [(parent, second)], key=by_key, name=by_name) == [parent, first, second]


def test_a_cycle_and_what_hangs_below_it_are_left_out():
    items = ["a", "b", "c", "d"]
    assert order(items, [("a", "b"), ("b", "a"), ("b", "c")]) == ["d"]
    assert order(["a", "b"], [("a", "a"), ("a", "b")]) == []


def test_find_cycle_is_none_on_a_dag():
    assert find_cycle(["a", "b", "c"], [("a", "b"), ("b", "c"), ("a", "c")], key=same) is None
    assert find_cycle([], [], key=same) is None


def test_find_cycle_names_the_cycle_as_a_path_that_ends_where_it_starts():
    # x leads into the cycle b -> c -> b but is not part of it.
    assert find_cycle(["x", "b", "c"], [("x", "b"), ("b", "c"), ("c", "b")], key=same) == ["b", "c", "b"]
    assert find_cycle(["a", "b", "c", "d"], [("a", "b"), ("b", "c"), ("c", "d"), ("c", "a")], key=same) == [
        "a", "b", "c", "a"]


def test_find_cycle_finds_a_self_reference():
    assert find_cycle(["a", "b"], [("a", "b"), ("b", "b")], key=same) == ["b", "b"]


def test_find_cycle_names_the_same_cycle_for_the_same_input():
    edges = [("r", "s"), ("s", "r"), ("p", "q"), ("q", "p")]
    assert find_cycle(["p", "q", "r", "s"], edges, key=same) == ["p", "q", "p"]
    assert find_cycle(["r", "s", "p", "q"], edges, key=same) == ["r", "s", "r"]
    assert find_cycle(["q", "p", "r", "s"], edges, key=same) == ["q", "p", "q"]


def test_find_cycle_compares_items_by_key():
    # Dicts are unhashable and the edges hold equal copies: only the key can tell who is who.
    a, b, c = ({"key": k} for k in "abc")
    edges = [(dict(a), dict(b)), (dict(b), dict(c)), (dict(c), dict(a))]
    found = find_cycle([a, b, c], edges, key=lambda t: t["key"])
    assert [t["key"] for t in found] == ["a", "b", "c", "a"]


def test_acyclic_parents_drops_the_edge_that_would_close_a_cycle():
    edges = [("b", "a", "b->a"), ("c", "b", "c->b"), ("a", "c", "a->c")]  # (child, parent, label)
    parents, dropped = acyclic_parents("abc", edges)
    assert parents == {"a": set(), "b": {"a"}, "c": {"b"}}
    assert dropped == {"a": ["a->c"]}
    # The caller's order decides which edge of the cycle goes.
    parents, dropped = acyclic_parents("abc", edges[::-1])
    assert parents == {"a": {"c"}, "b": set(), "c": {"b"}}
    assert dropped == {"b": ["b->a"]}


def test_acyclic_parents_drops_self_references_and_ignores_repeats():
    edges = [("a", "a", "self"), ("b", "a", "first"), ("b", "a", "second"), ("c", "c", "self too")]
    parents, dropped = acyclic_parents(["a", "b", "c"], edges)
    assert parents == {"a": set(), "b": {"a"}, "c": set()}
    assert dropped == {"a": ["self"], "c": ["self too"]}
