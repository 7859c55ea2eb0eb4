"""One Dagster resource per CERT store, filled from the environment, turned into the engine's LoaderConfig (DESIGN.md section 4)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping

import dagster as dg

from cert_loader.config import GraphConfig, LoaderConfig, PgStoreConfig
from cert_loader.constants import GRAPH_STORE, PG_STORES
from cert_loader.data_root import S3Path, data_root as data_root_of


class PostgresStoreResource(dg.ConfigurableResource):
    """A PostgreSQL CERT store (libpq URL), bound to an EnvVar so the URL never shows in run config."""

    url: str

    def store_config(self, name: str) -> PgStoreConfig:
        return PgStoreConfig(name, self.url)


class GraphStoreResource(dg.ConfigurableResource):
    """The Neo4j (Bolt) store sp."""

    uri: str
    user: str
    password: str
    database: str

    def graph_config(self) -> GraphConfig:
        return GraphConfig(uri=self.uri, user=self.user, password=self.password, database=self.database)


class CertDataResource(dg.ConfigurableResource):
    """Where the districts' input files are (DESIGN.md section 2): the directory holding data/."""

    data_root: str

    @property
    def root(self) -> "Path | S3Path":
        return data_root_of(self.data_root)  # a directory or an s3:// URL (cert_loader.data_root)


def resource_key(store: str) -> str:
    return f"cert_{store}"


DATA_KEY = "cert_data"


def env_resources(stores: tuple[str, ...], env: Mapping[str, str] | None = None) -> dict[str, dg.ConfigurableResource]:
    """The resources of the code location, each field an EnvVar, so a missing variable fails the run naming it.

    The data root defaults to the code location's working directory when CERT_DATA_ROOT is unset.
    """
    env = os.environ if env is None else env
    out: dict[str, dg.ConfigurableResource] = {}
    for store in stores:
        if store == GRAPH_STORE:
            out[resource_key(store)] = GraphStoreResource(
                uri=dg.EnvVar("CERT_SP_URI"), user=dg.EnvVar("CERT_SP_USER"),
                password=dg.EnvVar("CERT_SP_PASSWORD"), database=dg.EnvVar("CERT_SP_DATABASE"),
            )
        else:
            out[resource_key(store)] = PostgresStoreResource(url=dg.EnvVar(f"CERT_{store.upper()}_URL"))
    root = dg.EnvVar("CERT_DATA_ROOT") if env.get("CERT_DATA_ROOT") else str(Path.cwd())
    out[DATA_KEY] = CertDataResource(data_root=root)
    return out


def loader_config(resources, stores: set[str]) -> LoaderConfig:
    """The engine's configuration for the stores a run touches, from the run's resources."""
    pg = {s: getattr(resources, resource_key(s)).store_config(s) for s in PG_STORES if s in stores}
    graph = getattr(resources, resource_key(GRAPH_STORE)).graph_config() if GRAPH_STORE in stores else None
    return LoaderConfig(data_root=getattr(resources, DATA_KEY).root, pg=pg, graph=graph)
