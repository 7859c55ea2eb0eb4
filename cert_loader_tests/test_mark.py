"""Issue 7, point 1: the CERT mark — `mark` needs the owner, `plan` shows it, and load, unload and recover refuse an unmarked database."""

from __future__ import annotations

import itertools

import psycopg
import pytest
from psycopg import sql

from cert_loader.config import LoaderConfig, PgStoreConfig
from cert_loader.engine import load_district
from cert_loader.mark import MARK_SETTING
from cert_loader.sample import apply_schema
from cert_loader_tests.fix_cli import run_cli
from cert_loader_tests.fix_district import district_rows
from cert_loader_tests.fix_pg import leave_prepared

STUDENTS = 20
_SEQ = itertools.count()


def cli(args, **urls):
    env = {"PATH": "/usr/bin:/bin", **{f"CERT_{s.upper()}_URL": u for s, u in urls.items()}}
    return run_cli(*args, env=env, timeout=120)


def mark_of(url: str) -> tuple[str | None, bool]:
    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute("SELECT current_setting(%s, true), to_regclass('cert_loader.load_decision') IS NOT NULL",
                            (MARK_SETTING,)).fetchone()


def unmark(url: str) -> None:
    database = url.rsplit("/", 1)[1]
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(sql.SQL("ALTER DATABASE {} RESET {}").format(sql.Identifier(database), sql.SQL(MARK_SETTING)))


@pytest.fixture
def unmarked(make_database):
    """A database with the hcp2 CERT schema (and even the loader's schema), but no mark."""
    url = make_database(f"unmarked_{next(_SEQ)}")
    apply_schema(url, "hcp2")
    unmark(url)
    return url


def test_mark_as_a_non_owner_says_it_needs_the_owner(make_database, loader_role):
    url = make_database("mark_nonowner", mark=False)
    proc = cli(["mark", "--stores", "hcp2"], hcp2=loader_role.url(url))
    assert proc.returncode == 1
    database = url.rsplit("/", 1)[1]
    assert (f"marking needs the database owner: role '{loader_role.name}' is not the owner of database "
            f"'{database}' (its owner is 'root')") in proc.stderr
    assert f"ALTER DATABASE \"{database}\" SET cert_loader.environment = 'cert';" in proc.stderr
    assert loader_role.password not in proc.stderr + proc.stdout
    assert mark_of(url) == (None, False)


def test_mark_by_an_owner_who_is_not_superuser(make_database, make_role, pg_admin):
    owner = make_role("owner")
    url = make_database("mark_owner", mark=False)
    database = url.rsplit("/", 1)[1]
    pg_admin.execute(sql.SQL("ALTER DATABASE {} OWNER TO {}").format(sql.Identifier(database), sql.Identifier(owner.name)))
    first = cli(["mark", "--stores", "ids"], ids=owner.url(url))
    assert first.returncode == 1
    # PostgreSQL 15: only a superuser sets a custom setting on a database, unless granted SET on it.
    assert f'GRANT SET ON PARAMETER cert_loader.environment TO "{owner.name}";' in first.stderr
    assert mark_of(url) == (None, False)
    pg_admin.execute(sql.SQL("GRANT SET ON PARAMETER cert_loader.environment TO {}").format(sql.Identifier(owner.name)))
    second = cli(["mark", "--stores", "ids"], ids=owner.url(url))
    assert second.returncode == 0, second.stderr
    assert f"ids: marked database '{database}' as a CERT store (postgresql://{owner.name}:***@" in second.stdout
    assert mark_of(url) == ("cert", True)


def test_plan_shows_the_mark_of_each_store(unmarked, sample_stores, make_district, data_root):
    district = make_district(students=STUDENTS)
    proc = cli(["plan", district, "--data-root", str(data_root), "--stores", "ids,hcp2"],
               ids=sample_stores["ids"], hcp2=unmarked)
    assert proc.returncode == 1
    lines = proc.stdout.splitlines()
    assert any(line.startswith("IDS ") and "[marked," in line for line in lines), proc.stdout
    assert any(line.startswith("HCP2 ") and "[NOT MARKED," in line for line in lines), proc.stdout
    database = unmarked.rsplit("/", 1)[1]
    assert f'hcp2: database "{database}" ({unmarked}) is not marked as a CERT store' in proc.stdout
    assert f"ALTER DATABASE \"{database}\" SET cert_loader.environment = 'cert';" in proc.stdout


def test_load_refuses_before_touching_any_store(unmarked, sample_stores, make_district, data_root, pg_admin):
    """Nothing anywhere: not the marked store, and not even recovery of a prepared transaction in the unmarked one."""
    district = make_district(students=STUDENTS)
    gid = f"cert_loader|load-19700101-000000-abcdef|hcp2|{district}"
    leave_prepared(unmarked, gid)
    try:
        config = LoaderConfig(data_root, {"ids": PgStoreConfig("ids", sample_stores["ids"]),
                                          "hcp2": PgStoreConfig("hcp2", unmarked)})
        report = load_district(config, district)
        assert report.status == "FAILED"
        message = report.error["message"]
        assert "hcp2: database" in message and "is not marked as a CERT store; nothing was written" in message
        assert "ALTER DATABASE" in message and "cert-loader mark --stores hcp2" in message
        assert not any(district_rows(sample_stores["ids"], district).values())
        assert report.recovered == []
        prepared = pg_admin.execute("SELECT gid FROM pg_prepared_xacts WHERE gid = %s", (gid,)).fetchall()
        assert prepared == [(gid,)]
    finally:
        with psycopg.connect(unmarked, autocommit=True) as conn:
            conn.tpc_rollback(gid)


def test_unload_refuses_an_unmarked_database(make_database, sample_stores, make_district, data_root):
    url = make_database("was_marked")
    apply_schema(url, "hcp2")
    district = make_district(students=STUDENTS)
    urls = {"ids": sample_stores["ids"], "hcp2": url}
    config = LoaderConfig(data_root, {n: PgStoreConfig(n, u) for n, u in urls.items()})
    assert load_district(config, district).status == "SUCCESS"
    before = {n: district_rows(u, district) for n, u in urls.items()}
    unmark(url)
    proc = cli(["unload", district, "--data-root", str(data_root), "--stores", "ids,hcp2"], **urls)
    assert proc.returncode == 2
    assert "error: hcp2: database" in proc.stderr and "is not marked as a CERT store" in proc.stderr
    assert {n: district_rows(u, district) for n, u in urls.items()} == before


def test_recover_refuses_an_unmarked_database(unmarked, sample_stores, pg_admin):
    gid = "cert_loader|load-19700101-000000-abcdef|hcp2|d-recover"
    leave_prepared(unmarked, gid)
    try:
        proc = cli(["recover", "--stores", "ids,hcp2"], ids=sample_stores["ids"], hcp2=unmarked)
        assert proc.returncode == 2
        assert "error: hcp2: database" in proc.stderr and "nothing was touched" in proc.stderr
        assert "ALTER DATABASE" in proc.stderr
        assert pg_admin.execute("SELECT count(*) FROM pg_prepared_xacts WHERE gid = %s", (gid,)).fetchone()[0] == 1
    finally:
        with psycopg.connect(unmarked, autocommit=True) as conn:
            conn.tpc_rollback(gid)
