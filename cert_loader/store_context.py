"""One store's open transaction as the strategies, the verification and unload see it: the district's rows, COPY, staging."""

from __future__ import annotations

import contextlib
import itertools
from dataclasses import dataclass, field
from typing import Callable, Iterator

import pyarrow as pa
import pyarrow.compute as pc
from psycopg import errors as pgerr
from psycopg import sql

from cert_loader.constants import DISTRICT_COLUMN, LOADER_SCHEMA
from cert_loader.convert import BatchConverter
from cert_loader.errors import InputError, StoreError
from cert_loader.plan import StorePlan, TablePlan
from cert_loader.stores.postgres import PgStore


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

        Staging tables live in the loader's own schema, not in pg_temp: PostgreSQL refuses to PREPARE a
        transaction that touched temporary objects, and the load must stay two-phase (DESIGN.md section 5).

        A unique index on the key then proves no key is in the file twice (one sort, ~0.3 s per 1M
        rows, where a GROUP BY spilled to disk for ~1.5 s) and lets the upsert merge-join the stage
        with the table's own key index (issue 6).
        """
        name = sql.Identifier(LOADER_SCHEMA, f"stage_{self.run_tag}_{next(self._seq)}")
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
            if not isinstance(exc.driver_error, pgerr.UniqueViolation):
                raise
            # The server's detail names one duplicate: "Key (district_id, id)=(d1, 7) is duplicated." It is
            # the only place the server gives the key's values, so the example is cut out of that text.
            detail = exc.driver_error.diag.message_detail or ""
            example = detail.split("Key ", 1)[-1].split(" is duplicated", 1)[0] if "Key " in detail else ""
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
