"""replace on the graph: delete the district's subgraph, then create the source's (DESIGN.md section 6)."""

from __future__ import annotations

import time

from cert_loader.results import GraphTable, TableResult
from cert_loader.strategies.graph.base import GraphLoad
from cert_loader.strategies.graph.insert import GraphInsert


class GraphReplace(GraphInsert):
    name = "replace"
    check_existing = False  # the district is empty after before()

    def before(self, load: GraphLoad) -> None:
        """DETACH DELETE takes the relationships along: their counts are read first, per type."""
        cypher, data = load.cypher, load.data
        load.labels = cypher.graph_labels()
        for rtype, seen in cypher.rel_census(load.labels).items():
            res = load.result(GraphTable.relationships(rtype), len(data.relationships.get(rtype, [])))
            res.deleted = seen["count"] + seen["start_outside"]
        for label in load.labels:
            started = time.monotonic()
            res = load.result(GraphTable.nodes(label), len(data.nodes.get(label, [])))
            res.deleted = cypher.delete_label(label)
            res.duration_s += time.monotonic() - started

    def load_nodes(self, load: GraphLoad, label: str, rows: list[dict], result: TableResult) -> None:
        super().load_nodes(load, label, rows, result)
        result.deleted = result.deleted or 0

    def load_relationships(self, load: GraphLoad, rtype: str, rows: list[dict]) -> TableResult:
        res = super().load_relationships(load, rtype, rows)
        res.deleted = res.deleted or 0
        return res
