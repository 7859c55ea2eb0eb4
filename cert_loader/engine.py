"""Run a district load end to end: pre-flight → plan → load → verify → commit or roll back → report. No Dagster here."""

from __future__ import annotations

import logging
import secrets
import time
from dataclasses import dataclass, field
from typing import Mapping
from pathlib import Path

from cert_loader.config import LoaderConfig, PgStoreConfig
from cert_loader.constants import ATOMIC_MODES, DEFAULT_STRATEGY, DEFAULT_VERIFY, GRAPH_STORE, VERIFY_MODES
from cert_loader.errors import CertLoaderError, ConfigError, InDoubtError, VerificationError
from cert_loader.faults import checkpoint, release_pauses
from cert_loader.inputs import DistrictPaths, check_district_name
from cert_loader.preflight import Preflight, run_preflight
from cert_loader.report import LoadReport, graph_totals
from cert_loader.results import StoreResult, TableResult
from cert_loader.strategies import get_strategy
from cert_loader.store_context import StoreContext
from cert_loader.bulk_fk import BulkFkPlan, lock_writers, plan_bulk_fk
from cert_loader.transaction import StoreTransaction, UnitOfWork, make_gid, recover
from cert_loader.verify import verify_graph
from cert_loader.verify.cross_store import attach_results, check_load, plan_references, raise_for_failures
from cert_loader.progress import LockedProgress, NoProgress, Progress, TableCounter
from cert_loader.store_load import StoreJob, load_store, run_side_by_side
from cert_loader.backup import BackupRun
from cert_loader.backup.catalogue import prune_backups, record_load

log = logging.getLogger(__name__)

# Stores (and the graph) load in parallel threads unless told otherwise. On 2 cores the seed's district
# shape loaded its four PostgreSQL stores ~1.6x faster side by side; with the graph (the longest part,
# competing for the same cores) it came out even (issue 6, `cert-loader bench`, README "Performance").
PARALLEL_DEFAULT = True


@dataclass
class LoadOptions:
    strategy: str = DEFAULT_STRATEGY
    strict: bool = False
    atomic: str = ATOMIC_MODES[0]  # constants.ATOMIC_MODES says what each means
    only: dict[str, set[str]] | None = None  # a subset of tables per store (Dagster selections)
    load_graph: bool = True
    progress: Progress = field(default_factory=NoProgress)
    run_id: str | None = None
    manifest: Path | None = None  # the schema manifest to check the live catalogs against (Dagster)
    bulk_fk: bool = False  # take the loaded tables' FKs off and re-add them in the transaction (bulk_fk.py)
    parallel: bool = PARALLEL_DEFAULT  # load the stores (and the graph) in parallel threads
    verify: str = DEFAULT_VERIFY  # counts, or content too: every value against the file (constants.VERIFY_MODES)
    # Stores outside the load that cross-store references read, as committed (verify/cross_store.py).
    readers: dict[str, PgStoreConfig] = field(default_factory=dict)
    # Undo (DESIGN.md section 5, point 5): write the district's pre-image to data/backups/D/<run id>/ first;
    # after a committed load keep only the newest ``keep`` backups (None: all).
    backup: bool = False
    keep: int | None = None
    # Where the report, the backups and the load history go when the inputs live elsewhere (a restore's
    # inputs are its backup); None: the config's data root.
    home: Path | None = None
    restored_run: str | None = None  # a restore of this run's backup: the report says strategy "restore"


def new_run_id() -> str:
    return time.strftime("load-%Y%m%d-%H%M%S-", time.gmtime()) + secrets.token_hex(3)


def load_district(config: LoaderConfig, district: str, options: LoadOptions | None = None) -> LoadReport:
    """Load one district into the configured stores, all-or-nothing; always returns (and writes) the report."""
    options = options or LoadOptions()
    run_id = options.run_id or new_run_id()
    report = LoadReport(run_id=run_id, district=district,
                        strategy="restore" if options.restored_run else options.strategy)
    paths = DistrictPaths(options.home or config.data_root, district)
    pf: Preflight | None = None
    uow: UnitOfWork | None = None
    stopped: BaseException | None = None
    try:
        check_district_name(district)
        if options.atomic not in ATOMIC_MODES:
            raise ConfigError(f"unknown atomic mode {options.atomic!r}", hint=f"choose from {', '.join(ATOMIC_MODES)}")
        if options.verify not in VERIFY_MODES:
            raise ConfigError(f"unknown verify mode {options.verify!r}", hint=f"choose from {', '.join(VERIFY_MODES)}")
        pf = run_preflight(
            config, district, strategy=options.strategy, strict=options.strict, only=options.only,
            lock=True, before_lock=lambda p: _recover_before_load(p, report), manifest=options.manifest,
            readers=options.readers,
        )
        report.validation_status = pf.gate.status
        bulk = plan_bulk_fks(pf, options)
        report.warnings = list(pf.plan.warnings)
        pf.plan.raise_for_problems()
        atomic = _decide_atomicity(pf, options, report)
        # Shared per store; exclusive for bulk-FK (its ACCESS EXCLUSIVE locks never meet another load).
        lock_writers(pf.pg, exclusive=options.bulk_fk, district=district)
        uow = _run_transactions(pf, options, report, run_id, atomic, bulk)
        report.finish("SUCCESS")
        _after_commit(paths.data_root, report, options)
    except CertLoaderError as exc:
        _fail(report, uow, exc)
    except Exception as exc:  # an unexpected bug still rolls everything back and is reported
        log.exception("unexpected error during the load of %s", district)
        _fail(report, uow, CertLoaderError(f"unexpected error: {type(exc).__name__}: {exc}", district=district))
    except BaseException as exc:  # a stop request: Dagster's run termination, Ctrl-C (interrupts.py)
        stopped = exc
        _record_stop(report, uow, exc)
    finally:
        options.progress.close()
        if pf is not None:
            pf.close()  # closing the sessions frees the district's advisory locks
    try:
        report.write(paths.report_file)
    except OSError as exc:
        log.error("could not write the load report %s: %s", paths.report_file, exc)
    if stopped is not None:
        raise stopped  # the caller (Dagster, the CLI) ends the run as stopped, with the report written
    return report


def _stop_cause(exc: BaseException) -> str:
    if isinstance(exc, KeyboardInterrupt):
        return "Ctrl-C"
    if isinstance(exc, SystemExit):
        return "exit requested"
    return f"run terminated: {type(exc).__name__}"  # Dagster's DagsterExecutionInterruptedError


def _record_stop(report: LoadReport, uow: UnitOfWork | None, exc: BaseException) -> None:
    """Report a load ended by a stop request: rolled back, unless the stop came after the commit had completed it."""
    cause = _stop_cause(exc)
    # ``uow`` is set only once _run_transactions returned, i.e. after the commit.
    committed = uow is not None or (bool(report.stores) and all(
        sr.transaction in ("COMMITTED", "PREPARED-then-COMMITTED") for sr in report.stores.values()))
    if committed:
        report.notes.append(f"load stopped ({cause}) after its commit: every store holds the district's new rows")
        for sr in report.stores.values():
            sr.status = "SUCCESS"
        report.finish("SUCCESS")
        log.warning("load of district %s stopped (%s) after its commit: it completed", report.district, cause)
        return
    in_doubt = any(sr.transaction == "IN_DOUBT" for sr in report.stores.values())
    if in_doubt:
        outcome = "prepared transactions left in doubt: `cert-loader recover` (or the next load) rolls them back"
    elif any(sr.transaction not in ("NOT_STARTED", "") for sr in report.stores.values()):
        outcome = "every store rolled back"
    else:
        outcome = "nothing was written"
    _fail(report, None, CertLoaderError(f"load interrupted ({cause}); {outcome}", district=report.district,
                                        details={"interrupted": cause}))


def _recover_before_load(pf: Preflight, report: LoadReport) -> None:
    """Resolve earlier runs' in-doubt transactions on the stores this load touches (DESIGN.md section 5, point 3)."""
    configs = {n: s.config for n, s in pf.pg.items() if pf.status[n].two_phase and pf.status[n].loader_schema}
    if not configs:
        return
    graph_decision = pf.graph_store.decision if pf.graph_store is not None else None
    for item in recover(configs, graph_decision):
        report.recovered.append(item.__dict__)
        log.warning("recovered an earlier run's prepared transaction: %s %s -> %s", item.store, item.gid, item.action)
        if item.district == pf.plan.district and item.action.startswith("skipped (prepared by"):
            # It holds the district's row locks: the load would wait for it forever (issue 7).
            raise InDoubtError(f"an earlier load of the district left prepared transaction {item.gid} that this "
                               f"role cannot finish: {item.action}", store=item.store, district=item.district)


def _decide_atomicity(pf: Preflight, options: LoadOptions, report: LoadReport) -> bool:
    without = [n for n, st in pf.status.items() if not st.two_phase]
    if not without and options.atomic != "off":
        return True
    reason = (
        "atomic commit switched off (--atomic=off)" if options.atomic == "off"
        else f"max_prepared_transactions = 0 on {', '.join(without)}"
    )
    if options.atomic == "required":
        raise ConfigError(
            f"two-phase commit is not available: {reason}",
            hint="set max_prepared_transactions > 0 on that server (restart needed), or pass --atomic=auto",
        )
    report.atomicity = "non-atomic"
    report.atomicity_reason = reason
    log.warning("committing store after store (non-atomic): %s", reason)
    return False


def plan_bulk_fks(pf: Preflight, options: LoadOptions) -> dict[str, BulkFkPlan]:
    """Bulk-FK mode: which FKs each store takes off; a table the role does not own is a pre-flight problem."""
    if not options.bulk_fk:
        return {}
    plans = {}
    for name, sp in pf.plan.stores.items():
        plans[name] = plan_bulk_fk(pf.pg[name], [tp.table.key_id for tp in sp.loaded], options.strategy)
        pf.plan.problems.extend(plans[name].problems)
        pf.plan.warnings.extend(f"{name}: --bulk-fk: {kept}" for kept in plans[name].kept)
    return plans


def _run_transactions(pf: Preflight, options: LoadOptions, report: LoadReport, run_id: str, atomic: bool,
                      bulk: dict[str, BulkFkPlan] | None = None) -> UnitOfWork:
    district = pf.plan.district
    strategy = get_strategy(options.strategy)
    txs = {
        name: StoreTransaction(store, make_gid(run_id, name, district), two_phase=atomic)
        for name, store in pf.pg.items()
    }
    load_graph = options.load_graph and pf.graph_input is not None
    first = next(iter(pf.pg.values())).config if pf.pg else None
    uow = UnitOfWork(district, run_id, txs, None, first, atomic)
    if load_graph:  # a decision commit refused for a concurrent write redoes the graph's part (transaction.py)
        uow.graph_redo = lambda: _load_graph(pf, options, report, run_id)
    report_stores = report.stores
    for name in pf.pg:
        report_stores[name] = StoreResult(name, two_phase=atomic)
    if load_graph:
        report_stores[GRAPH_STORE] = StoreResult(GRAPH_STORE, two_phase=False)
        pf.graph_store.ensure_schema(list(pf.graph_input.nodes))
    total_tables = sum(len(sp.loaded) for sp in pf.plan.stores.values())
    progress = LockedProgress(options.progress) if options.parallel else options.progress
    progress.start(pf.plan.rows, total_tables)
    counter = TableCounter(total_tables)
    backup = BackupRun(options.home or pf.config.data_root, district, run_id, options.strategy) if options.backup else None
    jobs = [StoreJob(name, tx, pf.plan.stores[name], report_stores[name], (bulk or {}).get(name), backup)
            for name, tx in txs.items()]

    def store_task(job: StoreJob):
        return lambda: load_store(job, strategy, district, run_id[-6:], progress, counter, verify=options.verify)

    def graph_task() -> None:
        # Set as soon as it exists, so a failure elsewhere rolls the graph back too.
        uow.graph = _load_graph(pf, options, report, run_id, backup)

    tasks = [store_task(job) for job in jobs] + ([graph_task] if load_graph else [])
    try:
        # Every store loads and verifies (side by side when parallel) before any is prepared (section 5).
        run_side_by_side(tasks, options.parallel, on_stop=lambda: _cancel_statements(txs))
        _verify_references(pf, report, txs, run_id)  # across the open transactions, before the first PREPARE
        if backup is not None:
            report.backup = backup.finish().to_json()  # fsynced, manifest last: before the decision
        uow.commit()
    except BaseException:
        uow.rollback()
        _record_outcomes(report, uow, load_graph)
        _discard_backup(backup, report)
        raise
    _record_outcomes(report, uow, load_graph)
    for sr in report_stores.values():
        sr.status = "SUCCESS"
    return uow


def _verify_references(pf: Preflight, report: LoadReport, txs: dict[str, StoreTransaction], run_id: str) -> None:
    """Every cross-store reference whose child or parent table this load wrote (DESIGN.md section 7)."""
    if not pf.references:
        return
    touched = {name: [tp.table.key_id for tp in sp.loaded] for name, sp in pf.plan.stores.items()}
    results = check_load(pf.references, pf.plan.district, touched, {n: tx.pg for n, tx in txs.items()},
                         pf.readers, run_id[-6:])
    report.cross_store = results
    attach_results(results, report.stores)
    raise_for_failures(results, pf.plan.district)


def _load_graph(pf: Preflight, options: LoadOptions, report: LoadReport, run_id: str,
                backup: BackupRun | None = None):
    sr = report.stores[GRAPH_STORE]
    started = time.monotonic()
    graph_tx = pf.graph_store.begin(pf.plan.district, run_id)
    try:
        checkpoint("graph-begun")
        if backup is not None:
            backup.capture_graph(graph_tx.cypher.run)  # the subgraph this transaction sees, before its first write
        sr.tables = graph_tx.load(pf.graph_input, options.strategy)
        checks = verify_graph(graph_tx.cypher, pf.graph_input, options.strategy, options.verify)
    except BaseException:
        graph_tx.rollback()
        raise
    # Each check goes to its label's/type's result; a check on a label the source lacks (merge or
    # replace found leftovers) gets a result of its own so the report shows it.
    by_table = {t.graph: t for t in sr.tables}
    for c in checks:
        if c.graph not in by_table:
            by_table[c.graph] = TableResult.of_graph(c.graph, 0)
            sr.tables.append(by_table[c.graph])
        if not any(c is have for have in by_table[c.graph].checks):
            by_table[c.graph].checks.append(c)
    report.graph = graph_totals(sr.tables)
    sr.duration_s = time.monotonic() - started
    failed = [c for c in checks if not c.passed]
    if failed:
        graph_tx.rollback()
        sr.status = "FAILED"
        raise VerificationError(
            f"graph verification failed: {failed[0].table}: {failed[0].check}: {failed[0].detail}",
            store=GRAPH_STORE, table=failed[0].table, district=pf.plan.district, checks=failed,
        )
    return graph_tx


def _discard_backup(backup: BackupRun | None, report: LoadReport) -> None:
    """A load rolled back everywhere leaves the stores as its backup found them: the backup goes.

    Kept when any store committed or is in doubt (recovery may still commit the load).
    """
    if backup is None:
        return
    if any(sr.transaction in ("IN_DOUBT", "COMMITTED", "PREPARED-then-COMMITTED") for sr in report.stores.values()):
        report.notes.append(f"backup kept: {backup.paths.dir}")
        return
    backup.discard()
    if report.backup:
        report.backup["discarded"] = "the load rolled back: the stores hold what the backup held"


def _after_commit(home: Path, report: LoadReport, options: LoadOptions) -> None:
    """The load history (what a restore checks for later loads) and backup retention; never fails a committed load."""
    try:
        entry = {"run_id": report.run_id, "strategy": report.strategy,
                 "completed_at": report.completed_at.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                 "backup": report.backup["path"] if report.backup else None}
        if options.restored_run:
            entry["restored_run"] = options.restored_run
        record_load(home, report.district, entry)
    except OSError as exc:
        log.error("could not record load %s in the district's history: %s", report.run_id, exc)
        report.notes.append(f"not recorded in the load history ({exc}): a restore will not know of this load")
    if options.backup and options.keep is not None:
        try:
            removed = prune_backups(home, report.district, options.keep, protect=(report.run_id,))
        except (OSError, CertLoaderError) as exc:
            log.warning("could not prune the backups of district %s: %s", report.district, exc)
        else:
            if removed:
                report.notes.append(f"--keep {options.keep}: removed backup(s) {', '.join(removed)}")


def _cancel_statements(txs: dict[str, StoreTransaction]) -> None:
    """A stop request: cancel what each store's connection is running, so its thread ends soon."""
    release_pauses()
    for tx in txs.values():
        if tx.state == "ACTIVE":
            tx.pg.conn.cancel_safe(timeout=5)


def _record_outcomes(report: LoadReport, uow: UnitOfWork, load_graph: bool) -> None:
    report.notes.extend(uow.notes)
    for name, tx in uow.stores.items():
        report.stores[name].transaction = tx.outcome
    if load_graph and GRAPH_STORE in report.stores:
        report.stores[GRAPH_STORE].transaction = uow.graph_state


def _fail(report: LoadReport, uow: UnitOfWork | None, exc: CertLoaderError) -> None:
    in_doubt = isinstance(exc, InDoubtError) or any(
        s.transaction == "IN_DOUBT" for s in report.stores.values()
    )
    for sr in report.stores.values():
        if sr.status not in ("FAILED",):
            sr.status = "ROLLED_BACK" if sr.transaction == "ROLLED_BACK" else ("IN_DOUBT" if sr.transaction == "IN_DOUBT" else "FAILED")
        if exc.store == sr.store:
            sr.error = str(exc)
    report.error = exc.attrs() | {"rolled_back": not in_doubt}
    report.finish("FAILED")
    log.error("load of district %s failed: %s", report.district, exc)


def plan_district(config: LoaderConfig, district: str, options: LoadOptions | None = None) -> Preflight:
    """Pre-flight only: nothing is written. The caller reads ``.plan``/``.status`` and must ``close()``."""
    options = options or LoadOptions()
    check_district_name(district)
    pf = run_preflight(config, district, strategy=options.strategy, strict=options.strict, only=options.only,
                       manifest=options.manifest, readers=options.readers)
    try:
        plan_bulk_fks(pf, options)
    except BaseException:
        pf.close()
        raise
    return pf


def unload_district(config: LoaderConfig, district: str,
                    readers: Mapping[str, PgStoreConfig] | None = None) -> dict[str, dict[str, int]]:
    """Delete the district's rows from every configured store, children first (CERT clean-up).

    Each PostgreSQL store deletes in one transaction; with prepared transactions available the
    stores commit together through the same unit of work as a load. A cross-store reference whose
    parent rows the unload deletes while another store's rows of the district still point at them
    (that store read as committed, from ``readers``, when it is not unloaded too) refuses the unload.
    """
    from cert_loader.catalog import read_catalog
    from cert_loader.plan import LoadPlan, plan_unload
    from cert_loader.preflight import open_stores

    check_district_name(district)
    run_id = new_run_id().replace("load-", "unload-")
    pf = Preflight(config, DistrictPaths(config.data_root, district), LoadPlan(district, "replace"))
    deleted: dict[str, dict[str, int]] = {}
    try:
        open_stores(pf)
        pf.plan.raise_for_problems()
        for store in pf.pg.values():
            store.lock_district(district)
        lock_writers(pf.pg, exclusive=False, district=district)  # waits out a bulk-FK load of a store
        catalogs = {n: read_catalog(s.conn, n) for n, s in pf.pg.items()}
        references, pf.readers = plan_references(config.data_root, pf.plan, catalogs, readers, lock=True)
        pf.plan.raise_for_problems()
        atomic = all(st.two_phase for st in pf.status.values())
        txs = {n: StoreTransaction(s, make_gid(run_id, n, district), atomic) for n, s in pf.pg.items()}
        first = next(iter(pf.pg.values())).config if pf.pg else None
        uow = UnitOfWork(district, run_id, txs, None, first, atomic)
        warned = len(pf.plan.warnings)
        try:
            for name, tx in txs.items():
                sp = plan_unload(name, read_catalog(tx.pg.conn, name), pf.plan)
                tx.begin()
                ctx = StoreContext(tx.pg, sp, district, run_id[-6:])
                for warning in pf.plan.warnings[warned:]:  # before the deletes, which it says may be slow
                    log.warning(warning)
                warned = len(pf.plan.warnings)
                deleted[name] = {tp.table.qualname: ctx.delete_district(tp) for tp in reversed(sp.tables)}
            results = check_load(references, district, {n: list(c.tables) for n, c in catalogs.items()},
                                 {n: tx.pg for n, tx in txs.items()}, pf.readers, run_id[-6:])
            raise_for_failures(results, district, hint="unload the stores whose rows still reference them too "
                               "(or all stores), or keep the parent rows")
            uow.commit()
        except BaseException:
            uow.rollback()
            raise
        if config.graph is not None:
            from cert_loader.stores.graph import GraphStore

            with GraphStore(config.graph) as graph:
                deleted[GRAPH_STORE] = {"nodes": graph.unload(district)}
    finally:
        pf.close()
    return deleted
