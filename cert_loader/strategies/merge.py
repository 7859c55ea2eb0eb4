"""merge: make the district's rows equal the source — insert, update, delete, leave identical rows (DESIGN.md section 6)."""

from __future__ import annotations

from psycopg import sql

from cert_loader.plan import TablePlan
from cert_loader.constants import DISTRICT_COLUMN
from cert_loader.store_context import StoreContext, key_join
from cert_loader.strategies.upsert import UpsertStrategy


class MergeStrategy(UpsertStrategy):
    """Upsert every table (parents first), then delete what the source no longer has (children first)."""

    name = "merge"

    def after(self, ctx: StoreContext, tables: list[TablePlan], results: dict) -> None:
        # Children before parents, after every upsert: a child that moved to a new parent has
        # already been updated when its old parent goes.
        for tp in reversed(tables):
            stage = ctx.staged[tp.table.key_id]
            key = tp.table.key
            # Every source key is in the district now and the stage's keys are unique, so a district
            # holding exactly the source's row count has nothing to delete: the count taken by the
            # upsert instead of an anti-join over the table (the unchanged district, issue 6). Deletes
            # run children first, so nothing has changed this table's count since its upsert; the
            # verification counts again anyway.
            counted = ctx.rows_after.get(tp.table.key_id)
            if (counted if counted is not None else ctx.count_district(tp)) == tp.rows:
                results[tp.table.key_id].deleted = 0
                continue
            deleted = ctx.pg.execute(
                sql.SQL("DELETE FROM {t} t WHERE t.{d} = %s AND NOT EXISTS (SELECT 1 FROM {s} s WHERE {on})").format(
                    t=tp.table.ident, d=sql.Identifier(DISTRICT_COLUMN), s=stage, on=key_join("s", "t", key)
                ),
                (ctx.district,),
                table=tp.table.qualname,
            )
            results[tp.table.key_id].deleted = deleted
