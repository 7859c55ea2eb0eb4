#!/usr/bin/env bash
# Shared set-up for demo.sh and test.sh: a venv with the project, and a local PostgreSQL 15 that
# is up and allows prepared transactions (two-phase commit, DESIGN.md section 5). Idempotent.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${CERT_VENV:-$ROOT/.venv}"
PG_ADMIN_URL="${CERT_TEST_PG_ADMIN_URL:-postgresql://root@127.0.0.1:5432/postgres}"

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

if [ ! -x "$VENV/bin/python" ]; then
  say "creating $VENV"
  python3 -m venv "$VENV"
fi
if ! "$VENV/bin/python" -c "import cert_loader, dagster, pgpq, neo4j, arcadedb_embedded" 2>/dev/null \
   || [ "$ROOT/pyproject.toml" -nt "$VENV/.cert_loader_installed" ]; then
  say "installing cert_loader and its pinned dependencies"
  "$VENV/bin/python" -m pip install -q --upgrade pip >/dev/null
  "$VENV/bin/python" -m pip install -q -e "$ROOT[dev]"
  touch "$VENV/.cert_loader_installed"
fi

pg_ready() { psql "$PG_ADMIN_URL" -Atqc "SELECT 1" >/dev/null 2>&1; }
PG_STARTED_HERE=0
if ! pg_ready; then
  say "starting PostgreSQL"
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql)" main start
  PG_STARTED_HERE=1
  for _ in $(seq 1 30); do pg_ready && break; sleep 1; done
fi
if [ "$(psql "$PG_ADMIN_URL" -Atqc 'SHOW max_prepared_transactions')" = "0" ]; then
  say "enabling prepared transactions (max_prepared_transactions = 64) and restarting PostgreSQL once"
  psql "$PG_ADMIN_URL" -qc "ALTER SYSTEM SET max_prepared_transactions = 64"
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql)" main restart
  for _ in $(seq 1 30); do pg_ready && break; sleep 1; done
fi
export PG_STARTED_HERE VENV ROOT PG_ADMIN_URL
