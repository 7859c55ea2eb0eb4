"""What a load produces: per-table counts and checks, per-store outcomes. Plain data for the report and Dagster."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class CheckResult:
    """One verification of one table (or graph label/type), computed inside the store's transaction.

    ``check`` is ``row_count`` or ``fk_integrity`` (graph: ``node_count``, ``relationship_count``,
    ``dangling``). ``examples`` holds a few offending keys for the message and metadata.
    """

    store: str
    table: str
    check: str
    passed: bool
    expected: int | None = None
    actual: int | None = None
    detail: str = ""
    examples: list[Any] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class TableResult:
    """What one strategy did to one table (or graph label/type) of the district."""

    store: str
    table: str
    source_rows: int
    source_file: str | None = None
    inserted: int = 0
    updated: int | None = None
    deleted: int | None = None
    unchanged: int | None = None
    duration_s: float = 0.0
    skipped: str | None = None
    checks: list[CheckResult] = field(default_factory=list)

    @property
    def records_loaded(self) -> int:
        return self.inserted + (self.updated or 0)

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["records_loaded"] = self.records_loaded
        return out


@dataclass
class StoreResult:
    """One store's part of the district load."""

    store: str
    status: str = "PENDING"  # SUCCESS | FAILED | ROLLED_BACK | SKIPPED
    transaction: str = "NOT_STARTED"  # COMMITTED | ROLLED_BACK | PREPARED-then-COMMITTED | IN_DOUBT
    tables: list[TableResult] = field(default_factory=list)
    duration_s: float = 0.0
    error: str | None = None
    two_phase: bool | None = None

    @property
    def checks(self) -> list[CheckResult]:
        return [c for t in self.tables for c in t.checks]

    @property
    def records_loaded(self) -> int:
        return sum(t.records_loaded for t in self.tables if not t.skipped)

    @property
    def tables_loaded(self) -> int:
        return sum(1 for t in self.tables if not t.skipped)
