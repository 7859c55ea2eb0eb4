"""The schema manifest: snapshot of the live catalogs, round trip, and drift found at load time (issue 3, point 1)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cert_loader import cli
from cert_loader.config import LoaderConfig, PgStoreConfig
from cert_loader.engine import LoadOptions, load_district, plan_district
from cert_loader.errors import InputError
from cert_loader.manifest import default_manifest_path, drift, read_manifest, snapshot, write_manifest
from cert_loader.sample import apply_schema
from cert_loader_tests.dagster_support import SAMPLE_MANIFEST, snapshot_to
from cert_loader_tests.fix_district import store_snapshot

HINT = "run cert-loader snapshot (then reload the code location)"


def test_snapshot_of_the_sample_stores_matches_the_committed_sample(sample_stores, tmp_path) -> None:
    fresh = json.loads(snapshot_to(sample_stores, tmp_path / "m.json").read_text())
    committed = json.loads(SAMPLE_MANIFEST.read_text())
    committed["stores"].pop("sp")
    for data in (fresh, committed):
        data.pop("written_at")
        for store in data["stores"].values():
            store.pop("database")
    assert fresh == committed, "the sample schema changed: regenerate cert_loader_tests/sample-manifest.json"


def test_round_trip(sample_stores, tmp_path) -> None:
    config = LoaderConfig(tmp_path, {n: PgStoreConfig(n, u) for n, u in sample_stores.items()})
    manifest = snapshot(config)
    back = read_manifest(write_manifest(manifest, tmp_path / "m.json"))
    assert back.written_at == manifest.written_at and back.path == tmp_path / "m.json"
    for name, store in manifest.stores.items():
        assert [t.to_manifest() for t in back.stores[name].tables] == [t.to_manifest() for t in store.tables]
        assert back.stores[name].search_path == store.search_path
    assert not list(tmp_path.glob(".cert-schema.*"))  # the temp file was renamed


@pytest.fixture
def drift_store(make_database, request) -> str:
    url = make_database(f"drift_{request.node.name[-12:].lower()}")
    apply_schema(url, "ids")
    return url


def _alter(url: str, *statements: str) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        for statement in statements:
            conn.execute(statement)


def test_drift_names_every_change(drift_store, tmp_path) -> None:
    import psycopg

    from cert_loader.catalog import read_catalog

    manifest = read_manifest(snapshot_to({"ids": drift_store}, tmp_path / "m.json"))
    _alter(
        drift_store,
        "ALTER TABLE edfi.student ADD COLUMN nickname text",
        "ALTER TABLE edfi.course DROP COLUMN credits",
        "ALTER TABLE school_calendar ALTER COLUMN day_type TYPE varchar(40)",
        "ALTER TABLE edfi.attendance_event DROP CONSTRAINT attendance_event_district_id_school_id_fkey",
        "CREATE TABLE bus_route (district_id text NOT NULL, route_id int PRIMARY KEY)",
        "CREATE TABLE lookup (code text)",  # no district_id: not a CERT table, not drift
        "DROP TABLE edfi.enrollment",
    )
    with psycopg.connect(drift_store) as conn:
        live = read_catalog(conn, "ids")
    messages = sorted(str(e) for e in drift(manifest, "ids", live))
    tail = f" since the manifest was written; {HINT}"
    assert messages == sorted(f"ids: {m}{tail}" for m in [
        "table public.bus_route was created",
        "table edfi.enrollment was dropped",
        'table edfi.student gained column "nickname"',
        'table edfi.course lost column "credits"',
        "table public.school_calendar column \"day_type\" changed (type_sql 'character varying(20)' -> "
        "'character varying(40)', typmod 24 -> 44)",
        "table edfi.attendance_event lost foreign key attendance_event_district_id_school_id_fkey",
    ])


def test_load_refuses_drift_and_writes_nothing(drift_store, make_district, tmp_path, data_root) -> None:
    manifest = snapshot_to({"ids": drift_store}, tmp_path / "m.json")
    _alter(drift_store, "ALTER TABLE edfi.student ADD COLUMN nickname text")
    district = make_district(students=20)
    config = LoaderConfig(data_root, {"ids": PgStoreConfig("ids", drift_store)})
    expected = f'ids: table edfi.student gained column "nickname" since the manifest was written; {HINT}'

    pf = plan_district(config, district, LoadOptions(manifest=manifest))
    try:
        assert [str(p) for p in pf.plan.problems] == [expected]
    finally:
        pf.close()
    report = load_district(config, district, LoadOptions(manifest=manifest))
    assert report.status == "FAILED" and report.error["message"] == expected
    assert report.error["type"] == "CatalogError"
    assert not any(store_snapshot({"ids": drift_store}, district)["ids"].values())
    # without a manifest (the CLI) the same load goes through
    assert load_district(config, district).status == "SUCCESS"


def test_load_with_a_missing_manifest_says_how_to_make_one(sample_stores, make_district, data_root, tmp_path) -> None:
    config = LoaderConfig(data_root, {"adb": PgStoreConfig("adb", sample_stores["adb"])})
    report = load_district(config, make_district(students=10), LoadOptions(manifest=tmp_path / "none.json"))
    assert report.status == "FAILED"
    assert report.error["message"] == f"adb: schema manifest {tmp_path / 'none.json'} not found; {HINT}"


def test_read_manifest_refusals(tmp_path) -> None:
    with pytest.raises(InputError, match="not found"):
        read_manifest(tmp_path / "absent.json")
    path = tmp_path / "m.json"
    path.write_text(json.dumps({"format": "cert_loader/schema-manifest", "version": 1, "stores": {"xyz": {}}}))
    with pytest.raises(InputError, match="unknown store 'xyz'"):
        read_manifest(path)
    path.write_text(json.dumps({"format": "cert_loader/schema-manifest", "version": 1, "stores": {"ids": {}}}))
    with pytest.raises(InputError, match="is malformed"):
        read_manifest(path)


def test_cli_snapshot(sample_stores, tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("CERT_IDS_URL", sample_stores["ids"])
    monkeypatch.setenv("CERT_HCP2_URL", sample_stores["hcp2"])
    monkeypatch.delenv("CERT_SCHEMA_MANIFEST", raising=False)
    assert cli.main(["snapshot", "--stores", "ids,hcp2", "--data-root", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "ids: 8 CERT tables (8 in all)" in out and "hcp2: 5 CERT tables" in out
    default = default_manifest_path(tmp_path)
    assert f"wrote {default}" in out
    assert set(read_manifest(default).stores) == {"ids", "hcp2"}
    target = tmp_path / "elsewhere" / "schema.json"
    assert cli.main(["snapshot", "--stores", "ids", "--out", str(target)]) == 0
    assert set(read_manifest(target).stores) == {"ids"}
    assert Path(target).is_file()
