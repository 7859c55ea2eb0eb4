"""One asset check per cross-store reference, on the child table's asset (DESIGN.md section 7), bound from the manifest without a database."""

from __future__ import annotations

import logging
import re
import warnings
from pathlib import Path

import dagster as dg

from cert_loader.catalog import Catalog
from cert_loader.manifest import Manifest
from cert_loader.references import BoundReference, bind_references, read_references

log = logging.getLogger(__name__)

# Dagster names allow letters, digits and "_": the engine's check "cross_store:<name>" becomes "cross_store__<name>".
_INVALID = re.compile(r"[^A-Za-z0-9_]")


def dagster_check_name(check: str) -> str:
    """The asset check name of an engine check (``row_count`` stays, ``cross_store:x-y`` is ``cross_store__x_y``)."""
    return _INVALID.sub("_", check.replace(":", "__", 1))


def manifest_catalogs(manifest: Manifest) -> dict[str, Catalog]:
    """The manifest's stores as catalogs, so declarations bind exactly as pre-flight binds them (search_path included)."""
    return {name: Catalog(name, {t.key_id: t for t in sm.tables}, tuple(sm.search_path), sm.database)
            for name, sm in manifest.stores.items()}


def bind_from_manifest(manifest: Manifest, path: Path) -> list[BoundReference]:
    """The declarations of ``path`` that fit the manifest; the others are logged (a load refuses them in pre-flight)."""
    refs, problems = read_references(path)
    binding = bind_references(refs, manifest_catalogs(manifest))
    for problem in problems + binding.problems:
        log.warning("cross-store reference left out of the asset checks: %s", problem)
    return binding.references


def reference_check_specs(cert, references: list[BoundReference], partitions_def) -> list[dg.AssetCheckSpec]:
    """One partitioned spec per reference whose child table is an asset (see checks.build_check_specs on the warning)."""
    specs = []
    names: dict[tuple, str] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.PreviewWarning)
        for ref in references:
            key = cert.key_of(ref.child.store, ref.child.table.qualname)
            name = dagster_check_name(ref.check_name)
            if key is None:
                continue
            if (key, name) in names:
                log.warning("cross-store references %r and %r share the asset check name %s; only the first is an "
                            "asset check (rename one)", names[(key, name)], ref.name, name)
                continue
            names[(key, name)] = ref.name
            specs.append(dg.AssetCheckSpec(
                name, asset=key, partitions_def=partitions_def,
                description=f"Cross-store reference {ref.name}: {ref.describe()} (checked before the commit).",
            ))
    return specs
