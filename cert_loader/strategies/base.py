"""The relational strategies' interface, and the upsert from a staging table that upsert and merge share."""

from __future__ import annotations

from psycopg import sql

from cert_loader.plan import TablePlan
from cert_loader.results import TableResult
from cert_loader.store_context import StoreContext, key_join

# PostgreSQL 15 brought MERGE; older servers take INSERT … ON CONFLICT (~40% slower on unchanged rows).
MERGE_VERSION = 150000


def upsert_from_stage(ctx: StoreContext, tp: TablePlan, stage: sql.Identifier) -> tuple[int, int]:
    """Insert new keys, update changed rows, leave identical rows untouched; returns (inserted, updated).

    The ``IS DISTINCT FROM`` guard leaves unchanged rows untouched (no new row version, no bloat,
    DESIGN.md section 10). On PostgreSQL 15+ one MERGE does it through a merge join of the stage's
    and the table's key indexes (~0.9 s per 1M unchanged rows, against ~1.8 s hashed and ~3.3 s for
    ON CONFLICT, issue 6); MERGE (before 17) reports only a total, so the insertions are the growth
    of the district's row count (every source row carries the district, ``source_batches``).
    """
    if ctx.pg.conn.info.server_version < MERGE_VERSION:
        return _upsert_on_conflict(ctx, tp, stage)
    key = tp.table.key
    cols = tp.columns
    others = [c for c in cols if c not in key]
    ins = sql.SQL("WHEN NOT MATCHED THEN INSERT ({cols}) VALUES ({vals})").format(
        cols=sql.SQL(", ").join(map(sql.Identifier, cols)),
        vals=sql.SQL(", ").join(sql.Identifier("s", c) for c in cols),
    )
    upd = sql.SQL("")
    if others:
        upd = sql.SQL("WHEN MATCHED AND ({old}) IS DISTINCT FROM ({new}) THEN UPDATE SET {sets} ").format(
            old=sql.SQL(", ").join(sql.Identifier("t", c) for c in others),
            new=sql.SQL(", ").join(sql.Identifier("s", c) for c in others),
            sets=sql.SQL(", ").join(sql.SQL("{0} = {1}").format(sql.Identifier(c), sql.Identifier("s", c)) for c in others),
        )
    query = sql.SQL("MERGE INTO {t} t USING {s} s ON {on} {upd}{ins}").format(
        t=tp.table.ident, s=stage, on=key_join("s", "t", key), upd=upd, ins=ins
    )
    before = ctx.count_district(tp)
    with ctx.without_hash_joins():
        changed = ctx.pg.execute(query, table=tp.table.qualname)
    after = ctx.count_district(tp) if changed else before  # an unchanged district costs no second count
    ctx.rows_after[tp.table.key_id] = after
    inserted = after - before
    return inserted, changed - inserted


def _upsert_on_conflict(ctx: StoreContext, tp: TablePlan, stage: sql.Identifier) -> tuple[int, int]:
    """INSERT … ON CONFLICT DO UPDATE for servers without MERGE; ``xmax = 0`` tells an insert from an update."""
    key = tp.table.key
    cols = tp.columns
    others = [c for c in cols if c not in key]
    col_list = sql.SQL(", ").join(map(sql.Identifier, cols))
    if others:
        action = sql.SQL("DO UPDATE SET {sets} WHERE ({old}) IS DISTINCT FROM ({new})").format(
            sets=sql.SQL(", ").join(sql.SQL("{0} = EXCLUDED.{0}").format(sql.Identifier(c)) for c in others),
            old=sql.SQL(", ").join(sql.Identifier("t", c) for c in others),
            new=sql.SQL(", ").join(sql.Identifier("excluded", c) for c in others),
        )
    else:
        action = sql.SQL("DO NOTHING")
    query = sql.SQL(
        "WITH w AS (INSERT INTO {t} AS t ({cols}) SELECT {cols} FROM {s} ON CONFLICT ({key}) {action} "
        "RETURNING (xmax = 0) AS inserted) "
        "SELECT count(*) FILTER (WHERE inserted), count(*) FILTER (WHERE NOT inserted) FROM w"
    ).format(t=tp.table.ident, cols=col_list, s=stage, key=sql.SQL(", ").join(map(sql.Identifier, key)), action=action)
    inserted, updated = ctx.pg.rows(query, table=tp.table.qualname)[0]
    return inserted, updated


class Strategy:
    """Hooks around the per-table work, so multi-table phases (deletes children-first) have a place."""

    name = ""

    def before(self, ctx: StoreContext, tables: list[TablePlan], results: dict) -> None:
        """Runs once before any table is loaded (tables are parents-first)."""

    def load_table(self, ctx: StoreContext, tp: TablePlan, result: TableResult) -> None:
        raise NotImplementedError

    def after(self, ctx: StoreContext, tables: list[TablePlan], results: dict) -> None:
        """Runs once after every table is loaded, before verification."""

    def expected_rows(self, ctx: StoreContext, tp: TablePlan) -> int:
        """Rows of the district the count check expects after the load."""
        return tp.rows
