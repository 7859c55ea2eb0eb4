"""insert: new rows only, straight COPY into the table; an existing key fails the load (DESIGN.md section 6)."""

from __future__ import annotations

from cert_loader.plan import TablePlan
from cert_loader.results import TableResult
from cert_loader.strategies.base import Strategy
from cert_loader.store_context import StoreContext


class InsertStrategy(Strategy):
    name = "insert"

    def before(self, ctx: StoreContext, tables: list[TablePlan], results: dict) -> None:
        # The district may already have other rows; the count check expects them plus the file.
        for tp in tables:
            ctx.rows_before[tp.table.key_id] = ctx.count_district(tp)

    def load_table(self, ctx: StoreContext, tp: TablePlan, result: TableResult) -> None:
        result.inserted = ctx.copy(tp, tp.table.ident)

    def expected_rows(self, ctx: StoreContext, tp: TablePlan) -> int:
        return ctx.rows_before.get(tp.table.key_id, 0) + tp.rows
