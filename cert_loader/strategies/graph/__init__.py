"""The four load strategies on the graph (DESIGN.md section 6), one module each, behind one small interface."""

from __future__ import annotations

from cert_loader.constants import GRAPH_STORE, STRATEGIES
from cert_loader.errors import StoreError
from cert_loader.strategies.graph.base import GraphStrategy, run_graph_strategy
from cert_loader.strategies.graph.insert import GraphInsert
from cert_loader.strategies.graph.merge import GraphMerge
from cert_loader.strategies.graph.replace import GraphReplace
from cert_loader.strategies.graph.upsert import GraphUpsert

GRAPH_STRATEGY_CLASSES: dict[str, type[GraphStrategy]] = {
    cls.name: cls for cls in (GraphInsert, GraphUpsert, GraphMerge, GraphReplace)
}


def get_graph_strategy(name: str) -> GraphStrategy:
    if name not in GRAPH_STRATEGY_CLASSES:
        raise StoreError(f"unknown strategy {name!r}", store=GRAPH_STORE, hint=f"choose from {', '.join(STRATEGIES)}")
    return GRAPH_STRATEGY_CLASSES[name]()


__all__ = ["GRAPH_STRATEGY_CLASSES", "GraphStrategy", "get_graph_strategy", "run_graph_strategy"]
