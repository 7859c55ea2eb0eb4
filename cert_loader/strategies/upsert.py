"""upsert: insert new rows, update changed non-key columns, leave the rest (DESIGN.md section 6)."""

from __future__ import annotations

from cert_loader.plan import TablePlan
from cert_loader.results import TableResult
from cert_loader.strategies.base import Strategy, upsert_from_stage
from cert_loader.store_context import StoreContext


class UpsertStrategy(Strategy):
    name = "upsert"

    def load_table(self, ctx: StoreContext, tp: TablePlan, result: TableResult) -> None:
        stage = ctx.stage(tp)
        result.inserted, result.updated = upsert_from_stage(ctx, tp, stage)
        result.unchanged = tp.rows - result.inserted - result.updated
