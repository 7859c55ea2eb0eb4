"""Turn the manifest's tables into AssetSpecs: keys, groups, kinds, tags, descriptions and FK deps (DESIGN.md section 8).

Asset keys are ``cert/<store>/<table>``. The table component is the table's qualified name with the
schema and the name joined by ``__`` (``edfi.student`` -> ``edfi__student``); tables in ``public``
drop the schema (``public.school`` -> ``school``), since that is how the CERT owners name them.
Any character Dagster refuses in a key (anything but letters, digits and ``_``) becomes ``_``.
Should two tables of a store end up with the same component, both get a suffix of 6 hex digits
of their qualified name's SHA-1, so keys stay stable and unique. The way back, key -> (store, qualified
name), is ``CertAssets.tables`` and the metadata ``cert_loader/store`` and ``cert_loader/table``.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field

import dagster as dg

from cert_loader.catalog import Table
from cert_loader.constants import GRAPH_STORE
from cert_loader.fk_order import acyclic_parents, topological
from cert_loader.manifest import GRAPH_ASSETS, Manifest, StoreManifest

KEY_PREFIX = "cert"
_INVALID = re.compile(r"[^A-Za-z0-9_]")


def table_component(table: Table) -> str:
    name = table.name if table.schema == "public" else f"{table.schema}__{table.name}"
    return _INVALID.sub("_", name)


def group_name(store: str) -> str:
    return f"cert_{store}"


@dataclass
class CertAssets:
    """Every CERT asset spec, in dependency order, and the way back from a key to its store and table."""

    specs: list[dg.AssetSpec] = field(default_factory=list)
    tables: dict[dg.AssetKey, tuple[str, str]] = field(default_factory=dict)  # key -> (store, qualname)
    broken_fks: dict[dg.AssetKey, list[str]] = field(default_factory=dict)  # FKs left out of deps (cycles)
    fk_parents: dict[dg.AssetKey, set[dg.AssetKey]] = field(default_factory=dict)  # every FK parent, cycles too
    references: list = field(default_factory=list)  # cross-store references bound to the manifest (defs/references.py)

    def key_of(self, store: str, qualname: str) -> dg.AssetKey | None:
        return self._by_table.get((store, qualname))

    @property
    def _by_table(self) -> dict[tuple[str, str], dg.AssetKey]:
        return {v: k for k, v in self.tables.items()}


def build_specs(manifest: Manifest) -> CertAssets:
    out = CertAssets()
    for store, sm in manifest.stores.items():
        _store_specs(store, sm, out)
    if manifest.graph_assets:
        _graph_specs(out)
    return out


def _keys(store: str, tables: list[Table]) -> dict[str, dg.AssetKey]:
    """Key per qualified name; colliding components get a hash suffix (see the module docstring)."""
    components: dict[str, list[Table]] = {}
    for t in tables:
        components.setdefault(table_component(t), []).append(t)
    keys = {}
    for comp, same in components.items():
        for t in same:
            suffix = f"_{hashlib.sha1(t.qualname.encode()).hexdigest()[:6]}" if len(same) > 1 else ""
            keys[t.qualname] = dg.AssetKey([KEY_PREFIX, store, comp + suffix])
    return keys


def _store_specs(store: str, sm: StoreManifest, out: CertAssets) -> None:
    tables = sorted(sm.cert_tables, key=lambda t: t.qualname)
    keys = _keys(store, tables)
    deps, broken = _fk_deps(tables)
    for t in _parents_first(tables, deps):
        key = keys[t.qualname]
        out.tables[key] = (store, t.qualname)
        if broken.get(t.qualname):
            out.broken_fks[key] = broken[t.qualname]
        out.fk_parents[key] = {keys[p] for p in _all_parents(t, tables)}
        out.specs.append(dg.AssetSpec(
            key,
            deps=[keys[p] for p in sorted(deps[t.qualname])],
            description=describe(store, sm.database, t),
            group_name=group_name(store),
            kinds={"postgres"},
            tags={"store": store},
            metadata=_table_metadata(store, sm.database, t, broken.get(t.qualname, [])),
            skippable=True,  # a table whose file is missing is skipped, not materialized (DESIGN.md section 2)
        ))


def _fk_deps(tables: list[Table]) -> tuple[dict[str, set[str]], dict[str, list[str]]]:
    """Parents per table from the FKs within the store, as a DAG.

    Self-references are left out. Dagster needs a DAG but a store may have FK cycles (the loader accepts
    them when one FK is DEFERRABLE, DESIGN.md section 2). Edges are added in a fixed order — every
    non-deferrable FK first, then the deferrable ones, each group sorted by (child, FK name) — and an edge
    that would close a cycle is left out (recorded as ``cert_loader/fks_not_in_deps``). So the deferrable
    FK of a cycle is the one dropped, and the same catalog always gives the same graph.
    """
    by_key = {t.key_id: t for t in tables}
    edges = sorted(
        ((fk.deferrable, t.qualname, fk.name, by_key[fk.ref_key].qualname)
         for t in tables for fk in t.foreign_keys if fk.ref_key in by_key and fk.ref_key != t.key_id),
    )
    return acyclic_parents([t.qualname for t in tables], ((child, parent, fk) for _, child, fk, parent in edges))


def _all_parents(table: Table, tables: list[Table]) -> set[str]:
    by_key = {t.key_id: t.qualname for t in tables}
    return {by_key[fk.ref_key] for fk in table.foreign_keys if fk.ref_key in by_key and fk.ref_key != table.key_id}


def _parents_first(tables: list[Table], parents: dict[str, set[str]]) -> list[Table]:
    """Parents first, ties by name: the order materializations are yielded in."""
    by_name = {t.qualname: t for t in tables}
    edges = [(by_name[p], t) for t in tables for p in sorted(parents[t.qualname])]
    return topological(tables, edges, _qualname, _qualname)


def _qualname(table: Table) -> str:
    return table.qualname


def describe(store: str, database: str, t: Table) -> str:
    parts = [f"CERT table {t.qualname} of store {store}" + (f" (database {database})" if database else ""),
             f"{len(t.columns)} columns"]
    if t.primary_key:
        parts.append(f"primary key ({', '.join(t.primary_key)})")
    parts += [f"unique ({', '.join(k)})" for k in t.unique_keys]
    refs = sorted({f"{fk.ref_schema}.{fk.ref_table}" for fk in t.foreign_keys})
    if refs:
        parts.append(f"references {', '.join(refs)}")
    return "; ".join(parts) + "."


def _table_metadata(store: str, database: str, t: Table, broken: list[str]) -> dict:
    pk = set(t.primary_key or ())
    columns = [
        dg.TableColumn(
            c.name, c.type_sql,
            constraints=dg.TableColumnConstraints(
                nullable=not c.not_null, unique=(t.primary_key == (c.name,)),
                other=[x for x, on in (("primary key", c.name in pk), ("generated", c.generated),
                                       ("default", c.has_default)) if on],
            ),
        )
        for c in t.columns
    ]
    meta = {
        "cert_loader/store": store,
        "cert_loader/table": t.qualname,
        "dagster/column_schema": dg.TableSchema(columns=columns),
        "dagster/table_name": f"{database}.{t.qualname}" if database else t.qualname,
    }
    if broken:
        meta["cert_loader/fks_not_in_deps"] = ", ".join(broken)
    return meta


def _graph_specs(out: CertAssets) -> None:
    node_kind, rel_kind = GRAPH_ASSETS
    nodes = dg.AssetKey([KEY_PREFIX, GRAPH_STORE, node_kind])
    rels = dg.AssetKey([KEY_PREFIX, GRAPH_STORE, rel_kind])
    common = dict(group_name=group_name(GRAPH_STORE), kinds={"neo4j"}, tags={"store": GRAPH_STORE})
    out.specs.append(dg.AssetSpec(
        nodes, description="The district's graph nodes in the sp store, one label each (DESIGN.md section 2).",
        metadata={"cert_loader/store": GRAPH_STORE, "cert_loader/table": node_kind}, **common,
    ))
    out.specs.append(dg.AssetSpec(
        rels, deps=[nodes], description="The district's graph relationships in the sp store, between its nodes.",
        metadata={"cert_loader/store": GRAPH_STORE, "cert_loader/table": rel_kind}, **common,
    ))
    out.tables[nodes] = (GRAPH_STORE, node_kind)
    out.tables[rels] = (GRAPH_STORE, rel_kind)
