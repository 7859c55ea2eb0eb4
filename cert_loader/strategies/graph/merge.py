"""merge on the graph: the district's nodes and relationships made equal to the source's (DESIGN.md section 6)."""

from __future__ import annotations

import time

from cert_loader.constants import DISTRICT_COLUMN
from cert_loader.graph_diff import same_value
from cert_loader.graph_input import subset
from cert_loader.results import GraphTable, TableResult
from cert_loader.strategies.graph.base import GraphLoad, GraphStrategy, sync_relationships


class GraphMerge(GraphStrategy):
    """Create new nodes, overwrite changed ones, sync every type, then delete the nodes the source lacks."""

    name = "merge"

    def before(self, load: GraphLoad) -> None:
        load.labels = load.cypher.graph_labels()

    def load_nodes(self, load: GraphLoad, label: str, rows: list[dict], result: TableResult) -> None:
        cypher, district = load.cypher, load.data.district
        old = cypher.existing_nodes(label)
        fresh, changed = [], []  # row positions: the rows are built again batch by batch to be written
        for i, r in enumerate(rows):
            before = old.pop(r["id"], None)
            if before is None:
                fresh.append(i)
            elif not same_value(before, {**r["props"], "id": r["id"], DISTRICT_COLUMN: district}):
                changed.append(i)
        result.inserted = cypher.create_nodes(label, subset(rows, fresh), check_existing=False)
        result.updated = cypher.set_nodes(label, subset(rows, changed))
        result.unchanged = len(rows) - len(fresh) - len(changed)
        load.removed[label] = list(old)  # deleted after the relationships, so those are counted per type

    def before_relationships(self, load: GraphLoad) -> list[str]:
        """Every type the district holds or the source has: a type the source lacks is emptied."""
        load.labels = sorted(set(load.labels) | set(load.data.nodes))
        return sorted(set(load.cypher.rel_census(load.labels)) | set(load.data.relationships))

    def load_relationships(self, load: GraphLoad, rtype: str, rows: list[dict]) -> TableResult:
        return sync_relationships(load, rtype, rows, load.labels, exact=True)

    def after(self, load: GraphLoad) -> None:
        """Delete the nodes the source no longer has; a label the source lacks goes whole."""
        for label in load.labels:
            started = time.monotonic()
            if label in load.data.nodes:
                res = load.results[GraphTable.nodes(label)]
                res.deleted = load.cypher.delete_node_ids(label, load.removed[label])
            else:
                res = load.result(GraphTable.nodes(label), 0)
                res.deleted, res.inserted, res.updated, res.unchanged = load.cypher.delete_label(label), 0, 0, 0
            res.duration_s += time.monotonic() - started

    def reported(self, result: TableResult) -> bool:
        return bool(result.source_rows or result.deleted or result.inserted)
