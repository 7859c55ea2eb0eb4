"""Where a district step runs (issue 15, point 1): in the run worker (default), or on a Celery worker.

``CERT_DAGSTER_EXECUTOR`` unset or ``in_process``: the step runs inside the run worker (as before).
``celery``: dagster-celery's ``celery_executor``; the broker is ``CERT_CELERY_BROKER`` (default the local
RabbitMQ), the results backend ``rpc://`` (results travel back as AMQP messages over the same broker to the
run that sent the task, so no result store is needed), the queue ``CERT_CELERY_QUEUE`` (default ``dagster``,
the queue dagster-celery declares). Start workers with ``scripts/celery-worker.sh NAME``.
"""

from __future__ import annotations

import os

import dagster as dg

EXECUTOR_VAR = "CERT_DAGSTER_EXECUTOR"
BROKER_VAR = "CERT_CELERY_BROKER"
QUEUE_VAR = "CERT_CELERY_QUEUE"
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


def district_executor(environ: dict[str, str] | None = None) -> dg.ExecutorDefinition:
    """The executor for the code location's jobs, from ``CERT_DAGSTER_EXECUTOR`` (read when the location loads)."""
    if executor_choice(environ) == "in_process":
        return dg.in_process_executor
    from dagster_celery import celery_executor

    return celery_executor.configured(celery_config(environ), name="cert_celery_executor")
