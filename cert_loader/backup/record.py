"""A backup's manifest (``manifest.json``, written last): what a restore checks before it writes anything.

Not the schema manifest of cert_loader/manifest.py: this one describes one run's backup — run id,
district, the strategy of the load it precedes, per file its rows, bytes and sha256, per table a
fingerprint of its columns — and carries a checksum of itself, so an edited manifest is refused.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from cert_loader.backup.columns import fingerprint_columns
from cert_loader.backup.layout import BackupError, BackupPaths, file_sha256
from cert_loader.data_root import parquet_file_source
from cert_loader.catalog import Catalog, Table
from cert_loader.constants import GRAPH_STORE

FORMAT = "cert_loader/backup"
VERSION = 1
_PICK_ANOTHER = "this backup cannot be restored: pick another (`cert-loader backups {d}`)"


def fingerprint(columns: list[dict]) -> str:
    return hashlib.sha256(json.dumps(columns, sort_keys=True).encode("utf-8")).hexdigest()


def table_entry(table: Table) -> dict[str, Any]:
    cols = fingerprint_columns(table)
    return {"schema": table.schema, "name": table.name, "columns": cols, "fingerprint": fingerprint(cols)}


def seal(body: dict[str, Any]) -> dict[str, Any]:
    """The manifest with ``manifest_sha256``: the checksum of its canonical JSON without that key."""
    plain = {k: v for k, v in body.items() if k != "manifest_sha256"}
    digest = hashlib.sha256(json.dumps(plain, sort_keys=True, ensure_ascii=False).encode("utf-8")).hexdigest()
    return {**plain, "manifest_sha256": digest}


@dataclass
class BackupManifest:
    """A parsed, self-consistent manifest (its own checksum matched)."""

    data: dict[str, Any]
    path: Path

    @property
    def run_id(self) -> str:
        return self.data["run_id"]

    @property
    def district(self) -> str:
        return self.data["district"]

    @property
    def files(self) -> dict[str, dict[str, Any]]:
        return self.data["files"]

    @property
    def tables(self) -> dict[str, dict[str, dict[str, Any]]]:
        """{store: {qualname: {schema, name, columns, fingerprint, file}}} for the PostgreSQL stores."""
        return self.data["tables"]

    @property
    def stores(self) -> list[str]:
        return list(self.data["order"])

    @property
    def has_graph(self) -> bool:
        return GRAPH_STORE in self.data["order"]

    @property
    def rows(self) -> int:
        return sum(f.get("rows") or 0 for f in self.files.values())

    @property
    def bytes(self) -> int:
        return sum(f["bytes"] for f in self.files.values())


def read_backup_manifest(paths: BackupPaths) -> BackupManifest:
    """Parse ``manifest.json`` and check its own checksum and identity; BackupError saying what is wrong."""
    path = paths.manifest
    hint = _PICK_ANOTHER.format(d=paths.district)
    if not path.is_file():
        raise BackupError(f"backup {paths.dir} has no {path.name}: it is incomplete (its load never got to "
                          "the commit decision) or not a backup", district=paths.district, hint=hint)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BackupError(f"{path} is not readable JSON ({exc})", district=paths.district, hint=hint) from exc
    if not isinstance(data, dict) or data.get("format") != FORMAT or data.get("version") != VERSION:
        raise BackupError(f"{path} is not a version-{VERSION} cert_loader backup manifest",
                          district=paths.district, hint=hint)
    if seal(data).get("manifest_sha256") != data.get("manifest_sha256"):
        raise BackupError(f"{path} was changed after the backup was written (its checksum does not match)",
                          district=paths.district, hint=hint)
    if data.get("district") != paths.district or data.get("run_id") != paths.run_id:
        raise BackupError(f"{path} is the backup of run {data.get('run_id')!r} of district {data.get('district')!r}, "
                          f"not of run {paths.run_id!r} of {paths.district!r}", district=paths.district, hint=hint)
    return BackupManifest(data, path)


@dataclass
class BackupCheck:
    """Everything wrong with one backup, collected so a user sees all of it at once (like plan.py)."""

    paths: BackupPaths
    manifest: BackupManifest | None = None
    damage: list[str] = field(default_factory=list)  # the backup itself: manifest, files
    schema_changes: list[str] = field(default_factory=list)  # the live tables no longer fit it

    @property
    def problems(self) -> list[str]:
        return self.damage + self.schema_changes

    @property
    def restorable(self) -> bool:
        return self.manifest is not None and not self.problems

    def raise_for_problems(self) -> None:
        if not self.problems:
            return
        more = f" (and {len(self.problems) - 1} more: {'; '.join(self.problems[1:6])})" if len(self.problems) > 1 else ""
        hint = (_PICK_ANOTHER.format(d=self.paths.district) if self.damage
                else "a backup restores only into the columns it was taken from: undo the schema change, or pick "
                     f"another backup (`cert-loader backups {self.paths.district}`)")
        raise BackupError(f"backup {self.paths.run_id} of district {self.paths.district} cannot be restored: "
                          f"{self.problems[0]}{more}; nothing was written", district=self.paths.district, hint=hint,
                          details={"problems": self.problems})


def check_backup(paths: BackupPaths, catalogs: dict[str, Catalog] | None = None, *,
                 checksums: bool = True) -> BackupCheck:
    """Check a backup before a restore: manifest intact, every file present with its size, rows and sha256, and
    (with ``catalogs``, the live ones) each table's columns unchanged since the backup. Nothing is written."""
    check = BackupCheck(paths)
    try:
        check.manifest = read_backup_manifest(paths)
    except BackupError as exc:
        check.damage.append(exc.reason)
        return check
    for rel, entry in check.manifest.files.items():
        check.damage.extend(_file_problems(paths, rel, entry, checksums))
    if catalogs is not None:
        for store, tables in check.manifest.tables.items():
            catalog = catalogs.get(store)
            if catalog is None:
                check.schema_changes.append(f"store {store} is in the backup but not configured")
                continue
            for qualname, entry in tables.items():
                check.schema_changes.extend(f"{store}: {p}" for p in column_changes(qualname, entry, catalog))
    return check


def _file_problems(paths: BackupPaths, rel: str, entry: dict[str, Any], checksums: bool) -> list[str]:
    path = paths.dir / rel
    if not path.is_file():
        return [f"file {rel} is missing"]
    size = path.stat().st_size
    if size != entry["bytes"]:
        return [f"file {rel} has {size} bytes, the backup wrote {entry['bytes']} (truncated or changed)"]
    if checksums and file_sha256(path)[1] != entry["sha256"]:
        return [f"file {rel} does not match its sha256 (changed after the backup)"]
    if entry.get("rows") is not None:
        try:
            rows = pq.read_metadata(parquet_file_source(path)).num_rows
        except Exception as exc:  # noqa: BLE001 - any unreadable footer is the same problem
            return [f"file {rel} is not readable parquet ({exc})"]
        if rows != entry["rows"]:
            return [f"file {rel} has {rows} rows, the backup wrote {entry['rows']}"]
    return []


def column_changes(qualname: str, entry: dict[str, Any], catalog: Catalog) -> list[str]:
    """How a table's columns differ from the backup's (empty when the fingerprint matches)."""
    live = catalog.tables.get((entry["schema"], entry["name"]))
    if live is None:
        return [f"table {qualname} was dropped since the backup"]
    now = fingerprint_columns(live)
    if fingerprint(now) == entry["fingerprint"]:
        return []
    old_by, new_by = {c["name"]: c for c in entry["columns"]}, {c["name"]: c for c in now}
    out = [f'table {qualname}: column "{n}" was added since the backup' for n in new_by if n not in old_by]
    out += [f'table {qualname}: column "{n}" was dropped since the backup' for n in old_by if n not in new_by]
    out += [f'table {qualname}: column "{n}" changed since the backup ({old_by[n]["type"]} -> {new_by[n]["type"]}'
            f'{", generated" if new_by[n]["generated"] != old_by[n]["generated"] else ""})'
            for n in old_by if n in new_by and old_by[n] != new_by[n]]
    return out or [f"table {qualname}: columns changed since the backup (their order)"]
