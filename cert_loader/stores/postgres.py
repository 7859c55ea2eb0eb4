"""The PostgreSQL SQL client: one connection per store, COPY from Arrow, and driver errors mapped to StoreError."""

from __future__ import annotations

import contextlib
import logging
import re
from typing import Iterable, Iterator

import psycopg
import pyarrow as pa
from psycopg import errors as pgerr
from psycopg import sql

from cert_loader.config import PgStoreConfig

from cert_loader.errors import LoadLockedError, StoreError
from cert_loader.faults import checkpoint
from cert_loader.stores.prefetch import Prefetch

log = logging.getLogger(__name__)

# Namespace of the per-district advisory lock, so it never collides with another application's
# locks (DESIGN.md section 5, point 5). The key is hashtextextended('cert_loader:' || district).
LOCK_PREFIX = "cert_loader:"

# The server names a failing COPY row only in the error's context text ("COPY t, line 7, column c: …"); no
# field of the diagnostics carries it, so the row and column are read from there (for the message, not to match).
_COPY_LINE = re.compile(r"COPY [^,]+, line (\d+)(?:, column ([^:]+))?")

# SQLSTATE classes that say "try again later" rather than "the data or the grant is wrong".
_TRANSIENT = (pgerr.OperationalError, pgerr.SerializationFailure, pgerr.DeadlockDetected, pgerr.AdminShutdown)


def describe_pg_error(exc: psycopg.Error) -> tuple[str, dict]:
    """A one-line reason from a server error: message, detail, the COPY row and the constraint."""
    diag = exc.diag
    primary = diag.message_primary or str(exc).splitlines()[0]
    parts = [primary]
    details: dict = {"sqlstate": diag.sqlstate}
    if diag.message_detail:
        parts.append(diag.message_detail)
    if diag.constraint_name:
        details["constraint"] = diag.constraint_name
    if diag.column_name:
        details["column"] = diag.column_name
    where = []
    match = _COPY_LINE.search(diag.context or "")
    if match:
        details["row"] = int(match.group(1))
        where.append(f"file row {match.group(1)}")
        if match.group(2):
            details["column"] = match.group(2)
            where.append(f'column "{match.group(2)}"')
    text = " ".join(parts)
    return (f"{text} ({', '.join(where)})" if where else text), details


def store_error(store: str, exc: psycopg.Error, table: str | None = None, hint: str | None = None) -> StoreError:
    reason, details = describe_pg_error(exc)
    if hint is None and isinstance(exc, pgerr.UniqueViolation):
        hint = "the key already exists: use --strategy upsert, merge or replace, or remove the row"
    elif hint is None and isinstance(exc, pgerr.ForeignKeyViolation):
        hint = "load the parent rows first (same load or earlier), or fix the key"
    elif hint is None and isinstance(exc, pgerr.InsufficientPrivilege):
        hint = "grant the loader's role the privilege (see README, Security)"
    return StoreError(reason, store=store, table=table, transient=isinstance(exc, _TRANSIENT), hint=hint,
                      details=details, driver_error=exc)


@contextlib.contextmanager
def mapped_errors(store: str, table: str | None = None) -> Iterator[None]:
    """Turn any driver error raised inside into a StoreError naming the store and table."""
    try:
        yield
    except psycopg.Error as exc:
        raise store_error(store, exc, table) from exc


class PgStore:
    """One store's connection. Statements run in one transaction until the transaction model ends it."""

    def __init__(self, config: PgStoreConfig, *, application: str = "cert_loader") -> None:
        self.config = config
        self.name = config.name
        self.conn: psycopg.Connection | None = None
        self._application = application

    def connect(self, *, autocommit: bool = False) -> psycopg.Connection:
        try:
            self.conn = psycopg.connect(
                self.config.url, autocommit=autocommit, application_name=self._application, connect_timeout=10
            )
        except psycopg.Error as exc:
            # The driver's message may quote the conninfo; only the redacted URL is shown.
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            reason = self.config.scrub(reason)  # libpq may echo part of the conninfo, password included
            raise StoreError(
                f"cannot connect to {self.config.redacted()} ({reason})",
                store=self.name,
                transient=True,
                hint=f"check CERT_{self.name.upper()}_URL and that the server is up",
                driver_error=exc,
            ) from exc
        return self.conn

    def close(self) -> None:
        if self.conn is not None and not self.conn.closed:
            with contextlib.suppress(psycopg.Error):
                self.conn.close()
        self.conn = None

    def __enter__(self) -> "PgStore":
        """An autocommit connection for the block (guards, recovery, `mark`), closed however the block ends."""
        if self.conn is None:
            self.connect(autocommit=True)
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def lock_district(self, district: str) -> None:
        """Take the district's advisory lock for this session, or fail fast if another load holds it."""
        with mapped_errors(self.name):
            got = self.conn.execute(
                "SELECT pg_try_advisory_lock(hashtextextended(%s, 0))", (LOCK_PREFIX + district,)
            ).fetchone()[0]
        if not got:
            raise LoadLockedError(
                f"another load of district {district} is running (advisory lock held)",
                store=self.name,
                district=district,
                hint="wait for it to finish; loads of other districts may run at the same time",
            )

    def scalar(self, query: sql.Composable | str, params: Iterable | dict | None = None, *, table: str | None = None):
        with mapped_errors(self.name, table):
            row = self.conn.execute(query, params).fetchone()
        return row[0] if row else None

    def rows(self, query: sql.Composable | str, params: Iterable | dict | None = None, *, table: str | None = None) -> list[tuple]:
        with mapped_errors(self.name, table):
            return self.conn.execute(query, params).fetchall()

    def execute(self, query: sql.Composable | str, params: Iterable | dict | None = None, *, table: str | None = None) -> int:
        with mapped_errors(self.name, table):
            return self.conn.execute(query, params).rowcount

    def copy_arrow(
        self,
        target: sql.Composable,
        columns: list[str],
        batches: Iterable[pa.RecordBatch],
        encoder_factory,
        *,
        table: str,
    ) -> int:
        """Binary COPY of Arrow batches into ``target`` within the open transaction; returns rows sent.

        One COPY statement per table, so a row's parent later in the same file satisfies a
        self-referencing FK (checked at end of statement) and COPY's line number is the file row.
        The batches are read, converted and encoded in a producer thread while this one sends
        (``Prefetch``): the client's work overlaps the server's instead of adding to it (issue 6).
        """
        query = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(
            target, sql.SQL(", ").join(map(sql.Identifier, columns))
        )
        rows = 0
        with (
            mapped_errors(self.name, table),
            self.conn.cursor() as cur,
            cur.copy(query) as copy,
            Prefetch(_encoded(batches, encoder_factory), name=f"cert_loader-copy-{self.name}") as chunks,
        ):
            for data, n in chunks:
                copy.write(data)
                if n:
                    rows += n
                    checkpoint(f"mid-copy:{self.name}:{table}")
        return rows


# An empty file: a valid empty binary COPY stream (signature, flags, header extension, trailer).
_EMPTY_COPY = b"PGCOPY\n\xff\r\n\x00" + b"\x00" * 8 + b"\xff\xff"


def _encoded(batches: Iterable[pa.RecordBatch], encoder_factory) -> Iterator[tuple[bytes, int]]:
    """The binary COPY stream of ``batches`` as (bytes, rows in them) chunks: header, one per batch, trailer."""
    encoder = None
    for batch in batches:
        if encoder is None:
            encoder = encoder_factory(batch.schema)
            yield encoder.write_header(), 0
        yield encoder.write_batch(batch), batch.num_rows
    yield (encoder.finish() if encoder is not None else _EMPTY_COPY), 0
