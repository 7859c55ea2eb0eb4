"""insert on the graph: CREATE nodes and relationships; an existing node key fails the load (DESIGN.md section 6)."""

from __future__ import annotations

from cert_loader.results import GraphTable, TableResult
from cert_loader.strategies.graph.base import GraphLoad, GraphStrategy, create_relationships


class GraphInsert(GraphStrategy):
    name = "insert"
    # Insert checks for existing nodes itself: the key constraints may be only indexes (ensure_schema).
    check_existing = True

    def load_nodes(self, load: GraphLoad, label: str, rows: list[dict], result: TableResult) -> None:
        result.inserted = load.cypher.create_nodes(label, rows, check_existing=self.check_existing)

    def load_relationships(self, load: GraphLoad, rtype: str, rows: list[dict]) -> TableResult:
        res = load.result(GraphTable.relationships(rtype), len(rows))
        res.inserted = create_relationships(load, rtype, rows)
        return res
