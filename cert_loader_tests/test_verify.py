"""verify_table (verify/tables.py) on a real table inside an open transaction: counts, FK orphans, MATCH SIMPLE nulls."""

from __future__ import annotations

import secrets

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from psycopg import sql

from cert_loader.catalog import read_catalog
from cert_loader.config import PgStoreConfig
from cert_loader.inputs import ParquetSource
from cert_loader.plan import StorePlan, TablePlan
from cert_loader.store_context import StoreContext
from cert_loader.stores.postgres import PgStore
from cert_loader.strategies import get_strategy
from cert_loader.transaction import StoreTransaction
from cert_loader.verify import EXAMPLES, verify_table

# The FK is deferrable so the test can insert an orphan inside the transaction and verify before COMMIT,
# as a load does with the deferrable half of a cycle.
DDL = """
CREATE TABLE parent (district_id text NOT NULL, id int NOT NULL, PRIMARY KEY (district_id, id));
CREATE TABLE child (district_id text NOT NULL, id int NOT NULL, parent_id int,
  PRIMARY KEY (district_id, id),
  CONSTRAINT child_parent_fk FOREIGN KEY (district_id, parent_id) REFERENCES parent (district_id, id)
    DEFERRABLE INITIALLY DEFERRED);
"""


@pytest.fixture(scope="module")
def verify_url(make_database):
    return make_database("verify", ddl=DDL)


@pytest.fixture(params=["index", "seq-scan"])
def open_tx(request, verify_url, tmp_path, monkeypatch):
    """(insert, check): rows go into an open transaction; check verifies child against a source of n rows.

    Both scan plans (through the district index, and the sequential scan of a large district) must agree.
    The transaction is rolled back at the end: nothing stays in the table.
    """
    if request.param == "seq-scan":
        monkeypatch.setattr("cert_loader.verify.tables.SEQ_SCAN_ROWS", 1)
    district = f"d-{secrets.token_hex(4)}"
    pg = PgStore(PgStoreConfig("ids", verify_url))
    pg.connect()
    tx = StoreTransaction(pg, "unused", two_phase=False)
    tx.begin()

    def insert(table: str, *rows: tuple) -> None:
        for row in rows:
            pg.execute(sql.SQL("INSERT INTO {} VALUES ({})").format(
                sql.Identifier(table), sql.SQL(", ").join([sql.Placeholder()] * len(row))), row)

    def check(source_rows: int):
        path = tmp_path / f"child-{source_rows}.parquet"
        pq.write_table(pa.table({"id": pa.array(range(source_rows), pa.int32())}), path)
        catalog = read_catalog(pg.conn, "ids")
        tp = TablePlan("ids", "child", catalog.tables[("public", "child")],
                       source=ParquetSource.open(path, store="ids", table="public.child"))
        ctx = StoreContext(pg, StorePlan("ids", catalog, [tp]), district, "t0")
        return {c.check: c for c in verify_table(ctx, get_strategy("insert"), tp)}

    check.district = district
    try:
        yield insert, check
    finally:
        tx.rollback()
        pg.close()


def test_a_matching_table_passes_both_checks(open_tx):
    insert, check = open_tx
    d = check.district
    insert("parent", (d, 1), (d, 2))
    insert("child", (d, 1, 1), (d, 2, 2), (d, 3, 1))
    checks = check(3)
    assert checks["row_count"].passed and (checks["row_count"].expected, checks["row_count"].actual) == (3, 3)
    assert checks["fk_integrity"].passed and checks["fk_integrity"].actual == 0
    assert checks["fk_integrity"].detail == "1 foreign key(s) hold" and checks["fk_integrity"].examples == []


def test_a_count_mismatch_fails_naming_both_numbers(open_tx):
    insert, check = open_tx
    d = check.district
    insert("parent", (d, 1), ("other", 1))
    insert("child", (d, 1, 1), (d, 2, 1), ("other", 1, 1))  # another district's rows are not counted
    count = check(3)["row_count"]
    assert not count.passed and (count.expected, count.actual) == (3, 2)
    assert count.detail == "expected 3 rows of the district, found 2"


def test_an_orphan_fails_with_its_key_as_example(open_tx):
    insert, check = open_tx
    d = check.district
    insert("parent", (d, 1))
    insert("child", (d, 1, 1), (d, 2, 999))
    fk = check(2)["fk_integrity"]
    assert not fk.passed and fk.actual == 1
    assert fk.examples == [{"fk": "child_parent_fk", "key": {"district_id": d, "parent_id": "999"}}]
    assert fk.detail.startswith("1 row(s) violate child_parent_fk (district_id, parent_id) -> public.parent, e.g. ")


def test_examples_are_capped(open_tx):
    insert, check = open_tx
    d = check.district
    insert("child", *[(d, i, 1000 + i) for i in range(EXAMPLES + 3)])
    fk = check(EXAMPLES + 3)["fk_integrity"]
    assert fk.actual == EXAMPLES + 3 and len(fk.examples) == EXAMPLES
    assert fk.detail.startswith(f"{EXAMPLES + 3} row(s) violate child_parent_fk")


def test_null_fk_columns_are_not_orphans(open_tx):
    """MATCH SIMPLE: a row with any FK column NULL references nothing, so it is no orphan."""
    insert, check = open_tx
    d = check.district
    insert("parent", (d, 1))
    insert("child", (d, 1, 1), (d, 2, None), (d, 3, None))
    checks = check(3)
    assert checks["fk_integrity"].passed and checks["fk_integrity"].actual == 0
    assert checks["row_count"].passed


def test_another_districts_orphan_is_not_this_districts_problem(open_tx):
    insert, check = open_tx
    d = check.district
    insert("parent", (d, 1))
    insert("child", (d, 1, 1), ("other", 5, 999))
    assert check(1)["fk_integrity"].passed
