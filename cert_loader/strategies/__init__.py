"""The relational load strategies of DESIGN.md section 6, one module each, behind one small interface; the graph's are in `strategies/graph/`."""

from __future__ import annotations

from cert_loader.strategies.base import Strategy
from cert_loader.strategies.insert import InsertStrategy
from cert_loader.strategies.merge import MergeStrategy
from cert_loader.strategies.replace import ReplaceStrategy
from cert_loader.strategies.upsert import UpsertStrategy

STRATEGY_CLASSES: dict[str, type[Strategy]] = {
    cls.name: cls for cls in (InsertStrategy, UpsertStrategy, MergeStrategy, ReplaceStrategy)
}


def get_strategy(name: str) -> Strategy:
    return STRATEGY_CLASSES[name]()


__all__ = ["STRATEGY_CLASSES", "Strategy", "get_strategy"]
