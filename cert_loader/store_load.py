"""One PostgreSQL store's part of a district load (strategy, verification, bulk-FK) and running the stores side by side.

Each store has its own connection and transaction (DESIGN.md section 5), so stores can load in
parallel threads: every store still finishes loading and verifying before the unit of work prepares
any of them, so the commit protocol is the same either way (issue 6).
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any, Callable

from cert_loader.bulk_fk import BulkFkPlan, drop_fks, restore_fks
from cert_loader.constants import DEFAULT_VERIFY
from cert_loader.errors import VerificationError
from cert_loader.faults import checkpoint
from cert_loader.plan import StorePlan, TablePlan
from cert_loader.progress import Progress, TableCounter
from cert_loader.results import StoreResult, TableResult
from cert_loader.strategies import Strategy
from cert_loader.store_context import StoreContext
from cert_loader.transaction import StoreTransaction
from cert_loader.verify import verify_table
from cert_loader.verify.content import verify_contents

log = logging.getLogger(__name__)

# While a stop request ends a parallel load, the threads are asked to stop this often until they have:
# a cancel reaches only the statement running at that moment, so it is repeated for the next one (issue 14).
STOP_POLL_S = 0.5


@dataclass
class StoreJob:
    """What one store's thread needs: its transaction, its plan, where its results go."""

    name: str
    tx: StoreTransaction
    plan: StorePlan
    result: StoreResult
    bulk: BulkFkPlan | None = None
    backup: Any = None  # a backup.BackupRun: the store's tables are captured right after BEGIN (section 5, point 5)


def table_result(store: str, tp: TablePlan) -> TableResult:
    return TableResult(
        store=store, table=tp.table.qualname, source_rows=tp.rows,
        source_file=str(tp.source.path) if tp.source else None, skipped=tp.skipped,
    )


def load_store(job: StoreJob, strategy: Strategy, district: str, run_tag: str, progress: Progress,
               counter: TableCounter, *, verify: str = DEFAULT_VERIFY) -> None:
    """Begin the store's transaction, load its tables in FK order and verify them inside it (section 5, step 2).

    ``verify="content"`` adds each table's content check (verify/content.py) after its counts and FKs.
    """
    name, sp, sr = job.name, job.plan, job.result
    started = time.monotonic()
    job.tx.begin()
    if job.backup is not None:
        job.backup.capture_store(job.tx.pg, [tp.table for tp in sp.loaded])  # before the first write
    ctx = StoreContext(job.tx.pg, sp, district, run_tag, on_batch=lambda t, n: progress.advance(n))
    results = {tp.table.key_id: table_result(name, tp) for tp in sp.tables}
    sr.tables = list(results.values())
    loaded = sp.loaded
    bulk = job.bulk.drop if job.bulk is not None else []
    if bulk:
        drop_fks(ctx.pg, bulk)
    strategy.before(ctx, loaded, results)
    for tp in loaded:
        t0 = time.monotonic()
        strategy.load_table(ctx, tp, results[tp.table.key_id])
        results[tp.table.key_id].duration_s = time.monotonic() - t0
        progress.table_done(name, tp.table.qualname)
        counter.one_more(name, tp.table.qualname)
        checkpoint(f"after-table:{name}:{tp.table.qualname}")
    strategy.after(ctx, loaded, results)
    for tp in loaded:
        results[tp.table.key_id].checks = verify_table(ctx, strategy, tp)
    if verify == "content":
        for tp, content in zip(loaded, verify_contents(ctx, strategy, loaded)):
            results[tp.table.key_id].checks.append(content.result)
    failed = [c for c in sr.checks if not c.passed]
    if not failed and bulk:
        # After the checks, so a bad row is reported exactly as in ordinary mode (with examples);
        # ADD CONSTRAINT then validates every row of each table in one pass.
        restore_fks(ctx.pg, bulk)
    ctx.drop_staging()
    sr.duration_s = time.monotonic() - started
    if failed:
        sr.status = "FAILED"
        raise VerificationError(
            f"post-load verification failed: {failed[0].table}: {failed[0].check}: {failed[0].detail}"
            + (f" (and {len(failed) - 1} more)" if len(failed) > 1 else ""),
            store=name, table=failed[0].table, district=district, checks=failed,
        )
    sr.status = "VERIFIED"
    checkpoint(f"verified:{name}")


def run_side_by_side(tasks: list[Callable[[], Any]], parallel: bool,
                     on_stop: Callable[[], None] | None = None) -> list[Any]:
    """Run the tasks one after another, or all at once in threads; raise the error of the first that failed.

    In parallel every task runs to its end (a store's transaction is rolled back by the caller), and the
    error raised is that of the earliest failing task in the given order, as sequential loading would
    raise it; the others are logged. A stop request (an interrupt raised in the main thread: Dagster's
    run termination, Ctrl-C) calls ``on_stop`` (cancel the stores' statements) until every task has
    ended, then is raised: nothing is rolled back under a thread still using its connection.
    """
    if not parallel or len(tasks) < 2:
        try:
            return [task() for task in tasks]
        except Exception:
            raise
        except BaseException:
            _call_quietly(on_stop)
            raise
    with ThreadPoolExecutor(max_workers=len(tasks), thread_name_prefix="cert_loader-store") as pool:
        futures = [pool.submit(task) for task in tasks]
        try:
            # Waited for in slices: polars' SIGINT handler restarts the interrupted wait (SA_RESTART), so
            # Python's handler (Dagster's, Ctrl-C's) only runs when this thread wakes (pola-rs/polars#21739).
            while wait(futures, timeout=STOP_POLL_S).not_done:
                pass
            errors = [f.exception() for f in futures]
        except BaseException:  # only an interrupt reaches the waiting main thread
            while not all(f.done() for f in futures):
                _call_quietly(on_stop)
                wait(futures, timeout=STOP_POLL_S)
            raise
    failed = [e for e in errors if e is not None]
    for extra in failed[1:]:
        log.warning("another part of the load failed too: %s", extra)
    if failed:
        raise failed[0]
    return [f.result() for f in futures]


def _call_quietly(on_stop: Callable[[], None] | None) -> None:
    if on_stop is None:
        return
    try:
        on_stop()
    except Exception as exc:  # a failed cancel must not hide the stop request itself
        log.warning("could not cancel the running statements: %s", exc)
