"""The district's input files (DESIGN.md section 2): the validation gate, the extraction order and the parquet sources."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import pyarrow as pa
import pyarrow.parquet as pq

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


def check_district_name(district: str) -> None:
    """A district id becomes a directory name and a lock key: refuse anything path-like."""
    if not district or district in (".", "..") or "/" in district or "\\" in district or "\x00" in district:
        raise InputError(
            f"district id {district!r} is not a plain name",
            hint="use the directory name under data/anonymized/",
        )


def read_validation_gate(paths: DistrictPaths) -> ValidationGate:
    """Refuse a district whose validation failed, before anything is touched (DESIGN.md section 2)."""
    path = paths.validation_report
    if not path.is_file():
        raise InputError(
            f"validation report {path} not found",
            district=paths.district,
            hint="run the upstream validator for this district first",
        )
    try:
        report = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(
            f"validation report {path} is not readable JSON ({exc})", district=paths.district
        ) from exc
    if not isinstance(report, dict):
        raise InputError(f"validation report {path} is not a JSON object", district=paths.district)
    reported = report.get("district_id")
    if reported is not None and reported != paths.district:
        raise InputError(
            f"validation report {path} is for district {reported!r}, not {paths.district!r}",
            district=paths.district,
            hint="the report and the data directory must belong to the same district",
        )
    status = report.get("overall_status")
    summary = report.get("summary") or {}
    errors = summary.get("total_errors", 0)
    warnings_n = summary.get("total_warnings", 0)
    if not isinstance(errors, int) or not isinstance(warnings_n, int):
        raise InputError(
            f"validation report {path}: summary.total_errors/total_warnings must be integers",
            district=paths.district,
        )
    if status not in PASSING_STATUSES + ("FAILED",):
        raise InputError(
            f"validation report {path}: overall_status is {status!r}, expected one of "
            "PASSED, PASSED_WITH_WARNINGS, FAILED",
            district=paths.district,
        )
    if status == "FAILED" or errors > 0:
        raise InputError(
            f"validation of district {paths.district} did not pass "
            f"(overall_status {status}, {errors} error(s)); nothing was loaded",
            district=paths.district,
            hint="fix the data upstream and re-run the validator",
        )
    warnings = report.get("warnings") or []
    if not isinstance(warnings, list):
        warnings = [warnings]
    return ValidationGate(status, errors, warnings_n, warnings)


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
            meta = pq.read_metadata(path)
            schema = pq.read_schema(path)
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
        reader = pq.ParquetFile(self.path, memory_map=False, pre_buffer=False, buffer_size=READ_BUFFER)
        try:
            yield from reader.iter_batches(batch_size=batch_rows, columns=columns, use_threads=True)
        finally:
            reader.close()
