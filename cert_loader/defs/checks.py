"""Asset check specs per CERT table, and the engine's CheckResults turned into AssetCheckResults (DESIGN.md section 7)."""

from __future__ import annotations

import warnings

import dagster as dg

from cert_loader.constants import GRAPH_STORE
from cert_loader.defs.references import dagster_check_name
from cert_loader.results import CheckResult

# What each check proves; the engine computes them inside the store's transaction (DESIGN.md section 7).
TABLE_CHECKS = {
    "row_count": "Rows of the district equal the source file's rows (upsert: every source key is present).",
    "fk_integrity": "No row of the district points to a missing parent, for every foreign key of the table.",
    # Computed only by loads run with verify=content (DESIGN.md section 7); other runs leave it not executed.
    "content": "Every value of the district's rows equals the source file's (order-independent row hashes; "
               "generated columns and columns the file lacks are outside, listed in the metadata).",
}
GRAPH_CHECKS = {
    "nodes": {
        "node_count": "Nodes of the district per label equal the source's (upsert: every source node present).",
        # Like the tables' content check: computed only by loads run with verify=content (verify/graph_content.py).
        "content": "Every node's properties, with their types, equal the source's (upsert: every source "
                   "property of every source node).",
    },
    "relationships": {
        "relationship_count": "Relationships of the district per type equal the source's.",
        "dangling": "No relationship of the district has an end outside the district.",
        "content": "The district's relationships per type, with their ends and typed properties, equal the "
                   "source's as a multiset (upsert: every source relationship is stored with its properties).",
    },
}


def checks_for(store: str, asset: str) -> dict[str, str]:
    """Check names and descriptions of one asset (``asset``: a table component, or nodes/relationships)."""
    return GRAPH_CHECKS[asset] if store == GRAPH_STORE else TABLE_CHECKS


def build_check_specs(tables: dict[dg.AssetKey, tuple[str, str]], partitions_def) -> list[dg.AssetCheckSpec]:
    """One spec per (asset, check), partitioned by district so each district shows its own status.

    Partitioned check specs are a preview feature in dagster 1.13 (DESIGN.md section 9); its warning is
    silenced here because the per-district status is the point.
    """
    specs = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.PreviewWarning)
        for key, (store, name) in tables.items():
            for check, description in checks_for(store, name).items():
                specs.append(dg.AssetCheckSpec(check, asset=key, description=description, partitions_def=partitions_def))
    return specs


def to_check_results(key: dg.AssetKey, checks: list[CheckResult]) -> list[dg.AssetCheckResult]:
    """Group the engine's checks of one asset by name (the graph has one per label or type) into results."""
    by_name: dict[str, list[CheckResult]] = {}
    for c in checks:
        by_name.setdefault(c.check, []).append(c)
    return [_result(key, name, items) for name, items in by_name.items()]


def _result(key: dg.AssetKey, name: str, items: list[CheckResult]) -> dg.AssetCheckResult:
    passed = all(c.passed for c in items)
    failed = [c for c in items if not c.passed]
    meta: dict = {
        "expected": sum(c.expected or 0 for c in items),
        "actual": sum(c.actual or 0 for c in items),
    }
    if name in ("fk_integrity", "dangling"):
        meta["orphans"] = sum(c.actual or 0 for c in items)
    outside = {c.table: c.outside for c in items if c.outside}
    if outside:
        meta["outside_comparison"] = dg.MetadataValue.json(outside)
    examples = [e for c in failed for e in c.examples]
    if examples:
        meta["examples"] = dg.MetadataValue.json(examples[:20])
    if len(items) > 1 or items[0].graph is not None:
        meta["per_label_or_type"] = dg.MetadataValue.json(
            {c.graph.name if c.graph is not None else c.table:
             {"passed": c.passed, "expected": c.expected, "actual": c.actual} for c in items}
        )
    details = [f"{c.table}: {c.detail}" if len(items) > 1 else c.detail for c in (failed or items) if c.detail]
    return dg.AssetCheckResult(
        asset_key=key, check_name=dagster_check_name(name), passed=passed, metadata=meta,
        description="; ".join(details)[:2000] or None,
    )
