"""The transaction model of DESIGN.md section 5 in one place: each store's transaction, the two-phase commit, the gid namespace and recovery.

A district load is one unit of work. Every PostgreSQL store loads and verifies inside its own
transaction; then each is PREPAREd; then the decision is made durable — the graph transaction's
commit (it carries a marker node for the run), or, for a load without the graph, a row in the
coordinator store's ``cert_loader.load_decision`` table committed on its own; then every prepared
transaction is COMMIT PREPARED. A crash leaves prepared transactions that ``recover()`` resolves
the way the decision went: commit if the decision record exists, roll back otherwise.
"""

from __future__ import annotations

import contextlib
import logging
import random
import time
from dataclasses import dataclass, field
from typing import Callable, Protocol

import psycopg

from psycopg import sql

from cert_loader.config import PgStoreConfig
from cert_loader.constants import DECISION_QUALNAME, DECISION_TABLE, LOADER_SCHEMA
from cert_loader.errors import InDoubtError, InputError, StoreError
from cert_loader.faults import checkpoint
from cert_loader.interrupts import held_interrupts
from cert_loader.stores.postgres import LOCK_PREFIX, PgStore, mapped_errors

log = logging.getLogger(__name__)

# Every global transaction id the loader creates starts with this, so recovery never touches a
# prepared transaction that is not ours. Layout: cert_loader|<run id>|<store>|<district>.
GID_PREFIX = "cert_loader|"
# Tries of the graph's decision commit when the server refuses it for a concurrent write (UnitOfWork._decide_on_graph).
GRAPH_COMMIT_ATTEMPTS = 5
# PostgreSQL's limit on a gid (GIDSIZE) is 200 bytes.
GID_MAX = 200


def make_gid(run_id: str, store: str, district: str) -> str:
    """Our gid for one store's transaction; an InputError when it does not fit (inputs.check_district_name
    refuses a district id that long before anything is touched)."""
    gid = f"{GID_PREFIX}{run_id}|{store}|{district}"
    size = len(gid.encode("utf-8"))
    if size > GID_MAX:
        raise InputError(
            f"the transaction id of run {run_id} for district {district[:40]!r}{'…' if len(district) > 40 else ''} is {size} bytes; "
            f"PostgreSQL allows {GID_MAX}",
            store=store, district=district,
            hint="use a shorter district id (or run id)",
        )
    return gid


def parse_gid(gid: str) -> tuple[str, str, str] | None:
    """(run id, store, district) of one of our gids, or None for anybody else's."""
    if not gid.startswith(GID_PREFIX):
        return None
    parts = gid[len(GID_PREFIX):].split("|", 2)
    return (parts[0], parts[1], parts[2]) if len(parts) == 3 else None


class GraphDecision(Protocol):
    """The graph transaction as the decision point (implemented by stores.graph.GraphTransaction)."""

    def commit(self, marker: dict) -> None: ...
    def rollback(self) -> None: ...


class StoreTransaction:
    """One PostgreSQL store's transaction: plain, or two-phase when the server allows prepared transactions."""

    def __init__(self, pg: PgStore, gid: str, two_phase: bool) -> None:
        self.pg = pg
        self.gid = gid
        self.two_phase = two_phase
        self.state = "NOT_STARTED"  # ACTIVE | PREPARED | COMMITTED | ROLLED_BACK | IN_DOUBT

    def begin(self) -> None:
        conn = self.pg.conn
        with mapped_errors(self.pg.name):
            conn.autocommit = False
            if self.two_phase:
                conn.tpc_begin(self.gid)
            # Deferrable FKs (the cycles the plan allows) are checked at PREPARE/COMMIT, after
            # our own FK verification has already named any orphan.
            conn.execute("SET CONSTRAINTS ALL DEFERRED")
        self.state = "ACTIVE"

    def prepare(self) -> None:
        with mapped_errors(self.pg.name):
            self.pg.conn.tpc_prepare()
        self.state = "PREPARED"

    def commit(self) -> None:
        with mapped_errors(self.pg.name):
            if self.two_phase:
                self.pg.conn.tpc_commit()
            else:
                self.pg.conn.commit()
        self.state = "COMMITTED"

    def rollback(self) -> None:
        """Roll back whatever state the transaction is in; never raises (it runs on failure paths)."""
        if self.state in ("COMMITTED", "ROLLED_BACK", "NOT_STARTED"):
            return
        try:
            if self.two_phase:
                self.pg.conn.tpc_rollback()
            else:
                self.pg.conn.rollback()
            self.state = "ROLLED_BACK"
        except psycopg.Error as exc:
            if self.state == "PREPARED":
                # The prepared transaction survives a lost connection; recovery rolls it back
                # because no decision was recorded.
                self.state = "IN_DOUBT"
                log.error("%s: could not roll back prepared transaction %s: %s", self.pg.name, self.gid, exc)
            else:
                # An open transaction dies with its connection: nothing was committed.
                self.state = "ROLLED_BACK"

    @property
    def outcome(self) -> str:
        if self.state == "COMMITTED":
            return "PREPARED-then-COMMITTED" if self.two_phase else "COMMITTED"
        return self.state


@dataclass
class UnitOfWork:
    """All stores' transactions of one district load, committed together or not at all."""

    district: str
    run_id: str
    stores: dict[str, StoreTransaction]
    graph: GraphDecision | None
    decision_store: PgStoreConfig | None
    atomic: bool
    graph_state: str = "NOT_STARTED"
    notes: list[str] = field(default_factory=list)
    # Redoes the graph's part of the load in a new transaction (begin, load, verify): used when the
    # decision commit is refused for a concurrent write, see _decide.
    graph_redo: Callable[[], GraphDecision] | None = None

    def commit(self) -> None:
        # A stop request (Dagster's terminate, Ctrl-C) is held from the first PREPARE to the last COMMIT:
        # raised at the decision point when it came before (everything rolls back), only noted when it
        # came after (the load completes); interrupts.py says why.
        with held_interrupts() as held:
            if not self.atomic:
                self._commit_one_by_one()
            else:
                for name, tx in self.stores.items():
                    checkpoint(f"before-prepare:{name}")
                    tx.prepare()
                checkpoint("before-decision")
                held.raise_if_received()
                self._decide()
                checkpoint("after-decision")
                self._commit_prepared()
            if held.received is not None:
                self.notes.append(f"a stop request ({held.name}) came after the commit decision: "
                                  "the load was completed, not stopped")
                log.warning("%s came after the commit decision of district %s: the load completed",
                            held.name, self.district)

    def _decide(self) -> None:
        """Make the commit decision durable: after this returns, recovery commits every store."""
        if self.graph is not None:
            self._decide_on_graph()
            return
        record_decision(self.decision_store, self.run_id, self.district, sorted(self.stores))

    def _decide_on_graph(self) -> None:
        """Commit the graph's transaction (the decision); redo it if the server refused it for a concurrent write.

        Safe to redo only because such a refusal means the server rolled the whole transaction back (no
        marker, no node: the decision is still "not committed", and recovery would roll the prepared
        stores back), the district's advisory lock keeps every other load off this district's subgraph,
        so the redo reads what the first attempt read, and it verifies again before it commits. A commit
        whose outcome is unknown (InDoubtError) is never redone.
        """
        from cert_loader.stores.graph import is_write_conflict

        for attempt in range(1, GRAPH_COMMIT_ATTEMPTS + 1):
            try:
                if attempt > 1:
                    time.sleep(random.uniform(0.1, 0.5) * attempt)  # let the rival commit finish
                    self.graph = self.graph_redo()
                # The graph store adds run_id, district and the decision itself.
                self.graph.commit({"stores": ",".join(sorted(self.stores))})
                self.graph_state = "COMMITTED"
                return
            except Exception as exc:
                if self.graph_redo is None or attempt == GRAPH_COMMIT_ATTEMPTS or not is_write_conflict(exc):
                    self.graph_state = "FAILED"
                    raise
                log.warning("sp: the commit of district %s was refused for a concurrent write (attempt %d); "
                            "redoing the graph's transaction", self.district, attempt)
                self.notes.append(f"sp: commit attempt {attempt} refused for a concurrent write ({exc.reason}); "
                                  "the graph's transaction was redone and verified again")

    def _commit_prepared(self) -> None:
        failed = []
        for name, tx in self.stores.items():
            checkpoint(f"before-commit-prepared:{name}")
            try:
                tx.commit()
            except StoreError as exc:
                log.warning("%s: COMMIT PREPARED failed (%s); finishing it on a new connection", name, exc)
                if finish_prepared(tx.pg.config, tx.gid, commit=True):
                    tx.state = "COMMITTED"
                    self.notes.append(f"{name}: COMMIT PREPARED completed by recovery on a new connection ({exc})")
                else:
                    tx.state = "IN_DOUBT"
                    failed.append(name)
        if failed:
            raise InDoubtError(
                f"the load was decided COMMIT but {', '.join(failed)} could not be committed yet",
                district=self.district,
                hint="run `cert-loader recover`; it commits the prepared transactions",
            )

    def _commit_one_by_one(self) -> None:
        """Non-atomic mode (no prepared transactions on some server): commit store after store."""
        if self.graph is not None:
            self._decide_on_graph()
        for name, tx in self.stores.items():
            checkpoint(f"before-commit:{name}")
            tx.commit()

    def rollback(self) -> None:
        if self.graph is not None and self.graph_state not in ("COMMITTED",):
            with contextlib.suppress(Exception):
                self.graph.rollback()
            self.graph_state = "ROLLED_BACK"
        for tx in self.stores.values():
            tx.rollback()


# The coordinator's decision rows of loads without the graph (created by `cert-loader mark`, mark.py).
_DECISIONS = sql.Identifier(LOADER_SCHEMA, DECISION_TABLE)


# application_name of the fresh autocommit connections that recovery and the decision row use.
RECOVERY_APPLICATION = "cert_loader-recovery"


def record_decision(config: PgStoreConfig, run_id: str, district: str, stores: list[str]) -> None:
    """Commit the decision row for a load without the graph store (its own one-phase transaction)."""
    with PgStore(config, application=RECOVERY_APPLICATION) as store, mapped_errors(config.name, DECISION_QUALNAME):
        store.conn.execute(
            sql.SQL("INSERT INTO {} (run_id, district_id, stores) VALUES (%s, %s, %s)").format(_DECISIONS),
            (run_id, district, stores),
        )


def decision_recorded(configs: list[PgStoreConfig], run_id: str) -> bool:
    for config in configs:
        with PgStore(config, application=RECOVERY_APPLICATION) as store, mapped_errors(config.name, DECISION_QUALNAME):
            query = sql.SQL("SELECT 1 FROM {} WHERE run_id = %s").format(_DECISIONS)
            if store.conn.execute(query, (run_id,)).fetchone():
                return True
    return False


def finish_prepared(config: PgStoreConfig, gid: str, *, commit: bool) -> bool:
    """COMMIT/ROLLBACK PREPARED from a fresh connection; False when the server cannot be reached."""
    try:
        with PgStore(config, application=RECOVERY_APPLICATION) as store:
            if commit:
                store.conn.tpc_commit(gid)
            else:
                store.conn.tpc_rollback(gid)
        return True
    except (psycopg.Error, StoreError) as exc:
        log.error("%s: could not finish prepared transaction %s: %s", config.name, gid, exc)
        return False


@dataclass
class InDoubt:
    store: str
    gid: str
    run_id: str
    district: str
    action: str = "pending"  # committed | rolled back | skipped (load running, another role's) | failed


def recover(
    configs: dict[str, PgStoreConfig],
    graph_decision: Callable[[str], bool] | None,
    *,
    decision_configs: list[PgStoreConfig] | None = None,
) -> list[InDoubt]:
    """Resolve the loader's in-doubt prepared transactions on the given stores; idempotent.

    A prepared transaction of a district whose advisory lock is held belongs to a load that is
    still running: it is left alone. Otherwise it is committed when the run's decision was
    recorded (graph marker or decision row) and rolled back when not.
    """
    decision_configs = decision_configs if decision_configs is not None else list(configs.values())
    found: list[InDoubt] = []
    decided: dict[str, bool] = {}
    for name, config in configs.items():
        with PgStore(config, application=RECOVERY_APPLICATION) as store, mapped_errors(name):
            conn = store.conn
            # Only the role that prepared a transaction, or a superuser, may finish it (PostgreSQL's rule).
            rows = conn.execute(
                "SELECT gid, owner, owner = current_user OR (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) "
                "FROM pg_prepared_xacts WHERE database = current_database() AND gid LIKE %s",
                (GID_PREFIX + "%",),
            ).fetchall()
            for gid, owner, may_finish in rows:
                parsed = parse_gid(gid)
                if parsed is None:
                    continue
                run_id, _store, district = parsed
                item = InDoubt(name, gid, run_id, district)
                found.append(item)
                if not may_finish:
                    item.action = (f"skipped (prepared by role {owner!r}: only that role or a superuser can finish it; "
                                   "run `cert-loader recover` with that role's URL)")
                    continue
                key = LOCK_PREFIX + district
                got = conn.execute("SELECT pg_try_advisory_lock(hashtextextended(%s, 0))", (key,)).fetchone()[0]
                if not got:
                    item.action = "skipped (a load of the district is running)"
                    continue
                try:
                    if run_id not in decided:
                        decided[run_id] = bool(graph_decision and graph_decision(run_id)) or decision_recorded(
                            decision_configs, run_id
                        )
                    commit = decided[run_id]
                    if commit:
                        conn.tpc_commit(gid)
                    else:
                        conn.tpc_rollback(gid)
                    item.action = "committed" if commit else "rolled back"
                    log.warning("%s: recovered %s: %s", name, gid, item.action)
                finally:
                    conn.execute("SELECT pg_advisory_unlock(hashtextextended(%s, 0))", (key,))
    return found
