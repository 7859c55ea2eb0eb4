#!/usr/bin/env bash
# The README demo: local CERT databases, a Bolt graph server, a generated sample district, then
# plan, load and the report. Re-runnable: it recreates the demo databases each time.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
DEMO="${CERT_DEMO_DIR:-$ROOT/demo}"
DISTRICT="${1:-district-001}"
STUDENTS="${CERT_DEMO_STUDENTS:-2000}"
CL="$VENV/bin/cert-loader"
mkdir -p "$DEMO"

say "creating the demo CERT databases cert_demo_{ids,hcp1,hcp2,adb}"
for store in ids hcp1 hcp2 adb; do
  psql "$PG_ADMIN_URL" -qc "DROP DATABASE IF EXISTS cert_demo_$store WITH (FORCE)" -c "CREATE DATABASE cert_demo_$store"
  export "CERT_$(echo $store | tr a-z A-Z)_URL=postgresql://root@127.0.0.1:5432/cert_demo_$store"
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

export CERT_DATA_ROOT="$DEMO"
say "marking the databases as CERT stores (cert-loader mark)"
"$CL" mark --stores ids,hcp1,hcp2,adb

say "generating sample district $DISTRICT ($STUDENTS students)"
"$CL" sample "$DISTRICT" --students "$STUDENTS" >/dev/null

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
say "done; 'source demo/env.sh' points the CLI at the demo stores (the graph server stops now unless CERT_DEMO_KEEP_GRAPH=1)"
