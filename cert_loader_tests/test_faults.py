"""Fault injection: a real `cert-loader load` killed with SIGKILL at each point of the commit protocol.

After each kill, `cert-loader recover` (or a new load, which recovers on its own) must leave every
store with all of the district's rows or none of them — the same answer everywhere — and no other
district changed.
"""

from __future__ import annotations


import pytest

from cert_loader_tests.fix_cli import cli_env, env_stores, kill_at, run_cli
from cert_loader_tests.fix_district import store_snapshot

# point → what recovery must make of it: the decision is durable only after "after-decision".
POINTS = [
    ("mid-copy:ids:edfi.attendance_event", "none"),
    ("before-prepare:ids", "none"),
    ("before-prepare:hcp1", "none"),
    ("before-decision", "none"),
    ("after-decision", "all"),
    ("before-commit-prepared:hcp2", "all"),
]


def _cli(args, env, timeout=180):
    return run_cli(*args, "--stores", env_stores(env), env=env, timeout=timeout)


def _all_or_nothing(snapshot: dict, expected: dict) -> str:
    answers = set()
    for store, tables in snapshot.items():
        if all(v == 0 for v in tables.values()):
            answers.add("none")
        elif tables == expected[store]:
            answers.add("all")
        else:
            answers.add(f"partial in {store}")
    assert len(answers) == 1, f"stores disagree: {answers}"
    return answers.pop()


@pytest.fixture
def reference(make_district, sample_stores, data_root, pg_config):
    """Rows a full load of a district gives (measured on a throwaway district of the same shape)."""
    from cert_loader.engine import load_district

    ref = make_district(students=400)
    assert load_district(pg_config(), ref).status == "SUCCESS"
    other = store_snapshot(sample_stores, ref)
    return ref, other


def _graph_answer(graph_config, district, expected_nodes: int) -> str:
    from cert_loader.stores.graph import GraphStore

    with GraphStore(graph_config) as graph:
        nodes = sum(graph.counts(district)["nodes"].values())
    assert nodes in (0, expected_nodes), f"graph holds {nodes} of {expected_nodes} nodes"
    return "all" if nodes else "none"


def _node_rows(data_root, district) -> int:
    import pyarrow.parquet as pq

    from cert_loader.inputs import DistrictPaths

    return pq.read_metadata(DistrictPaths(data_root, district).source_file("sp", "nodes")).num_rows


def _check_outcome(sample_stores, data_root, district, ref, ref_rows, graph_config) -> str:
    answer = _all_or_nothing(store_snapshot(sample_stores, district), ref_rows_for(ref_rows, ref, district, data_root))
    if graph_config is not None:
        assert _graph_answer(graph_config, district, _node_rows(data_root, district)) == answer, "graph disagrees"
    return answer


@pytest.mark.parametrize("point,expected", POINTS)
@pytest.mark.parametrize("resolver", ["recover", "next-load"])
def test_kill_and_recover_five_stores(point, expected, resolver, reference, make_district, sample_stores, data_root,
                                      graph_config, no_prepared_left):
    """The graph commit is the decision point (DESIGN.md section 5)."""
    _kill_and_resolve(point, expected, resolver, reference, make_district, sample_stores, data_root, graph_config)


@pytest.mark.parametrize("point,expected", [("before-decision", "none"), ("after-decision", "all"),
                                            ("before-commit-prepared:adb", "all")])
@pytest.mark.parametrize("resolver", ["recover", "next-load"])
def test_kill_and_recover_without_graph(point, expected, resolver, reference, make_district, sample_stores,
                                        data_root, no_prepared_left):
    """Without the graph the decision is a row in cert_loader.load_decision."""
    _kill_and_resolve(point, expected, resolver, reference, make_district, sample_stores, data_root, None)


def _kill_and_resolve(point, expected, resolver, reference, make_district, sample_stores, data_root, graph_config):
    ref, ref_rows = reference
    district = make_district(students=400)
    env = cli_env(sample_stores, data_root, graph_config)
    kill_at(point, district, env)
    if resolver == "recover":
        rec = _cli(["recover"], env)
        assert rec.returncode == 0, rec.stdout + rec.stderr
        assert _check_outcome(sample_stores, data_root, district, ref, ref_rows, graph_config) == expected
    else:
        load = _cli(["load", district, "--strategy", "merge"], env)
        assert load.returncode == 0, load.stdout + load.stderr
        assert "recovered" in load.stderr or expected == "none"
        assert _check_outcome(sample_stores, data_root, district, ref, ref_rows, graph_config) == "all"
    assert store_snapshot(sample_stores, ref) == ref_rows


def ref_rows_for(ref_rows, ref, district, data_root):
    """Expected per-table rows of ``district``: from its own files (districts differ in size by seed)."""
    import pyarrow.parquet as pq

    from cert_loader.inputs import DistrictPaths

    paths = DistrictPaths(data_root, district)
    out = {}
    for store, tables in ref_rows.items():
        out[store] = {}
        for qual in tables:
            schema, name = qual.split(".", 1)
            for candidate in (qual, name):
                path = paths.source_file(store, candidate)
                if path.is_file():
                    out[store][qual] = pq.read_metadata(path).num_rows
                    break
            else:
                out[store][qual] = 0
    return out
