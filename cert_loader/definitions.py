"""The code location (`dagster dev -m cert_loader.definitions`): built from the schema manifest, no database needed to load."""

from __future__ import annotations

import os
from pathlib import Path

from cert_loader.data_root import S3Path
from cert_loader.defs import build_definitions
from cert_loader.manifest import manifest_location
from cert_loader.process import prepare_process


def manifest_path() -> Path | S3Path:
    """CERT_SCHEMA_MANIFEST, else data/analysis/cert-schema.json under CERT_DATA_ROOT (default: the working directory).

    Either may be an ``s3://`` URL: the manifest is then read from the object store, where `cert-loader snapshot` wrote it.
    """
    return manifest_location(os.environ.get("CERT_SCHEMA_MANIFEST"), os.environ.get("CERT_DATA_ROOT"))


defs = build_definitions(manifest_path())
prepare_process()  # every process that loads the code location: run workers, `dagster asset materialize`, daemons
