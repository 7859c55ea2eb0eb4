"""What upsert and merge must do to one relationship type, worked out without a server so it can be tested alone."""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from cert_loader.constants import DISTRICT_COLUMN

# The labels of a relationship's two ends: the relationships of one pair share one statement, which
# finds both ends through their label's key index (DESIGN.md section 2).
Pair = tuple[str, str]
# (start id, start label, end id, end label): a relationship has no key of its own, only its ends'.
Ends = tuple[str, str, str, str]


def same_value(a: Any, b: Any) -> bool:
    """Typed equality: 1 and 1.0 and True differ here, as they do for Neo4j's property types."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    if isinstance(a, list):
        return len(a) == len(b) and all(same_value(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same_value(a[k], b[k]) for k in a)
    return a == b


def covers(old: dict, new: dict) -> bool:
    """Whether ``SET x += new`` would leave ``old`` as it is (upsert's "unchanged")."""
    return all(k in old and same_value(old[k], v) for k, v in new.items())


def _grouped() -> dict[Pair, list[dict]]:
    return defaultdict(list)


@dataclass
class RelDiff:
    """The statements' rows per end-label pair, and the counts the result reports.

    Rows are ``{"start", "end"}`` plus ``"props"`` where there is something to write: ``delete`` removes
    every relationship of the type between those ends, ``overwrite`` makes one's properties exactly
    ``props`` (merge), ``add`` sets ``props`` over the old ones (upsert), ``create`` makes a new one.
    They apply in that order.
    """

    delete: dict[Pair, list[dict]] = field(default_factory=_grouped)
    overwrite: dict[Pair, list[dict]] = field(default_factory=_grouped)
    add: dict[Pair, list[dict]] = field(default_factory=_grouped)
    create: dict[Pair, list[dict]] = field(default_factory=_grouped)
    inserted: int = 0
    updated: int = 0
    deleted: int = 0
    unchanged: int = 0


def existing_by_ends(existing: list[dict], district: str) -> dict[Ends, list[dict]]:
    """The graph's relationships of one type grouped by their ends, without the ``district_id`` property.

    ``existing`` holds ``{"start", "sl", "end", "el", "ed", "p"}``: start id and label, end id, end labels,
    end district and properties. One whose end is outside the district is left out: upsert leaves it,
    merge deleted it before.
    """
    old: dict[Ends, list[dict]] = defaultdict(list)
    for r in existing:
        if r["ed"] != district or not r["el"]:
            continue
        props = {k: v for k, v in r["p"].items() if k != DISTRICT_COLUMN}
        old[(r["start"], r["sl"], r["end"], r["el"][0])].append(props)
    return old


def source_by_ends(rows: list[dict], label_of: dict[str, str]) -> dict[Ends, list[dict]]:
    """The source's relationships of one type (``{"start", "end", "props"}``) grouped by their ends."""
    new: dict[Ends, list[dict]] = defaultdict(list)
    for r in rows:
        new[(r["start"], label_of[r["start"]], r["end"], label_of[r["end"]])].append(r["props"])
    return new


def diff_relationships(existing: list[dict], rows: list[dict], label_of: dict[str, str], district: str, *,
                       exact: bool) -> RelDiff:
    """Upsert (``exact=False``) or merge (``exact=True``) of one type, as statements' rows and counts.

    Where the source and the graph each hold one relationship between the same ends, it is updated in
    place; parallel relationships (several of one type between the same ends) are matched by their whole
    property map, and under merge a group that still differs is deleted and created again.
    """
    old, new = existing_by_ends(existing, district), source_by_ends(rows, label_of)
    out = RelDiff()
    for key in old.keys() | new.keys():
        o, n = old.get(key, []), new.get(key, [])
        pair, ends = (key[1], key[3]), {"start": key[0], "end": key[2]}
        if not o:
            out.create[pair] += [{**ends, "props": p} for p in n]
            out.inserted += len(n)
        elif not n:
            if exact:
                out.delete[pair].append(ends)
                out.deleted += len(o)
        elif len(o) == 1 and len(n) == 1:
            fits = same_value(o[0], n[0]) if exact else covers(o[0], n[0])
            if fits:
                out.unchanged += 1
            else:
                (out.overwrite if exact else out.add)[pair].append({**ends, "props": n[0]})
                out.updated += 1
        else:
            _diff_parallel(out, pair, ends, o, n, exact=exact)
    return out


def _diff_parallel(out: RelDiff, pair: Pair, ends: dict, o: list[dict], n: list[dict], *, exact: bool) -> None:
    """Several relationships between the same ends: pair equal property maps off, then act on the rest."""
    o_left, n_left = list(o), []
    for p in n:
        hit = next((i for i, q in enumerate(o_left) if same_value(q, p)), None)
        if hit is None:
            n_left.append(p)
        else:
            o_left.pop(hit)
    out.unchanged += len(n) - len(n_left)
    if not exact:
        out.create[pair] += [{**ends, "props": p} for p in n_left]
        out.inserted += len(n_left)
    elif o_left or n_left:
        out.delete[pair].append(ends)
        out.create[pair] += [{**ends, "props": p} for p in n]
        both = min(len(o_left), len(n_left))
        out.updated += both
        out.inserted += len(n_left) - both
        out.deleted += len(o_left) - both
