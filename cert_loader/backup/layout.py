"""Where a district's backups live, and the durable writes they are made of (DESIGN.md section 5, point 5).

A backup is a data root of its own: ``data/backups/D/<run id>/`` holds the section 2 input layout
(``data/analysis/extraction-order.json``, ``data/anonymized/D/validation-report.json``,
``data/anonymized/D/<store>/<schema.table>.parquet``, ``data/anonymized/D/sp/{nodes,relationships}.parquet``)
plus ``manifest.json``, so a restore is an ordinary ``replace`` load with the backup as its data root.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cert_loader.data_root import S3Path, data_root as data_root_of
from cert_loader.errors import CertLoaderError
from cert_loader.inputs import DistrictPaths, check_district_name

MANIFEST = "manifest.json"


class BackupError(CertLoaderError):
    """A backup cannot be written exactly, or a backup on disk cannot be restored (damaged, incompatible)."""


def backups_dir(data_root: Path, district: str) -> Path:
    """``data/backups/D`` under the data root: one directory per run that took a backup."""
    return data_root_of(data_root) / "data" / "backups" / district


@dataclass(frozen=True)
class BackupPaths:
    """One run's backup directory and the files in it."""

    data_root: Path
    district: str
    run_id: str

    def __post_init__(self) -> None:
        check_district_name(self.district)
        if not self.run_id or self.run_id in (".", "..") or any(c in self.run_id for c in "/\\\x00"):
            raise BackupError(f"run id {self.run_id!r} is not a plain name", district=self.district,
                              hint="give the run id as `cert-loader backups` lists it")

    @property
    def dir(self) -> Path:
        return backups_dir(self.data_root, self.district) / self.run_id

    @property
    def inputs(self) -> DistrictPaths:
        """The backup as a data root: the engine reads it like any district's inputs (section 2)."""
        return DistrictPaths(self.dir, self.district)

    @property
    def manifest(self) -> Path:
        return self.dir / MANIFEST

    def table_file(self, store: str, qualname: str) -> Path:
        return self.inputs.source_file(store, qualname)

    def relative(self, path: Path) -> str:
        return path.relative_to(self.dir).as_posix()


def fsync_dir(path: Path) -> None:
    """Make a directory's entries (a new file, a rename) durable; on S3 a completed PUT already is."""
    if isinstance(path, S3Path):
        return
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_tree(top: Path, upto: Path) -> None:
    """fsync every directory under ``top`` (children first), then its parents up to ``upto`` (new entries all)."""
    if isinstance(top, S3Path):  # each object was durable when its PUT / upload completed
        return
    for dirpath, _dirs, _files in sorted(os.walk(top), key=lambda t: -len(t[0])):
        fsync_dir(Path(dirpath))
    here = top.parent
    while upto in (here, *here.parents):
        fsync_dir(here)
        if here == upto:
            break
        here = here.parent


def write_json_durably(path: Path, data: Any) -> tuple[int, str]:
    """Write ``data`` as JSON: temp file, fsync, atomic rename, fsync of the directory; returns (bytes, sha256)."""
    body = (json.dumps(data, indent=1, ensure_ascii=False, sort_keys=False) + "\n").encode("utf-8")
    if isinstance(path, S3Path):  # one whole-object PUT: visible complete or not at all
        path.write_bytes(body)
        return len(body), hashlib.sha256(body).hexdigest()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(body)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)
    return len(body), hashlib.sha256(body).hexdigest()


class HashingFile:
    """A binary file that hashes and counts what is written through it, and fsyncs on ``close``.

    The parquet writer writes through it, so a file's checksum costs no second read.
    """

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = path.open_output_stream() if isinstance(path, S3Path) else open(path, "wb")
        self._local = not isinstance(path, S3Path)
        self._sha = hashlib.sha256()
        self.size = 0
        self.closed = False

    def write(self, data: bytes) -> int:
        n = self._fh.write(data)
        self._sha.update(memoryview(data)[:n])
        self.size += n
        return n

    def tell(self) -> int:
        return self.size

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def flush(self) -> None:
        self._fh.flush()

    def close(self) -> None:
        """Flush and fsync; pyarrow closes its sink when the writer closes, so this runs once, then is a no-op."""
        if self.closed:
            return
        self.closed = True
        try:
            self._fh.flush()
            if self._local:  # on S3 closing the stream completes the upload
                os.fsync(self._fh.fileno())
        finally:
            self._fh.close()

    def abort(self) -> None:
        self.closed = True
        self._fh.close()

    @property
    def sha256(self) -> str:
        return self._sha.hexdigest()


def file_sha256(path: Path, chunk: int = 1 << 20) -> tuple[int, str]:
    """(bytes, sha256) of a file on disk, read in chunks (backup verification)."""
    sha, size = hashlib.sha256(), 0
    with (path.filesystem.open_input_stream(path.fs_path) if isinstance(path, S3Path) else open(path, "rb")) as fh:
        while block := fh.read(chunk):
            sha.update(block)
            size += len(block)
    return size, sha.hexdigest()
