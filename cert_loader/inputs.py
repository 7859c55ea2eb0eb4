"""The district's input files (DESIGN.md section 2): the validation gate, the extraction order and the parquet sources."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import pyarrow as pa
import pyarrow.parquet as pq

from cert_loader.data_root import parquet_file_source
from cert_loader.errors import InputError

# Rows per Arrow batch read from parquet: large enough that per-batch overhead vanishes, small
# enough that memory stays flat whatever the file size (DESIGN.md section 10: 10k–100k). With the COPY
# producer thread a few batches are alive at once: 64k-row batches of the 12-column bench table peaked
# at ~290 MB RSS, 16k at ~230 MB, at the same speed (issue 6).
BATCH_ROWS = 16_384
# Parquet read through a 1 MiB buffer instead of pre-buffering whole column chunks: the reader's memory
# no longer grows with the file's row-group size (~40 MB less on 250k-row groups, issue 6).
READ_BUFFER = 1 << 20

PASSING_STATUSES = ("PASSED", "PASSED_WITH_WARNINGS")


@dataclass(frozen=True)
class DistrictPaths:
    """Where one district's files live under the data root."""

    data_root: Path
    district: str

    @property
    def order_file(self) -> Path:
        return self.data_root / "data" / "analysis" / "extraction-order.json"

    @property
    def district_dir(self) -> Path:
        return self.data_root / "data" / "anonymized" / self.district

    @property
    def validation_report(self) -> Path:
        return self.district_dir / "validation-report.json"

    def store_dir(self, store: str) -> Path:
        return self.district_dir / store

    def source_file(self, store: str, name: str) -> Path:
        return self.store_dir(store) / f"{name}.parquet"

    @property
    def load_dir(self) -> Path:
        return self.data_root / "data" / "loads" / self.district

    @property
    def report_file(self) -> Path:
        return self.load_dir / "load-report.json"


@dataclass
class ValidationGate:
    """What the upstream validator said; loading goes on only when it passed."""

    status: str
    total_errors: int
    total_warnings: int
    warnings: list[Any] = field(default_factory=list)


# A district id is part of each transaction id of its load (transaction.make_gid), which PostgreSQL
# limits to 200 bytes: the prefix takes 12, the run id up to 40 (ours are 29, a Dagster run id 36), the
# store name 4 and the separators 2, which leaves 142; refused here, before any store is touched.
DISTRICT_ID_MAX_BYTES = 128


def check_district_name(district: str) -> None:
    """A district id becomes a directory name, a lock key and part of each transaction id: refuse what cannot be."""
    if not district or district in (".", "..") or "/" in district or "\\" in district or "\x00" in district:
        raise InputError(
            f"district id {district!r} is not a plain name",
            hint="use the directory name under data/anonymized/",
        )
    size = len(district.encode("utf-8"))
    if size > DISTRICT_ID_MAX_BYTES:
        raise InputError(
            f"district id {district[:40]!r}{'…' if len(district) > 40 else ''} is {size} bytes long; a load's transaction ids have room for "
            f"{DISTRICT_ID_MAX_BYTES} (PostgreSQL allows 200 bytes per prepared transaction); nothing was loaded",
            district=district,
            hint=f"use a district id of at most {DISTRICT_ID_MAX_BYTES} bytes (the directory under data/anonymized/)",
        )


def read_validation_gate(paths: DistrictPaths) -> ValidationGate:
    """Refuse a district whose validation failed or is not proven clean, before anything is touched (section 2)."""
    path = paths.validation_report
    if not path.is_file():
        raise InputError(
            f"validation report {path} not found",
            district=paths.district,
            hint="run the upstream validator for this district first",
        )
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(f"validation report {path} is not readable JSON ({exc})", district=paths.district) from exc
    return validation_gate(parse_validation_report(data, path, paths.district), path, paths.district)


def parse_validation_report(data: bytes, path: Path, district: str) -> Any:
    """The report's JSON value; an InputError while it is not (yet) complete JSON (the sensor retries those)."""
    try:
        return json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"validation report {path} is not readable JSON ({exc})", district=district) from exc


def validation_gate(report: Any, path: Path, district: str) -> ValidationGate:
    """The one validation gate (the load's pre-flight and the sensor): it fails closed.

    Loading goes on only when the report names this district and proves zero errors: an integer
    ``summary.total_errors`` of 0 and a passing ``overall_status``. Anything missing is refused, named.
    """
    def refused(what: str) -> InputError:
        hint = ("re-run the upstream validator for this district: a load needs a report that names the district "
                "and proves zero errors")
        return InputError(f"validation report {path} {what}; nothing was loaded", district=district, hint=hint)

    if not isinstance(report, dict):
        raise refused("is not a JSON object")
    reported = report.get("district_id")
    if reported is None:
        raise refused(f"has no district_id (expected {district!r}), so it does not show which district it validated")
    if reported != district:
        raise InputError(
            f"validation report {path} is for district {reported!r}, not {district!r}",
            district=district,
            hint="the report and the data directory must belong to the same district",
        )
    summary = report.get("summary")
    if not isinstance(summary, dict):
        raise refused("has no summary, so it does not prove zero errors" if summary is None
                      else f"has summary {json.dumps(summary)[:80]}, expected an object with total_errors")
    errors = summary.get("total_errors")
    if not _is_int(errors):
        raise refused("has no summary.total_errors, so it does not prove zero errors" if errors is None
                      else f"has summary.total_errors {errors!r}, expected an integer")
    warnings_n = summary.get("total_warnings", 0)
    if not _is_int(warnings_n):
        raise refused(f"has summary.total_warnings {warnings_n!r}, expected an integer")
    status = report.get("overall_status")
    if status not in PASSING_STATUSES + ("FAILED",):
        raise InputError(
            f"validation report {path}: overall_status is {status!r}, expected one of "
            "PASSED, PASSED_WITH_WARNINGS, FAILED",
            district=district,
        )
    if status == "FAILED" or errors > 0:
        raise InputError(
            f"validation of district {district} did not pass "
            f"(overall_status {status}, {errors} error(s)); nothing was loaded",
            district=district,
            hint="fix the data upstream and re-run the validator",
        )
    warnings = report.get("warnings") or []
    if not isinstance(warnings, list):
        warnings = [warnings]
    return ValidationGate(status, errors, warnings_n, warnings)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)  # JSON true is no count


def read_extraction_order(paths: DistrictPaths) -> dict[str, list[str]] | None:
    """The parents-first table order per store, or None when the file is absent."""
    path = paths.order_file
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{path} is not readable JSON ({exc})") from exc
    if not isinstance(data, dict) or not all(
        isinstance(v, list) and all(isinstance(n, str) and n for n in v) for v in data.values()
    ):
        raise InputError(f"{path} must map each store to a list of table names")
    for store, names in data.items():
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise InputError(f"{path}: {store} lists {', '.join(dupes)} more than once")
    return data


@dataclass(frozen=True)
class ParquetSource:
    """One table's parquet file: its schema and row count come from the footer, rows are streamed."""

    path: Path
    schema: pa.Schema
    num_rows: int

    @classmethod
    def open(cls, path: Path, *, store: str, table: str) -> "ParquetSource":
        try:
            source = parquet_file_source(path)  # a local path stays a path (same fast path)
            meta = pq.read_metadata(source)
            schema = pq.read_schema(path) if source is path else meta.schema.to_arrow_schema()
            if source is not path:
                source.close()
        except (OSError, pa.ArrowException) as exc:
            raise InputError(
                f"cannot read parquet file {path} ({exc})",
                store=store,
                table=table,
                hint="re-export the file",
            ) from exc
        return cls(path, schema, meta.num_rows)

    def batches(self, columns: list[str], batch_rows: int = BATCH_ROWS) -> Iterator[pa.RecordBatch]:
        """Stream the file in record batches: memory stays flat whatever the file size."""
        source = parquet_file_source(self.path)  # an S3 object: a random-access file over ranged GETs
        reader = pq.ParquetFile(source, memory_map=False, pre_buffer=False, buffer_size=READ_BUFFER)
        try:
            yield from reader.iter_batches(batch_size=batch_rows, columns=columns, use_threads=True)
        finally:
            reader.close()
            if source is not self.path:
                source.close()
