"""Content verification of the district's subgraph (DESIGN.md section 7, issue 12): stored equals the file.

Counts and dangling checks cannot see a property that changed between the file and the stored node
(a conversion in the driver or server, an int stored as a float, a list reordered, a trigger-like
procedure). This check reads back, inside the graph's open transaction, what the server holds and
compares it with the validated source (``GraphInput``) under typed equality (``same_value``: 1, 1.0 and
True differ, lists keep order and element types), as DESIGN.md section 2 says a node is stored:

- nodes of a label: each source node's properties equal ``{**props, "id": id, "district_id": D}``. They are
  read in key-index batches of the source's ids, so memory stays one batch of stored nodes;
- relationships of a type: (start, end, properties without ``district_id``) equal the source's as a
  multiset, since parallel relationships exist. A relationship whose end is outside the district is the
  ``dangling`` check's, not this one's.

Under upsert the district may hold more than the source, and ``SET +=`` keeps properties the source does
not give: every source node and relationship must be stored with at least its properties, each equal.
Insert, merge and replace compare exactly; merge and replace also check labels and types the source
lacks (``verify_graph`` passes them in), which must be empty.

Examples name what differs: ``{"id", "property", "file", "stored"}`` (``None``: the property is absent),
``{"id", "missing": True}`` / ``{"id", "extra": True}`` for nodes, and ``{"start", "end", "property",
"file", "stored"}`` or ``{"start", "end", "missing"|"extra": properties}`` for relationships.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable
from typing import Any

from cert_loader.constants import DISTRICT_COLUMN
from cert_loader.graph_diff import covers, existing_by_ends, same_value, source_by_ends
from cert_loader.graph_input import GraphInput, node_ids, rel_starts
from cert_loader.results import CheckResult, GraphTable
from cert_loader.stores.graph_cypher import GraphCypher, batches
from cert_loader.verify.examples import EXAMPLES

CHECK = "content"


def verify_graph_content(cypher: GraphCypher, data: GraphInput, labels: Iterable[str], types: Iterable[str],
                         graph_labels: list[str], *, exact: bool) -> list[CheckResult]:
    """The content check of each label and type ``verify_graph`` counted, in the same transaction.

    ``exact`` (every strategy but upsert): the district's nodes and relationships must be the source's,
    no more; otherwise each source item must be stored with its properties, equal, and more may remain.
    """
    checks = [_node_content(cypher, data, label, exact=exact) for label in sorted(labels)]
    for rtype in sorted(types):
        # Upsert reads only from the labels the source's relationships start at; exact reads the whole district.
        starts = graph_labels if exact else sorted({data.label_of[s] for s in rel_starts(data.relationships[rtype])})
        checks.append(_rel_content(cypher, data, rtype, starts, exact=exact))
    return checks


# --- nodes ----------------------------------------------------------------------------------------------

def _node_content(cypher: GraphCypher, data: GraphInput, label: str, *, exact: bool) -> CheckResult:
    """One label's nodes, read back in batches of the source's ids through the key index."""
    rows, district = data.nodes.get(label, []), cypher.district
    differing, found, examples = 0, 0, []
    for chunk in batches(rows):
        stored = cypher.stored_nodes(label, [r["id"] for r in chunk])
        found += len(stored)
        for r in chunk:
            have = stored.get(r["id"])
            if have is None:
                differing += 1
                examples += [{"id": r["id"], "missing": True}][:EXAMPLES - len(examples)]
                continue
            want = {**r["props"], "id": r["id"], DISTRICT_COLUMN: district}
            if not (same_value(have, want) if exact else covers(have, want)):
                differing += 1
                examples += _property_diffs({"id": r["id"]}, want, have, exact)[:EXAMPLES - len(examples)]
    extra = cypher.count_nodes(label) - found if exact else 0
    if extra > 0:  # district nodes the source lacks: named from the ids alone (only on this failure path)
        source_ids = set(node_ids(rows))
        extra_ids = sorted(i for i in cypher.node_ids(label) if i not in source_ids)
        differing += extra
        examples += [{"id": i, "extra": True} for i in extra_ids][:EXAMPLES - len(examples)]
    return _result(GraphTable.nodes(label), "node", (len(rows), found + max(extra, 0)), differing, examples, exact)


def _property_diffs(where: dict, want: dict, have: dict, exact: bool) -> list[dict]:
    """Each property whose stored value is not the file's (``None``: absent on that side), in key order."""
    keys = sorted(want.keys() | have.keys()) if exact else sorted(want)
    return [{**where, "property": k, "file": want.get(k), "stored": have.get(k)}
            for k in keys if not (k in want and k in have and same_value(want[k], have[k]))]


# --- relationships --------------------------------------------------------------------------------------

def _rel_content(cypher: GraphCypher, data: GraphInput, rtype: str, labels: list[str], *, exact: bool) -> CheckResult:
    """One type's relationships, grouped by their ends, compared group by group as multisets.

    Only the groups that differ are sorted (for stable examples): a clean type costs no sort.
    """
    source_rows = data.relationships.get(rtype, [])
    stored = existing_by_ends(cypher.existing_rels(rtype, labels), cypher.district)
    source = source_by_ends(source_rows, data.label_of)
    differ, read = [], 0
    for ends in (stored.keys() | source.keys() if exact else source.keys()):
        read += len(stored.get(ends, ()))
        missing, extra = _unmatched(source.get(ends, []), stored.get(ends, []), exact=exact)
        if missing or (exact and extra):
            differ.append((ends, missing, extra if exact else extra[:len(missing)]))  # upsert: what it became
    differing, examples = 0, []
    for ends, missing, extra in sorted(differ, key=lambda g: g[0]):
        differing += max(len(missing), len(extra))
        where = {"start": ends[0], "end": ends[2]}
        for want, have in zip(missing, extra):  # paired up: most likely the same relationship, changed
            examples += _property_diffs(where, want, have, exact)[:EXAMPLES - len(examples)]
        examples += [{**where, "missing": p} for p in missing[len(extra):]][:EXAMPLES - len(examples)]
        examples += [{**where, "extra": p} for p in extra[len(missing):]][:EXAMPLES - len(examples)]
    return _result(GraphTable.relationships(rtype), "relationship", (len(source_rows), read), differing, examples,
                   exact)


def _unmatched(want: list[dict], have: list[dict], *, exact: bool) -> tuple[list[dict], list[dict]]:
    """The source's and the graph's relationships between one pair of ends that find no partner.

    Exact: a multiset difference over typed property maps (pairwise for small groups, through hashable
    keys for big ones). Upsert: equal maps pair first, then each remaining source map takes a stored one
    that covers it (``SET +=`` kept older properties).
    """
    if len(want) == 1 == len(have):  # the usual group, without building keys (1.4 s less per 250k)
        fits = same_value(have[0], want[0]) if exact else covers(have[0], want[0])
        return ([], []) if fits else (want, have)
    if exact and len(want) * len(have) > 64:
        w, h = Counter(map(typed_key, want)), Counter(map(typed_key, have))
        return _pick(want, w - h), _pick(have, h - w)
    left, missing = list(have), []
    for p in want if exact else sorted(want, key=lambda p: -len(p)):
        hit = next((i for i, q in enumerate(left) if same_value(q, p)), None)
        if hit is None and not exact:
            hit = next((i for i, q in enumerate(left) if covers(q, p)), None)
        if hit is None:
            missing.append(p)
        else:
            left.pop(hit)
    return missing, left


def _pick(items: list[dict], surplus: Counter) -> list[dict]:
    """The items whose typed key the multiset difference ``surplus`` kept, as many times as it kept them."""
    out = []
    for p in items:
        k = typed_key(p)
        if surplus[k] > 0:
            surplus[k] -= 1
            out.append(p)
    return out


def typed_key(props: dict[str, Any]) -> tuple:
    """A hashable form of a property map that is equal exactly when ``same_value`` says the maps are."""
    return tuple(sorted((k, _typed(v)) for k, v in props.items()))


def _typed(v: Any) -> tuple:
    if isinstance(v, list):
        return ("list", tuple(_typed(x) for x in v))
    if isinstance(v, float) and math.isnan(v):
        return ("float", "nan")  # every NaN is one value, as same_value says
    return (type(v).__name__, v)


def _result(table: GraphTable, what: str, counts: tuple[int, int], differing: int, examples: list,
            exact: bool) -> CheckResult:
    """``counts``: (source items, stored items compared); the detail gives how many differ."""
    scope = "district" if exact else "source"
    detail = (f"{counts[1]} {scope} {what}(s) equal the file, properties with their types" if not differing else
              f"{differing} {what}(s) differ from the file (missing, extra or a property changed); "
              "examples: file vs stored")
    return CheckResult.of_graph(table, CHECK, not differing, counts[0], counts[1], detail, examples)
