"""What a load produces: per-table counts and checks, per-store outcomes. Plain data for the report and Dagster."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from cert_loader.constants import GRAPH_STORE

# A graph "table" is the district's nodes of one label or its relationships of one type; the kind is
# also the name of its Dagster asset, cert/sp/nodes or cert/sp/relationships (DESIGN.md section 8).
GraphKind = Literal["nodes", "relationships"]


@dataclass(frozen=True)
class GraphTable:
    """One label's nodes or one type's relationships: the graph's unit of results and checks."""

    kind: GraphKind
    name: str

    @classmethod
    def nodes(cls, label: str) -> "GraphTable":
        return cls("nodes", label)

    @classmethod
    def relationships(cls, rtype: str) -> "GraphTable":
        return cls("relationships", rtype)

    @property
    def display(self) -> str:
        """The name the report, messages and errors show (``nodes:Student``): built here only, never parsed."""
        return f"{self.kind}:{self.name}"


@dataclass
class CheckResult:
    """One verification of one table (or graph label/type), computed inside the store's transaction.

    ``check`` is ``row_count`` or ``fk_integrity`` (graph: ``node_count``, ``relationship_count``,
    ``dangling``). ``examples`` holds a few offending keys for the message and metadata. A graph check
    carries its ``graph`` table; ``table`` is then that table's display name. The ``content`` check
    (verify/content.py) names in ``outside`` the columns it did not compare, with why; the graph's
    ``content`` check (verify/graph_content.py) compares every property, so it leaves none out.
    """

    store: str
    table: str
    check: str
    passed: bool
    expected: int | None = None
    actual: int | None = None
    detail: str = ""
    examples: list[Any] = field(default_factory=list)
    graph: GraphTable | None = None
    outside: dict[str, str] = field(default_factory=dict)

    @classmethod
    def of_graph(cls, graph: GraphTable, check: str, passed: bool, expected: int | None = None,
                 actual: int | None = None, detail: str = "", examples: list[Any] | None = None) -> "CheckResult":
        return cls(GRAPH_STORE, graph.display, check, passed, expected, actual, detail, examples or [], graph)

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        del out["graph"]  # the report keeps its shape (DESIGN.md section 3); ``table`` names it
        if not self.outside:
            del out["outside"]  # only the content check leaves columns out
        return out


@dataclass
class TableResult:
    """What one strategy did to one table (or graph label/type) of the district; see CheckResult for ``graph``."""

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
    graph: GraphTable | None = None

    @classmethod
    def of_graph(cls, graph: GraphTable, source_rows: int, source_file: str | None = None) -> "TableResult":
        return cls(GRAPH_STORE, graph.display, source_rows, source_file, graph=graph)

    @property
    def records_loaded(self) -> int:
        return self.inserted + (self.updated or 0)

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        del out["graph"]  # as CheckResult.as_dict
        out["checks"] = [c.as_dict() for c in self.checks]
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
