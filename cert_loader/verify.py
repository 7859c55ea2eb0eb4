"""Prove what landed equals what was given — row counts and FK integrity — inside the store's open transaction (DESIGN.md section 7)."""

from __future__ import annotations

from psycopg import sql

from cert_loader.plan import DISTRICT_COLUMN, TablePlan
from cert_loader.results import CheckResult
from cert_loader.strategies.base import StoreContext, Strategy, key_join

EXAMPLES = 5


def check_row_count(ctx: StoreContext, strategy: Strategy, tp: TablePlan) -> CheckResult:
    """Rows of the district equal the source; for upsert, every source key is present."""
    name = tp.table.qualname
    if strategy.name == "upsert":
        stage = ctx.staged[tp.table.key_id]
        key = tp.table.key
        present = sql.SQL("SELECT 1 FROM {t} t WHERE {on} AND t.{d} = %s").format(
            t=tp.table.ident, on=key_join("s", "t", key), d=sql.Identifier(DISTRICT_COLUMN)
        )
        missing = ctx.pg.rows(
            sql.SQL("SELECT {k} FROM {s} s WHERE NOT EXISTS ({p}) LIMIT %s").format(
                k=sql.SQL(", ").join(sql.Identifier("s", c) for c in key), s=stage, p=present
            ),
            (ctx.district, EXAMPLES),
            table=name,
        )
        n_missing = 0
        if missing:
            n_missing = ctx.pg.scalar(
                sql.SQL("SELECT count(*) FROM {s} s WHERE NOT EXISTS ({p})").format(s=stage, p=present),
                (ctx.district,), table=name,
            )
        return CheckResult(
            ctx.store, name, "row_count", not missing, expected=tp.rows, actual=tp.rows - n_missing,
            detail=f"{n_missing} source key(s) missing after upsert" if missing else "every source key present",
            examples=[list(map(str, m)) for m in missing],
        )
    expected = strategy.expected_rows(ctx, tp)
    actual = ctx.count_district(tp)
    return CheckResult(
        ctx.store, name, "row_count", actual == expected, expected=expected, actual=actual,
        detail="" if actual == expected else f"expected {expected} rows of the district, found {actual}",
    )


def check_foreign_keys(ctx: StoreContext, tp: TablePlan) -> CheckResult:
    """No district row points to a missing parent, for every FK of the table (composite keys too).

    MATCH SIMPLE, as PostgreSQL enforces it: a row with any NULL in the FK columns references nothing.
    """
    table = tp.table
    orphans_total = 0
    failures: list[str] = []
    examples: list = []
    for fk in table.foreign_keys:
        parent = sql.Identifier(fk.ref_schema, fk.ref_table)
        not_null = sql.SQL(" AND ").join(sql.SQL("c.{} IS NOT NULL").format(sql.Identifier(c)) for c in fk.columns)
        match = sql.SQL(" AND ").join(
            sql.SQL("p.{} = c.{}").format(sql.Identifier(r), sql.Identifier(c))
            for c, r in zip(fk.columns, fk.ref_columns)
        )
        where = sql.SQL("c.{d} = %s AND {nn} AND NOT EXISTS (SELECT 1 FROM {p} p WHERE {m})").format(
            d=sql.Identifier(DISTRICT_COLUMN), nn=not_null, p=parent, m=match
        )
        count = ctx.pg.scalar(
            sql.SQL("SELECT count(*) FROM {t} c WHERE {w}").format(t=table.ident, w=where),
            (ctx.district,), table=table.qualname,
        )
        if count:
            orphans_total += count
            rows = ctx.pg.rows(
                sql.SQL("SELECT {cols} FROM {t} c WHERE {w} LIMIT %s").format(
                    cols=sql.SQL(", ").join(sql.Identifier("c", x) for x in fk.columns), t=table.ident, w=where
                ),
                (ctx.district, EXAMPLES), table=table.qualname,
            )
            keys = [dict(zip(fk.columns, map(str, r))) for r in rows]
            examples.extend({"fk": fk.name, "key": k} for k in keys)
            failures.append(
                f"{count} row(s) violate {fk.name} ({', '.join(fk.columns)}) -> "
                f"{fk.ref_schema}.{fk.ref_table}, e.g. {keys[0]}"
            )
    return CheckResult(
        ctx.store, table.qualname, "fk_integrity", not failures, expected=0, actual=orphans_total,
        detail="; ".join(failures) if failures else f"{len(table.foreign_keys)} foreign key(s) hold",
        examples=examples,
    )
