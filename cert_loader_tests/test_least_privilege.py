"""Issue 7, point 2: load, every strategy, recover and unload as a login role with only the grants of `cert-loader grants`."""

from __future__ import annotations


import psycopg
import pytest
from psycopg import sql

from cert_loader.config import LoaderConfig
from cert_loader.engine import LoadOptions, load_district, plan_district, unload_district
from cert_loader.inputs import DistrictPaths
from cert_loader.plan_view import render_plan
from cert_loader_tests.fix_cli import PG, kill_at, run_cli
from cert_loader_tests.fix_district import store_snapshot
from cert_loader_tests.fix_role import grant

pytestmark = pytest.mark.usefixtures("no_prepared_left")
STUDENTS = 20


def cli(args, env, timeout=180):
    return run_cli(*args, env=env, timeout=timeout)


def owned_relations(urls: dict[str, str], role: str) -> dict[str, list[str]]:
    out = {}
    for store, url in urls.items():
        with psycopg.connect(url, autocommit=True) as conn:
            out[store] = [r[0] for r in conn.execute(
                "SELECT c.oid::regclass::text FROM pg_class c JOIN pg_roles r ON r.oid = c.relowner "
                "WHERE r.rolname = %s", (role,)).fetchall()]
    return out


@pytest.fixture(scope="module")
def other_role(make_role, sample_stores):
    """A second least-privilege role with the same grants (another operator, another service)."""
    role = make_role("other")
    for store, url in sample_stores.items():
        grant(role.name, url, store)
    return role


def test_the_role_is_least_privileged(loader_role, pg_admin, sample_stores):
    superuser, createdb = pg_admin.execute(
        "SELECT rolsuper, rolcreatedb FROM pg_roles WHERE rolname = %s", (loader_role.name,)).fetchone()
    assert not superuser and not createdb
    assert owned_relations(sample_stores, loader_role.name) == {s: [] for s in sample_stores}
    with psycopg.connect(loader_role.url(sample_stores["ids"]), autocommit=True) as conn:
        assert conn.execute("SELECT has_table_privilege('edfi.student', 'TRUNCATE')").fetchone()[0] is False
        assert conn.execute("SELECT has_schema_privilege('public', 'CREATE')").fetchone()[0] is False
        assert conn.execute("SELECT has_schema_privilege('cert_loader', 'CREATE')").fetchone()[0] is True


def test_grants_command_prints_exactly_what_the_role_got(loader_role, sample_stores, data_root):
    env = {"PATH": "/usr/bin:/bin", **{f"CERT_{s.upper()}_URL": u for s, u in sample_stores.items()}}
    proc = cli(["grants", "--role", loader_role.name], env)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    role = f'"{loader_role.name}"'
    assert f'GRANT CONNECT, TEMPORARY ON DATABASE "{sample_stores["ids"].rsplit("/", 1)[1]}" TO {role};' in out
    assert f'GRANT USAGE ON SCHEMA "edfi", "public" TO {role};' in out
    assert 'GRANT SELECT, INSERT, UPDATE, DELETE ON TABLE "edfi"."attendance_event", "edfi"."course", ' in out
    assert f'GRANT USAGE, CREATE ON SCHEMA "cert_loader" TO {role};' in out
    assert f'GRANT SELECT, INSERT ON TABLE "cert_loader"."load_decision" TO {role};' in out
    assert out.count("-- ") == 4 and "not marked yet" not in out
    # The same text, read by the role itself (the catalog needs no privilege), is what the fixture ran.
    as_role = cli(["grants", "--role", loader_role.name, "--stores", PG], {**env, **loader_role.env(sample_stores, data_root)})
    assert as_role.returncode == 0, as_role.stderr
    for store, url in sample_stores.items():
        with psycopg.connect(url) as conn:
            from cert_loader.grants import grant_statements, read_grant_targets

            for statement in grant_statements(loader_role.name, read_grant_targets(conn, store)):
                assert statement in out and statement in as_role.stdout
    assert loader_role.password not in as_role.stdout + as_role.stderr


def test_full_load_with_the_graph_as_the_role(loader_role, sample_stores, data_root, make_district, graph_config):
    district = make_district(students=STUDENTS)
    config = loader_role.config(sample_stores, data_root)
    config = LoaderConfig(config.data_root, config.pg, graph_config)
    report = load_district(config, district)
    assert report.status == "SUCCESS", report.error
    data = report.as_dict()
    assert {s: data["stores"][s]["transaction"] for s in ("ids", "hcp1", "hcp2", "adb")} == \
        dict.fromkeys(("ids", "hcp1", "hcp2", "adb"), "PREPARED-then-COMMITTED")
    assert data["post_load_validation"]["status"] == "PASSED"
    assert data["totals"]["nodes_loaded"] > 0
    assert owned_relations(sample_stores, loader_role.name) == {s: [] for s in sample_stores}


@pytest.mark.parametrize("strategy", ["upsert", "merge", "replace"])
def test_each_strategy_as_the_role(strategy, as_loader, sample_stores, make_district, loader_role):
    district = make_district(students=STUDENTS)
    first = load_district(as_loader(), district)  # insert
    assert first.status == "SUCCESS", first.error
    loaded = store_snapshot(sample_stores, district)
    report = load_district(as_loader(), district, LoadOptions(strategy=strategy))
    assert report.status == "SUCCESS", report.error
    assert store_snapshot(sample_stores, district) == loaded
    # staging tables (upsert, merge) were created in cert_loader and dropped inside the transaction
    assert owned_relations(sample_stores, loader_role.name) == {s: [] for s in sample_stores}


def test_plan_and_unload_as_the_role(as_loader, sample_stores, make_district):
    district = make_district(students=STUDENTS)
    pf = plan_district(as_loader(), district)
    try:
        text = render_plan(pf)
    finally:
        pf.close()
    assert "[marked, two-phase available" in text and "Nothing would be refused." in text
    assert load_district(as_loader(), district).status == "SUCCESS"
    deleted = unload_district(as_loader(), district)
    assert sum(deleted["ids"].values()) > 0
    assert not any(n for tables in store_snapshot(sample_stores, district).values() for n in tables.values())


def test_kill_after_the_decision_then_recover_as_the_role(loader_role, other_role, sample_stores, data_root,
                                                          make_district):
    """COMMIT PREPARED needs the role that prepared (or a superuser): another role is told so, never hangs."""
    district = make_district(students=STUDENTS)
    env = loader_role.env(sample_stores, data_root)
    kill_at("after-decision", district, env, PG)
    assert not any(n for t in store_snapshot(sample_stores, district).values() for n in t.values())

    other = other_role.env(sample_stores, data_root)
    refused = cli(["recover", "--stores", PG], other)
    assert refused.returncode == 1
    assert f"prepared by role '{loader_role.name}': only that role or a superuser can finish it" in refused.stdout
    blocked = cli(["load", district, "--stores", PG, "--strategy", "replace"], other, timeout=60)
    assert blocked.returncode == 1
    assert "left prepared transaction" in blocked.stdout and "this role cannot finish" in blocked.stdout

    rec = cli(["recover", "--stores", PG], env)
    assert rec.returncode == 0, rec.stdout + rec.stderr
    assert rec.stdout.count(": committed") == 4
    rows = store_snapshot(sample_stores, district)
    assert all(n > 0 for tables in rows.values() for n in tables.values() if n is not None)
    assert loader_role.password not in rec.stdout + rec.stderr + refused.stdout + refused.stderr


def test_kill_before_the_decision_then_next_load_as_the_role(loader_role, sample_stores, data_root, make_district):
    district = make_district(students=STUDENTS)
    env = loader_role.env(sample_stores, data_root)
    kill_at("before-decision", district, env, PG)
    load = cli(["load", district, "--stores", PG], env)
    assert load.returncode == 0, load.stdout + load.stderr
    assert "rolled back" in load.stderr  # the next load recovered the earlier run first


def test_a_missing_grant_is_named_and_nothing_changes(make_role, sample_stores, data_root, make_district, as_loader):
    role = make_role("nodelete")
    for store, url in sample_stores.items():
        grant(role.name, url, store)
    with psycopg.connect(sample_stores["hcp1"], autocommit=True) as conn:
        conn.execute(sql.SQL("REVOKE DELETE ON public.visit FROM {}").format(sql.Identifier(role.name)))
    district = make_district(students=STUDENTS)
    assert load_district(as_loader(), district).status == "SUCCESS"
    before = store_snapshot(sample_stores, district)
    report = load_district(role.config(sample_stores, data_root), district, LoadOptions(strategy="replace"))
    assert report.status == "FAILED"
    message = report.error["message"]
    assert "hcp1: public.visit: permission denied for table visit" in message
    assert "grant the loader's role the privilege (see README, Security)" in message
    assert store_snapshot(sample_stores, district) == before
    assert role.password not in DistrictPaths(data_root, district).report_file.read_text()
