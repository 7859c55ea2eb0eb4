"""The graph store ``sp``: one explicit Bolt transaction per district load, the commit's decision point (section 5)."""

from __future__ import annotations

import json
import logging
import time
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Any, Iterable, Iterator

import neo4j
from neo4j.exceptions import DriverError, IncompleteCommit, Neo4jError, ServiceUnavailable, SessionExpired
from neo4j.exceptions import TransientError

from cert_loader.constants import DISTRICT_COLUMN, GRAPH_STORE
from cert_loader.config import GraphConfig
from cert_loader.errors import InDoubtError, StoreError
from cert_loader.graph_input import MARKER_LABEL, GraphInput
from cert_loader.results import GraphTable, TableResult
from cert_loader.stores.graph_cypher import GraphCypher, quoted
from cert_loader.strategies.graph import get_graph_strategy, run_graph_strategy

log = logging.getLogger(__name__)
# The schemes the driver speaks Bolt over; anything else in CERT_SP_URI is refused before connecting (section 4).
BOLT_SCHEMES = ("bolt", "bolt+s", "bolt+ssc", "neo4j", "neo4j+s", "neo4j+ssc")
# A run marker must not look like district data: no id, no district_id (DESIGN.md section 2).
_MARKER_FORBIDDEN = ("id", DISTRICT_COLUMN)


def _storable(value: Any) -> bool:
    """Whether Neo4j stores ``value`` as is: a scalar or a list of one scalar type (else it goes as JSON)."""
    if isinstance(value, (str, int, float, bool)):
        return True
    return isinstance(value, list) and len({type(v) for v in value}) <= 1 and all(
        isinstance(v, (str, int, float, bool)) for v in value)


def _setting_to_check(exc: Neo4jError | DriverError) -> tuple[str, str]:
    """What a failed connectivity check found, and which CERT_SP_* setting to look at (DESIGN.md section 4)."""
    if isinstance(exc, neo4j.exceptions.AuthError):
        return "authentication failed", "check CERT_SP_USER and CERT_SP_PASSWORD"
    if isinstance(exc, Neo4jError):
        return f"{exc.code}: {exc.message}", "check CERT_SP_DATABASE exists on the server"
    return f"unreachable ({type(exc).__name__})", "check CERT_SP_URI and that the server runs"


@contextmanager
def _mapped(
    config: GraphConfig, action: str, *, table: str | None = None, district: str | None = None,
    settings: bool = False,
) -> Iterator[None]:
    """Turn driver errors into StoreError naming the redacted server; never the password (STYLE.md 4).

    ``settings``: the call checks the configuration (``ping``), so the message says which setting to fix.
    """
    try:
        yield
    except IncompleteCommit as exc:
        raise InDoubtError(
            f"{action}: the connection to {config.redacted()} broke during commit; the outcome is unknown",
            store=GRAPH_STORE, table=table, district=district,
            hint="run `cert-loader recover`: it reads the run marker to learn whether the graph committed",
        ) from exc
    except (Neo4jError, DriverError, OverflowError) as exc:
        transient = isinstance(exc, (TransientError, ServiceUnavailable, SessionExpired))
        if settings and not isinstance(exc, OverflowError):
            what, hint = _setting_to_check(exc)
            message = f"cannot use {config.redacted()}: {what}"
        else:
            code = getattr(exc, "code", None) or type(exc).__name__
            text = getattr(exc, "message", None) or str(exc)
            message = f"{action} on {config.redacted()} failed: {code}: {text}"
            hint = "retry the load" if transient else None
        raise StoreError(message, store=GRAPH_STORE, table=table, district=district, transient=transient,
                         hint=hint, driver_error=exc) from exc


# ArcadeDB versions pages, not records: two transactions that add records to the same page (two
# districts' nodes of one label) conflict at commit, and the later commit is refused with this code
# ("Slot rebase not possible … concurrent change to the same record"); the server rolled it back whole.
WRITE_CONFLICT_CODE = "Neo.TransientError.Transaction.DeadlockDetected"


def is_write_conflict(exc: BaseException) -> bool:
    """Whether ``exc`` is the server refusing a commit for a concurrent write (nothing of it was written).

    Never true for a commit whose outcome is unknown (a broken connection: InDoubtError).
    """
    driver = getattr(exc, "driver_error", None)
    return isinstance(exc, StoreError) and getattr(driver, "code", None) == WRITE_CONFLICT_CODE


def _rows(records: Iterable[neo4j.Record]) -> list[dict[str, Any]]:
    """Records as dicts of their values as the driver decoded them.

    Not ``Record.data()``: no query here returns a node or relationship entity (they return ids,
    ``properties()``, lists and counts), and data()'s recursive export of every nested value was most of the
    client's time on a large read (the backup capture: 3.2M transform calls for 350k elements).
    """
    return [dict(record.items()) for record in records]


class GraphTransaction:
    """The load's one explicit transaction: strategy work and the run marker (sections 5-6); verify.graph checks it."""

    def __init__(self, store: "GraphStore", session: neo4j.Session, tx: neo4j.Transaction, district: str, run_id: str):
        self._store, self._session, self._tx = store, session, tx
        self.district, self.run_id = district, run_id
        self.strategy: str | None = None
        self.results: list[TableResult] = []
        self.cypher = GraphCypher(self._run, district)

    @property
    def closed(self) -> bool:
        return self._tx is None

    def _run(self, query: str, table: GraphTable | str | None, **params: Any) -> list[dict[str, Any]]:
        """One statement; ``table`` (a GraphTable, or ``"marker"``) names the error's place."""
        name = table.display if isinstance(table, GraphTable) else table
        if self._tx is None:
            raise StoreError("the graph transaction is already closed", store=GRAPH_STORE, table=name,
                             district=self.district, hint="begin a new load")
        with _mapped(self._store.config, "statement", table=name, district=self.district):
            # The driver keeps each statement's parameters in its Result, which the transaction holds to the
            # commit: every batch of a load's rows would stay alive to the end (~170 MB of the seed graph's 350k
            # items, issue 13). So it gets lists of its own, emptied once the statement is sent and answered.
            sent = {k: list(v) if type(v) is list else v for k, v in params.items()}
            try:
                return _rows(self._tx.run(query, sent))
            finally:
                for value in sent.values():
                    if type(value) is list:
                        value.clear()

    def load(self, data: GraphInput, strategy: str) -> list[TableResult]:
        """Apply ``strategy`` (DESIGN.md section 6): nodes per label in batches, then relationships per type."""
        if data.district != self.district:
            raise StoreError(f"input is for district {data.district!r}, the transaction for {self.district!r}",
                             store=GRAPH_STORE, district=self.district)
        work = get_graph_strategy(strategy)
        self.strategy = strategy
        self.results = run_graph_strategy(work, self.cypher, data)
        return self.results

    def commit(self, marker: dict[str, Any] | None = None) -> None:
        """Write the run marker and commit: this commit is the load's decision (DESIGN.md section 5, step 3).

        ``marker`` adds properties (e.g. the stores); ``run_id``, ``district``, ``decision`` and
        ``committed_at`` are the transaction's own, and ``id``/``district_id`` are refused (section 2).
        """
        extra = dict(marker or {})
        clash = sorted(set(extra) & set(_MARKER_FORBIDDEN))
        if clash:
            raise ValueError(f"marker keys {', '.join(clash)} are refused: a marker must not look like district data")
        props = {k: v if _storable(v) else json.dumps(v, default=str) for k, v in extra.items() if v is not None}
        props.update(run_id=self.run_id, district=self.district, decision="COMMIT",
                     committed_at=datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ"))
        self._run(f"CREATE (m:{quoted(MARKER_LABEL)}) SET m = $props", "marker", props=props)
        tx, self._tx = self._tx, None
        try:
            with _mapped(self._store.config, "commit", district=self.district):
                tx.commit()
        finally:
            self._session.close()

    def rollback(self) -> None:
        """Roll back; idempotent, and silent on a transaction the server or driver already closed."""
        tx, self._tx = self._tx, None
        if tx is not None:
            try:
                tx.rollback()
            except Exception as exc:  # noqa: BLE001 - a closed or broken tx is rolled back by the server anyway
                log.debug("sp: rollback of run %s: %s", self.run_id, type(exc).__name__)
        try:
            self._session.close()
        except Exception as exc:  # noqa: BLE001
            log.debug("sp: closing session of run %s: %s", self.run_id, type(exc).__name__)

    def __enter__(self) -> "GraphTransaction":
        return self

    def __exit__(self, *exc: object) -> None:
        self.rollback()


class GraphStore:
    """The Bolt client of ``sp``; every call names ``config.database`` (DESIGN.md section 9)."""

    def __init__(self, config: GraphConfig) -> None:
        self.config = config
        self.schema: dict[str, str] = {}
        scheme = config.uri.split("://", 1)[0].lower() if "://" in config.uri else ""
        if scheme not in BOLT_SCHEMES:
            raise StoreError(f"bad URI {config.redacted()}: scheme {scheme or '(none)'!r} is not Bolt",
                             store=GRAPH_STORE,
                             hint="CERT_SP_URI must be bolt://host:port or neo4j://host:port (section 4)")
        with _mapped(config, "connect"):
            self._driver = neo4j.GraphDatabase.driver(config.uri, auth=(config.user, config.password))

    def close(self) -> None:
        self._driver.close()

    def __enter__(self) -> "GraphStore":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _query(self, query: str, action: str, **params: Any) -> list[dict[str, Any]]:
        with _mapped(self.config, action):
            records, _, _ = self._driver.execute_query(query, params, database_=self.config.database)
        return _rows(records)

    def ping(self) -> str:
        """Check the server answers, the credentials work and the database exists; returns the server agent."""
        with _mapped(self.config, "ping", settings=True):
            self._driver.verify_connectivity()
            agent = self._driver.get_server_info().agent
            self._driver.execute_query("RETURN 1 AS one", database_=self.config.database)
        return agent

    def ensure_schema(self, labels: Iterable[str]) -> dict[str, str]:
        """Key constraints (or indexes where refused) per label, before and outside the data transaction.

        Returns ``{label: "constraint" | "index"}``, the run marker's label included (its ``run_id`` index).
        Neo4j refuses a constraint when duplicates or an equivalent index exist; ArcadeDB accepts composite
        uniqueness constraints but checks them only at commit. No ``district_id`` index on relationships: one
        value per district makes it useless for lookups, and on ArcadeDB deleting relationships under such an
        index took ~0.4 ms each at commit (250k relationships: 100 s instead of 0.1 s).
        """
        for label in sorted(set(labels)):
            lab = quoted(label)
            try:
                self._query(f"CREATE CONSTRAINT cert_key_{label} IF NOT EXISTS FOR (n:{lab}) "
                            "REQUIRE (n.district_id, n.id) IS UNIQUE", "create constraint")
                self.schema[label] = "constraint"
            except StoreError as exc:
                log.info("sp: constraint on %s refused (%s); using a composite index", label, exc.reason)
                self._query(f"CREATE INDEX cert_idx_{label} IF NOT EXISTS FOR (n:{lab}) ON (n.district_id, n.id)",
                            "create index")
                self.schema[label] = "index"
        self._query(f"CREATE INDEX cert_loader_run IF NOT EXISTS FOR (m:{quoted(MARKER_LABEL)}) ON (m.run_id)",
                    "create index")
        self.schema[MARKER_LABEL] = "index"
        return dict(self.schema)

    def begin(self, district: str, run_id: str) -> GraphTransaction:
        """Open the load's one explicit transaction (DESIGN.md section 5)."""
        with _mapped(self.config, "begin", district=district):
            session = self._driver.session(database=self.config.database)
            try:
                tx = session.begin_transaction(metadata={"app": "cert_loader", "run_id": run_id})
            except BaseException:
                session.close()
                raise
        return GraphTransaction(self, session, tx, district, run_id)

    def decision(self, run_id: str) -> bool:
        """Whether the graph committed run ``run_id`` (its marker exists); recovery follows it (section 5)."""
        rows = self._query(f"MATCH (m:{quoted(MARKER_LABEL)} {{run_id: $r}}) WHERE m.decision = 'COMMIT' "
                           "RETURN count(m) AS c", "read run marker", r=run_id)
        return bool(rows and rows[0]["c"])

    def _write(self, district: str, work: Any) -> Any:
        """A small write of its own, retried by the driver on transient errors (DESIGN.md section 9)."""
        with _mapped(self.config, "write", district=district):
            with self._driver.session(database=self.config.database) as session:
                return session.execute_write(lambda tx: work(GraphCypher(
                    lambda q, _table, **p: _rows(tx.run(q, p)), district)))

    def unload(self, district: str) -> int:
        """Delete the district's subgraph (never run markers) in batches, each its own transaction."""
        deleted, started = 0, time.monotonic()
        for label in self._write(district, lambda cypher: cypher.graph_labels()):
            while n := self._write(district, lambda cypher: cypher.delete_batch(label)):
                deleted += n
        log.info("sp: unloaded %d nodes of district %s in %.1fs", deleted, district, time.monotonic() - started)
        return deleted

    def counts(self, district: str) -> dict[str, dict[str, int]]:
        """Nodes per label and relationships per type of the district (run markers excluded)."""

        def work(cypher: GraphCypher) -> dict[str, dict[str, int]]:
            labels = cypher.graph_labels()
            nodes = {lab: cypher.count_nodes(lab) for lab in labels}
            rels = {t: v["count"] + v["start_outside"] for t, v in cypher.rel_census(labels).items()}
            return {"nodes": {k: v for k, v in sorted(nodes.items()) if v},
                    "relationships": {k: v for k, v in sorted(rels.items()) if v}}

        with _mapped(self.config, "count", district=district):
            with self._driver.session(database=self.config.database) as session:
                return session.execute_read(lambda tx: work(GraphCypher(
                    lambda q, _table, **p: _rows(tx.run(q, p)), district)))
