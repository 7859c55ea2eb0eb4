#!/usr/bin/env bash
# The README demo: local CERT databases, a Bolt graph server, a generated sample district, then
# plan, load and the report. Re-runnable: it recreates the demo databases each time.
#
#   bash scripts/demo.sh [district]                       the demo; the graph server stops at the end
#   bash scripts/demo.sh --ui [--port N] [district]       the demo, then a ready Dagster instance and
#       `dagster dev` on 127.0.0.1 in the foreground (issue 14): the manifest, an instance database, the
#       loaded district and a second, unloaded one registered; Ctrl-C stops Dagster and the graph server.
#
# CERT_DEMO_DIR (default ./demo), CERT_DEMO_STUDENTS (2000), CERT_DEMO_DB_PREFIX (cert_demo: the databases
# are <prefix>_{ids,hcp1,hcp2,adb} and, with --ui, <prefix>_dagster), CERT_DEMO_UI_PORT (3000 when free).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
UI=0
PORT="${CERT_DEMO_UI_PORT:-}"
while [ $# -gt 0 ]; do
  case "$1" in
    --ui) UI=1; shift ;;
    --port) PORT="${2:?--port needs a number}"; shift 2 ;;
    -*) echo "usage: bash scripts/demo.sh [--ui [--port N]] [district]" >&2; exit 2 ;;
    *) break ;;
  esac
done
DEMO="${CERT_DEMO_DIR:-$ROOT/demo}"
DISTRICT="${1:-district-001}"
STUDENTS="${CERT_DEMO_STUDENTS:-2000}"
PREFIX="${CERT_DEMO_DB_PREFIX:-cert_demo}"
CL="$VENV/bin/cert-loader"
mkdir -p "$DEMO"
DEMO="$(cd "$DEMO" && pwd)"

say "creating the demo CERT databases ${PREFIX}_{ids,hcp1,hcp2,adb}"
for store in ids hcp1 hcp2 adb; do
  psql "$PG_ADMIN_URL" -qc "DROP DATABASE IF EXISTS ${PREFIX}_$store WITH (FORCE)" -c "CREATE DATABASE ${PREFIX}_$store"
  export "CERT_$(echo $store | tr a-z A-Z)_URL=${PG_ADMIN_URL%/*}/${PREFIX}_$store"  # the admin server (setup.sh)
done
"$VENV/bin/python" - <<'PY'
import os
from cert_loader.sample import apply_schema
for store in ("ids", "hcp1", "hcp2", "adb"):
    apply_schema(os.environ[f"CERT_{store.upper()}_URL"], store)
PY

say "starting a Bolt graph server (ArcadeDB) for the sp store"
"$VENV/bin/python" -m cert_loader.testing.arcadedb stop --dir "$DEMO/arcadedb" >/dev/null 2>&1 || true
rm -rf "$DEMO/arcadedb"
eval "$("$VENV/bin/python" -m cert_loader.testing.arcadedb start --dir "$DEMO/arcadedb" --password "demo-$RANDOM$RANDOM")"
stop_graph() { "$VENV/bin/python" -m cert_loader.testing.arcadedb stop --dir "$DEMO/arcadedb" >/dev/null 2>&1 || true; }
[ "${CERT_DEMO_KEEP_GRAPH:-0}" = "1" ] || trap stop_graph EXIT
trap 'exit 130' INT   # Ctrl-C (after `dagster dev` has shut down) still runs the EXIT trap
trap 'exit 143' TERM

export CERT_DATA_ROOT="$DEMO"
say "marking the databases as CERT stores (cert-loader mark)"
"$CL" mark --stores ids,hcp1,hcp2,adb

say "generating sample district $DISTRICT ($STUDENTS students)"
"$CL" sample "$DISTRICT" --students "$STUDENTS" >/dev/null

if [ "$UI" = "1" ]; then
  # --ui: what the README's "Running it from Dagster" does by hand (DESIGN.md section 8), before the load, so that
  # the CLI load below reports its materializations and checks to this instance (DAGSTER_HOME is set) and the UI
  # shows the district as loaded.
  say "cert-loader snapshot (the schema manifest the code location builds its assets from)"
  "$CL" snapshot

  say "a Dagster instance: database ${PREFIX}_dagster, DAGSTER_HOME=$DEMO/dagster_home with the repository's dagster.yaml"
  psql "$PG_ADMIN_URL" -qc "DROP DATABASE IF EXISTS ${PREFIX}_dagster WITH (FORCE)" -c "CREATE DATABASE ${PREFIX}_dagster"
  export DAGSTER_HOME="$DEMO/dagster_home"
  export DAGSTER_PG_URL="postgresql+psycopg2://${PG_ADMIN_URL#*://}"
  export DAGSTER_PG_URL="${DAGSTER_PG_URL%/*}/${PREFIX}_dagster"
  mkdir -p "$DAGSTER_HOME"
  cp "$ROOT/dagster.yaml" "$DAGSTER_HOME/dagster.yaml"
fi

say "cert-loader plan $DISTRICT"
"$CL" plan "$DISTRICT"

say "cert-loader load $DISTRICT"
"$CL" load "$DISTRICT"

say "the load report ($DEMO/data/loads/$DISTRICT/load-report.json), post-load validation:"
"$VENV/bin/python" -c "
import json, sys
r = json.load(open(sys.argv[1]))
r['post_load_validation'].pop('tables', None)
keep = ('load_run_id', 'district_id', 'overall_status', 'strategy', 'atomicity', 'duration_seconds', 'totals', 'post_load_validation')
print(json.dumps({k: r[k] for k in keep}, indent=2))
" "$DEMO/data/loads/$DISTRICT/load-report.json"

# The variables, for running the CLI or Dagster against the demo stores afterwards.
env | grep -E '^CERT_(IDS|HCP1|HCP2|ADB)_URL|^CERT_SP_|^CERT_DATA_ROOT' | sed 's/^/export /' > "$DEMO/env.sh"
if [ "$UI" = "1" ]; then
  printf 'export DAGSTER_HOME=%q DAGSTER_PG_URL=%q\n' "$DAGSTER_HOME" "$DAGSTER_PG_URL" >> "$DEMO/env.sh"
fi
if [ "$UI" = "0" ]; then
  say "done; 'source demo/env.sh' points the CLI at the demo stores (the graph server stops now unless CERT_DEMO_KEEP_GRAPH=1)"
  exit 0
fi

SECOND="district-002"
[ "$SECOND" != "$DISTRICT" ] || SECOND="district-003"
say "generating a second district $SECOND ($STUDENTS students), registered but not loaded"
"$CL" sample "$SECOND" --students "$STUDENTS" >/dev/null
"$CL" register "$DISTRICT" "$SECOND"

PORT="$("$VENV/bin/python" - "$PORT" <<'PY'
import socket, sys
want = int(sys.argv[1]) if sys.argv[1] else 3000
with socket.socket() as s:
    try:
        s.bind(("127.0.0.1", want))
    except OSError:
        if sys.argv[1]:
            sys.exit(f"port {want} on 127.0.0.1 is in use; choose another with --port N")
        s.bind(("127.0.0.1", 0))  # 3000 is taken: any free port
    print(s.getsockname()[1])
PY
)"
say "Dagster UI: http://127.0.0.1:$PORT  ($DISTRICT loaded, $SECOND to materialize; Ctrl-C stops Dagster and the graph server)"
say "in another shell: source ${DEMO}/env.sh, then dagster asset materialize / dg launch (README: Running it from Dagster)"
# From the demo directory: dagster dev warns about a dagster.yaml in its working directory that is not
# DAGSTER_HOME (the repository root has one); workspace.yaml names the code location by absolute path.
cd "$DEMO"
# Not exec: when dagster dev ends (Ctrl-C), this script's EXIT trap stops the graph server.
"$VENV/bin/dagster" dev -h 127.0.0.1 -p "$PORT" -w "$ROOT/workspace.yaml"
