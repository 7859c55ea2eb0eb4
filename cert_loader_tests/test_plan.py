"""The order check, the catalog order, cycles, search_path resolution and hostile identifiers, on purpose-built schemas."""

from __future__ import annotations

import json
from pathlib import Path

import psycopg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from cert_loader.config import LoaderConfig, PgStoreConfig
from cert_loader.engine import LoadOptions, load_district, plan_district
from cert_loader_tests.fix_district import district_rows, new_district

DDL = '''
CREATE SCHEMA app;
ALTER DATABASE {db} SET search_path = app, public;
CREATE TABLE app.parent (district_id text NOT NULL, id int NOT NULL, PRIMARY KEY (district_id, id));
CREATE TABLE app.child (district_id text NOT NULL, id int NOT NULL, parent_id int,
  PRIMARY KEY (district_id, id),
  CONSTRAINT child_parent_fk FOREIGN KEY (district_id, parent_id) REFERENCES app.parent (district_id, id));
CREATE TABLE app.node (district_id text NOT NULL, id int NOT NULL, up int,
  PRIMARY KEY (district_id, id), FOREIGN KEY (district_id, up) REFERENCES app.node (district_id, id));
CREATE TABLE public.a (district_id text NOT NULL, id int PRIMARY KEY, b_id int);
CREATE TABLE public.b (district_id text NOT NULL, id int PRIMARY KEY, a_id int REFERENCES public.a (id) DEFERRABLE);
ALTER TABLE public.a ADD CONSTRAINT a_b_fk FOREIGN KEY (b_id) REFERENCES public.b (id) DEFERRABLE;
CREATE TABLE public.x (district_id text NOT NULL, id int PRIMARY KEY, y_id int);
CREATE TABLE public.y (district_id text NOT NULL, id int PRIMARY KEY, x_id int REFERENCES public.x (id));
ALTER TABLE public.x ADD CONSTRAINT x_y_fk FOREIGN KEY (y_id) REFERENCES public.y (id);
CREATE TABLE public."We;ird ""T""" (district_id text NOT NULL, "k ey" int PRIMARY KEY,
  "co""l; DROP TABLE x;--" text, "Ünï" text, "select" int);
'''


@pytest.fixture(scope="module")
def custom_url(make_database):
    name_holder = {}

    def ddl_for(url):
        return DDL.format(db='"' + url.rsplit("/", 1)[1] + '"')

    url = make_database("custom", ddl=None)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(ddl_for(url))
    name_holder["url"] = url
    return url


def write_district(root: Path, district: str, tables: dict[str, pa.Table], order: list[str] | None) -> None:
    base = root / "data" / "anonymized" / district
    (base / "ids").mkdir(parents=True, exist_ok=True)
    (base / "validation-report.json").write_text(json.dumps(
        {"district_id": district, "overall_status": "PASSED", "summary": {"total_errors": 0, "total_warnings": 0}}))
    for name, table in tables.items():
        pq.write_table(table, base / "ids" / f"{name}.parquet")
    order_file = root / "data" / "analysis" / "extraction-order.json"
    order_file.parent.mkdir(parents=True, exist_ok=True)
    if order is None:
        order_file.unlink(missing_ok=True)
    else:
        order_file.write_text(json.dumps({"ids": order}))


def cfg(root, url) -> LoaderConfig:
    return LoaderConfig(root, {"ids": PgStoreConfig("ids", url)})


def t(district, **cols) -> pa.Table:
    n = len(next(iter(cols.values())))
    return pa.table({"district_id": [district] * n, **cols})


def test_child_before_parent_is_refused(tmp_path, custom_url):
    d = new_district()
    write_district(tmp_path, d, {"parent": t(d, id=[1]), "child": t(d, id=[1], parent_id=[1])}, ["child", "parent"])
    report = load_district(cfg(tmp_path, custom_url), d)
    assert report.status == "FAILED"
    msg = report.error["message"]
    assert "loads app.child before its parent app.parent" in msg and "child_parent_fk" in msg


def test_catalog_order_without_order_file(tmp_path, custom_url):
    d = new_district()
    write_district(tmp_path, d, {"child": t(d, id=[1, 2], parent_id=[1, None]), "parent": t(d, id=[1])}, None)
    pf = plan_district(cfg(tmp_path, custom_url), d)
    try:
        names = [tp.table.qualname for tp in pf.plan.stores["ids"].tables]
        assert names.index("app.parent") < names.index("app.child")
        assert pf.plan.stores["ids"].order_source == "catalog"
    finally:
        pf.close()
    report = load_district(cfg(tmp_path, custom_url), d)
    assert report.status == "SUCCESS", report.error
    # Unqualified names resolved through the database's search_path (app before public).
    assert district_rows(custom_url, d)["app.child"] == 2


def test_self_reference_with_parent_later_in_file(tmp_path, custom_url):
    d = new_district()
    write_district(tmp_path, d, {"node": t(d, id=[1, 2, 3], up=[3, 1, None])}, ["node"])
    report = load_district(cfg(tmp_path, custom_url), d)
    assert report.status == "SUCCESS", report.error


def test_deferrable_cycle_loads(tmp_path, custom_url):
    d = new_district()
    base = abs(hash(d)) % 1_000_000 * 10
    write_district(tmp_path, d, {
        "a": t(d, id=[base + 1], b_id=[base + 1]),
        "b": t(d, id=[base + 1], a_id=[base + 1]),
    }, ["public.a", "public.b"])
    # Files are named by the order entry.
    root = tmp_path / "data" / "anonymized" / d / "ids"
    (root / "a.parquet").rename(root / "public.a.parquet")
    (root / "b.parquet").rename(root / "public.b.parquet")
    pf = plan_district(cfg(tmp_path, custom_url), d)
    try:
        assert pf.plan.stores["ids"].deferrable_cycles
    finally:
        pf.close()
    report = load_district(cfg(tmp_path, custom_url), d)
    assert report.status == "SUCCESS", report.error


def test_non_deferrable_cycle_is_refused(tmp_path, custom_url):
    d = new_district()
    write_district(tmp_path, d, {"x": t(d, id=[1], y_id=[None]), "y": t(d, id=[1], x_id=[None])}, ["x", "y"])
    report = load_district(cfg(tmp_path, custom_url), d)
    assert report.status == "FAILED"
    assert "cycle of foreign keys that are not DEFERRABLE" in report.error["message"]
    assert "public.x" in report.error["message"] and "public.y" in report.error["message"]


@pytest.mark.parametrize("seq_scan_rows", [None, 1], ids=["index", "seq-scan-verify"])
def test_hostile_identifiers_load(tmp_path, custom_url, seq_scan_rows, monkeypatch):
    from cert_loader.verify import tables as verify

    settings_used = []
    if seq_scan_rows:  # the verification's sequential-scan path looks the table up by its quoted name
        monkeypatch.setattr(verify, "SEQ_SCAN_ROWS", seq_scan_rows)
        original = verify.scan_settings
        monkeypatch.setattr(verify, "scan_settings", lambda ctx, tp: settings_used.append(original(ctx, tp)) or settings_used[-1])
        with psycopg.connect(custom_url, autocommit=True) as conn:
            conn.execute('DELETE FROM "We;ird ""T"""')
            conn.execute('ANALYZE "We;ird ""T"""')  # known empty: the district will be all of it
    d = new_district()
    name = 'We;ird "T"'
    key = abs(hash(d)) % 1_000_000 * 10
    table = pa.table({
        "district_id": [d, d], "k ey": [key, key + 1], 'co"l; DROP TABLE x;--': ["'; DROP TABLE y; --", None],
        "Ünï": ["😀", "北京"], "select": [1, 2],
    })
    write_district(tmp_path, d, {name: table}, [name])
    report = load_district(cfg(tmp_path, custom_url), d)
    assert report.status == "SUCCESS", report.error
    with psycopg.connect(custom_url) as conn:
        rows = conn.execute('SELECT "co""l; DROP TABLE x;--", "Ünï" FROM "We;ird ""T""" WHERE district_id = %s '
                            'ORDER BY "k ey"', (d,)).fetchall()
    assert rows == [("'; DROP TABLE y; --", "😀"), (None, "北京")]
    for strategy in ("upsert", "merge", "replace"):
        assert load_district(cfg(tmp_path, custom_url), d, LoadOptions(strategy=strategy)).status == "SUCCESS"
    if seq_scan_rows:
        assert settings_used[0]["enable_bitmapscan"] == "off"  # the first load verified by a sequential scan


def test_hostile_column_not_in_table_is_refused(tmp_path, custom_url):
    d = new_district()
    name = 'We;ird "T"'
    table = pa.table({"district_id": [d], "k ey": [1], 'x"; DROP TABLE a; --': ["v"]})
    write_district(tmp_path, d, {name: table}, [name])
    report = load_district(cfg(tmp_path, custom_url), d)
    assert report.status == "FAILED"
    assert 'column "x"; DROP TABLE a; --" of' in report.error["message"]
    assert "not in the table" in report.error["message"]
    with psycopg.connect(custom_url) as conn:
        assert conn.execute("SELECT to_regclass('public.a') IS NOT NULL").fetchone()[0]


FK_INDEX_DDL = '''
CREATE TABLE p (district_id text NOT NULL, id int NOT NULL, PRIMARY KEY (district_id, id));
CREATE TABLE bare (district_id text NOT NULL, id int NOT NULL, p_id int NOT NULL, PRIMARY KEY (district_id, id),
  FOREIGN KEY (district_id, p_id) REFERENCES p (district_id, id));
CREATE TABLE indexed (district_id text NOT NULL, id int NOT NULL, p_id int NOT NULL, PRIMARY KEY (district_id, id),
  FOREIGN KEY (district_id, p_id) REFERENCES p (district_id, id));
CREATE INDEX ON indexed (p_id, district_id, id);
'''


def test_replace_warns_of_a_referencing_fk_without_an_index(tmp_path, make_database):
    """A delete of p checks bare's FK row by row through its (district_id, id) key, reading all the district's rows."""
    url = make_database("fkindex", ddl=FK_INDEX_DDL)
    d = new_district()
    write_district(tmp_path, d, {"p": t(d, id=[1]), "bare": t(d, id=[1], p_id=[1]), "indexed": t(d, id=[1], p_id=[1])},
                   ["p", "bare", "indexed"])
    warnings = {}
    for strategy in ("insert", "replace"):
        pf = plan_district(cfg(tmp_path, url), d, LoadOptions(strategy=strategy))
        try:
            warnings[strategy] = [w for w in pf.plan.warnings if "no index" in w]
        finally:
            pf.close()
    assert warnings["insert"] == []
    [warning] = warnings["replace"]
    assert warning.startswith("ids: public.p: replace deletes") and "public.bare (district_id, p_id)" in warning
    assert "CREATE INDEX ON public.bare (district_id, p_id)" in warning and "indexed" not in warning
    report = load_district(cfg(tmp_path, url), d, LoadOptions(strategy="replace"))
    assert report.status == "SUCCESS", report.error
    assert warning in report.warnings  # the report says it too
