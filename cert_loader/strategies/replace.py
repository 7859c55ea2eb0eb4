"""replace: delete the district's rows children-first, then insert the file; safe to re-run (DESIGN.md section 6)."""

from __future__ import annotations

from cert_loader.plan import TablePlan
from cert_loader.results import TableResult
from cert_loader.strategies.base import Strategy
from cert_loader.store_context import StoreContext


class ReplaceStrategy(Strategy):
    name = "replace"

    def before(self, ctx: StoreContext, tables: list[TablePlan], results: dict) -> None:
        for tp in reversed(tables):
            results[tp.table.key_id].deleted = ctx.delete_district(tp)

    def load_table(self, ctx: StoreContext, tp: TablePlan, result: TableResult) -> None:
        result.inserted = ctx.copy(tp, tp.table.ident)
