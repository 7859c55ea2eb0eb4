"""The content check's second pass, run only on a mismatch: which rows differ, and in which columns (file value vs stored value).

The file's (row identity, row hash) pairs go into a scratch table of the loader's schema (COPY) and
are joined with the server's on the identity: the table's key when it has one that the file gives
(every column NOT NULL), else the row hash itself, matched as a multiset. For a few differing rows the
stored row and the file row are read and compared column by column.
"""

from __future__ import annotations

import io
import secrets
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
from psycopg import sql

from cert_loader.constants import LOADER_SCHEMA
from cert_loader.plan import TablePlan
from cert_loader.results import CheckResult
from cert_loader.store_context import StoreContext
from cert_loader.stores.postgres import mapped_errors
from cert_loader.strategies.base import Strategy
from cert_loader.verify import canonical
from cert_loader.verify.examples import EXAMPLES
from cert_loader.verify.row_text import (
    Field,
    district_rows,
    file_batches,
    render,
    row_hashes,
    row_sql,
    row_texts,
)

CHECK = "content"  # the check's name in results, the report and Dagster


def _key_fields(tp: TablePlan, fields: list[Field]) -> list[Field] | None:
    """The compared fields of the table's key, when it identifies a row: every column compared and NOT NULL."""
    key = tp.table.key or ()
    by_name = {f.column.name: f for f in fields}
    if not key or any(k not in by_name or not by_name[k].column.not_null for k in key):
        return None
    return [by_name[k] for k in key]


def second_pass(ctx: StoreContext, strategy: Strategy, tp: TablePlan, fields: list[Field],
                 file_rows: int, stored_rows: int) -> CheckResult:
    """Name the differing rows (by key, or by row hash for a table without a usable key) and a few columns."""
    keys = _key_fields(tp, fields)
    scratch = sql.Identifier(LOADER_SCHEMA, f"content_{ctx.run_tag}_{secrets.token_hex(3)}")
    name = tp.table.qualname
    ctx.pg.execute(sql.SQL("CREATE UNLOGGED TABLE {} (k text, h text)").format(scratch), table=name)
    try:
        _copy_file_hashes(ctx, tp, fields, keys, scratch)
        rows_from, params = district_rows(ctx, strategy, tp)
        if keys is not None:
            counts, wanted = _diff_by_key(ctx, tp, fields, keys, scratch, rows_from, params)
        else:
            counts, wanted = _diff_by_hash(ctx, tp, fields, scratch, rows_from, params)
        examples = _examples(ctx, tp, fields, keys, wanted, rows_from, params)
    finally:
        ctx.pg.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(scratch), table=name)
    only_file, only_stored, changed = counts
    matching = file_rows - only_file - changed
    detail = (f"{only_file + changed} of {file_rows} file row(s) differ from the {stored_rows} stored "
              f"({changed} changed, {only_file} only in the file, {only_stored} only stored)")
    if keys is None:
        detail += "; no usable key, rows matched by their whole content"
    if examples:
        detail += ", e.g. " + _describe(examples[0])
    return CheckResult(ctx.store, name, CHECK, False, expected=file_rows, actual=matching, detail=detail,
                       examples=examples)


def _idents(ctx: StoreContext, fields: list[Field], keys: list[Field] | None, batch: pa.RecordBatch) -> pa.Array:
    """A batch's row identities: the key's text, or (no usable key) the row hash itself."""
    if keys is None:
        return pa.array(row_hashes(row_texts(ctx, fields, batch)), pa.string())
    return canonical.join_arrays(render(ctx, keys, batch), batch.num_rows)


def _copy_file_hashes(ctx: StoreContext, tp: TablePlan, fields: list[Field], keys: list[Field] | None,
                      scratch: sql.Identifier) -> None:
    """The file's (identity, hash) pairs into the scratch table: CSV written by Arrow, which quotes any text."""
    query = sql.SQL("COPY {} (k, h) FROM STDIN (FORMAT csv)").format(scratch)
    options = pacsv.WriteOptions(include_header=False)
    with mapped_errors(ctx.store, tp.table.qualname), ctx.pg.conn.cursor() as cur, cur.copy(query) as copy:
        for batch in file_batches(ctx, tp, fields):
            hashes = pa.array(row_hashes(row_texts(ctx, fields, batch)), pa.string())
            idents = hashes if keys is None else _idents(ctx, fields, keys, batch)
            out = io.BytesIO()
            pacsv.write_csv(pa.table({"k": idents, "h": hashes}), out, options)
            copy.write(out.getbuffer())


def _diff_by_key(ctx, tp, fields, keys, scratch, rows_from, params) -> tuple[tuple[int, int, int], list[str]]:
    """One pass over the full join: the counts (window aggregates) and the first differing keys."""
    stored = sql.SQL("SELECT {k} AS k, left(md5({r}), 16) AS h FROM {f}").format(
        k=canonical.join_fields([f.rendering.server(sql.Identifier("t", f.column.name)) for f in keys]),
        r=row_sql(fields), f=rows_from)
    rows = ctx.pg.rows(sql.SQL(
        "SELECT coalesce(f.k, s.k), count(*) FILTER (WHERE s.k IS NULL) OVER (), "
        "count(*) FILTER (WHERE f.k IS NULL) OVER (), count(*) FILTER (WHERE s.k IS NOT NULL AND f.k IS NOT NULL) OVER () "
        "FROM {x} f FULL JOIN ({s}) s ON s.k = f.k WHERE f.h IS DISTINCT FROM s.h ORDER BY 1 LIMIT %s"
    ).format(x=scratch, s=stored), [*params, EXAMPLES], table=tp.table.qualname)
    counts = tuple(rows[0][1:]) if rows else (0, 0, 0)
    return counts, [r[0] for r in rows]


def _diff_by_hash(ctx, tp, fields, scratch, rows_from, params) -> tuple[tuple[int, int, int], list[str]]:
    """The same for a table without a usable key: row hashes matched as a multiset (duplicates count)."""
    stored = sql.SQL("SELECT left(md5({r}), 16) AS h, count(*) AS n FROM {f} GROUP BY 1").format(r=row_sql(fields), f=rows_from)
    rows = ctx.pg.rows(sql.SQL(
        "SELECT coalesce(f.h, s.h), sum(greatest(coalesce(f.n, 0) - coalesce(s.n, 0), 0)) OVER (), "
        "sum(greatest(coalesce(s.n, 0) - coalesce(f.n, 0), 0)) OVER () "
        "FROM (SELECT h, count(*) AS n FROM {x} GROUP BY h) f FULL JOIN ({s}) s ON s.h = f.h "
        "WHERE f.n IS DISTINCT FROM s.n ORDER BY 1 LIMIT %s"
    ).format(x=scratch, s=stored), [*params, EXAMPLES], table=tp.table.qualname)
    counts = (int(rows[0][1]), int(rows[0][2]), 0) if rows else (0, 0, 0)
    return counts, [r[0] for r in rows]


def _examples(ctx: StoreContext, tp: TablePlan, fields: list[Field], keys: list[Field] | None,
              wanted: list[str], rows_from: sql.Composable, params: list[Any]) -> list[dict[str, Any]]:
    """Per differing row: each column whose renderings differ, as {key, column, file, stored}."""
    if not wanted:
        return []
    stored = _stored_rows(ctx, tp, fields, keys, wanted, rows_from, params)
    from_file = _file_rows(ctx, tp, fields, keys, set(wanted))
    key_names = [f.column.name for f in keys] if keys is not None else None
    examples: list[dict[str, Any]] = []
    for ident in wanted:
        s, f = stored.get(ident), from_file.get(ident)
        shown = s or f
        key = ({n: shown[n][1] for n in key_names} if key_names is not None else {"row hash": ident})
        if s is None or f is None:
            examples.append({"key": key, "column": None, "file": _row_display(f), "stored": _row_display(s)})
            continue
        for fld in fields:
            name = fld.column.name
            if s[name][0] != f[name][0]:
                shown_file, shown_stored = f[name][1], s[name][1]
                if shown_file == shown_stored:  # same text, other code points (Unicode normalisation …)
                    shown_file, shown_stored = ascii(shown_file), ascii(shown_stored)
                examples.append({"key": key, "column": name, "file": shown_file, "stored": shown_stored})
    return examples[: EXAMPLES * 2]


def _stored_rows(ctx, tp, fields, keys, wanted, rows_from, params) -> dict[str, dict[str, tuple[str, str]]]:
    """ident → column → (canonical text, display text) of the stored rows asked for."""
    ident = (canonical.join_fields([f.rendering.server(sql.Identifier("t", f.column.name)) for f in keys])
             if keys is not None else sql.SQL("left(md5({}), 16)").format(row_sql(fields)))
    cols = sql.SQL(", ").join(
        sql.SQL("{}, {}::text").format(f.rendering.server(sql.Identifier("t", f.column.name)),
                                       sql.Identifier("t", f.column.name)) for f in fields)
    rows = ctx.pg.rows(sql.SQL("SELECT {i}, {c} FROM {f} AND {i} = ANY(%s)").format(i=ident, c=cols, f=rows_from),
                       [*params, wanted], table=tp.table.qualname)
    out = {}
    for row in rows:
        out[row[0]] = {f.column.name: (row[1 + 2 * i] or "", _shown(row[2 + 2 * i])) for i, f in enumerate(fields)}
    return out


def _file_rows(ctx, tp, fields, keys, wanted: set[str]) -> dict[str, dict[str, tuple[str, str]]]:
    """ident → column → (canonical text, display text) of the file rows asked for (one more pass over the file)."""
    out: dict[str, dict[str, tuple[str, str]]] = {}
    wanted_arr = pa.array(sorted(wanted), pa.string())
    for batch in file_batches(ctx, tp, fields):
        idents = _idents(ctx, fields, keys, batch)
        mask = pc.is_in(idents, value_set=wanted_arr)
        if not pc.any(mask).as_py():
            continue
        picked = batch.filter(mask)
        rendered = [pc.fill_null(r, "") if isinstance(r, pa.Array) else r for r in render(ctx, fields, picked)]
        for i, ident in enumerate(pc.filter(idents, mask).to_pylist()):
            row = {}
            for f, r in zip(fields, rendered):
                canon = r.as_py() if isinstance(r, pa.Scalar) else r[i].as_py()
                raw = ctx.district if f.source is None else picked.column(f.source)[i].as_py()
                row[f.column.name] = (canon, _shown(raw))
            out[ident] = row
    return out


def _shown(value: Any) -> str:
    """A file value as the server would print it, near enough to read side by side with the stored text."""
    if value is None:
        return "NULL"
    if isinstance(value, (bytes, bytearray)):
        return "\\x" + bytes(value).hex()
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Decimal):
        return format(value, "f")
    return value if isinstance(value, str) else str(value)


def _row_display(row: dict[str, tuple[str, str]] | None) -> str:
    if row is None:
        return "(no such row)"
    return ", ".join(f"{name}={shown}" for name, (_, shown) in row.items())


def _describe(example: dict[str, Any]) -> str:
    if example["column"] is None:
        side = "only stored" if example["file"] == "(no such row)" else "only in the file"
        return f"row {example['key']} {side}"
    return f"row {example['key']}: column \"{example['column']}\": file {example['file']!r} vs stored {example['stored']!r}"


