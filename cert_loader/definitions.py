"""The code location (`dagster dev -m cert_loader.definitions`): built from the schema manifest, no database needed to load."""

from __future__ import annotations

import os
from pathlib import Path

from cert_loader.defs import build_definitions
from cert_loader.manifest import default_manifest_path


def manifest_path() -> Path:
    """CERT_SCHEMA_MANIFEST, else data/analysis/cert-schema.json under CERT_DATA_ROOT (default: the working directory)."""
    explicit = os.environ.get("CERT_SCHEMA_MANIFEST")
    if explicit:
        return Path(explicit)
    return default_manifest_path(Path(os.environ.get("CERT_DATA_ROOT") or "."))


defs = build_definitions(manifest_path())
