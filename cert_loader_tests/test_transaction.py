"""The transaction model (transaction.py) on real databases: gids, each store's transaction, the unit of work, recover()."""

from __future__ import annotations

import secrets
import uuid

import psycopg
import pytest

from cert_loader.config import PgStoreConfig
from cert_loader.constants import PG_STORES
from cert_loader.engine import new_run_id
from cert_loader.errors import InputError
from cert_loader.inputs import DISTRICT_ID_MAX_BYTES
from cert_loader.stores.postgres import LOCK_PREFIX, PgStore
from cert_loader.transaction import GID_MAX, GID_PREFIX, StoreTransaction, UnitOfWork, make_gid, parse_gid, recover
from cert_loader_tests.fix_pg import leave_prepared

DDL = "CREATE TABLE t (district_id text NOT NULL, id int NOT NULL, PRIMARY KEY (district_id, id));"


# --- gids -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("district", ["d-1", "with|bar", "école-7", "x" * 40])
def test_gid_round_trip(district):
    run_id = new_run_id()
    gid = make_gid(run_id, "hcp1", district)
    assert gid.startswith(GID_PREFIX)
    assert parse_gid(gid) == (run_id, "hcp1", district)


def test_other_gids_are_not_ours():
    assert parse_gid("pgbench|load-1|ids|d-1") is None
    assert parse_gid(f"{GID_PREFIX}load-1|ids") is None  # ours by prefix, but not one we make


def test_gid_limit_is_counted_in_bytes_and_is_a_clear_error():
    run_id = "load-20260101-000000-abcdef"
    fixed = len(make_gid(run_id, "ids", "").encode())
    assert len(make_gid(run_id, "ids", "d" * (GID_MAX - fixed)).encode()) == GID_MAX
    chars = (GID_MAX - fixed) // 2 + 1  # fewer characters than GID_MAX - fixed, more bytes
    with pytest.raises(InputError) as info:
        make_gid(run_id, "ids", "é" * chars)
    err = info.value
    assert err.store == "ids" and err.district == "é" * chars
    assert f"is {fixed + 2 * chars} bytes; PostgreSQL allows {GID_MAX}" in str(err)
    assert "use a shorter district id" in str(err)


@pytest.mark.parametrize("run_id", [new_run_id(), new_run_id().replace("load-", "unload-"), str(uuid.uuid4())])
def test_the_longest_district_id_pre_flight_allows_fits_every_gid(run_id):
    """inputs.DISTRICT_ID_MAX_BYTES agrees with GID_MAX for our run ids, a Dagster run id and every store."""
    district = "é" * (DISTRICT_ID_MAX_BYTES // 2)
    assert len(district.encode()) == DISTRICT_ID_MAX_BYTES
    for store in PG_STORES:
        assert parse_gid(make_gid(run_id, store, district)) == (run_id, store, district)


# --- one store's transaction ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def tx_urls(make_database):
    """Two marked databases with one small table each (module-wide; each test uses its own district)."""
    return {name: make_database(f"tx_{name}", ddl=DDL) for name in ("ids", "hcp1")}


def _store(url: str, name: str = "ids") -> PgStore:
    pg = PgStore(PgStoreConfig(name, url))
    pg.connect()
    return pg


def _ids(url: str, district: str) -> list[int]:
    with psycopg.connect(url, autocommit=True) as conn:
        return [r[0] for r in conn.execute("SELECT id FROM t WHERE district_id = %s ORDER BY id", (district,))]


def _prepared(pg_admin, gid: str) -> bool:
    return pg_admin.execute("SELECT count(*) FROM pg_prepared_xacts WHERE gid = %s", (gid,)).fetchone()[0] == 1


def _insert(tx: StoreTransaction, district: str, *ids: int) -> None:
    for i in ids:
        tx.pg.execute("INSERT INTO t VALUES (%s, %s)", (district, i))


def _district() -> str:
    return f"d-{secrets.token_hex(4)}"


def test_two_phase_begin_prepare_commit(tx_urls, pg_admin):
    url, district = tx_urls["ids"], _district()
    pg = _store(url)
    try:
        tx = StoreTransaction(pg, make_gid(new_run_id(), "ids", district), two_phase=True)
        assert tx.state == "NOT_STARTED"
        tx.rollback()  # nothing to roll back: stays NOT_STARTED
        assert tx.state == "NOT_STARTED"
        tx.begin()
        assert tx.state == "ACTIVE"
        _insert(tx, district, 1, 2)
        tx.prepare()
        assert tx.state == "PREPARED" and _prepared(pg_admin, tx.gid)
        assert _ids(url, district) == []  # prepared is not committed
        tx.commit()
        assert (tx.state, tx.outcome) == ("COMMITTED", "PREPARED-then-COMMITTED")
        assert not _prepared(pg_admin, tx.gid)
        assert _ids(url, district) == [1, 2]
        tx.rollback()  # after the commit: nothing happens
        assert tx.state == "COMMITTED" and _ids(url, district) == [1, 2]
    finally:
        pg.close()


def test_a_prepared_transaction_rolls_back(tx_urls, pg_admin):
    url, district = tx_urls["ids"], _district()
    pg = _store(url)
    try:
        tx = StoreTransaction(pg, make_gid(new_run_id(), "ids", district), two_phase=True)
        tx.begin()
        _insert(tx, district, 1)
        tx.prepare()
        tx.rollback()
        assert (tx.state, tx.outcome) == ("ROLLED_BACK", "ROLLED_BACK")
        assert not _prepared(pg_admin, tx.gid) and _ids(url, district) == []
    finally:
        pg.close()


def test_one_phase_never_prepares(tx_urls, pg_admin):
    url, district = tx_urls["ids"], _district()
    pg = _store(url)
    try:
        tx = StoreTransaction(pg, make_gid(new_run_id(), "ids", district), two_phase=False)
        tx.begin()
        _insert(tx, district, 7)
        tx.commit()
        assert (tx.state, tx.outcome) == ("COMMITTED", "COMMITTED")
        assert _ids(url, district) == [7] and not _prepared(pg_admin, tx.gid)
        again = StoreTransaction(pg, make_gid(new_run_id(), "ids", district), two_phase=False)
        again.begin()
        _insert(again, district, 8)
        again.rollback()
        assert again.state == "ROLLED_BACK" and _ids(url, district) == [7]
    finally:
        pg.close()


def test_a_lost_connection_leaves_the_prepared_transaction_in_doubt(tx_urls, pg_admin):
    """ROLLBACK PREPARED on a dead connection cannot run: IN_DOUBT, and the transaction waits for recover()."""
    url, district = tx_urls["ids"], _district()
    pg = _store(url)
    tx = StoreTransaction(pg, make_gid(new_run_id(), "ids", district), two_phase=True)
    tx.begin()
    _insert(tx, district, 1)
    tx.prepare()
    pg.conn.close()
    tx.rollback()
    assert tx.state == "IN_DOUBT" and _prepared(pg_admin, tx.gid)


# --- the unit of work ---------------------------------------------------------------------------------

def _unit(tx_urls, district: str, *, atomic: bool) -> UnitOfWork:
    run_id = new_run_id()
    txs = {name: StoreTransaction(_store(url, name), make_gid(run_id, name, district), two_phase=atomic)
           for name, url in tx_urls.items()}
    for tx in txs.values():
        tx.begin()
        _insert(tx, district, 1, 2, 3)
    first = next(iter(txs.values())).pg.config
    return UnitOfWork(district, run_id, txs, None, first, atomic)


def _decisions(url: str, run_id: str) -> list[tuple]:
    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute("SELECT district_id, stores FROM cert_loader.load_decision WHERE run_id = %s",
                            (run_id,)).fetchall()


def _close(uow: UnitOfWork) -> None:
    for tx in uow.stores.values():
        tx.pg.close()


def test_atomic_commit_records_the_decision_then_commits_every_store(tx_urls):
    district = _district()
    uow = _unit(tx_urls, district, atomic=True)
    try:
        uow.commit()
    finally:
        _close(uow)
    assert {n: tx.outcome for n, tx in uow.stores.items()} == dict.fromkeys(tx_urls, "PREPARED-then-COMMITTED")
    assert _decisions(tx_urls["ids"], uow.run_id) == [(district, ["hcp1", "ids"])]
    assert _decisions(tx_urls["hcp1"], uow.run_id) == []  # one decision row, in the coordinator store
    assert {n: _ids(u, district) for n, u in tx_urls.items()} == dict.fromkeys(tx_urls, [1, 2, 3])


def test_rollback_leaves_every_store_and_no_decision(tx_urls, pg_admin):
    district = _district()
    uow = _unit(tx_urls, district, atomic=True)
    try:
        next(iter(uow.stores.values())).prepare()  # one store prepared already, as after a failure mid-way
        uow.rollback()
    finally:
        _close(uow)
    assert {tx.state for tx in uow.stores.values()} == {"ROLLED_BACK"}
    assert not any(_prepared(pg_admin, tx.gid) for tx in uow.stores.values())
    assert _decisions(tx_urls["ids"], uow.run_id) == []
    assert {n: _ids(u, district) for n, u in tx_urls.items()} == dict.fromkeys(tx_urls, [])


def test_non_atomic_commits_store_after_store_without_a_decision(tx_urls):
    district = _district()
    uow = _unit(tx_urls, district, atomic=False)
    try:
        uow.commit()
    finally:
        _close(uow)
    assert {n: tx.outcome for n, tx in uow.stores.items()} == dict.fromkeys(tx_urls, "COMMITTED")
    assert _decisions(tx_urls["ids"], uow.run_id) == []
    assert {n: _ids(u, district) for n, u in tx_urls.items()} == dict.fromkeys(tx_urls, [1, 2, 3])


# --- recover() ----------------------------------------------------------------------------------------

def _record_decision(url: str, run_id: str, district: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("INSERT INTO cert_loader.load_decision (run_id, district_id, stores) VALUES (%s, %s, %s)",
                     (run_id, district, ["ids"]))


def test_recover_commits_decided_rolls_back_undecided_and_leaves_others(tx_urls, pg_admin):
    url = tx_urls["ids"]
    decided, undecided, by_graph, other = _district(), _district(), _district(), _district()
    runs = {d: new_run_id() + secrets.token_hex(2) for d in (decided, undecided, by_graph)}
    for district, run_id in runs.items():
        leave_prepared(url, make_gid(run_id, "ids", district), f"INSERT INTO t VALUES ('{district}', 1)")
    _record_decision(url, runs[decided], decided)
    foreign = f"pgbench|{runs[decided]}|ids|{other}"  # another application's prepared transaction
    leave_prepared(url, foreign, f"INSERT INTO t VALUES ('{other}', 1)")

    found = recover({"ids": PgStoreConfig("ids", url)}, lambda run_id: run_id == runs[by_graph])
    actions = {item.district: item.action for item in found if item.district in runs}
    assert actions == {decided: "committed", undecided: "rolled back", by_graph: "committed"}
    assert all(item.gid != foreign for item in found)
    assert (_ids(url, decided), _ids(url, undecided), _ids(url, by_graph)) == ([1], [], [1])
    assert _prepared(pg_admin, foreign) and _ids(url, other) == []
    # Idempotent: nothing of ours is left to resolve.
    assert [i for i in recover({"ids": PgStoreConfig("ids", url)}, None) if i.district in runs] == []


def test_recover_leaves_a_running_loads_transaction_alone(tx_urls, pg_admin):
    url, district = tx_urls["ids"], _district()
    gid = make_gid(new_run_id(), "ids", district)
    leave_prepared(url, gid, f"INSERT INTO t VALUES ('{district}', 1)")
    with psycopg.connect(url, autocommit=True) as running:  # holds the district's lock, as a load does
        running.execute("SELECT pg_advisory_lock(hashtextextended(%s, 0))", (LOCK_PREFIX + district,))
        (item,) = [i for i in recover({"ids": PgStoreConfig("ids", url)}, None) if i.district == district]
    assert item.action == "skipped (a load of the district is running)"
    assert _prepared(pg_admin, gid)
    (item,) = [i for i in recover({"ids": PgStoreConfig("ids", url)}, None) if i.district == district]
    assert item.action == "rolled back" and not _prepared(pg_admin, gid)
