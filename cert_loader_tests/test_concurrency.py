"""Four CLI processes at once on the same stores, graph included: an insert, a merge, a replace and an unload.

Districts B, C and D are loaded first; then B's and C's files are regenerated with fewer students (so the
merge and the replace change rows), and the four commands start together, released by one barrier file.
Afterwards the test itself compares each district's stored rows with its own parquet files (every value,
through the content comparer, whole district), the graph with its node/relationship files, and D is gone.
"""

from __future__ import annotations

import secrets
import subprocess
import sys
import time

from cert_loader.catalog import read_catalog
from cert_loader.config import PgStoreConfig
from cert_loader.graph_input import read_graph_input
from cert_loader.inputs import DistrictPaths
from cert_loader.plan import LoadPlan, plan_store
from cert_loader.sample import generate_district
from cert_loader.store_context import StoreContext
from cert_loader.stores.graph import GraphStore
from cert_loader.stores.postgres import PgStore
from cert_loader.strategies import get_strategy
from cert_loader.verify import verify_graph
from cert_loader.transaction import UnitOfWork
from cert_loader.verify.content import verify_contents
from cert_loader_tests.fix_cli import CLI, cli_env, env_stores
from cert_loader_tests.fix_district import district_rows, graph_nodes, new_district
from cert_loader_tests.fix_graph import graph_input

RUN_TIMEOUT_S = 600


def _cli(env: dict[str, str], *args: str) -> subprocess.Popen:
    return subprocess.Popen([*CLI, *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _run_together(env: dict[str, str], commands: list[list[str]]) -> list[tuple[int, str]]:
    """Start every command at once (a shell waits on one barrier file, then execs the CLI); wait for all."""
    barrier = env["CERT_DATA_ROOT"] + "/.go"
    procs = [subprocess.Popen(
        ["sh", "-c", f'while [ ! -e "{barrier}" ]; do sleep 0.02; done; exec "$0" -m cert_loader.cli "$@"',
         sys.executable, *cmd], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for cmd in commands]
    time.sleep(1.0)  # every shell is polling
    open(barrier, "w").close()
    out = []
    for proc in procs:
        stdout, stderr = proc.communicate(timeout=RUN_TIMEOUT_S)
        out.append((proc.returncode, stdout + stderr))
    return out


def _pg_mismatches(stores: dict[str, str], data_root, district: str) -> list[str]:
    """Every table of the district whose stored rows differ from its file (content, whole district)."""
    paths = DistrictPaths(data_root, district)
    bad = []
    for name, url in stores.items():
        pg = PgStore(PgStoreConfig(name, url))
        pg.connect()
        try:
            plan = LoadPlan(district, "replace")
            sp = plan_store(name, read_catalog(pg.conn, name), None, paths, plan)
            assert not plan.problems, plan.problems
            ctx = StoreContext(pg, sp, district, secrets.token_hex(3))
            for check in verify_contents(ctx, get_strategy("replace"), sp.loaded):
                if not check.result.passed:
                    bad.append(f"{name}: {check.result.table}: {check.result.detail}")
        finally:
            pg.conn.rollback()
            pg.close()
    return bad


def _graph_mismatches(graph_config, data_root, district: str) -> list[str]:
    paths = DistrictPaths(data_root, district)
    data = read_graph_input(paths.source_file("sp", "nodes"), paths.source_file("sp", "relationships"), district)
    with GraphStore(graph_config) as graph:
        tx = graph.begin(district, f"check-{secrets.token_hex(3)}")
        try:
            checks = verify_graph(tx.cypher, data, "replace", "content")
        finally:
            tx.rollback()
    return [f"sp: {c.table}: {c.check}: {c.detail}" for c in checks if not c.passed]


def test_insert_merge_replace_and_unload_at_once(sample_stores, data_root, graph_config, no_prepared_left):
    env = cli_env(sample_stores, data_root, graph_config)
    a, b, c, d = (new_district() for _ in range(4))
    for district in (a, b, c, d):
        generate_district(data_root, district, students=150)
    stores = env_stores(env)
    for district in (b, c, d):
        first = _cli(env, "load", district, "--stores", stores)
        assert first.wait(RUN_TIMEOUT_S) == 0, first.communicate()
    for district in (b, c):  # fewer students: the merge and the replace delete some, keep the rest
        generate_district(data_root, district, students=120)
    results = _run_together(env, [
        ["load", a, "--stores", stores, "--strategy", "insert"],
        ["load", b, "--stores", stores, "--strategy", "merge"],
        ["load", c, "--stores", stores, "--strategy", "replace"],
        ["unload", d, "--stores", stores],
    ])
    for (code, output), what in zip(results, ("insert", "merge", "replace", "unload")):
        assert code == 0, f"{what}: {output[-3000:]}"
    for district in (a, b, c):
        assert _pg_mismatches(sample_stores, data_root, district) == []
        assert _graph_mismatches(graph_config, data_root, district) == []
    assert all(n == 0 for url in sample_stores.values() for n in district_rows(url, d).values())
    assert graph_nodes(graph_config, d) == 0


def _graph_tx(graph: GraphStore, data, run_id: str):
    tx = graph.begin(data.district, run_id)
    tx.load(data, "insert")
    return tx


def test_a_graph_commit_refused_for_a_concurrent_write_is_redone(graph_config, tmp_path):
    """The decision commit meets a record another transaction changed and committed first: redone, verified, committed."""
    first = graph_input(tmp_path, new_district(), [(f"n{i}", "Pupil", {"i": i}) for i in range(20)])
    second = graph_input(tmp_path, new_district(), [(f"n{i}", "Pupil", {"i": i}) for i in range(20)])
    shared = f"s-{secrets.token_hex(3)}"
    redone = []
    with GraphStore(graph_config) as graph, GraphStore(graph_config) as other:
        graph.ensure_schema(["Pupil", "Shared"])
        setup = graph.begin(first.district, "run-setup")
        setup.cypher.run("CREATE (:Shared {k: $k, v: 0})", None, k=shared)
        setup.commit()
        tx1, tx2 = _graph_tx(graph, first, "run-one"), _graph_tx(other, second, "run-two")
        for tx, value in ((tx1, 1), (tx2, 2)):  # the same record, in both transactions
            tx.cypher.run("MATCH (s:Shared {k: $k}) SET s.v = $v", None, k=shared, v=value)
        tx1.commit()

        def redo():
            redone.append(True)
            return _graph_tx(other, second, "run-two")

        uow = UnitOfWork(second.district, "run-two", {}, tx2, None, True, graph_redo=redo)
        uow.commit()
        assert uow.graph_state == "COMMITTED"
        assert redone and any("refused for a concurrent write" in n for n in uow.notes), uow.notes
        for data in (first, second):
            assert sum(graph.counts(data.district)["nodes"].values()) == 20
