"""The engine's TableResults per asset key, and the metadata each materialization carries (DESIGN.md section 3)."""

from __future__ import annotations

import dagster as dg

from cert_loader.constants import GRAPH_STORE
from cert_loader.defs.translator import CertAssets
from cert_loader.report import LoadReport, count_sums
from cert_loader.results import TableResult


def table_results(cert: CertAssets, report: LoadReport) -> dict[dg.AssetKey, list[TableResult]]:
    """Relational tables map one to one; the graph's labels and types map to its two assets, by their kind."""
    out: dict[dg.AssetKey, list[TableResult]] = {}
    for store, sr in report.stores.items():
        for tr in sr.tables:
            name = tr.graph.kind if tr.graph is not None else tr.table
            key = cert.key_of(store, name)
            if key is not None:
                out.setdefault(key, []).append(tr)
    return out


def run_metadata(report: LoadReport) -> dict:
    """The entries every materialization of one load shares, built once: a district has ~160 tables.

    Only the load's status rides on each; the report's summary is written once (:func:`first_metadata`),
    since serialising and storing it on every materialization cost ~0.5 s of the seed shape's run (issue 15)."""
    meta: dict = {
        "cert_loader/strategy": report.strategy,
        "cert_loader/load_run_id": report.run_id,
        "cert_loader/load_report": dg.MetadataValue.json(
            {"overall_status": report.status, "district_id": report.district, "load_run_id": report.run_id,
             "summary": "on the load's first materialization and in cert_loader/report_path"}),
    }
    if report.report_path:
        meta["cert_loader/report_path"] = dg.MetadataValue.path(str(report.report_path))
    return meta


def first_metadata(report: LoadReport) -> dict:
    """The load report's summary, on the first materialization of the load only."""
    return {"cert_loader/load_report": dg.MetadataValue.json(summary(report))}


def materialization_metadata(report: LoadReport, shared: dict, tables: list[TableResult]) -> dict:
    """``shared``: :func:`run_metadata` of the same report."""
    loaded = [t for t in tables if not t.skipped]
    store = loaded[0].store
    meta: dict = {
        "cert_loader/store": store,
        "cert_loader/rows": sum(t.source_rows for t in loaded),
        "cert_loader/records_loaded": sum(t.records_loaded for t in loaded),
        "cert_loader/duration_s": dg.FloatMetadataValue(round(sum(t.duration_s for t in loaded), 3)),
        "cert_loader/transaction": report.stores[store].transaction,
        **shared,
    }
    meta.update({f"cert_loader/{field}": n for field, n in count_sums(loaded).items()})
    counts = [c.actual for t in loaded for c in t.checks if c.check in ("row_count", "node_count", "relationship_count")]
    if counts and all(isinstance(n, int) for n in counts):
        meta["dagster/row_count"] = sum(counts)  # the district's rows after the load, as verified
    files = sorted({t.source_file for t in loaded if t.source_file})
    if len(files) == 1:
        meta["cert_loader/source_file"] = dg.MetadataValue.path(files[0])
    if store == GRAPH_STORE:
        meta["cert_loader/by_label_or_type"] = dg.MetadataValue.json(
            {t.graph.name: t.records_loaded for t in loaded if t.graph is not None})
    return meta


def summary(report: LoadReport) -> dict:
    """The load report without its per-table lists: small enough to ride on every materialization."""
    data = report.as_dict()
    for entry in data["stores"].values():
        entry.pop("tables", None)
    data["post_load_validation"].pop("tables", None)
    return data
