"""cert_recovery_sensor: in a Dagster deployment nobody runs `cert-loader recover`, so a run worker killed after the commit decision would leave prepared transactions holding row locks; this sensor resolves them (DESIGN.md section 5, issue 14 point 4)."""

from __future__ import annotations

import contextlib
import os
from typing import TYPE_CHECKING, Mapping

import dagster as dg

from cert_loader.config import LoaderConfig
from cert_loader.constants import PG_STORES
from cert_loader.defs.resources import DATA_KEY, loader_config, resource_key
from cert_loader.errors import ConfigError

if TYPE_CHECKING:  # the engine is imported when a tick runs, not when the code location loads
    from cert_loader.transaction import InDoubt

SENSOR_NAME = "cert_recovery_sensor"
# Seconds between ticks. A tick with nothing in doubt costs one short connection and query per store; an
# in-doubt load keeps its rows locked until the next tick, so a minute is the longest such a lock lasts.
DEFAULT_INTERVAL_SECONDS = 60
INTERVAL_ENV = "CERT_RECOVERY_INTERVAL_SECONDS"
# CERT_RECOVERY_SENSOR=off: the sensor starts stopped (it can still be started in the UI); anything else: on.
SWITCH_ENV = "CERT_RECOVERY_SENSOR"


def recovery_settings(env: Mapping[str, str]) -> tuple[int, dg.DefaultSensorStatus]:
    """(interval in seconds, default status) from the code location's environment."""
    raw = env.get(INTERVAL_ENV, "").strip()
    try:
        interval = int(raw) if raw else DEFAULT_INTERVAL_SECONDS
    except ValueError:
        interval = 0
    if interval < 1:
        raise ConfigError(f"{INTERVAL_ENV}={raw!r} is not a whole number of seconds",
                          hint=f"set it to e.g. {DEFAULT_INTERVAL_SECONDS}, or unset it")
    off = env.get(SWITCH_ENV, "").strip().lower() in ("off", "0", "false", "no")
    return interval, dg.DefaultSensorStatus.STOPPED if off else dg.DefaultSensorStatus.RUNNING


def recover_in_doubt(config: LoaderConfig) -> list[InDoubt]:
    """What `cert-loader recover` does: refuse unless every store is marked CERT, then resolve (transaction.recover)."""
    from cert_loader.mark import require_marked
    from cert_loader.stores.graph import GraphStore
    from cert_loader.transaction import recover

    require_marked(dict(config.pg))  # the wrong-target guard: touch nothing unless every store is CERT
    with GraphStore(config.graph) if config.graph is not None else contextlib.nullcontext() as graph:
        return recover(dict(config.pg), graph.decision if graph is not None else None)


def summary(items: list[InDoubt]) -> str:
    if not items:
        return "nothing in doubt"
    done = [i for i in items if i.action in ("committed", "rolled back")]
    left = [i for i in items if i not in done]
    text = f"resolved {len(done)} in-doubt prepared transaction(s)"
    if left:
        text += f"; left {len(left)} alone: " + "; ".join(f"{i.store}: {i.gid}: {i.action}" for i in left)
    return text


def build_recovery_sensor(stores: tuple[str, ...], env: Mapping[str, str] | None = None) -> dg.SensorDefinition:
    """The sensor over the code location's stores; on by default (DESIGN.md section 5: a crash is resolved without a person)."""
    interval, status = recovery_settings(os.environ if env is None else env)
    pg_stores = tuple(s for s in stores if s in PG_STORES)

    @dg.sensor(
        name=SENSOR_NAME, minimum_interval_seconds=interval, default_status=status,
        required_resource_keys={resource_key(s) for s in stores} | {DATA_KEY},
        description="Commits or rolls back the prepared transactions a crashed district load left behind, the way "
                    "its decision went (cert-loader recover); a district whose load is running is left alone.",
    )
    def cert_recovery_sensor(context: dg.SensorEvaluationContext):
        if not pg_stores:
            return dg.SkipReason("no PostgreSQL store in the code location: nothing can be in doubt")
        items = recover_in_doubt(loader_config(context.resources, set(stores)))
        for item in items:
            if item.action in ("committed", "rolled back"):
                context.log.warning(f"{item.store}: {item.gid}: {item.action} (district {item.district}, run {item.run_id})")
            else:
                context.log.info(f"{item.store}: {item.gid}: {item.action}")
        return dg.SkipReason(summary(items))

    return cert_recovery_sensor
