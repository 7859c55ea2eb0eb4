"""Session fixtures for the graph store: a real ArcadeDB Bolt server, never a mock (STYLE.md 12-13)."""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from typing import Iterator
from uuid import uuid4

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from cert_loader.config import GraphConfig
from cert_loader.graph_input import GraphInput, read_graph_input
from cert_loader.stores.graph import GraphStore
from cert_loader.testing.arcadedb import ArcadeServer, start_arcadedb


@pytest.fixture(scope="session")
def graph_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ArcadeServer]:
    """One ArcadeDB per pytest session; a server that cannot start fails the tests with its log tail."""
    root: Path = tmp_path_factory.mktemp("arcadedb")
    try:
        server = start_arcadedb(root, password=secrets.token_urlsafe(18))
    except Exception as exc:  # noqa: BLE001 - fail loudly, never skip (STYLE.md 13)
        pytest.fail(f"cannot start the Bolt test server: {exc}", pytrace=False)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def graph_config(graph_server: ArcadeServer) -> GraphConfig:
    return GraphConfig(
        uri=graph_server.bolt_uri, user=graph_server.user,
        password=graph_server.password, database=graph_server.database,
    )


@pytest.fixture
def graph_district() -> str:
    """A district id of its own for each test, so tests never see each other's nodes."""
    return f"d-{uuid4().hex[:8]}"


def graph_counts(graph_config: GraphConfig, district: str) -> dict:
    """The district's nodes per label and relationships per type, as the graph store counts them."""
    with GraphStore(graph_config) as store:
        return store.counts(district)


def graph_input(tmp_path: Path, district: str, nodes: list[tuple], rels: list[tuple] = ()) -> GraphInput:
    """Write nodes (id, label, props) and relationships (start, end, type, props) as parquet and read them."""
    folder = tmp_path / uuid4().hex[:6]
    folder.mkdir()
    pq.write_table(pa.table({
        "id": pa.array([n[0] for n in nodes], pa.string()), "labels": pa.array([n[1] for n in nodes], pa.string()),
        "district_id": pa.array([district] * len(nodes), pa.string()),
        "properties": pa.array([json.dumps(n[2]) for n in nodes], pa.string()),
    }), folder / "nodes.parquet")
    pq.write_table(pa.table({
        "start": pa.array([r[0] for r in rels], pa.string()), "end": pa.array([r[1] for r in rels], pa.string()),
        "type": pa.array([r[2] for r in rels], pa.string()),
        "properties": pa.array([json.dumps(r[3]) for r in rels], pa.string()),
    }), folder / "relationships.parquet")
    return read_graph_input(folder / "nodes.parquet", folder / "relationships.parquet", district)
