"""fix_pg.py itself: a leaked prepared transaction fails ``no_prepared_left`` and is rolled back before the next test."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

INNER = '''
import psycopg

from cert_loader_tests import fix_pg


def test_without_the_database_opens_nothing():
    assert fix_pg._OPEN_ADMIN == []  # no test asked for PostgreSQL yet: the autouse fixture connected nowhere


def test_leaks(no_prepared_left, sample_stores):
    conn = psycopg.connect(sample_stores["ids"])
    conn.tpc_begin("leaked-by-test_leaks")
    conn.execute("SELECT 1")
    conn.tpc_prepare()
    conn.close()


def test_next_test_starts_clean(pg_admin):
    rows = pg_admin.execute("SELECT gid FROM pg_prepared_xacts WHERE starts_with(database, %s)",
                            (fix_pg.DATABASE_PREFIX,)).fetchall()
    print("PREPARED-AT-START", rows)
    assert rows == []
'''


def test_a_leak_fails_no_prepared_left_and_is_rolled_back_before_the_next_test(tmp_path):
    """A pytest run of its own (its own RUN_ID and databases), in file order."""
    (tmp_path / "test_inner.py").write_text(INNER)
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "cert_loader_tests.fix_pg", "-q", "-s",
         "test_inner.py"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300, env=_env(),
    )
    out = proc.stdout + proc.stderr
    assert "3 passed, 1 error" in out, out[-3000:]
    assert "ERROR at teardown of test_leaks" in out and "prepared transactions left behind" in out, out[-3000:]
    assert "leaked-by-test_leaks" in out
    assert "PREPARED-AT-START []" in out, out[-3000:]


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return env
