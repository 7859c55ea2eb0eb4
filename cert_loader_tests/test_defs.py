"""The code location without any database: asset keys, deps and checks from a sample manifest (STYLE.md 14)."""

from __future__ import annotations

import json
import subprocess
import sys

import dagster as dg
import pytest

from cert_loader.catalog import Column, ForeignKey, Table
from cert_loader.defs import build_definitions
from cert_loader.defs.assets import LoadConfig, Strategy, build_cert_asset, failed_checks, results, selection
from cert_loader.defs.resources import env_resources
from cert_loader.defs.translator import build_specs
from cert_loader.errors import InputError
from cert_loader.manifest import Manifest, StoreManifest, read_manifest, write_manifest
from cert_loader.report import LoadReport
from cert_loader.results import CheckResult, GraphTable, StoreResult, TableResult
from cert_loader_tests.dagster_support import SAMPLE_GRAPH, SAMPLE_MANIFEST, instance_with, subprocess_env


@pytest.fixture(scope="module")
def sample():
    return build_specs(read_manifest(SAMPLE_MANIFEST))


def key(path: str) -> dg.AssetKey:
    return dg.AssetKey.from_user_string(path)


def test_sample_manifest_gives_the_snapshot_graph(sample) -> None:
    graph = {s.key.to_user_string(): sorted(d.asset_key.to_user_string() for d in s.deps) for s in sample.specs}
    assert graph == SAMPLE_GRAPH
    # The deferrable half of the school <-> staff cycle is the edge left out, and it says so.
    assert sample.broken_fks == {key("cert/ids/school"): ["school_principal_fk"]}
    assert sample.tables[key("cert/ids/edfi__student")] == ("ids", "edfi.student")
    assert sample.tables[key("cert/ids/school")] == ("ids", "public.school")


def test_spec_attributes(sample) -> None:
    spec = next(s for s in sample.specs if s.key == key("cert/ids/edfi__enrollment"))
    assert spec.group_name == "cert_ids" and spec.kinds == {"postgres"} and spec.tags["store"] == "ids"
    assert spec.description.startswith("CERT table edfi.enrollment of store ids (database cert_ids); ")
    assert "7 columns; primary key (district_id, student_id, section_id)" in spec.description
    assert "references edfi.section, edfi.student" in spec.description
    assert spec.metadata["cert_loader/table"] == "edfi.enrollment"
    assert "district_id" in [c.name for c in spec.metadata["dagster/column_schema"].columns]
    nodes = next(s for s in sample.specs if s.key == key("cert/sp/nodes"))
    assert nodes.kinds == {"neo4j"} and nodes.group_name == "cert_sp" and nodes.tags["store"] == "sp"


def test_definitions_from_the_sample_manifest() -> None:
    defs = build_definitions(SAMPLE_MANIFEST)
    graph = defs.resolve_asset_graph()
    assert {k.to_user_string() for k in graph.get_all_asset_keys()} == set(SAMPLE_GRAPH)
    checks = {(c.asset_key.to_user_string(), c.name) for c in graph.asset_check_keys}
    assert len(checks) == 24 * 3 + 5  # row_count, fk_integrity, content per table; five graph checks
    assert ("cert/ids/school", "fk_integrity") in checks and ("cert/hcp2/referral", "row_count") in checks
    assert ("cert/adb/assessment", "content") in checks
    assert {("cert/sp/nodes", "node_count"), ("cert/sp/relationships", "relationship_count"),
            ("cert/sp/relationships", "dangling"), ("cert/sp/nodes", "content"),
            ("cert/sp/relationships", "content")} <= checks
    assert defs.resolve_sensor_def("validation_report_sensor").job_name == "cert_district_job"
    partitions = graph.get(key("cert/ids/school")).partitions_def
    assert isinstance(partitions, dg.DynamicPartitionsDefinition) and partitions.name == "district"
    assert set(defs.resources) == {"cert_ids", "cert_hcp1", "cert_hcp2", "cert_adb", "cert_sp", "cert_data"}


def test_run_config_defaults() -> None:
    assert LoadConfig().strategy == Strategy.insert and LoadConfig().strict is False
    assert [s.value for s in Strategy] == ["insert", "upsert", "merge", "replace"]


# What loading the code location must not import: the engine (its modules import the COPY encoder, the
# graph driver and polars) and those libraries themselves. `dagster dev` and every run worker load the
# code location; the engine is imported inside the asset's body, by the run that loads a district.
ENGINE_MODULES = (
    "cert_loader.engine", "cert_loader.preflight", "cert_loader.plan", "cert_loader.transaction",
    "cert_loader.store_load", "cert_loader.strategies", "cert_loader.verify", "cert_loader.graph_input",
    "cert_loader.convert", "cert_loader.bulk_fk", "cert_loader.bench", "cert_loader.sample",
    "pgpq", "polars", "neo4j",
)

_IMPORT_CHECK = """
import json, sys
import psycopg
connects = []
real_connect = psycopg.Connection.connect.__func__
def recording_connect(cls, *args, **kwargs):
    connects.append(repr(args))
    return real_connect(cls, *args, **kwargs)
psycopg.Connection.connect = classmethod(recording_connect)
psycopg.connect = psycopg.Connection.connect  # the module-level alias is bound at import
import cert_loader.definitions as d
keys = d.defs.resolve_asset_graph().get_all_asset_keys()
{extra}
print(json.dumps({{"keys": len(keys), "modules": sorted(sys.modules), "connects": connects}}))
"""


def _load_code_location(extra: str = "") -> dict:
    """Load the code location in a fresh interpreter: its asset count, every module imported, every connect."""
    env = subprocess_env(CERT_SCHEMA_MANIFEST=str(SAMPLE_MANIFEST),
                         CERT_IDS_URL="postgresql://nobody:secret@192.0.2.1:5432/nowhere")
    out = subprocess.run([sys.executable, "-c", _IMPORT_CHECK.format(extra=extra)], env=env, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    loaded = json.loads(out.stdout.strip().splitlines()[-1])
    loaded["engine"] = [m for m in loaded["modules"] if any(m == e or m.startswith(e + ".") for e in ENGINE_MODULES)]
    return loaded


def test_loading_the_code_location_imports_no_engine_and_connects_nowhere() -> None:
    loaded = _load_code_location()
    assert loaded["keys"] == len(SAMPLE_GRAPH)
    assert loaded["engine"] == [], f"loading cert_loader.definitions imported {loaded['engine']}"
    assert loaded["connects"] == []
    # The check sees what it looks for: a run's own imports and connections show up.
    probe = _load_code_location("import cert_loader.engine\ntry:\n    psycopg.connect('postgresql://x@127.0.0.1:1/x')\n"
                                "except psycopg.Error:\n    pass")
    assert "cert_loader.engine" in probe["engine"] and len(probe["connects"]) == 1


def test_absent_manifest_gives_no_assets_and_says_what_to_do(tmp_path) -> None:
    defs = build_definitions(tmp_path / "cert-schema.json")
    assert not defs.resolve_asset_graph().get_all_asset_keys()
    assert "run `cert-loader snapshot`" in defs.metadata["cert_loader/manifest"].value
    sensor = defs.resolve_sensor_def("validation_report_sensor")
    with dg.build_sensor_context(instance=instance_with([]), definitions=defs,
                                 resources={"cert_data": defs.resources["cert_data"]}) as context:
        tick = sensor.evaluate_tick(context)
    assert not tick.run_requests and "cert-loader snapshot" in tick.skip_message


def test_manifest_without_cert_tables_says_so(tmp_path) -> None:
    path = tmp_path / "cert-schema.json"
    write_manifest(Manifest({"ids": StoreManifest("ids", tables=[table("public", "lookup", district=False)])}), path)
    defs = build_definitions(path)
    assert not defs.resolve_asset_graph().get_all_asset_keys()
    assert "has no CERT table (no table with a district_id column)" in defs.metadata["cert_loader/manifest"].value


def test_corrupt_manifest_fails_loudly(tmp_path) -> None:
    bad = tmp_path / "cert-schema.json"
    bad.write_text('{"format": "cert_loader/schema-manifest", "version": 1, "stores": {"ids": {"tab')
    with pytest.raises(InputError, match="is not readable JSON.*run cert-loader snapshot"):
        build_definitions(bad)
    bad.write_text(json.dumps({"format": "something else"}))
    with pytest.raises(InputError, match="is not a version-1 cert_loader schema manifest"):
        build_definitions(bad)


def test_missing_variable_fails_the_run_naming_it(monkeypatch, sample) -> None:
    for var in ("CERT_IDS_URL", "CERT_HCP1_URL", "CERT_HCP2_URL", "CERT_ADB_URL"):
        monkeypatch.setenv(var, "postgresql://nobody@192.0.2.1/x")
    monkeypatch.delenv("CERT_IDS_URL")
    asset = build_cert_asset(build_specs(_pg_only(read_manifest(SAMPLE_MANIFEST))), SAMPLE_MANIFEST)
    with pytest.raises(dg.DagsterInvalidConfigError, match='environment variable "CERT_IDS_URL" which is not set'):
        dg.materialize([asset], partition_key="d1", instance=instance_with(["d1"]),
                       resources=env_resources(("ids", "hcp1", "hcp2", "adb")))


def _pg_only(manifest: Manifest) -> Manifest:
    manifest.graph_assets = ()
    return manifest


# --- the translator on synthetic catalogs -------------------------------------------------------

def table(schema: str, name: str, fks=(), district: bool = True) -> Table:
    cols = [Column("id", "integer", "int4", "b", -1, True, False, False, "")]
    if district:
        cols.append(Column("district_id", "text", "text", "b", -1, True, False, False, ""))
    return Table(schema, name, tuple(cols), ("id",), (), tuple(
        ForeignKey(fk, ("id",), ref.split(".")[0], ref.split(".")[1], ("id",), deferrable) for fk, ref, deferrable in fks
    ))


def graph_of(*tables: Table) -> dict[str, list[str]]:
    cert = build_specs(Manifest({"ids": StoreManifest("ids", tables=list(tables))}))
    return {s.key.path[-1]: sorted(d.asset_key.path[-1] for d in s.deps) for s in cert.specs}


def test_keys_self_fk_and_lookup_tables() -> None:
    assert graph_of(
        table("public", "a", [("a_self", "public.a", False)]),
        table("x-y", "b c", [("b_a", "public.a", False), ("b_lookup", "public.lookup", False)]),
        table("public", "lookup", district=False),  # no district_id: the loader never touches it, no asset
    ) == {"a": [], "x_y__b_c": ["a"]}


def test_colliding_components_get_a_stable_suffix() -> None:
    keys = set(graph_of(table("public", "edfi__s"), table("edfi", "s")))
    assert len(keys) == 2 and all(k.startswith("edfi__s_") and len(k) == len("edfi__s_") + 6 for k in keys)


def test_cycles_are_broken_at_the_deferrable_fk_whatever_the_names() -> None:
    for parent, child in (("a", "z"), ("z", "a")):
        # child -> parent hard; parent -> child deferrable: the deferrable edge is the one left out
        graph = graph_of(
            table("public", parent, [("p_def", f"public.{child}", True)]),
            table("public", child, [("c_hard", f"public.{parent}", False)]),
        )
        assert graph == {parent: [], child: [parent]}
    # a cycle of hard FKs (the loader refuses to load it) still gives a DAG the code location can load
    assert graph_of(table("public", "a", [("ab", "public.b", False)]), table("public", "b", [("ba", "public.a", False)])) \
        == {"b": [], "a": ["b"]}


# --- the graph store's results mapped onto cert/sp/nodes and cert/sp/relationships ----------------

def graph_report(dangling_ok: bool = True) -> LoadReport:
    report = LoadReport("load-1", "d1", "insert")
    student = TableResult.of_graph(GraphTable.nodes("Student"), 3, "/x/sp/nodes.parquet")
    school = TableResult.of_graph(GraphTable.nodes("School"), 1, "/x/sp/nodes.parquet")
    enrolled = TableResult.of_graph(GraphTable.relationships("ENROLLED_AT"), 3, "/x/sp/relationships.parquet")
    for tr, check, n in ((student, "node_count", 3), (school, "node_count", 1), (enrolled, "relationship_count", 3)):
        tr.inserted = n
        tr.checks.append(CheckResult.of_graph(tr.graph, check, True, n, n))
    dangling = CheckResult.of_graph(enrolled.graph, "dangling", dangling_ok, 0, 0 if dangling_ok else 1,
                                    "" if dangling_ok else "relationships with an end outside the district",
                                    [] if dangling_ok else [["s1", "k9"]])
    enrolled.checks += [dangling, dangling]  # the engine may list a graph check twice: one result each
    report.stores["sp"] = StoreResult("sp", "SUCCESS", "COMMITTED", [student, school, enrolled])
    report.graph = {"nodes_loaded": 4, "relationships_loaded": 3}
    report.finish("SUCCESS" if dangling_ok else "FAILED")
    return report


def test_graph_results_map_onto_two_assets(sample) -> None:
    selected = {key("cert/sp/nodes"), key("cert/sp/relationships")}
    checks = {dg.AssetCheckKey(k, n) for k in selected for n in ("node_count", "relationship_count", "dangling")}
    events = list(results(sample, graph_report(), selected, checks, _Log()))
    kinds = [(type(e).__name__, e.asset_key.path[-1], getattr(e, "check_name", None)) for e in events]
    assert kinds == [
        ("MaterializeResult", "nodes", None), ("AssetCheckResult", "nodes", "node_count"),
        ("MaterializeResult", "relationships", None), ("AssetCheckResult", "relationships", "relationship_count"),
        ("AssetCheckResult", "relationships", "dangling"),
    ]
    nodes = events[0].metadata
    assert nodes["cert_loader/rows"] == 4 and nodes["dagster/row_count"] == 4
    assert nodes["cert_loader/by_label_or_type"].value == {"Student": 3, "School": 1}
    assert events[1].passed and events[1].metadata["per_label_or_type"].value["School"] == {
        "passed": True, "expected": 1, "actual": 1}


def test_graph_failed_check_alone_is_reported(sample) -> None:
    selected = {key("cert/sp/nodes"), key("cert/sp/relationships")}
    checks = {dg.AssetCheckKey(k, n) for k in selected for n in ("node_count", "relationship_count", "dangling")}
    (failed,) = failed_checks(sample, graph_report(dangling_ok=False), checks)
    assert (failed.asset_key.path[-1], failed.check_name, failed.passed) == ("relationships", "dangling", False)
    assert failed.metadata["orphans"].value == 1 and failed.metadata["examples"].value == [["s1", "k9"]]


def test_the_graph_loads_as_one_unit(sample) -> None:
    with pytest.raises(dg.Failure, match="select both cert/sp/nodes and cert/sp/relationships"):
        selection(sample, {key("cert/sp/nodes"), key("cert/ids/school")})
    assert selection(sample, {key("cert/sp/nodes"), key("cert/sp/relationships"), key("cert/ids/school")}) == {
        "sp": {"nodes", "relationships"}, "ids": {"public.school"}}


class _Log:
    def warning(self, message: str) -> None:
        raise AssertionError(message)

