"""The one multi_asset: a district load is one step and one unit of work; results are yielded only after the commit (DESIGN.md sections 5, 8)."""

# No `from __future__ import annotations`: Dagster reads the Config annotation of the asset function at runtime.
import enum
import os
from pathlib import Path
from typing import Iterator

import dagster as dg
from psycopg import errors as pgerr
from pydantic import Field

from cert_loader.config import backup_enabled
from cert_loader.constants import ATOMIC_MODES, DEFAULT_VERIFY, GRAPH_STORE, STRATEGIES, VERIFY_MODES
from cert_loader.defs.checks import build_check_specs, to_check_results
from cert_loader.defs.partitions import districts
from cert_loader.defs.references import reference_check_specs
from cert_loader.defs.resources import DATA_KEY, loader_config, resource_key
from cert_loader.defs.translator import CertAssets
from cert_loader.manifest import GRAPH_ASSETS

ASSET_NAME = "cert_district_load"


# The launchpad's choices, from the one list of each (constants.py).
Strategy = enum.Enum("Strategy", {name: name for name in STRATEGIES})
Atomic = enum.Enum("Atomic", {name: name for name in ATOMIC_MODES})
Verify = enum.Enum("Verify", {name: name for name in VERIFY_MODES})
# "insert (default), upsert, merge or replace"; "auto (when every server allows it), required, off".
_STRATEGY_TEXT = f"{STRATEGIES[0]} (default), {', '.join(STRATEGIES[1:-1])} or {STRATEGIES[-1]}"
_ATOMIC_TEXT = f"{ATOMIC_MODES[0]} (when every server allows it), {', '.join(ATOMIC_MODES[1:])}"


class LoadConfig(dg.Config):
    """Run config shown in the launchpad (DESIGN.md section 6)."""

    strategy: Strategy = Field(default=Strategy[STRATEGIES[0]], description=_STRATEGY_TEXT)
    strict: bool = Field(default=False, description="a missing or unlisted file is an error, not a warning")
    atomic: Atomic = Field(default=Atomic[ATOMIC_MODES[0]], description=f"two-phase commit: {_ATOMIC_TEXT}")
    bulk_fk: bool = Field(default=False, description="table owners: drop the loaded tables' FKs for the load and re-add them "
                          "(validated) in the same transaction; locks those tables ACCESS EXCLUSIVE until commit")
    verify: Verify = Field(default=Verify[DEFAULT_VERIFY], description="counts: row counts and FKs (default); content: "
                           "also every value against the file, inside the transaction (~2.7 s per 1M rows; README)")
    backup: bool = Field(default=False, description="first write the district's current rows and subgraph to "
                         "data/backups/D/<run id>/ so the cert_restore job can undo this load (also when "
                         "ENABLE_CERT_BACKUP=true; README, Undo)")
    keep: int | None = Field(default=None, ge=1, description="with a backup: after the load commits, keep only the "
                                "district's newest N backups (default: keep all; like `cert-loader load --keep N`)")


def build_cert_asset(cert: CertAssets, manifest_path: Path | None, pool: str | None = None) -> dg.AssetsDefinition:
    """``pool``: the Dagster concurrency pool limiting district loads per CERT server (defs/servers.py)."""
    stores = sorted({store for store, _ in cert.tables.values()})

    @dg.multi_asset(
        name=ASSET_NAME,
        specs=cert.specs,
        check_specs=build_check_specs(cert.tables, districts) + reference_check_specs(cert, cert.references, districts),
        can_subset=True,
        partitions_def=districts,
        required_resource_keys={resource_key(s) for s in stores} | {DATA_KEY},
        description="Load one district into every selected CERT table, all-or-nothing (cert_loader).",
        pool=pool,
    )
    def cert_district_load(context: dg.AssetExecutionContext, config: LoadConfig):
        yield from run_load(context, config, cert, manifest_path)

    return cert_district_load


def selection(cert: CertAssets, keys) -> dict[str, set[str]]:
    """The selected tables per store (the engine's ``only``); the graph's two assets load together."""
    only: dict[str, set[str]] = {}
    for key in keys:
        store, table = cert.tables[key]
        only.setdefault(store, set()).add(table)
    graph = only.get(GRAPH_STORE)
    if graph is not None and graph != set(GRAPH_ASSETS):
        raise dg.Failure(
            "select both cert/sp/nodes and cert/sp/relationships: the graph store loads as one unit "
            "(select with +key:cert/sp/relationships)"
        )
    return only


def run_load(context: dg.AssetExecutionContext, config: LoadConfig, cert: CertAssets, manifest_path: Path | None):
    from cert_loader.engine import LoadOptions, load_district
    from cert_loader.report import render_summary

    if not context.selected_asset_keys:
        raise dg.Failure("CERT checks are computed inside a district load (DESIGN.md section 7): "
                         "materialize the asset's partition to run them")
    only = selection(cert, context.selected_asset_keys)
    district = context.partition_key
    options = LoadOptions(
        strategy=config.strategy.value, strict=config.strict, atomic=config.atomic.value, bulk_fk=config.bulk_fk,
        verify=config.verify.value, backup=config.backup or backup_enabled(os.environ), keep=config.keep,
        only={s: t for s, t in only.items() if s != GRAPH_STORE}, load_graph=GRAPH_STORE in only,
        manifest=manifest_path, readers=_readers(context, cert, only),
    )
    context.log.info(f"loading district {district} ({options.strategy}) into {', '.join(sorted(only))}")
    report = load_district(loader_config(context.resources, set(only)), district, options)
    _tag_run(context, report)
    context.log.info(render_summary(report))
    for warning in report.warnings:
        context.log.warning(str(warning))
    if report.status != "SUCCESS":
        yield from failed_checks(cert, report, context.selected_asset_check_keys)
        message = (report.error or {}).get("message", "the load failed")
        raise dg.Failure(
            description=message + _parents_hint(cert, report, context.selected_asset_keys),
            metadata={"cert_loader/load_report": dg.MetadataValue.json(report.as_dict()),
                      **_report_path(report)},
        )
    yield from results(cert, report, context.selected_asset_keys, context.selected_asset_check_keys, context.log)


def results(cert: CertAssets, report, selected, selected_checks, log) -> Iterator:
    """Materializations parents first (the specs' order), each followed by its check results."""
    from cert_loader.defs.metadata import first_metadata, materialization_metadata, run_metadata, table_results

    by_key = table_results(cert, report)
    shared = run_metadata(report)
    first = first_metadata(report)
    for spec in cert.specs:
        if spec.key not in selected:
            continue
        tables = by_key.get(spec.key, [])
        if not tables or all(t.skipped for t in tables):
            reason = tables[0].skipped if tables else "not in the load plan (extraction-order.json?)"
            log.warning(f"{spec.key.to_user_string()}: not loaded ({reason}); no materialization")
            continue
        yield dg.MaterializeResult(asset_key=spec.key, metadata={**materialization_metadata(report, shared, tables), **first})
        first = {}
        checks = _unique(c for t in tables for c in t.checks)
        for result in to_check_results(spec.key, checks):
            if dg.AssetCheckKey(spec.key, result.check_name) in selected_checks:
                yield result


def failed_checks(cert: CertAssets, report, selected_checks) -> Iterator[dg.AssetCheckResult]:
    """A verification failure rolled everything back: only the failed checks are reported, never data."""
    from cert_loader.defs.metadata import table_results

    for key, tables in table_results(cert, report).items():
        failed = _unique(c for t in tables for c in t.checks if not c.passed)
        for result in to_check_results(key, failed):
            if dg.AssetCheckKey(key, result.check_name) in selected_checks:
                yield result


def _parents_hint(cert: CertAssets, report, selected) -> str:
    """On an FK failure, name the parent assets the selection left out (issue 3, point 2)."""
    error = report.error or {}
    fk_failed = (error.get("details") or {}).get("sqlstate") == pgerr.ForeignKeyViolation.sqlstate or any(
        c.check == "fk_integrity" and not c.passed for c in report.checks)
    left_out = sorted({p.to_user_string() for key in selected for p in cert.fk_parents.get(key, ())
                       if p not in selected})
    if not fk_failed or not left_out:
        return ""
    return (f" (the selection leaves out the parent asset(s) {', '.join(left_out)}: their rows must already be "
            "loaded for this district, or select them too, e.g. with +key:<child>)")


def _unique(items) -> list:
    seen: set[int] = set()
    return [c for c in items if not (id(c) in seen or seen.add(id(c)))]


def _readers(context: dg.AssetExecutionContext, cert: CertAssets, only: dict[str, set[str]]) -> dict:
    """The code location's PostgreSQL stores outside the selection: cross-store references read their committed rows."""
    stores = {store for store, _ in cert.tables.values() if store != GRAPH_STORE and store not in only}
    return {s: getattr(context.resources, resource_key(s)).store_config(s) for s in sorted(stores)}


def _report_path(report) -> dict:
    return {"cert_loader/report_path": dg.MetadataValue.path(str(report.report_path))} if report.report_path else {}


def _tag_run(context: dg.AssetExecutionContext, report) -> None:
    tags = {"cert_loader/load_run_id": report.run_id, "cert_loader/status": report.status}
    if report.report_path:
        tags["cert_loader/report"] = str(report.report_path)
    context.instance.add_run_tags(context.run.run_id, tags)
