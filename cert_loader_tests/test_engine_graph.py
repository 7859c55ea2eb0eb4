"""All five stores in one load: the graph joins the unit of work, its failure rolls the PostgreSQL stores back."""

from __future__ import annotations

import pytest

from cert_loader.config import LoaderConfig, PgStoreConfig
from cert_loader.engine import LoadOptions, load_district, plan_district, unload_district
from cert_loader_tests.fix_district import store_snapshot
from cert_loader_tests.fix_graph import graph_counts

pytestmark = pytest.mark.usefixtures("no_prepared_left")


@pytest.fixture
def full_config(sample_stores, graph_config, data_root):
    def make(pg=True, graph=True):
        return LoaderConfig(
            data_root,
            {n: PgStoreConfig(n, u) for n, u in sample_stores.items()} if pg else {},
            graph_config if graph else None,
        )

    return make


def test_five_stores_load_and_report_the_graph(full_config, make_district, graph_config):
    district = make_district(students=30)
    report = load_district(full_config(), district)
    assert report.status == "SUCCESS", report.error
    data = report.as_dict()
    sp = data["stores"]["sp"]
    assert sp["status"] == "SUCCESS" and sp["transaction"] == "COMMITTED"
    assert sp["nodes_loaded"] == sum(sp["nodes_by_label"].values()) > 0
    assert sp["relationships_loaded"] == sum(sp["relationships_by_type"].values()) > 0
    counts = graph_counts(graph_config, district)
    assert counts["nodes"] == sp["nodes_by_label"]
    assert counts["relationships"] == sp["relationships_by_type"]
    assert all(s["transaction"] == "PREPARED-then-COMMITTED" for n, s in data["stores"].items() if n != "sp")
    assert data["post_load_validation"]["status"] == "PASSED"
    checks = {c["check"] for c in data["post_load_validation"]["tables"] if c["store"] == "sp"}
    assert checks == {"node_count", "relationship_count", "dangling"}


def test_graph_failure_rolls_back_the_postgres_stores(full_config, make_district, sample_stores, graph_config):
    district = make_district(students=20)
    # The district's nodes already exist in the graph (only), so insert fails in the graph, last.
    assert load_district(full_config(pg=False), district).status == "SUCCESS"
    before_graph = graph_counts(graph_config, district)
    report = load_district(full_config(), district)
    assert report.status == "FAILED"
    assert report.error["store"] == "sp"
    assert "already" in report.error["message"]
    assert all(n == 0 for rows in store_snapshot(sample_stores, district).values() for n in rows.values())
    assert graph_counts(graph_config, district) == before_graph
    assert all(s.transaction == "ROLLED_BACK" for n, s in report.stores.items() if n != "sp")


def test_each_strategy_with_the_graph(full_config, make_district, graph_config):
    district = make_district(students=20)
    for strategy in ("insert", "upsert", "merge", "replace", "replace"):
        report = load_district(full_config(), district, LoadOptions(strategy=strategy))
        assert report.status == "SUCCESS", (strategy, report.error)
    assert graph_counts(graph_config, district)["nodes"] == report.graph["nodes_by_label"]


def test_plan_covers_the_graph_and_unload_removes_it(full_config, make_district, sample_stores, graph_config):
    from cert_loader.plan_view import plan_dict

    district = make_district(students=20)
    pf = plan_district(full_config(), district)
    try:
        data = plan_dict(pf)
    finally:
        pf.close()
    assert data["stores"]["sp"]["nodes"] > 0 and "Student" in data["stores"]["sp"]["labels"]
    assert load_district(full_config(), district).status == "SUCCESS"
    deleted = unload_district(full_config(), district)
    assert deleted["sp"]["nodes"] > 0
    assert not any(graph_counts(graph_config, district)["nodes"].values())
    assert all(n == 0 for rows in store_snapshot(sample_stores, district).values() for n in rows.values())


def test_graph_input_error_is_refused_before_any_write(full_config, make_district, data_root, sample_stores, graph_config):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from cert_loader.inputs import DistrictPaths

    district = make_district(students=20)
    path = DistrictPaths(data_root, district).source_file("sp", "relationships")
    rels = pq.read_table(path)
    ends = rels.column("end").to_pylist()
    ends[0] = "no-such-node"
    pq.write_table(rels.set_column(rels.schema.get_field_index("end"), "end", pa.array(ends)), path)
    report = load_district(full_config(), district)
    assert report.status == "FAILED"
    assert report.error["store"] == "sp" and "no-such-node" in report.error["message"]
    assert all(s.transaction == "NOT_STARTED" for s in report.stores.values()) or not report.stores
    assert not any(graph_counts(graph_config, district)["nodes"].values())


def test_content_verification_covers_the_graph_for_every_strategy(full_config, make_district):
    district = make_district(students=20)
    for strategy in ("insert", "upsert", "merge", "replace"):
        report = load_district(full_config(), district, LoadOptions(strategy=strategy, verify="content"))
        assert report.status == "SUCCESS", (strategy, report.error)
        validation = report.as_dict()["post_load_validation"]
        assert validation["content_verification"] == "PASSED", strategy
        graph = [c for c in report.checks if c.store == "sp" and c.check == "content"]
        assert {c.graph.kind for c in graph} == {"nodes", "relationships"}, strategy
        assert all(c.passed and c.expected == c.actual > 0 for c in graph), (strategy, graph)
    counts_only = load_district(full_config(), district, LoadOptions(strategy="merge"))
    assert counts_only.as_dict()["post_load_validation"]["content_verification"] == "NOT_RUN"
