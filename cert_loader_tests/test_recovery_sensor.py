"""cert_recovery_sensor: a load SIGKILLed after the commit decision is finished by the sensor, not by a person (issue 14, point 4)."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Iterator

import dagster as dg
import psycopg
import pytest

from cert_loader.config import LoaderConfig, PgStoreConfig
from cert_loader.defs import build_definitions
from cert_loader.defs.recovery import SENSOR_NAME, recovery_settings
from cert_loader.defs.resources import GraphStoreResource, resource_key
from cert_loader.errors import ConfigError
from cert_loader.manifest import snapshot, write_manifest
from cert_loader.stores.postgres import LOCK_PREFIX
from cert_loader_tests.dagster_support import instance_with, pg_resources
from cert_loader_tests.fix_district import file_rows, graph_nodes, prepared, store_snapshot
from cert_loader_tests.fix_cli import cli_env, kill_at

pytestmark = pytest.mark.usefixtures("no_prepared_left")


@pytest.fixture
def recovery_defs(sample_stores, graph_config, data_root, tmp_path) -> dg.Definitions:
    """The code location over the session's five stores, as `dagster dev` would build it."""
    config = LoaderConfig(data_root=data_root, pg={n: PgStoreConfig(n, u) for n, u in sample_stores.items()},
                          graph=graph_config)
    manifest = write_manifest(snapshot(config), tmp_path / "cert-schema.json")
    resources = pg_resources(sample_stores, data_root) | {resource_key("sp"): GraphStoreResource(
        uri=graph_config.uri, user=graph_config.user, password=graph_config.password, database=graph_config.database)}
    return build_definitions(manifest, resources=resources)


def tick(defs: dg.Definitions):
    sensor = defs.resolve_sensor_def(SENSOR_NAME)
    with dg.build_sensor_context(instance=instance_with([]), definitions=defs, resources=defs.resources) as context:
        return sensor.evaluate_tick(context)


def killed_after_decision(make_district, sample_stores, data_root, graph_config, pg_admin) -> tuple[str, dict]:
    """A real five-store load SIGKILLed right after the graph commit: decided, every PostgreSQL store still prepared."""
    district = make_district(students=60)
    kill_at("after-decision", district, cli_env(sample_stores, data_root, graph_config))
    assert len(prepared(pg_admin, sample_stores, district)) == len(sample_stores)
    now = store_snapshot(sample_stores, district)
    assert not any(n for tables in now.values() for n in tables.values()), "rows visible before COMMIT PREPARED"
    return district, file_rows(now, data_root, district)


@contextlib.contextmanager
def district_lock_held(sample_stores, district: str) -> Iterator[None]:
    """What a running load holds: the district's advisory lock in every store (DESIGN.md section 5, point 6)."""
    conns = [psycopg.connect(url, autocommit=True) for url in sample_stores.values()]
    try:
        for conn in conns:
            assert conn.execute("SELECT pg_try_advisory_lock(hashtextextended(%s, 0))",
                                (LOCK_PREFIX + district,)).fetchone()[0]
        yield
    finally:
        for conn in conns:
            conn.close()


def test_the_sensor_is_on_by_default_every_minute(recovery_defs) -> None:
    sensor = recovery_defs.resolve_sensor_def(SENSOR_NAME)
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
    assert sensor.minimum_interval_seconds == 60
    assert recovery_settings({"CERT_RECOVERY_SENSOR": "off", "CERT_RECOVERY_INTERVAL_SECONDS": "15"}) == (
        15, dg.DefaultSensorStatus.STOPPED)
    with pytest.raises(ConfigError, match="CERT_RECOVERY_INTERVAL_SECONDS='soon' is not a whole number"):
        recovery_settings({"CERT_RECOVERY_INTERVAL_SECONDS": "soon"})


def test_a_load_killed_after_the_decision_is_committed_by_the_sensor(
        recovery_defs, make_district, sample_stores, data_root, graph_config, pg_admin) -> None:
    district, expected = killed_after_decision(make_district, sample_stores, data_root, graph_config, pg_admin)

    result = tick(recovery_defs)
    assert not result.run_requests
    assert result.skip_message == f"resolved {len(sample_stores)} in-doubt prepared transaction(s)"
    assert prepared(pg_admin, sample_stores, district) == []
    rows = store_snapshot(sample_stores, district)
    assert rows == expected and all(sum(tables.values()) > 0 for tables in rows.values())
    assert graph_nodes(graph_config, district) > 0

    assert tick(recovery_defs).skip_message == "nothing in doubt"  # idempotent


def test_a_district_whose_lock_is_held_is_left_alone(
        recovery_defs, make_district, sample_stores, data_root, graph_config, pg_admin) -> None:
    district, expected = killed_after_decision(make_district, sample_stores, data_root, graph_config, pg_admin)
    before = prepared(pg_admin, sample_stores, district)

    with district_lock_held(sample_stores, district):
        result = tick(recovery_defs)
        assert f"left {len(before)} alone" in result.skip_message
        assert "a load of the district is running" in result.skip_message
        assert prepared(pg_admin, sample_stores, district) == before

    assert tick(recovery_defs).skip_message == f"resolved {len(before)} in-doubt prepared transaction(s)"
    assert prepared(pg_admin, sample_stores, district) == []
    assert store_snapshot(sample_stores, district) == expected


def test_an_unmarked_store_is_never_touched(recovery_defs, make_district, sample_stores, data_root, graph_config,
                                            pg_admin, make_database) -> None:
    """The wrong-target guard of `cert-loader recover` (mark.require_marked) holds for the sensor too."""
    unmarked = make_database("recovery_unmarked", mark=False)
    defs = build_definitions(Path(recovery_defs.metadata["cert_loader/manifest"].value), resources={
        **recovery_defs.resources, resource_key("adb"): pg_resources({"adb": unmarked}, data_root)[resource_key("adb")]})
    district, _ = killed_after_decision(make_district, sample_stores, data_root, graph_config, pg_admin)
    before = prepared(pg_admin, sample_stores, district)
    with pytest.raises(Exception, match="is not marked as a CERT store; nothing was touched"):
        tick(defs)
    assert prepared(pg_admin, sample_stores, district) == before
    assert tick(recovery_defs).skip_message == f"resolved {len(before)} in-doubt prepared transaction(s)"
