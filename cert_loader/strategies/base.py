"""What every strategy shares: streaming a table's checked batches, COPY, staging tables and key SQL."""

from __future__ import annotations

import contextlib
import itertools
from dataclasses import dataclass, field
from typing import Callable, Iterator

import pyarrow as pa
import pyarrow.compute as pc
from psycopg import sql

from cert_loader.convert import BatchConverter
from cert_loader.errors import InputError, StoreError
from cert_loader.plan import DISTRICT_COLUMN, StorePlan, TablePlan
from cert_loader.results import TableResult
from cert_loader.stores.postgres import PgStore

# Staging tables live in the loader's own schema, not in pg_temp: PostgreSQL refuses to PREPARE a
# transaction that touched temporary objects, and the load must stay two-phase (DESIGN.md section 5).
STAGING_SCHEMA = "cert_loader"


@dataclass
class StoreContext:
    """One store's open transaction and what the strategies need to know about the load."""

    pg: PgStore
    plan: StorePlan
    district: str
    run_tag: str  # short, unique per run: names the staging tables
    on_batch: Callable[[str, int], None] = lambda table, rows: None
    staged: dict[tuple[str, str], sql.Identifier] = field(default_factory=dict)
    rows_before: dict[tuple[str, str], int] = field(default_factory=dict)
    rows_after: dict[tuple[str, str], int] = field(default_factory=dict)  # the district's rows after its upsert
    _seq: itertools.count = field(default_factory=itertools.count)

    @property
    def store(self) -> str:
        return self.pg.name

    def source_batches(self, tp: TablePlan) -> Iterator[pa.RecordBatch]:
        """The file's rows, converted and checked, with district_id checked (or filled) per row."""
        converter = BatchConverter(self.store, tp.table.qualname, tp.conversions)
        row = 1
        for raw in tp.source.batches([c.source for c in tp.conversions]):
            batch = converter.convert(raw, row)
            if tp.fill_district:
                batch = batch.append_column(DISTRICT_COLUMN, pa.array([self.district] * batch.num_rows, pa.string()))
            else:
                self._check_district(tp, batch.column(DISTRICT_COLUMN), row)
            yield batch
            self.on_batch(tp.table.qualname, batch.num_rows)
            row += batch.num_rows

    def _check_district(self, tp: TablePlan, col: pa.Array, first_row: int) -> None:
        wrong = pc.fill_null(pc.not_equal(col, pa.scalar(self.district, col.type)), True)
        if pc.any(wrong).as_py():
            idx = pc.index(wrong, True).as_py()
            raise InputError(
                f"row {first_row + idx} belongs to district {col[idx].as_py()!r}, not {self.district!r}",
                store=self.store,
                table=tp.table.qualname,
                district=self.district,
                hint="a district's files must hold only that district's rows",
            )

    def copy(self, tp: TablePlan, target: sql.Composable) -> int:
        converter = BatchConverter(self.store, tp.table.qualname, tp.conversions)
        return self.pg.copy_arrow(target, tp.columns, self.source_batches(tp), converter.encoder, table=tp.table.qualname)

    def stage(self, tp: TablePlan) -> sql.Identifier:
        """COPY the file into an unlogged staging table with the target's column types.

        A unique index on the key then proves no key is in the file twice (one sort, ~0.3 s per 1M
        rows, where a GROUP BY spilled to disk for ~1.5 s) and lets the upsert merge-join the stage
        with the table's own key index (issue 6).
        """
        name = sql.Identifier(STAGING_SCHEMA, f"stage_{self.run_tag}_{next(self._seq)}")
        cols = sql.SQL(", ").join(map(sql.Identifier, tp.columns))
        self.pg.execute(
            sql.SQL("CREATE UNLOGGED TABLE {} AS SELECT {} FROM {} WITH NO DATA").format(name, cols, tp.table.ident),
            table=tp.table.qualname,
        )
        self.staged[tp.table.key_id] = name
        self.copy(tp, name)
        if tp.table.key:
            self._index_stage(tp, name)
            self._check_key_owner(tp, name)
        return name

    def _index_stage(self, tp: TablePlan, stage: sql.Identifier) -> None:
        """A key twice in the file must stop the load (never touch it): the unique index refuses it."""
        key = tp.table.key
        try:
            self.pg.execute(
                sql.SQL("CREATE UNIQUE INDEX ON {} ({})").format(stage, sql.SQL(", ").join(map(sql.Identifier, key))),
                table=tp.table.qualname,
            )
        except StoreError as exc:
            if exc.details.get("sqlstate") != "23505":
                raise
            # The server's detail names one duplicate: "Key (district_id, id)=(d1, 7) is duplicated."
            example = exc.reason.split("Key ", 1)[-1].split(" is duplicated", 1)[0] if "Key " in exc.reason else ""
            raise StoreError(
                f"the file has key ({', '.join(key)}) more than once" + (f", e.g. {example}" if example else ""),
                store=self.store, table=tp.table.qualname, hint="remove the duplicate rows upstream",
                details={"examples": [example] if example else []},
            ) from exc

    def _check_key_owner(self, tp: TablePlan, stage: sql.Identifier) -> None:
        """A key owned by another district must stop the load before anything of this district changes."""
        key = tp.table.key
        if DISTRICT_COLUMN in key:
            return
        foreign = self.pg.rows(
            sql.SQL("SELECT {sk}, t.{d} FROM {s} s JOIN {t} t ON {on} WHERE t.{d} IS DISTINCT FROM %s LIMIT 5").format(
                sk=sql.SQL(", ").join(sql.Identifier("s", k) for k in key),
                s=stage, t=tp.table.ident, on=key_join("s", "t", key), d=sql.Identifier(DISTRICT_COLUMN),
            ),
            (self.district,),
            table=tp.table.qualname,
        )
        if foreign:
            raise StoreError(
                f"key {foreign[0][:-1]} already belongs to district {foreign[0][-1]!r}; "
                f"this load only touches district {self.district!r}",
                store=self.store, table=tp.table.qualname, hint="fix the key upstream",
                details={"examples": [list(map(str, f)) for f in foreign]},
            )

    def drop_staging(self) -> None:
        for name in self.staged.values():
            self.pg.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(name))
        self.staged.clear()

    def count_district(self, tp: TablePlan) -> int:
        return self.pg.scalar(
            sql.SQL("SELECT count(*) FROM {} WHERE {} = %s").format(tp.table.ident, sql.Identifier(DISTRICT_COLUMN)),
            (self.district,),
            table=tp.table.qualname,
        )

    def delete_district(self, tp: TablePlan) -> int:
        return self.pg.execute(
            sql.SQL("DELETE FROM {} WHERE {} = %s").format(tp.table.ident, sql.Identifier(DISTRICT_COLUMN)),
            (self.district,),
            table=tp.table.qualname,
        )

    @contextlib.contextmanager
    def planner(self, **settings: str) -> Iterator[None]:
        """Run the block's statements with planner settings (``enable_hashjoin="off"``), put back after a success.

        Transaction-local (``set_config(…, true)``); on an error the transaction is rolled back anyway.
        """
        names = list(settings)
        previous = self.pg.rows(
            sql.SQL("SELECT {}").format(sql.SQL(", ").join(sql.SQL("current_setting(%s)") for _ in names)), names)[0]
        self._set(settings)
        yield
        self._set(dict(zip(names, previous)))

    def _set(self, settings: dict[str, str]) -> None:
        pairs = [item for pair in settings.items() for item in pair]
        self.pg.execute(
            sql.SQL("SELECT {}").format(sql.SQL(", ").join(sql.SQL("set_config(%s, %s, true)") for _ in settings)), pairs)

    def without_hash_joins(self) -> contextlib.AbstractContextManager[None]:
        """Merge joins (or index probes) instead of hash joins for the next statements.

        Stage and table both have a unique index on the key, so a merge join reads them in key order
        without hashing 1M rows into a 4 MB work_mem (issue 6).
        """
        return self.planner(enable_hashjoin="off")

    def without_nested_loops(self) -> contextlib.AbstractContextManager[None]:
        """Hash joins instead of nested loops for the next statements.

        A table loaded in this transaction has no statistics yet: the planner takes the district's rows
        for a handful and may pick a nested loop that rescans the parent for every child row (27k rows
        against a 60k-row parent: 1.1 s instead of 20 ms, issue 6). A hash join is linear whatever the guess.
        """
        return self.planner(enable_nestloop="off")


def key_join(left: str, right: str, cols: tuple[str, ...] | list[str]) -> sql.Composable:
    return sql.SQL(" AND ").join(
        sql.SQL("{} = {}").format(sql.Identifier(left, c), sql.Identifier(right, c)) for c in cols
    )


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


def new_result(ctx: StoreContext, tp: TablePlan) -> TableResult:
    return TableResult(
        store=ctx.store,
        table=tp.table.qualname,
        source_rows=tp.rows,
        source_file=str(tp.source.path) if tp.source else None,
    )


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
