"""Run tags and a concurrency pool naming the CERT servers a district run writes to, for per-server limits (dagster.yaml).

A district run writes to five stores, which may live on one server or on several. Each store gets a tag
``cert_loader/server.<store>`` whose value is that store's server as ``host:port`` (never a user or a
password), read from the same ``CERT_*`` variables the load uses. dagster.yaml limits every such key
with ``applyLimitPerUniqueValue``: at most N runs are in flight per value, i.e. per server. A run that
writes several stores to one server counts once under each of those keys; since every run of a
deployment writes the same stores, that is still at most N runs writing to that server.

Run tags reach only runs of a job (the district job: launchpad, sensor, backfill); the asset graph's own
"Materialize" launches the implicit asset job, which carries no job tags. So the district asset and the
restore op also sit in one Dagster concurrency pool named after the same servers (:func:`server_pool`);
dagster.yaml's ``concurrency: pools`` (``granularity: run``) keeps a run queued until its pool has a slot,
whichever way it was launched. One step has one pool, and every run of a code location writes the same
servers, so one pool per set of servers limits each of them.
"""

from __future__ import annotations

import os
from typing import Mapping
from urllib.parse import urlsplit

from cert_loader.constants import GRAPH_STORE, PG_STORES

TAG_PREFIX = "cert_loader/server."
# libpq's defaults when the URL names no host or port.
_PG_DEFAULT_HOST, _PG_DEFAULT_PORT = "localhost", "5432"
_BOLT_DEFAULT_PORT = "7687"


def pg_server(url: str) -> str | None:
    """``host:port`` of a libpq URL or key=value conninfo; None when it cannot be parsed."""
    from psycopg.conninfo import conninfo_to_dict

    try:
        params = conninfo_to_dict(url)
    except Exception:  # noqa: BLE001 - a broken URL gets no tag; the load itself reports it
        return None
    host = str(params.get("host") or params.get("hostaddr") or _PG_DEFAULT_HOST)
    port = str(params.get("port") or _PG_DEFAULT_PORT)
    return f"{host}:{port}"


def graph_server(uri: str) -> str | None:
    """``host:port`` of the graph's Bolt URI."""
    try:
        split = urlsplit(uri)
        port = split.port
    except ValueError:
        return None
    if not split.hostname:
        return None
    return f"{split.hostname}:{port or _BOLT_DEFAULT_PORT}"


def server_tags(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """One run tag per configured store: ``cert_loader/server.<store>`` = ``host:port``."""
    env = os.environ if env is None else env
    tags = {}
    for store in PG_STORES:
        url = env.get(f"CERT_{store.upper()}_URL", "").strip()
        server = pg_server(url) if url else None
        if server:
            tags[TAG_PREFIX + store] = server
    uri = env.get("CERT_SP_URI", "").strip()
    server = graph_server(uri) if uri else None
    if server:
        tags[TAG_PREFIX + GRAPH_STORE] = server
    return tags


POOL_PREFIX = "cert_loader/servers="


def server_pool(env: Mapping[str, str] | None = None) -> str | None:
    """The concurrency pool of the code location's district steps: its servers, sorted, ``+``-joined (no spaces).

    None when no store is configured (nothing to protect; Dagster then applies no pool).
    """
    servers = sorted(set(server_tags(env).values()))
    return POOL_PREFIX + "+".join(servers) if servers else None
