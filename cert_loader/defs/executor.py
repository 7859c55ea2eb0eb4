"""Where a district step runs (issue 15, point 1): in the run worker (default), or on a Celery worker.

``CERT_DAGSTER_EXECUTOR`` unset or ``in_process``: the step runs inside the run worker (as before).
``celery``: dagster-celery's ``celery_executor``; the broker is ``CERT_CELERY_BROKER`` (default the local
RabbitMQ), the results backend ``rpc://`` (results travel back as AMQP messages over the same broker to the
run that sent the task, so no result store is needed), the queue ``CERT_CELERY_QUEUE`` (default ``dagster``,
the queue dagster-celery declares). Start workers with ``scripts/celery-worker.sh NAME``.

A worker that dies mid-load (``worker_settings``: applied on the worker through dagster-celery's own
``dagster_celery_config`` hook, scripts/celery/dagster_celery_config.py; the sending side needs nothing):

* Its pool process dies (SIGKILL, the OOM killer) and the main process lives: the main process acknowledges
  the task and sends WorkerLostError as its result (``task_reject_on_worker_lost`` stays False: no retry),
  so the run fails at once; the load's sessions died with the process, so every store is as before (prepared
  transactions of an attempt killed after PREPARE are rolled back by the recovery sensor or the next load of
  the district). A rerun loads the district.
* The whole worker dies (its main process SIGKILLed, the machine gone): the pool process dies with it (celery
  sets PR_SET_PDEATHSIG=SIGKILL in every pool process), so nothing goes on loading and no result is sent.
  With ``task_acks_late`` (the default here) the task is not yet acknowledged, so RabbitMQ requeues it when
  the dead worker's connection closes, and another worker (or this one, restarted) runs the step again from
  the start, in the same Dagster run. That attempt's pre-flight resolves the dead attempt's prepared
  transactions (rolled back before its commit decision, committed after it) and takes the district's advisory
  lock, freed when the dead attempt's sessions closed. Killed before the decision (nearly always): the new
  attempt loads the district and the run succeeds. Killed in the few milliseconds after it: the district is
  complete already and, with the insert strategy, the new attempt fails on the existing keys (the run fails,
  the stores hold the dead attempt's whole load).
  ``CERT_CELERY_ACKS_LATE=off`` on the worker: Celery's default, the task is acknowledged when it starts and
  lost with the worker; the run stays STARTED, a terminate leaves it CANCELING (dagster-celery waits for the
  lost result), only a forced termination ends it.
  Late acknowledgement means at least once: RabbitMQ's ``consumer_timeout`` (default 30 min) must exceed the
  longest district load, or the broker closes the channel and redelivers the task while it still runs.
"""

from __future__ import annotations

import os

import dagster as dg

EXECUTOR_VAR = "CERT_DAGSTER_EXECUTOR"
BROKER_VAR = "CERT_CELERY_BROKER"
QUEUE_VAR = "CERT_CELERY_QUEUE"
ACKS_LATE_VAR = "CERT_CELERY_ACKS_LATE"
DEFAULT_BROKER = "pyamqp://guest:guest@127.0.0.1:5672//"
DEFAULT_QUEUE = "dagster"
RESULT_BACKEND = "rpc://"
CHOICES = ("in_process", "celery")


def executor_choice(environ: dict[str, str] | None = None) -> str:
    value = (os.environ if environ is None else environ).get(EXECUTOR_VAR, "").strip() or "in_process"
    if value not in CHOICES:
        raise dg.DagsterInvariantViolationError(
            f"{EXECUTOR_VAR}={value!r} is not an executor this code location knows: use one of "
            f"{', '.join(CHOICES)} (or leave it unset for in_process)")
    return value


def celery_config(environ: dict[str, str] | None = None) -> dict:
    env = os.environ if environ is None else environ
    queue = env.get(QUEUE_VAR, "").strip() or DEFAULT_QUEUE
    # A district step is one long transaction: a worker takes one task at a time (dagster-celery's own
    # `worker start` passes --prefetch-multiplier=1 too), so a free worker is never starved by a busy one.
    return {"broker": env.get(BROKER_VAR, "").strip() or DEFAULT_BROKER, "backend": RESULT_BACKEND,
            "config_source": {"task_default_queue": queue, "worker_prefetch_multiplier": 1}}


def worker_settings(environ: dict[str, str] | None = None) -> dict:
    """The Celery settings of a worker that its command line cannot give (the module docstring says why)."""
    env = os.environ if environ is None else environ
    late = env.get(ACKS_LATE_VAR, "").strip().lower() not in ("0", "off", "false", "no")
    return {"task_acks_late": late, "task_reject_on_worker_lost": False}


def district_executor(environ: dict[str, str] | None = None) -> dg.ExecutorDefinition:
    """The executor for the code location's jobs, from ``CERT_DAGSTER_EXECUTOR`` (read when the location loads)."""
    if executor_choice(environ) == "in_process":
        return dg.in_process_executor
    from dagster_celery import celery_executor

    return celery_executor.configured(celery_config(environ), name="cert_celery_executor")
