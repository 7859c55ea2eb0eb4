"""Capture one PostgreSQL table's district rows, inside the store's open transaction, to a parquet file.

The rows are what the store's own transaction sees before its first write: the capture runs on the
store's connection, between BEGIN and the strategy (DESIGN.md section 5, point 5). Another connection
(ADBC, sharing the snapshot through ``pg_export_snapshot()``) cannot be used: PostgreSQL refuses to
PREPARE a transaction that exported a snapshot, and importing one would force REPEATABLE READ on the load.

Text ``COPY … TO STDOUT (FORMAT CSV)`` parsed by pyarrow's CSV reader with the exact schema, while a
producer thread reads the connection: 1M rows of 12 columns to zstd parquet in 2.1–2.9 s (~350–480k rows/s,
sha256 and fsync included) with ~270–300 MB peak RSS for the process, against ~20 s (~50k rows/s) for
binary COPY decoded by psycopg into Python rows; the server alone sends that table in ~1.3 s as CSV and
~1.8 s as binary (measured on this machine, 2 cores shared with other work, issue 13). There is no
maintained decoder of binary COPY into Arrow that reads from an existing connection (pgpq only encodes).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
from psycopg import sql

from cert_loader.backup.columns import RENDER_SETTINGS, ColumnCapture, finish_column, needs_scan, plan_capture, scan_query
from cert_loader.backup.layout import BackupError, HashingFile
from cert_loader.catalog import Table
from cert_loader.constants import DISTRICT_COLUMN
from cert_loader.faults import checkpoint
from cert_loader.stores.postgres import PgStore, mapped_errors
from cert_loader.stores.prefetch import Prefetch

log = logging.getLogger(__name__)

# Bytes per block of whole records handed from the connection's thread to the CSV reader, and chunks waiting: ~4 MB in flight.
CHUNK_BYTES = 1 << 20
CHUNKS_WAITING = 4
# Rows per parquet row group: blocks are gathered up to this, so row groups are not a few thousand rows each.
ROW_GROUP_ROWS = 65_536
# zstd: ~30% smaller files than snappy (52 vs 72 MB per 1M rows of 12 columns) at the same capture time.
COMPRESSION = "zstd"
_CSV_COLUMN = re.compile(r"CSV column #(\d+)")


@dataclass
class TableCapture:
    """What one table's capture wrote."""

    store: str
    table: Table
    path: Path
    rows: int
    bytes: int
    sha256: str
    columns: list[ColumnCapture]


def record_blocks(copy) -> Iterator[bytes]:
    """The COPY's data in blocks of whole CSV records, about CHUNK_BYTES each (the driver's chunks are a few kB).

    Whole records let each block be parsed on its own, synchronously: pyarrow's streaming CSV reader reads
    ahead on a thread of its own, and one left reading a Python stream after the reader gave up (a refused
    value) hung the interpreter's exit.
    """
    parts: list[bytes] = []
    size, target = 0, CHUNK_BYTES
    for data in copy:
        parts.append(bytes(data))
        size += len(data)
        if size < target:
            continue
        block = b"".join(parts)
        cut = record_end(block)
        if cut == 0:  # one value longer than the block (a large text): wait for its end, with a larger block
            parts, target = [block], target * 2
            continue
        yield block[:cut]
        rest = block[cut:]
        parts, size, target = ([rest] if rest else []), len(rest), CHUNK_BYTES
    if parts:
        yield b"".join(parts)


def record_end(block: bytes) -> int:
    """The length of the longest prefix of ``block`` (which starts a record) made of whole CSV records; 0 if none.

    COPY's CSV quotes a value holding a newline and doubles a quote inside one, so a newline ends a record
    exactly when the quotes before it are even in number.
    """
    quotes = block.count(b'"')
    pos = len(block)
    while True:
        newline = block.rfind(b"\n", 0, pos)
        if newline < 0:
            return 0
        quotes -= block.count(b'"', newline, pos)
        if quotes % 2 == 0:
            return newline + 1
        pos = newline


def render_settings(pg: PgStore) -> dict[str, str]:
    """Set the text rendering the capture parses (transaction-local); returns the settings to put back."""
    names = list(RENDER_SETTINGS)
    previous = pg.rows(sql.SQL("SELECT {}").format(
        sql.SQL(", ").join(sql.SQL("current_setting(%s)") for _ in names)), names)[0]
    set_settings(pg, RENDER_SETTINGS)
    return dict(zip(names, previous))


def set_settings(pg: PgStore, settings: dict[str, str]) -> None:
    pairs = [item for pair in settings.items() for item in pair]
    pg.execute(sql.SQL("SELECT {}").format(
        sql.SQL(", ").join(sql.SQL("set_config(%s, %s, true)") for _ in settings)), pairs)


def capture_table(pg: PgStore, table: Table, district: str, path: Path) -> TableCapture:
    """Write the district's rows of ``table`` to ``path`` (fsynced), in bounded memory; the render settings must be set."""
    store, name = pg.name, table.qualname
    if pg.conn.info.encoding not in ("utf-8", "utf8"):
        raise BackupError(f"the connection's client_encoding is {pg.conn.info.encoding}, a backup needs UTF8",
                          store=store, table=name, hint="set client_encoding=UTF8 for the loader's role")
    scan_cols = [c for c in table.columns if needs_scan(c) and not c.generated]
    scanned: dict[str, int] = {}
    if scan_cols:
        found = pg.rows(scan_query(table, scan_cols), (district,), table=name)[0]
        scanned = {c.name: int(v) for c, v in zip(scan_cols, found)}
    caps = plan_capture(store, table, scanned)
    schema = pa.schema([pa.field(c.name, c.arrow, nullable=not c.column.not_null) for c in caps])
    query = sql.SQL("COPY (SELECT {} FROM {} WHERE {} = %s) TO STDOUT (FORMAT CSV)").format(
        sql.SQL(", ").join(c.expr for c in caps), table.ident, sql.Identifier(DISTRICT_COLUMN))
    sink = HashingFile(path)
    rows = 0
    try:
        with pq.ParquetWriter(sink, schema, compression=COMPRESSION) as writer:
            with mapped_errors(store, name), pg.conn.cursor() as cur, cur.copy(query, (district,)) as copy, \
                    Prefetch(record_blocks(copy), depth=CHUNKS_WAITING, name=f"cert_loader-backup-{store}") as chunks:
                for group in _row_groups(store, name, caps, schema, iter(chunks)):
                    writer.write_table(group)
                    rows += group.num_rows
                    checkpoint(f"mid-backup:{store}")
        sink.close()
    except BaseException:
        sink.abort()
        path.unlink(missing_ok=True)
        raise
    log.debug("%s: %s: backed up %d rows (%d bytes)", store, name, rows, sink.size)
    return TableCapture(store, table, path, rows, sink.size, sink.sha256, caps)


def _row_groups(store: str, table: str, caps: list[ColumnCapture], schema: pa.Schema,
                blocks: Iterator[bytes]) -> Iterator[pa.Table]:
    names = [f"c{i}" for i in range(len(caps))]  # the catalog's names may be anything; these are plain
    options = dict(
        parse_options=pcsv.ParseOptions(newlines_in_values=True, ignore_empty_lines=False),
        convert_options=pcsv.ConvertOptions(
            column_types={n: c.read for n, c in zip(names, caps)}, null_values=[""], strings_can_be_null=True,
            quoted_strings_can_be_null=False, true_values=["t"], false_values=["f"]),
    )
    pending: list[pa.RecordBatch] = []
    size = 0
    for block in blocks:
        try:
            # One block per parse: a record never straddles the reader's blocks, whatever its size.
            read = pcsv.ReadOptions(column_names=names, block_size=len(block) + 1, use_threads=False)
            parsed = pcsv.read_csv(pa.py_buffer(block), read_options=read, **options)
        except pa.ArrowInvalid as exc:
            raise _conversion_error(store, table, caps, exc) from exc
        for batch in parsed.to_batches():
            arrays = [finish_column(store, table, c, batch.column(i)) for i, c in enumerate(caps)]
            pending.append(pa.RecordBatch.from_arrays(arrays, schema=schema))
            size += batch.num_rows
        if size >= ROW_GROUP_ROWS:
            yield pa.Table.from_batches(pending, schema)
            pending, size = [], 0
    if pending:
        yield pa.Table.from_batches(pending, schema)


def _conversion_error(store: str, table: str, caps: list[ColumnCapture], exc: pa.ArrowInvalid) -> BackupError:
    """A value the file's type cannot hold exactly (``infinity``, a NaN numeric, a BC date …), named by column."""
    text = str(exc)
    match = _CSV_COLUMN.search(text)
    where = ""
    if match and int(match.group(1)) < len(caps):
        cap = caps[int(match.group(1))]
        where = f'column "{cap.name}" ({cap.column.type_sql}): '
        text = text.replace(match.group(0), "").lstrip(": ")
    return BackupError(f"{where}a value cannot be backed up exactly ({text})", store=store, table=table,
                       hint="load without --backup, or change the value (the loader could not write it back)")
