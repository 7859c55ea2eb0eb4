"""merge: make the district's rows equal the source — insert, update, delete, leave identical rows (DESIGN.md section 6)."""

from __future__ import annotations

from psycopg import sql

from cert_loader.plan import DISTRICT_COLUMN, TablePlan
from cert_loader.results import TableResult
from cert_loader.strategies.base import StoreContext, Strategy, key_join, upsert_from_stage


class MergeStrategy(Strategy):
    name = "merge"

    def load_table(self, ctx: StoreContext, tp: TablePlan, result: TableResult) -> None:
        stage = ctx.stage(tp)
        result.inserted, result.updated = upsert_from_stage(ctx, tp, stage)
        result.unchanged = tp.rows - result.inserted - result.updated

    def after(self, ctx: StoreContext, tables: list[TablePlan], results: dict) -> None:
        # Children before parents, after every upsert: a child that moved to a new parent has
        # already been updated when its old parent goes.
        for tp in reversed(tables):
            stage = ctx.staged[tp.table.key_id]
            key = tp.table.key
            deleted = ctx.pg.execute(
                sql.SQL("DELETE FROM {t} t WHERE t.{d} = %s AND NOT EXISTS (SELECT 1 FROM {s} s WHERE {on})").format(
                    t=tp.table.ident, d=sql.Identifier(DISTRICT_COLUMN), s=stage, on=key_join("s", "t", key)
                ),
                (ctx.district,),
                table=tp.table.qualname,
            )
            results[tp.table.key_id].deleted = deleted
