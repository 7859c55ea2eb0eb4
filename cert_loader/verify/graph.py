"""The district's subgraph checked inside the graph's open transaction, as tables.py checks a table (section 7)."""

from __future__ import annotations

from typing import Any

from cert_loader.constants import DEFAULT_VERIFY
from cert_loader.graph_input import GraphInput, node_ids, rel_ends
from cert_loader.results import CheckResult, GraphTable
from cert_loader.stores.graph_cypher import GraphCypher
from cert_loader.verify.examples import EXAMPLES
from cert_loader.verify.graph_content import verify_graph_content

# A type the census did not see: none of its relationships start or end at a district node.
_UNSEEN = {"count": 0, "end_outside": 0, "start_outside": 0}


def verify_graph(cypher: GraphCypher, data: GraphInput, strategy: str,
                 verify: str = DEFAULT_VERIFY) -> list[CheckResult]:
    """Counts per label and type, and no dangling relationship, in the transaction ``cypher`` runs in.

    Under upsert the district may hold more than the source: every source node must be there and each
    type must hold at least the source's relationships. Under merge and replace the district must equal
    the source, so a label or type the source lacks is checked too (it must be empty). With ``verify``
    ``content``, the same labels and types then get their properties compared (verify/graph_content.py).
    """
    upsert = strategy == "upsert"
    graph_labels = cypher.graph_labels()
    census = cypher.rel_census(graph_labels)
    labels, types = set(data.nodes), set(data.relationships)
    if strategy in ("merge", "replace"):  # the district must equal the source: nothing else may remain
        labels |= {lab for lab in graph_labels if cypher.count_nodes(lab)}
        types |= set(census)
    checks = [_node_count(cypher, data, label, upsert=upsert) for label in sorted(labels)]
    for rtype in sorted(types):
        seen = census.get(rtype, _UNSEEN)
        checks.append(_relationship_count(cypher, data, rtype, seen, graph_labels, upsert=upsert))
        checks.append(_dangling(cypher, rtype, seen, graph_labels))
    if verify == "content":
        checks += verify_graph_content(cypher, data, labels, types, graph_labels, exact=not upsert)
    return checks


def _node_count(cypher: GraphCypher, data: GraphInput, label: str, *, upsert: bool) -> CheckResult:
    ids = node_ids(data.nodes.get(label, []))
    if upsert:
        present = cypher.present_ids(label, ids)
        actual, examples = len(present), sorted(set(ids) - present)[:EXAMPLES]
    else:
        actual, examples = cypher.count_nodes(label), []
        if actual != len(ids):
            examples = sorted(set(cypher.existing_nodes(label)).symmetric_difference(ids))[:EXAMPLES]
    passed = actual == len(ids)
    return CheckResult.of_graph(
        GraphTable.nodes(label), "node_count", passed, len(ids), actual,
        ("every source node present" if upsert else "district nodes of the label")
        + ("" if passed else f"; expected {len(ids)}, found {actual}; examples: ids missing or extra"),
        examples,
    )


def _relationship_count(cypher: GraphCypher, data: GraphInput, rtype: str, seen: dict[str, int],
                        graph_labels: list[str], *, upsert: bool) -> CheckResult:
    expected, actual = len(data.relationships.get(rtype, [])), seen["count"] + seen["start_outside"]
    passed = actual >= expected if upsert else actual == expected
    examples: list[Any] = []
    if not passed:
        src = set(rel_ends(data.relationships.get(rtype, [])))
        have = {(r["start"], r["end"]) for r in cypher.existing_rels(rtype, graph_labels)}
        examples = [list(k) for k in sorted(src.symmetric_difference(have))[:EXAMPLES]]
    return CheckResult.of_graph(
        GraphTable.relationships(rtype), "relationship_count", passed, expected, actual,
        ("at least the source's" if upsert else "district relationships of the type")
        + ("" if passed else f"; expected {expected}, found {actual}; examples: (start, end) missing or extra"),
        examples,
    )


def _dangling(cypher: GraphCypher, rtype: str, seen: dict[str, int], graph_labels: list[str]) -> CheckResult:
    outside = seen["end_outside"] + seen["start_outside"]
    return CheckResult.of_graph(
        GraphTable.relationships(rtype), "dangling", not outside, 0, outside,
        f"{outside} relationship(s) with an end outside the district" if outside else "",
        cypher.dangling(rtype, graph_labels, EXAMPLES) if outside else [],
    )
