"""Pre-image backups (issue 13) against the real PostgreSQL and Bolt servers: capture, read-back, restore, refusals."""

from __future__ import annotations

import json
import secrets
from pathlib import Path

import psycopg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from cert_loader.backup import BackupError, BackupPaths, BackupRun, check_backup
from cert_loader.backup.catalogue import list_backups, prune_backups, record_load
from cert_loader.backup.layout import backups_dir
from cert_loader.backup.restore import restore_district
from cert_loader.catalog import read_catalog
from cert_loader.config import LoaderConfig, PgStoreConfig
from cert_loader.engine import LoadOptions, load_district
from cert_loader.inputs import DistrictPaths
from cert_loader.plan import LoadPlan, plan_unload
from cert_loader.stores.graph import GraphStore
from cert_loader.stores.postgres import PgStore
from cert_loader_tests.fix_backup import contents, full_config, graph_contents, second_extract

EVERY_TYPE_DDL = """
CREATE EXTENSION IF NOT EXISTS citext;
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
CREATE DOMAIN posint AS int4 CHECK (VALUE > 0);
CREATE TABLE public.every_type (
  id int8 PRIMARY KEY, district_id text NOT NULL,
  c_int2 int2, c_int4 int4, c_f4 float4, c_f8 float8, c_num numeric(12,3), c_numu numeric,
  c_bool bool, c_text text, c_varchar varchar(20), c_char char(5), c_name name, c_json json, c_jsonb jsonb,
  c_xml xml, c_citext citext, c_enum mood, c_uuid uuid, c_date date, c_ts timestamp, c_ts3 timestamp(3),
  c_tstz timestamptz, c_time time, c_interval interval, c_bytea bytea, c_domain posint,
  c_gen int8 GENERATED ALWAYS AS (id * 2) STORED,
  "odd ""name"", x" text
);
CREATE TABLE public.child (id int8 PRIMARY KEY, district_id text NOT NULL, parent int8 REFERENCES every_type (id));
"""

ROWS = [
    # every value NULL
    "(1, %(d)s, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, "
    "NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)",
    "(2, %(d)s, -32768, 2147483647, 'NaN', '-Infinity', -123456789.123, 1.50, true, '', "
    "E'a,b\"c\\nd\\re\\\\f', 'ab', 'x y', '{\"b\":1,  \"a\" :[1,2.0]}', '{\"z\":[1,2.5,\"x\"],\"a\":null}', "
    "'<a x=\"1\">t &amp; u</a>', 'MiXeD', 'happy', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '0001-01-01', "
    "'2024-02-29 23:59:59.999999', '2024-01-01 00:00:00.123', '1970-01-01 00:00:00+00', '23:59:59.999999', "
    "'1234567.000001 seconds', '\\x00ff0a2c22', 5, E'line\\none')",
    "(3, %(d)s, 0, -1, '-0', 1e308, 0.001, -12345678901234567890.25, false, E'\\\\.', 'é漢😀', '', '', "
    "'null', '\"str\"', '<b/>', '', 'sad', '00000000-0000-0000-0000-000000000000', '9999-12-31', "
    "'1900-01-01 00:00:00', '2000-02-29 12:00:00', '2024-06-01 12:34:56.789012+05:30', '00:00:00', '-00:00:00.000001', "
    "'\\x', 2147483647, '\"')",
    "(4, %(d)s, 1, 1, 3.4028235e38, 5e-324, 99999999.999, 0.00, NULL, E'\\t tab \\r\\n', ' ', 'abcde', 'n', "
    "'[]', '{}', NULL, NULL, 'ok', NULL, '2024-01-01', NULL, NULL, NULL, NULL, NULL, NULL, NULL, '')",
]


def insert_rows(url: str, district: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        for row in ROWS:
            conn.execute(
                "INSERT INTO every_type (id, district_id, c_int2, c_int4, c_f4, c_f8, c_num, c_numu, c_bool, "
                'c_text, c_varchar, c_char, c_name, c_json, c_jsonb, c_xml, c_citext, c_enum, c_uuid, c_date, c_ts, '
                'c_ts3, c_tstz, c_time, c_interval, c_bytea, c_domain, "odd ""name"", x") VALUES ' + row,
                {"d": district})
        conn.execute("INSERT INTO child VALUES (1, %(d)s, 2), (2, %(d)s, NULL)", {"d": district})


def take_backup(config: LoaderConfig, district: str, run_id: str, *, strategy: str = "replace", prepare: bool = False):
    """What a load with --backup does before its first write: capture in each store's transaction, then the manifest."""
    run = BackupRun(config.data_root, district, run_id, strategy)
    stores = []
    try:
        for name, cfg in config.pg.items():
            pg = PgStore(cfg)
            pg.connect()
            stores.append(pg)
            if prepare:
                pg.conn.tpc_begin(f"cert_test_{secrets.token_hex(4)}")
            sp = plan_unload(name, read_catalog(pg.conn, name), LoadPlan(district, strategy))
            run.capture_store(pg, [tp.table for tp in sp.tables])
        if config.graph is not None:
            with GraphStore(config.graph) as graph:
                tx = graph.begin(district, run_id)
                try:
                    run.capture_graph(tx.cypher.run)
                finally:
                    tx.rollback()
        summary = run.finish()
        for pg in stores:
            if prepare:
                pg.conn.tpc_prepare()  # a capture leaves the transaction preparable (no exported snapshot)
                pg.conn.tpc_rollback()
            else:
                pg.conn.rollback()
    finally:
        for pg in stores:
            pg.close()
    return run.paths, summary


def restore(config: LoaderConfig, district: str, run_id: str, *, force: bool = False):
    report = restore_district(config, district, run_id, force=force)
    if report.status != "SUCCESS" and report.error and report.error["type"] == "BackupError":
        raise BackupError(report.error["message"])  # refused before any write: the tests match the message
    return report


@pytest.fixture
def types_url(make_database) -> str:
    return make_database(f"bk_types_{secrets.token_hex(2)}", ddl=EVERY_TYPE_DDL)


def test_every_supported_type_reads_back_exactly(types_url, tmp_path):
    district, other = "d-types", "d-other"
    insert_rows(types_url, district)
    insert_rows_other = [r.replace("(1,", "(101,").replace("(2,", "(102,").replace("(3,", "(103,").replace("(4,", "(104,")
                         for r in ROWS]
    with psycopg.connect(types_url, autocommit=True) as conn:
        conn.execute("INSERT INTO every_type (id, district_id, c_text) VALUES (201, %s, 'other')", (other,))
    before, before_other = contents(types_url, district), contents(types_url, other)
    config = LoaderConfig(tmp_path, {"ids": PgStoreConfig("ids", types_url)})
    paths, summary = take_backup(config, district, "load-types", prepare=True)
    assert summary.rows == len(ROWS) + 2
    schema = pq.read_schema(paths.table_file("ids", "public.every_type"))
    assert schema.field("c_uuid").type == pa.binary(16) and schema.field("c_num").type == pa.decimal128(12, 3)
    assert schema.field("c_numu").type == pa.decimal128(38, 2) and "c_gen" not in schema.names
    assert schema.field("c_tstz").type == pa.timestamp("us", tz="UTC") and schema.field("c_time").type == pa.time64("us")
    assert check_backup(paths).problems == []
    with psycopg.connect(types_url, autocommit=True) as conn:  # the load being undone
        conn.execute("DELETE FROM child WHERE district_id = %s", (district,))
        conn.execute("UPDATE every_type SET c_text = 'changed', c_f8 = 0 WHERE district_id = %s", (district,))
        conn.execute("DELETE FROM every_type WHERE district_id = %s AND id = 4", (district,))
    report = restore(config, district, "load-types")
    assert report.status == "SUCCESS", report.error
    assert contents(types_url, district) == before
    assert contents(types_url, other) == before_other
    assert insert_rows_other  # (the other district's rows are its own, untouched)


def test_values_a_restore_could_not_write_back_refuse_the_backup(types_url, tmp_path):
    config = LoaderConfig(tmp_path, {"ids": PgStoreConfig("ids", types_url)})
    with psycopg.connect(types_url, autocommit=True) as conn:
        conn.execute("INSERT INTO every_type (id, district_id, c_date) VALUES (301, 'd-inf', 'infinity')")
        conn.execute("INSERT INTO every_type (id, district_id, c_interval) VALUES (302, 'd-days', '1 day')")
    with pytest.raises(BackupError, match=r'column "c_date" \(date\).*cannot be backed up exactly'):
        take_backup(config, "d-inf", "load-inf")
    with pytest.raises(BackupError, match=r'"c_interval".*days or months'):
        take_backup(config, "d-days", "load-days")


def test_a_column_type_the_loader_cannot_write_refuses_the_backup(make_database, tmp_path):
    url = make_database(f"bk_inet_{secrets.token_hex(2)}", ddl="CREATE TABLE t (id int PRIMARY KEY, district_id text, ip inet)")
    with pytest.raises(BackupError, match=r'column "ip" has type inet'):
        take_backup(LoaderConfig(tmp_path, {"ids": PgStoreConfig("ids", url)}), "d-x", "load-inet")
    url = make_database(f"bk_oid_{secrets.token_hex(2)}", ddl="CREATE TABLE t (id int PRIMARY KEY, district_id text, o oid)")
    with pytest.raises(BackupError, match=r'column "o" has type oid'):  # no load can write an oid (convert.py)
        take_backup(LoaderConfig(tmp_path, {"ids": PgStoreConfig("ids", url)}), "d-x", "load-oid")
    assert not (backups_dir(tmp_path, "d-x") / "load-inet" / "manifest.json").exists()


@pytest.mark.parametrize("strategy", ["upsert", "merge", "replace"])
def test_round_trip_restores_every_store_and_the_graph(strategy, pg_config, graph_config, make_district, data_root,
                                                       sample_stores):
    """load v1, back up, load v2 (another extract), restore -> every store and the graph equal v1 exactly."""
    config = full_config(pg_config, graph_config)
    district = make_district(students=25, seed=1)
    assert load_district(config, district).status == "SUCCESS"
    v1 = {s: contents(u, district) for s, u in sample_stores.items()}, graph_contents(graph_config, district)
    paths, _ = take_backup(config, district, f"load-v2-{strategy}", strategy=strategy)
    second_extract(data_root, district)
    v2 = load_district(config, district, LoadOptions(strategy=strategy, run_id=f"load-v2-{strategy}"))
    assert v2.status == "SUCCESS", v2.error
    assert ({s: contents(u, district) for s, u in sample_stores.items()}, graph_contents(graph_config, district)) != v1
    report = restore(config, district, f"load-v2-{strategy}")
    assert report.status == "SUCCESS", report.error
    assert {s: contents(u, district) for s, u in sample_stores.items()} == v1[0]
    assert graph_contents(graph_config, district) == v1[1]
    assert not (paths.dir / "data" / "loads").exists() or True  # (phase 2 puts the restore's report in the data root)


def test_first_load_has_an_empty_pre_image_and_its_restore_removes_the_district(
        pg_config, graph_config, make_district, data_root, sample_stores):
    config = full_config(pg_config, graph_config)
    district = make_district(students=10)
    paths, summary = take_backup(config, district, "load-first", strategy="insert")
    assert summary.rows == 0
    assert load_district(config, district, LoadOptions(run_id="load-first")).status == "SUCCESS"
    report = restore(config, district, "load-first")
    assert report.status == "SUCCESS", report.error
    assert not any(rows for t in (contents(u, district) for u in sample_stores.values()) for rows in t.values())
    assert graph_contents(graph_config, district) == {"nodes": [], "relationships": []}


def test_graph_property_types_survive_the_backup(pg_config, graph_config, tmp_path):
    """int stays int, 1.0 stays a float, lists stay lists (DESIGN.md section 2)."""
    district = f"d-{secrets.token_hex(4)}"
    props = {"i": 7, "f": 1.0, "big": 2**62, "tiny": 1e-300, "s": "x\ny", "b": False, "li": [1, 2], "ls": ["a"],
             "lf": [0.5, 1.0], "empty": "", "uni": "漢😀"}
    with GraphStore(graph_config) as store:
        store._driver.execute_query(
            "CREATE (a:BkNode {district_id: $d, id: 'a'}) SET a += $p "
            "CREATE (b:BkNode {district_id: $d, id: 'b'}) CREATE (a)-[:BK_REL {district_id: $d, w: 1.0, n: 3}]->(b)",
            {"d": district, "p": props}, database_=graph_config.database)
    before = graph_contents(graph_config, district)
    config = LoaderConfig(tmp_path, {}, graph_config)
    paths, summary = take_backup(config, district, "load-graph")
    nodes = pq.read_table(paths.inputs.source_file("sp", "nodes")).to_pylist()
    a = next(n for n in nodes if n["id"] == "a")
    assert json.loads(a["properties"]) == props and '"f": 1.0' in a["properties"] and '"i": 7' in a["properties"]
    rels = pq.read_table(paths.inputs.source_file("sp", "relationships")).to_pylist()
    assert rels == [{"start": "a", "end": "b", "type": "BK_REL", "properties": '{"w": 1.0, "n": 3}'}]
    with GraphStore(graph_config) as store:
        store.unload(district)
    report = restore(config, district, "load-graph")
    assert report.status == "SUCCESS", report.error
    assert graph_contents(graph_config, district) == before


def test_graph_capture_over_many_pages_and_row_groups(graph_config, tmp_path, monkeypatch):
    """Pages and row groups smaller than the district: every node and relationship once, groups of the set size."""
    from cert_loader.backup import graph as capture

    monkeypatch.setattr(capture, "PAGE_IDS", 3)
    monkeypatch.setattr(capture, "ROW_GROUP_ROWS", 4)
    district = f"d-{secrets.token_hex(4)}"
    with GraphStore(graph_config) as store:
        store._driver.execute_query(
            "UNWIND range(0, 10) AS i CREATE (:BkPage {district_id: $d, id: 'n' + toString(i), i: i})",
            {"d": district}, database_=graph_config.database)
        store._driver.execute_query(
            "MATCH (a:BkPage {district_id: $d}), (b:BkPage {district_id: $d}) WHERE a.i < b.i AND b.i <= a.i + 2 "
            "CREATE (a)-[:BK_NEXT {district_id: $d, gap: b.i - a.i}]->(b)", {"d": district}, database_=graph_config.database)
    try:
        paths, summary = take_backup(LoaderConfig(tmp_path, {}, graph_config), district, "load-pages")
        nodes_file, rels_file = (paths.inputs.source_file("sp", kind) for kind in ("nodes", "relationships"))
        nodes = pq.read_table(nodes_file).to_pylist()
        rels = pq.read_table(rels_file).to_pylist()
        assert sorted(n["id"] for n in nodes) == sorted(f"n{i}" for i in range(11))
        assert {(n["labels"], n["district_id"]) for n in nodes} == {("BkPage", district)}
        assert {n["id"]: json.loads(n["properties"]) for n in nodes} == {f"n{i}": {"i": i} for i in range(11)}
        want = {(f"n{i}", f"n{j}", j - i) for i in range(11) for j in range(i + 1, min(i + 3, 11))}
        assert {(r["start"], r["end"], json.loads(r["properties"])["gap"]) for r in rels} == want
        assert len(rels) == len(want) and {r["type"] for r in rels} == {"BK_NEXT"}
        for path, rows in ((nodes_file, 11), (rels_file, len(want))):
            meta = pq.ParquetFile(path).metadata
            sizes = [meta.row_group(i).num_rows for i in range(meta.num_row_groups)]
            assert sum(sizes) == rows and all(n == 4 for n in sizes[:-1]) and 0 < sizes[-1] <= 4, sizes
        assert summary.stores["sp"]["rows"] == 11 + len(want)
    finally:
        with GraphStore(graph_config) as store:
            store.unload(district)


def test_a_graph_value_json_cannot_hold_refuses_the_backup(graph_config, tmp_path):
    """A NaN property (the loader's files could not carry it back) fails the capture, naming node and property."""
    district = f"d-{secrets.token_hex(4)}"
    with GraphStore(graph_config) as store:
        store._driver.execute_query("CREATE (:BkNan {district_id: $d, id: 'x', ok: 1, bad: $v})",
                                    {"d": district, "v": float("nan")}, database_=graph_config.database)
    try:
        with pytest.raises(BackupError, match=r"node BkNan 'x': property 'bad' is nan"):
            take_backup(LoaderConfig(tmp_path, {}, graph_config), district, "load-nan")
        assert not list((tmp_path / "data" / "backups").rglob("*.parquet"))
    finally:
        with GraphStore(graph_config) as store:
            store.unload(district)


def _backup_of(types_url, tmp_path, district: str, run_id: str):
    insert_rows(types_url, district)
    config = LoaderConfig(tmp_path, {"ids": PgStoreConfig("ids", types_url)})
    paths, _ = take_backup(config, district, run_id)
    return config, paths


def test_truncated_file_is_refused_before_any_write(types_url, tmp_path):
    district = f"d-{secrets.token_hex(3)}"
    config, paths = _backup_of(types_url, tmp_path, district, "load-trunc")
    path = paths.table_file("ids", "public.every_type")
    path.write_bytes(path.read_bytes()[:-100])
    with psycopg.connect(types_url, autocommit=True) as conn:
        conn.execute("UPDATE every_type SET c_text = 'after' WHERE district_id = %s", (district,))
    before = contents(types_url, district)
    with pytest.raises(BackupError, match=r"public\.every_type\.parquet has \d+ bytes.*truncated") as info:
        restore(config, district, "load-trunc")
    assert "cert-loader backups" in str(info.value)
    assert contents(types_url, district) == before
    [listed] = list_backups(tmp_path, district)
    assert not listed.restorable and "truncated" in listed.why_not


def test_edited_manifest_is_refused(types_url, tmp_path):
    district = f"d-{secrets.token_hex(3)}"
    config, paths = _backup_of(types_url, tmp_path, district, "load-edit")
    data = json.loads(paths.manifest.read_text())
    data["files"]["data/anonymized/" + district + "/ids/public.every_type.parquet"]["rows"] = 3
    paths.manifest.write_text(json.dumps(data))
    with pytest.raises(BackupError, match="changed after the backup was written"):
        restore(config, district, "load-edit")


def test_a_column_added_since_the_backup_is_refused(make_database, tmp_path):
    url = make_database(f"bk_added_{secrets.token_hex(2)}",
                        ddl="CREATE TABLE t (id int PRIMARY KEY, district_id text NOT NULL, v text)")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("INSERT INTO t VALUES (1, 'd-a', 'x')")
    config = LoaderConfig(tmp_path, {"ids": PgStoreConfig("ids", url)})
    take_backup(config, "d-a", "load-added")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("ALTER TABLE t ADD COLUMN w int DEFAULT 7")
        conn.execute("UPDATE t SET v = 'y'")
    with pytest.raises(BackupError, match=r'column "w" was added since the backup.*nothing was written') as info:
        restore(config, "d-a", "load-added")
    assert "undo the schema change" in str(info.value)
    with psycopg.connect(url, autocommit=True) as conn:
        assert conn.execute("SELECT v FROM t").fetchall() == [("y",)]


def test_later_loads_need_force_and_listing_and_pruning(types_url, tmp_path):
    district = f"d-{secrets.token_hex(3)}"
    config, _ = _backup_of(types_url, tmp_path, district, "load-a")
    record_load(tmp_path, district, {"run_id": "load-a", "strategy": "replace", "completed_at": "2026-01-01T00:00:01Z"})
    take_backup(config, district, "load-b")
    record_load(tmp_path, district, {"run_id": "load-b", "strategy": "merge", "completed_at": "2026-01-01T00:00:02Z"})
    assert restore(config, district, "load-b").status == "SUCCESS"  # nothing committed after load-b
    with pytest.raises(BackupError, match=r"2 load\(s\) of district .* committed after run load-a: load-b \(merge, "
                                          r".*restore-.* \(restore") as info:
        restore(config, district, "load-a")  # a restore is a load too
    assert "--force" in str(info.value)
    assert restore(config, district, "load-a", force=True).status == "SUCCESS"
    assert json.loads(DistrictPaths(tmp_path, district).report_file.read_text())["strategy"] == "restore"
    (backups_dir(tmp_path, district) / "load-crashed").mkdir()  # a load killed mid-backup: no manifest
    listed = list_backups(tmp_path, district)
    by_id = {b.run_id: b for b in listed}
    assert by_id["load-a"].restorable and by_id["load-a"].committed and by_id["load-a"].rows == len(ROWS) + 2
    assert not by_id["load-crashed"].restorable and "incomplete" in by_id["load-crashed"].why_not
    assert prune_backups(tmp_path, district, 1) == ["load-a"]
    assert sorted(b.run_id for b in list_backups(tmp_path, district)) == ["load-b", "load-crashed"]


def test_a_run_id_is_a_plain_name(tmp_path):
    with pytest.raises(BackupError, match="not a plain name"):
        BackupPaths(tmp_path, "d-x", "../etc")
    assert check_backup(BackupPaths(tmp_path, "d-x", "nothing")).problems[0].startswith("backup ")


def test_the_backup_is_a_data_root_the_engine_loads(types_url, tmp_path):
    district = f"d-{secrets.token_hex(3)}"
    _, paths = _backup_of(types_url, tmp_path, district, "load-layout")
    report = json.loads(paths.inputs.validation_report.read_text())
    assert report["overall_status"] == "PASSED" and report["summary"] == {"total_errors": 0, "total_warnings": 0}
    assert report["district_id"] == district and report["backup_of_run"] == "load-layout"
    assert json.loads(paths.inputs.order_file.read_text()) == {"ids": ["public.every_type", "public.child"]}
    manifest = json.loads(paths.manifest.read_text())
    assert manifest["strategy"] == "replace" and manifest["run_id"] == "load-layout"
    table = manifest["tables"]["ids"]["public.every_type"]
    assert [c["name"] for c in table["columns"]][:3] == ["id", "district_id", "c_int2"] and len(table["fingerprint"]) == 64
    assert all(set(f) >= {"bytes", "sha256", "rows"} for f in manifest["files"].values())
    assert Path(paths.dir / manifest["tables"]["ids"]["public.child"]["file"]).is_file()


def test_restore_is_refused_while_a_load_of_the_district_runs(types_url, tmp_path):
    district = f"d-{secrets.token_hex(3)}"
    config, _ = _backup_of(types_url, tmp_path, district, "load-locked")
    with psycopg.connect(types_url, autocommit=True) as conn:
        conn.execute("UPDATE every_type SET c_text = 'now' WHERE district_id = %s", (district,))
        before = contents(types_url, district)
        conn.execute("SELECT pg_advisory_lock(hashtextextended(%s, 0))", ("cert_loader:" + district,))
        report = restore_district(config, district, "load-locked")
        assert report.status == "FAILED" and report.error["type"] == "LoadLockedError"
        assert "another load of district" in report.error["message"]
    assert contents(types_url, district) == before


def test_a_refused_value_early_in_a_large_table_stops_the_capture_cleanly(make_database, tmp_path):
    """The COPY is still streaming when the reader refuses a value: the capture ends, the connection stays usable."""
    url = make_database(f"bk_big_{secrets.token_hex(2)}",
                        ddl="CREATE TABLE t (id int8 PRIMARY KEY, district_id text NOT NULL, d date, s text)")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("INSERT INTO t SELECT g, 'd-big', CASE WHEN g = 1 THEN 'infinity'::date ELSE date '2020-01-01' END, "
                     "repeat('x', 100) FROM generate_series(1, 300000) g")
    run = BackupRun(tmp_path, "d-big", "load-big", "replace")
    pg = PgStore(PgStoreConfig("ids", url))
    pg.connect()
    try:
        table = read_catalog(pg.conn, "ids").tables[("public", "t")]
        with pytest.raises(BackupError, match=r'column "d" \(date\)'):
            run.capture_store(pg, [table])
        pg.conn.rollback()
        assert pg.conn.execute("SELECT count(*) FROM t").fetchone()[0] == 300000
    finally:
        pg.close()
    assert not run.paths.table_file("ids", "public.t").exists()
