"""Helpers shared by the Dagster tests: a manifest of the session's stores, resources, instances and environments."""

from __future__ import annotations

import os
import shutil
import socket
import sys
from pathlib import Path

import dagster as dg

from cert_loader.config import LoaderConfig, PgStoreConfig
from cert_loader.defs.partitions import DISTRICT_PARTITIONS
from cert_loader.defs.resources import DATA_KEY, CertDataResource, PostgresStoreResource, resource_key
from cert_loader.manifest import snapshot, write_manifest

REPO = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
SAMPLE_MANIFEST = Path(__file__).with_name("sample-manifest.json")


def snapshot_to(urls: dict[str, str], path: Path) -> Path:
    """Write the manifest of the given PostgreSQL stores (what `cert-loader snapshot` does)."""
    config = LoaderConfig(data_root=path.parent, pg={n: PgStoreConfig(n, u) for n, u in urls.items()})
    return write_manifest(snapshot(config), path)


def pg_resources(urls: dict[str, str], data_root: Path) -> dict:
    out = {resource_key(n): PostgresStoreResource(url=u) for n, u in urls.items()}
    out[DATA_KEY] = CertDataResource(data_root=str(data_root))
    return out


def instance_with(districts: list[str]) -> dg.DagsterInstance:
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(DISTRICT_PARTITIONS, districts)
    return instance


def materializations(result) -> list[dg.AssetKey]:
    return [e.asset_key for e in result.get_asset_materialization_events()]


def check_evaluations(result) -> list:
    return [e.event_specific_data for e in result.all_events if e.event_type_value == "ASSET_CHECK_EVALUATION"]


def step_failure(result) -> str:
    for event in result.all_events:
        if event.event_type_value == "STEP_FAILURE":
            return event.event_specific_data.error.message
    raise AssertionError("no step failure")


def dagster_home(directory: Path) -> Path:
    """A DAGSTER_HOME holding the project's own dagster.yaml (storage from DAGSTER_PG_URL)."""
    directory.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / "dagster.yaml", directory / "dagster.yaml")
    return directory


def sqlalchemy_url(libpq_url: str) -> str:
    """dagster-postgres wants postgresql+psycopg2:// (DESIGN.md section 9)."""
    return libpq_url.replace("postgresql://", "postgresql+psycopg2://", 1)


def subprocess_env(**extra: str) -> dict[str, str]:
    """The test process's environment without any CERT_*/DAGSTER_* leftovers, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CERT_", "DAGSTER_"))}
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    env.update(extra)
    return env


def cert_env(urls: dict[str, str], data_root: Path) -> dict[str, str]:
    env = {f"CERT_{n.upper()}_URL": u for n, u in urls.items()}
    env["CERT_DATA_ROOT"] = str(data_root)
    return env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
