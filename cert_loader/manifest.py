"""The schema manifest: a snapshot of the live CERT catalogs, so the Dagster code location loads without databases (DESIGN.md section 8)."""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, get_args

from cert_loader.catalog import Catalog, Table
from cert_loader.config import LoaderConfig
from cert_loader.data_root import S3Path, data_root as data_root_of
from cert_loader.constants import DISTRICT_COLUMN, GRAPH_STORE, PG_STORES
from cert_loader.errors import CatalogError, InputError
from cert_loader.results import GraphKind

FORMAT = "cert_loader/schema-manifest"
VERSION = 1
# The graph store has no catalog: its assets are fixed (DESIGN.md section 8), one per GraphKind, in load
# order; each is also its file's name in the district's sp folder (nodes.parquet, relationships.parquet).
GRAPH_ASSETS: tuple[GraphKind, ...] = get_args(GraphKind)
SNAPSHOT_HINT = "run cert-loader snapshot (then reload the code location)"


def default_manifest_path(data_root: Path | S3Path | str) -> Path | S3Path:
    """data/analysis/cert-schema.json under the data root (a directory or an ``s3://`` URL)."""
    return data_root_of(data_root) / "data" / "analysis" / "cert-schema.json"


def manifest_location(explicit: str | Path | S3Path | None, data_root: Path | S3Path | str | None) -> Path | S3Path:
    """Where the manifest is: ``explicit`` (a file or an ``s3://`` URL, e.g. CERT_SCHEMA_MANIFEST) if given, else
    :func:`default_manifest_path` of ``data_root`` (default: the working directory).

    ``snapshot`` writes and the code location reads through this one function, so they agree on the place.
    """
    if explicit:
        return data_root_of(explicit)
    return default_manifest_path(data_root or ".")


@dataclass
class StoreManifest:
    """One PostgreSQL store as the manifest saw it."""

    store: str
    database: str = ""
    search_path: tuple[str, ...] = ()
    tables: list[Table] = field(default_factory=list)

    @property
    def cert_tables(self) -> list[Table]:
        """The tables a district load can touch (they have ``district_id``): these become assets."""
        return [t for t in self.tables if t.column(DISTRICT_COLUMN) is not None]


@dataclass
class Manifest:
    stores: dict[str, StoreManifest] = field(default_factory=dict)
    graph_assets: tuple[str, ...] = ()
    written_at: str = ""
    path: Path | None = None

    def to_json(self) -> dict[str, Any]:
        stores: dict[str, Any] = {
            name: {"database": s.database, "search_path": list(s.search_path),
                   "tables": [t.to_manifest() for t in s.tables]}
            for name, s in self.stores.items()
        }
        if self.graph_assets:
            stores[GRAPH_STORE] = {"assets": list(self.graph_assets)}
        return {"format": FORMAT, "version": VERSION, "written_at": self.written_at, "stores": stores}


def snapshot(config: LoaderConfig) -> Manifest:
    """Read the live catalog of every configured store (nothing is written to the stores)."""
    from cert_loader.catalog import read_catalog
    from cert_loader.stores.postgres import PgStore

    manifest = Manifest(written_at=datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"))
    for name, cfg in config.pg.items():
        with PgStore(cfg) as store:
            catalog = read_catalog(store.conn, name)
        manifest.stores[name] = StoreManifest(
            name, catalog.database, catalog.search_path, sorted(catalog.tables.values(), key=lambda t: t.key_id)
        )
    if config.graph is not None:
        manifest.graph_assets = GRAPH_ASSETS
    return manifest


def write_manifest(manifest: Manifest, path: Path | S3Path | str) -> Path | S3Path:
    """Write atomically (temp file + rename; on S3 one whole-object write): a code location never reads half a manifest."""
    path = data_root_of(path)
    if isinstance(path, S3Path):
        body = json.dumps(manifest.to_json(), indent=1, ensure_ascii=False) + "\n"
        path.write_text(body, encoding="utf-8")  # an InputError naming the object if the bucket is missing
        manifest.path = path
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".cert-schema.", suffix=".json")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(manifest.to_json(), fh, indent=1, ensure_ascii=False)
        fh.write("\n")
    os.replace(tmp, path)
    manifest.path = path
    return path


def read_manifest(path: Path | S3Path | str) -> Manifest:
    """Parse a manifest file (or ``s3://`` object); anything unexpected is an InputError naming the file."""
    path = data_root_of(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except InputError as exc:  # S3: not found, access refused, unreachable (the object store's own words kept)
        raise InputError(f"schema manifest {exc.reason.removeprefix('object ')}",
                         hint=SNAPSHOT_HINT if "not found" in exc.reason else exc.hint) from exc
    except FileNotFoundError as exc:
        raise InputError(f"schema manifest {path} not found", hint=SNAPSHOT_HINT) from exc
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"schema manifest {path} is not readable JSON ({exc})", hint=SNAPSHOT_HINT) from exc
    if not isinstance(data, dict) or data.get("format") != FORMAT or data.get("version") != VERSION:
        raise InputError(f"{path} is not a version-{VERSION} cert_loader schema manifest", hint=SNAPSHOT_HINT)
    manifest = Manifest(written_at=data.get("written_at", ""), path=path)
    try:
        for name, entry in data["stores"].items():
            if name == GRAPH_STORE:
                manifest.graph_assets = tuple(entry["assets"])
            elif name in PG_STORES:
                manifest.stores[name] = StoreManifest(
                    name, entry.get("database", ""), tuple(entry.get("search_path", ())),
                    [Table.from_manifest(t) for t in entry["tables"]],
                )
            else:
                raise InputError(f"schema manifest {path}: unknown store {name!r}", hint=SNAPSHOT_HINT)
    except (KeyError, TypeError, AttributeError) as exc:
        raise InputError(f"schema manifest {path} is malformed ({type(exc).__name__}: {exc})", hint=SNAPSHOT_HINT) from exc
    return manifest


def drift(manifest: Manifest, store: str, live: Catalog) -> list[CatalogError]:
    """What changed in ``store``'s CERT tables since the manifest was written, one error per difference."""
    where = f"the manifest {manifest.path}" if manifest.path else "the manifest"
    if store not in manifest.stores:
        return [CatalogError(f"store {store} is not in {where}", store=store, hint=SNAPSHOT_HINT)]
    old = {t.key_id: t for t in manifest.stores[store].cert_tables}
    new = {t.key_id: t for t in live.tables.values() if t.column(DISTRICT_COLUMN) is not None}
    reasons: list[str] = []
    for key in sorted(new.keys() - old.keys()):
        reasons.append(f"table {new[key].qualname} was created")
    for key in sorted(old.keys() - new.keys()):
        reasons.append(f"table {old[key].qualname} was dropped")
    for key in sorted(old.keys() & new.keys()):
        reasons.extend(f"table {old[key].qualname} {r}" for r in table_drift(old[key], new[key]))
    return [
        CatalogError(f"{r} since the manifest was written", store=store, hint=SNAPSHOT_HINT) for r in reasons
    ]


def table_drift(old: Table, new: Table) -> list[str]:
    """Differences of one table: columns, keys and foreign keys (the owner does not matter)."""
    out: list[str] = []
    old_cols = {c.name: c for c in old.columns}
    new_cols = {c.name: c for c in new.columns}
    out += [f'gained column "{n}"' for n in new_cols if n not in old_cols]
    out += [f'lost column "{n}"' for n in old_cols if n not in new_cols]
    for name in (n for n in old_cols if n in new_cols):
        a, b = old_cols[name].__dict__, new_cols[name].__dict__
        changes = [f"{k} {a[k]!r} -> {b[k]!r}" for k in a if a[k] != b[k]]
        if changes:
            out.append(f'column "{name}" changed ({", ".join(changes)})')
    if old.primary_key != new.primary_key:
        out.append(f"primary key changed from {_cols(old.primary_key)} to {_cols(new.primary_key)}")
    if set(old.unique_keys) != set(new.unique_keys):
        out.append(f"unique keys changed from {_keys(old.unique_keys)} to {_keys(new.unique_keys)}")
    old_fks = {fk.name: fk for fk in old.foreign_keys}
    new_fks = {fk.name: fk for fk in new.foreign_keys}
    out += [f"gained foreign key {n}" for n in sorted(new_fks.keys() - old_fks.keys())]
    out += [f"lost foreign key {n}" for n in sorted(old_fks.keys() - new_fks.keys())]
    out += [f"foreign key {n} changed" for n in sorted(old_fks.keys() & new_fks.keys()) if old_fks[n] != new_fks[n]]
    return out


def _cols(cols: tuple[str, ...] | None) -> str:
    return f"({', '.join(cols)})" if cols else "none"


def _keys(keys: tuple[tuple[str, ...], ...]) -> str:
    return ", ".join(_cols(k) for k in keys) or "none"
