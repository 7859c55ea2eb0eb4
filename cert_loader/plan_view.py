"""Render a pre-flight result for `cert-loader plan`: per store the tables in load order, and what would be refused."""

from __future__ import annotations

import json
from typing import Any

from cert_loader.constants import GRAPH_STORE
from cert_loader.preflight import Preflight

# Conservative rates for the estimate: below binary COPY with FKs on this kind of machine (DESIGN.md
# section 10), and below what the graph store measured over Bolt.
ESTIMATE_ROWS_PER_S = 100_000
ESTIMATE_GRAPH_ITEMS_PER_S = 15_000


def plan_dict(pf: Preflight) -> dict[str, Any]:
    plan = pf.plan
    stores: dict[str, Any] = {}
    for name, sp in plan.stores.items():
        st = pf.status[name]
        stores[name] = {
            "database": st.url,
            "cert_mark": "marked" if st.marked else "NOT MARKED",
            "two_phase_commit": "available" if st.two_phase else "unavailable (max_prepared_transactions = 0)",
            "order_from": sp.order_source,
            "rows": sp.rows,
            "deferrable_cycles": sp.deferrable_cycles,
            "tables": [
                {
                    "table": tp.table.qualname,
                    "rows": tp.rows,
                    "file": str(tp.source.path) if tp.source else None,
                    "skipped": tp.skipped,
                    "columns_from_file": len(tp.conversions),
                    "columns_defaulted": tp.defaulted,
                    "district_id_filled": tp.fill_district,
                }
                for tp in sp.tables
            ],
        }
    graph = pf.graph_input
    if graph is not None:
        stores[GRAPH_STORE] = {
            "database": pf.config.graph.redacted(),
            "nodes": graph.node_count,
            "relationships": graph.relationship_count,
            "labels": {k: len(v) for k, v in graph.nodes.items()},
            "types": {k: len(v) for k, v in graph.relationships.items()},
        }
    graph_items = graph.node_count + graph.relationship_count if graph is not None else 0
    rows = plan.rows + graph_items
    atomic = all(st.two_phase for st in pf.status.values())
    return {
        "district_id": plan.district,
        "strategy": plan.strategy,
        "validation": pf.gate.status if pf.gate else None,
        "atomic_default": "required" if atomic else "non-atomic (store after store)",
        "stores": stores,
        "total_rows": rows,
        "estimate_seconds": round(plan.rows / ESTIMATE_ROWS_PER_S + graph_items / ESTIMATE_GRAPH_ITEMS_PER_S, 1),
        "cross_store_references": _references(pf),
        "warnings": plan.warnings,
        "would_refuse": [str(p) for p in plan.problems],
    }


def _references(pf: Preflight) -> list[dict[str, Any]]:
    """Each declared reference that fits the catalogs, what it proves and whether this load checks it."""
    from cert_loader.references import relevant_references

    touched = {name: [tp.table.key_id for tp in sp.loaded] for name, sp in pf.plan.stores.items()}
    checked = {id(r) for r in relevant_references(pf.references, touched)}
    out = []
    for ref in pf.references:
        reads = {s: "committed (outside the load)" if s in pf.readers else "this load's transaction" for s in ref.stores}
        out.append({
            "name": ref.name,
            "child": ref.child.display,
            "parent": ref.parent.display,
            "checks": ref.describe(),
            "checked": id(ref) in checked,
            "reads": reads,
        })
    return out


def render_plan(pf: Preflight, *, as_json: bool = False) -> str:
    data = plan_dict(pf)
    if as_json:
        return json.dumps(data, indent=2, ensure_ascii=False)
    lines = [
        f"Plan for district {data['district_id']} — strategy {data['strategy']}, validation {data['validation']}",
        f"Commit: {data['atomic_default']}",
    ]
    for name, st in data["stores"].items():
        lines.append("")
        if name == GRAPH_STORE:
            lines.append(f"{name.upper()}  {st['database']}: {st['nodes']:,} nodes, {st['relationships']:,} relationships")
            lines += [f"    :{k} {v:,}" for k, v in st["labels"].items()]
            lines += [f"    -[:{k}]- {v:,}" for k, v in st["types"].items()]
            continue
        lines.append(
            f"{name.upper()}  {st['database']}  [{st['cert_mark']}, two-phase {st['two_phase_commit']}, "
            f"order from {st['order_from']}]  {st['rows']:,} rows"
        )
        for i, t in enumerate(st["tables"], 1):
            extra = f"  SKIPPED: {t['skipped']}" if t["skipped"] else ""
            if t["columns_defaulted"]:
                extra += f"  defaults: {', '.join(t['columns_defaulted'])}"
            lines.append(f"  {i:3}. {t['table']:<40} {t['rows']:>10,}{extra}")
        for cycle in st["deferrable_cycles"]:
            lines.append(f"  deferrable FK cycle (loads with constraints deferred): {' -> '.join(cycle)}")
    if data["cross_store_references"]:
        lines += ["", "Cross-store references (checked before the commit, across the stores' transactions):"]
        for r in data["cross_store_references"]:
            when = "checked" if r["checked"] else "not checked: this load writes neither table"
            lines.append(f"  {r['name']}: {r['child']} -> {r['parent']}  [{when}]")
            lines.append(f"      {r['checks']}")
            lines += [f"      reads {store}: {how}" for store, how in r["reads"].items() if how.startswith("committed")]
    lines += ["", f"Total: {data['total_rows']:,} rows, estimate ~{data['estimate_seconds']} s"]
    if data["warnings"]:
        lines.append("Warnings:")
        lines += [f"  - {w}" for w in data["warnings"]]
    if data["would_refuse"]:
        lines.append("Would refuse:")
        lines += [f"  ✗ {p}" for p in data["would_refuse"]]
    else:
        lines.append("Nothing would be refused.")
    return "\n".join(lines)
