"""The graph strategies' interface, the loop that drives it, and the relationship sync that upsert and merge share."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from cert_loader.graph_diff import diff_relationships
from cert_loader.graph_input import GraphInput
from cert_loader.results import GraphTable, TableResult
from cert_loader.stores.graph_cypher import GraphCypher, rel_groups


@dataclass
class GraphLoad:
    """One district's graph load under way: its statements, its input and the results so far (per GraphTable)."""

    cypher: GraphCypher
    data: GraphInput
    results: dict[GraphTable, TableResult] = field(default_factory=dict)
    # The graph's labels as the strategy found them (replace, merge): the district's are among them.
    labels: list[str] = field(default_factory=list)
    # merge: the ids per label the source no longer has, deleted after the relationships (counted per type).
    removed: dict[str, list[str]] = field(default_factory=dict)

    def source_file(self, table: GraphTable) -> str | None:
        path = self.data.nodes_path if table.kind == "nodes" else self.data.rels_path
        return str(path or "") or None

    def result(self, table: GraphTable, source_rows: int) -> TableResult:
        """The table's result, made on first use."""
        if table not in self.results:
            self.results[table] = TableResult.of_graph(table, source_rows, self.source_file(table))
        return self.results[table]


class GraphStrategy:
    """Hooks around the per-label and per-type work, like the relational Strategy (DESIGN.md section 6)."""

    name = ""

    def before(self, load: GraphLoad) -> None:
        """Runs once before any node is loaded."""

    def load_nodes(self, load: GraphLoad, label: str, rows: list[dict], result: TableResult) -> None:
        raise NotImplementedError

    def before_relationships(self, load: GraphLoad) -> list[str]:
        """Runs once after the nodes; returns the relationship types to load (the source's, in its order)."""
        return list(load.data.relationships)

    def load_relationships(self, load: GraphLoad, rtype: str, rows: list[dict]) -> TableResult:
        raise NotImplementedError

    def after(self, load: GraphLoad) -> None:
        """Runs once after every relationship type, before verification."""

    def reported(self, result: TableResult) -> bool:
        """Whether the result belongs in the report: the source has the table, or the load deleted from it."""
        return bool(result.source_rows or result.deleted)


def run_graph_strategy(strategy: GraphStrategy, cypher: GraphCypher, data: GraphInput) -> list[TableResult]:
    """Apply ``strategy`` to the district's graph: nodes per label, then relationships per type."""
    load = GraphLoad(cypher, data)
    strategy.before(load)
    for label, rows in data.nodes.items():
        started = time.monotonic()
        res = load.result(GraphTable.nodes(label), len(rows))
        strategy.load_nodes(load, label, rows, res)
        res.duration_s += time.monotonic() - started
    for rtype in strategy.before_relationships(load):
        started = time.monotonic()
        res = strategy.load_relationships(load, rtype, data.relationships.get(rtype, []))
        res.duration_s += time.monotonic() - started
    strategy.after(load)
    return [r for r in load.results.values() if strategy.reported(r)]


def create_relationships(load: GraphLoad, rtype: str, rows: list[dict]) -> int:
    """CREATE every source relationship of ``rtype``, one statement shape per pair of end labels."""
    groups = rel_groups(rows, load.data.label_of)
    return sum(load.cypher.create_rels(rtype, pair, items) for pair, items in groups.items())


def sync_relationships(load: GraphLoad, rtype: str, rows: list[dict], labels: list[str], *,
                       exact: bool) -> TableResult:
    """Upsert (``exact=False``) or merge (``exact=True``) one type: read the graph's, diff (graph_diff), apply.

    Merge first deletes the district's relationships with an end outside the district; upsert leaves
    them and reports no deletions.
    """
    cypher, table = load.cypher, GraphTable.relationships(rtype)
    res = TableResult.of_graph(table, len(rows), load.source_file(table))
    outside = cypher.delete_outside(rtype, labels) if exact else 0
    diff = diff_relationships(cypher.existing_rels(rtype, labels), rows, load.data.label_of, cypher.district,
                              exact=exact)
    cypher.apply_rel_diff(rtype, diff)
    res.inserted, res.updated, res.unchanged = diff.inserted, diff.updated, diff.unchanged
    res.deleted = outside + diff.deleted if exact else None
    load.results[table] = res
    return res
