"""upsert on the graph: MERGE nodes on their key with ``SET +=``; relationships updated or added (section 6)."""

from __future__ import annotations

from cert_loader.results import TableResult
from cert_loader.strategies.graph.base import GraphLoad, GraphStrategy, sync_relationships


class GraphUpsert(GraphStrategy):
    name = "upsert"

    def load_nodes(self, load: GraphLoad, label: str, rows: list[dict], result: TableResult) -> None:
        result.inserted, result.updated = load.cypher.upsert_nodes(label, rows)

    def load_relationships(self, load: GraphLoad, rtype: str, rows: list[dict]) -> TableResult:
        return sync_relationships(load, rtype, rows, sorted(load.data.nodes), exact=False)
