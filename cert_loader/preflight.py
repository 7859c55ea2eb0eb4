"""Pre-flight: everything checked before the first write — gate, connectivity, CERT mark, catalogs, plan (DESIGN.md section 5, step 1)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from cert_loader.catalog import read_catalog
from cert_loader.config import LoaderConfig, PgStoreConfig
from cert_loader.constants import GRAPH_STORE
from cert_loader.errors import CatalogError, CertLoaderError, ConfigError
from cert_loader.inputs import DistrictPaths, ValidationGate, read_extraction_order, read_validation_gate
from cert_loader.constants import STRATEGIES
from cert_loader.plan import LoadPlan, plan_store
from cert_loader.manifest import GRAPH_ASSETS
from cert_loader.mark import StoreStatus, inspect_store, mark_problems
from cert_loader.stores.postgres import PgStore
from cert_loader.verify.cross_store import plan_references

log = logging.getLogger(__name__)

@dataclass
class Preflight:
    """The stores, opened in autocommit, and the plan; ``close()`` releases connections and locks."""

    config: LoaderConfig
    paths: DistrictPaths
    plan: LoadPlan
    gate: ValidationGate | None = None
    pg: dict[str, PgStore] = field(default_factory=dict)
    status: dict[str, StoreStatus] = field(default_factory=dict)
    graph_input: Any = None
    graph_store: Any = None
    references: list = field(default_factory=list)  # cross-store references that fit the catalogs (references.py)
    readers: dict[str, PgStore] = field(default_factory=dict)  # committed-state readers of stores outside the load

    def close(self) -> None:
        for store in self.pg.values():
            store.close()
        for store in self.readers.values():
            store.close()
        if self.graph_store is not None:
            self.graph_store.close()


def run_preflight(
    config: LoaderConfig,
    district: str,
    *,
    strategy: str,
    strict: bool = False,
    only: dict[str, set[str]] | None = None,
    lock: bool = False,
    before_lock=None,
    manifest: Path | None = None,
    readers: Mapping[str, PgStoreConfig] | None = None,
) -> Preflight:
    """Open every selected store and build the plan; problems are collected in ``plan.problems``.

    Raises only for what makes planning itself impossible (refused validation, unreachable store).
    With ``lock``, each store's district advisory lock is taken (load); ``before_lock`` runs first
    (recovery of earlier runs' prepared transactions). With ``manifest``, every difference between it and
    a live catalog is a CatalogError problem (DESIGN.md section 8: a load fails clearly on drift).
    ``readers`` are stores outside the load that cross-store references may need to read (committed rows).
    """
    if strategy not in STRATEGIES:
        raise ConfigError(f"unknown strategy {strategy!r}", hint=f"choose from {', '.join(STRATEGIES)}")
    paths = DistrictPaths(config.data_root, district)
    pf = Preflight(config, paths, LoadPlan(district, strategy))
    try:
        pf.gate = read_validation_gate(paths)
        pf.plan.warnings.extend(f"validation: {w}" for w in pf.gate.warnings)
        order = read_extraction_order(paths)
        if order is None:
            pf.plan.warnings.append("extraction-order.json not found; table order comes from the catalog")
        open_stores(pf)
        if config.graph is not None:
            _open_graph(pf, order)
        if before_lock is not None and all(st.marked for st in pf.status.values()):
            before_lock(pf)  # recovery writes: never on a database that is not marked as CERT
        if lock:
            for store in pf.pg.values():
                store.lock_district(district)
        for name, store in pf.pg.items():
            catalog = read_catalog(store.conn, name)
            if manifest is not None:
                pf.plan.problems.extend(_drift(manifest, name, catalog))
            names = order.get(name) if order is not None else None
            if order is not None and names is None:
                pf.plan.warnings.append(f"{name}: extraction-order.json has no entry for this store; order from the catalog")
            pf.plan.stores[name] = plan_store(
                name, catalog, names, paths, pf.plan, strict=strict,
                only=only.get(name, set()) if only is not None else None,
            )
        catalogs = {name: sp.catalog for name, sp in pf.plan.stores.items()}
        pf.references, pf.readers = plan_references(paths.data_root, pf.plan, catalogs, readers, lock=lock)
    except BaseException:
        pf.close()
        raise
    return pf


def _drift(path: Path, store: str, catalog) -> list[CertLoaderError]:
    from cert_loader.manifest import drift, read_manifest

    try:
        return drift(read_manifest(path), store, catalog)
    except CertLoaderError as exc:
        return [CatalogError(exc.reason, store=store, hint=exc.hint)]


def open_stores(pf: Preflight) -> None:
    """Connect every configured PostgreSQL store (autocommit), read its status, refuse unmarked ones."""
    for name, cfg in pf.config.pg.items():
        store = PgStore(cfg)
        store.connect(autocommit=True)
        pf.pg[name] = store
        pf.status[name] = inspect_store(store)
    pf.plan.problems.extend(mark_problems(pf.status))


def _open_graph(pf: Preflight, order: dict | None) -> None:
    from cert_loader.graph_input import read_graph_input
    from cert_loader.stores.graph import GraphStore

    paths = pf.paths
    nodes, rels = (paths.source_file(GRAPH_STORE, kind) for kind in GRAPH_ASSETS)
    if not nodes.is_file():
        message = f"file {nodes} is missing; the graph is not loaded"
        pf.plan.warnings.append(f"{GRAPH_STORE}: {message}")
    else:
        try:
            pf.graph_input = read_graph_input(nodes, rels if rels.is_file() else None, pf.paths.district)
        except CertLoaderError as exc:
            pf.plan.problems.append(exc)
    pf.graph_store = GraphStore(pf.config.graph)
    pf.graph_store.ping()
