"""`dagster.materialize` of district partitions against the real PostgreSQL stores (issue 3: tests, second point)."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from cert_loader.defs.assets import build_cert_asset
from cert_loader.defs.translator import build_specs
from cert_loader.inputs import DistrictPaths
from cert_loader.manifest import read_manifest
from cert_loader_tests.dagster_support import (
    check_evaluations, instance_with, materializations, pg_resources, snapshot_to, step_failure,
)
from cert_loader_tests.fix_district import district_rows, store_snapshot

pytestmark = pytest.mark.usefixtures("no_prepared_left")
STUDENTS = 50


@pytest.fixture(scope="module")
def manifest_file(sample_stores, tmp_path_factory) -> Path:
    return snapshot_to(sample_stores, tmp_path_factory.mktemp("manifest") / "cert-schema.json")


@pytest.fixture(scope="module")
def cert(manifest_file):
    specs = build_specs(read_manifest(manifest_file))
    return specs, build_cert_asset(specs, manifest_file)


def run(asset, district, sample_stores, data_root, *, strategy="insert", selection=None, instance=None):
    return dg.materialize(
        [asset], partition_key=district, instance=instance or instance_with([district]),
        resources=pg_resources(sample_stores, data_root), selection=selection, raise_on_error=False,
        run_config={"ops": {"cert_district_load": {"config": {"strategy": strategy}}}},
    )


def test_insert_yields_every_table_parents_first_with_checks(cert, make_district, sample_stores, data_root):
    specs, asset = cert
    district = make_district(students=STUDENTS)
    instance = instance_with([district])
    result = run(asset, district, sample_stores, data_root, instance=instance)
    assert result.success
    keys = materializations(result)
    assert keys == [s.key for s in specs.specs]
    position = {k: i for i, k in enumerate(keys)}
    for spec in specs.specs:
        assert all(position[d.asset_key] < position[spec.key] for d in spec.deps)
    evaluations = check_evaluations(result)
    assert len(evaluations) == 2 * len(keys)
    assert all(e.passed for e in evaluations)
    assert {e.partition for e in evaluations} == {district}

    student = next(e for e in result.get_asset_materialization_events()
                   if e.asset_key == dg.AssetKey(["cert", "ids", "edfi__student"])).materialization
    rows = district_rows(sample_stores["ids"], district)["edfi.student"]
    meta = {k: getattr(v, "value", v) for k, v in student.metadata.items()}
    assert student.partition == district
    assert meta["cert_loader/rows"] == meta["cert_loader/inserted"] == meta["dagster/row_count"] == rows == STUDENTS
    assert meta["cert_loader/strategy"] == "insert" and meta["cert_loader/store"] == "ids"
    assert meta["cert_loader/transaction"] == "PREPARED-then-COMMITTED"
    assert meta["cert_loader/source_file"].endswith(f"{district}/ids/edfi.student.parquet")
    assert meta["cert_loader/load_report"]["overall_status"] == "SUCCESS"
    report_path = Path(meta["cert_loader/report_path"])
    assert json.loads(report_path.read_text())["load_run_id"] == meta["cert_loader/load_run_id"]
    fk = next(e for e in evaluations if e.asset_key == student_key() and e.check_name == "fk_integrity")
    assert fk.metadata["orphans"].value == 0
    tags = instance.get_run_by_id(result.run_id).tags
    assert tags["cert_loader/status"] == "SUCCESS"
    assert tags["cert_loader/load_run_id"] == meta["cert_loader/load_run_id"]
    assert tags["cert_loader/report"] == str(report_path)


def student_key() -> dg.AssetKey:
    return dg.AssetKey(["cert", "ids", "edfi__student"])


def test_every_strategy_reloads_the_partition(cert, make_district, sample_stores, data_root):
    specs, asset = cert
    district = make_district(students=STUDENTS)
    assert run(asset, district, sample_stores, data_root).success
    loaded = store_snapshot(sample_stores, district)
    for strategy in ("upsert", "merge", "replace"):
        result = run(asset, district, sample_stores, data_root, strategy=strategy)
        assert result.success, strategy
        assert len(materializations(result)) == len(specs.specs)
        assert all(e.passed for e in check_evaluations(result))
        meta = result.get_asset_materialization_events()[0].materialization.metadata
        assert meta["cert_loader/strategy"].value == strategy
        if strategy == "merge":
            assert meta["cert_loader/inserted"].value == 0
            assert meta["cert_loader/unchanged"].value == meta["cert_loader/rows"].value
        if strategy == "replace":
            assert meta["cert_loader/deleted"].value == meta["cert_loader/inserted"].value
        assert store_snapshot(sample_stores, district) == loaded


def orphan_principal(data_root: Path, district: str) -> None:
    """Point one school's principal (a DEFERRABLE FK, checked only by the verification) at no staff."""
    path = DistrictPaths(data_root, district).source_file("ids", "school")
    table = pq.read_table(path)
    column = table.column("principal_staff_id").to_pylist()
    column[0] = 987_654_321
    index = table.schema.get_field_index("principal_staff_id")
    pq.write_table(table.set_column(index, table.field(index), pa.array(column, table.field(index).type)), path)


def test_failed_check_rolls_back_every_store_and_fails_the_step(cert, make_district, sample_stores, data_root):
    specs, asset = cert
    district = make_district(students=STUDENTS)
    assert run(asset, district, sample_stores, data_root).success
    before = store_snapshot(sample_stores, district)
    orphan_principal(data_root, district)

    result = run(asset, district, sample_stores, data_root, strategy="replace")
    assert not result.success
    assert materializations(result) == []
    (failed,) = check_evaluations(result)
    assert (failed.asset_key, failed.check_name, failed.passed) == (dg.AssetKey(["cert", "ids", "school"]), "fk_integrity", False)
    assert failed.metadata["orphans"].value == 1
    assert failed.metadata["examples"].value[0]["fk"] == "school_principal_fk"
    message = step_failure(result)
    assert "ids: public.school: post-load verification failed" in message and "school_principal_fk" in message
    assert store_snapshot(sample_stores, district) == before


def test_subset_loads_only_the_selection(cert, make_district, sample_stores, data_root):
    specs, asset = cert
    district = make_district(students=STUDENTS)
    result = run(asset, district, sample_stores, data_root, selection=dg.AssetSelection.groups("cert_hcp2"))
    assert result.success
    assert {k.path[1] for k in materializations(result)} == {"hcp2"}
    assert len(materializations(result)) == 5
    rows = store_snapshot(sample_stores, district)
    assert all(n > 0 for n in rows["hcp2"].values())
    assert not any(n for store in ("ids", "hcp1", "adb") for n in rows[store].values())


def test_subset_without_parent_rows_fails_clearly(cert, make_district, sample_stores, data_root):
    specs, asset = cert
    district = make_district(students=STUDENTS)
    result = run(asset, district, sample_stores, data_root, selection=[dg.AssetKey(["cert", "ids", "edfi__enrollment"])])
    assert not result.success
    assert materializations(result) == []
    message = step_failure(result)
    assert "ids: edfi.enrollment" in message and "enrollment_district_id_student_id_fkey" in message
    assert "the selection leaves out the parent asset(s) cert/ids/edfi__section, cert/ids/edfi__student" in message
    assert not any(store_snapshot(sample_stores, district)["ids"].values())
    # school's principal FK is DEFERRABLE (not a dep: it closes a cycle) and still names its parent
    result = run(asset, district, sample_stores, data_root, selection=[dg.AssetKey(["cert", "ids", "school"])])
    assert "school_principal_fk" in step_failure(result)
    assert "the selection leaves out the parent asset(s) cert/ids/staff:" in step_failure(result)


def test_drift_since_the_manifest_fails_the_run(manifest_file, make_district, sample_stores, data_root, tmp_path):
    data = json.loads(manifest_file.read_text())
    clinic = next(t for t in data["stores"]["hcp1"]["tables"] if t["name"] == "clinic")
    clinic["columns"] = [c for c in clinic["columns"] if c["name"] != "phone"]
    stale = tmp_path / "stale.json"
    stale.write_text(json.dumps(data))
    asset = build_cert_asset(build_specs(read_manifest(stale)), stale)
    district = make_district(students=STUDENTS)
    result = run(asset, district, sample_stores, data_root)
    assert not result.success
    assert ('hcp1: table public.clinic gained column "phone" since the manifest was written; '
            "run cert-loader snapshot") in step_failure(result)
    assert not any(n for rows in store_snapshot(sample_stores, district).values() for n in rows.values())


def test_graph_store_materializes_nodes_and_relationships(sample_stores, graph_config, make_district, data_root, tmp_path):
    from cert_loader.defs.resources import GraphStoreResource, resource_key

    manifest = read_manifest(snapshot_to(sample_stores, tmp_path / "cert-schema.json"))
    manifest.graph_assets = ("nodes", "relationships")
    specs = build_specs(manifest)
    asset = build_cert_asset(specs, manifest.path)
    district = make_district(students=STUDENTS)
    resources = pg_resources(sample_stores, data_root) | {resource_key("sp"): GraphStoreResource(
        uri=graph_config.uri, user=graph_config.user, password=graph_config.password, database=graph_config.database)}
    result = dg.materialize(
        [asset], partition_key=district, instance=instance_with([district]), resources=resources, raise_on_error=False,
        selection=dg.AssetSelection.groups("cert_sp", "cert_ids"),
    )
    assert result.success, step_failure(result)
    keys = [k.to_user_string() for k in materializations(result)]
    assert keys[-2:] == ["cert/sp/nodes", "cert/sp/relationships"] and len(keys) == 10
    graph_checks = {(e.asset_key.path[-1], e.check_name): e.passed for e in check_evaluations(result) if e.asset_key.path[1] == "sp"}
    assert graph_checks == {("nodes", "node_count"): True, ("relationships", "relationship_count"): True,
                            ("relationships", "dangling"): True}
