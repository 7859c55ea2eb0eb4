#!/usr/bin/env bash
# One Celery worker for the cert_loader code location, in the foreground (README, Scale-out; issue 15):
#   scripts/celery-worker.sh NAME
# Export what the CLI needs first: CERT_*_URL / CERT_SP_* / CERT_DATA_ROOT, DAGSTER_HOME and DAGSTER_PG_URL
# (the step reports its events to the same instance as the run). The worker takes district steps from
# CERT_CELERY_BROKER (default the local RabbitMQ) on queue CERT_CELERY_QUEUE (default "dagster"; a queue per
# deployment keeps two deployments on one broker apart), one at a time (CERT_CELERY_CONCURRENCY, default 1).
# Its hostname is NAME@<host>; at INFO Celery logs "Task dagster_celery.execute_plan[<id>] received" and
# "... succeeded in <s>s" (or "raised ..."), so the log says where each district ran.
# This is what `dagster-celery worker start -A dagster_celery.app` runs, with the broker and backend given as
# celery's own options, and the settings no option gives in scripts/celery/dagster_celery_config.py (put first
# on PYTHONPATH; dagster-celery's make_app imports that module, as it does the one `worker start -y` generates).
# A worker that dies mid-load (cert_loader/defs/executor.py says more):
# - its pool process killed: the run fails at once (WorkerLostError), every store as before; rerun it.
# - the worker itself killed (SIGKILL of this process, the machine gone): its pool process dies with it, the
#   unacknowledged task goes back to the queue (task_acks_late) and another worker runs the step again from
#   the start, in the same run. CERT_CELERY_ACKS_LATE=off: Celery's default, the task is acknowledged when it
#   starts and lost with the worker (its run hangs until force-terminated). With late acknowledgement keep
#   RabbitMQ's consumer_timeout (default 30 min) above the longest district load.
set -euo pipefail
if [ $# -ne 1 ] || [ -z "$1" ]; then
  echo "usage: $0 NAME   (the worker's hostname becomes NAME@$(hostname))" >&2
  exit 2
fi
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(dirname "$HERE")"
PY="${CERT_VENV:-$ROOT/.venv}/bin"
: "${DAGSTER_HOME:?export DAGSTER_HOME (the instance the runs use) before starting a worker}"
cd "$ROOT"
export PYTHONPATH="$HERE/celery${PYTHONPATH:+:$PYTHONPATH}"
# exec: the worker is this process, so a signal to it (or to its process group) reaches Celery itself.
exec "$PY/celery" -A dagster_celery.app \
  --broker "${CERT_CELERY_BROKER:-pyamqp://guest:guest@127.0.0.1:5672//}" --result-backend "rpc://" \
  worker --prefetch-multiplier=1 --concurrency "${CERT_CELERY_CONCURRENCY:-1}" \
  -Q "${CERT_CELERY_QUEUE:-dagster}" -n "$1@%h" --loglevel INFO --without-gossip --without-mingle
