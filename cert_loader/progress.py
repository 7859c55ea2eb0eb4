"""Progress of a long load, in one place: the interface the engine reports to, the every-10-tables log line, the terminal bar."""

from __future__ import annotations

import logging
import sys
import threading
import time
from typing import Any, Protocol

log = logging.getLogger(__name__)


class Progress(Protocol):
    def start(self, total_rows: int, total_tables: int) -> None: ...
    def advance(self, rows: int) -> None: ...
    def table_done(self, store: str, table: str) -> None: ...
    def close(self) -> None: ...


class NoProgress:
    def start(self, total_rows: int, total_tables: int) -> None: ...
    def advance(self, rows: int) -> None: ...
    def table_done(self, store: str, table: str) -> None: ...
    def close(self) -> None: ...


# A log line every this many tables (the seed's promise, DESIGN.md section 3).
LOG_EVERY_TABLES = 10


class LockedProgress:
    """A Progress shared by the stores' threads (and their COPY producer threads)."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self._lock = threading.Lock()

    def start(self, total_rows: int, total_tables: int) -> None:
        with self._lock:
            self._inner.start(total_rows, total_tables)

    def advance(self, rows: int) -> None:
        with self._lock:
            self._inner.advance(rows)

    def table_done(self, store: str, table: str) -> None:
        with self._lock:
            self._inner.table_done(store, table)

    def close(self) -> None:
        with self._lock:
            self._inner.close()


class TableCounter:
    """Tables done across the stores, for the log line every LOG_EVERY_TABLES tables."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.done = 0
        self._lock = threading.Lock()

    def one_more(self, store: str, table: str) -> None:
        with self._lock:
            self.done += 1
            if self.done % LOG_EVERY_TABLES == 0:
                log.info("loaded %d of %d tables (%s: %s)", self.done, self.total, store, table)




class TerminalProgress:
    """A one-line bar redrawn at most a few times a second; silent when stderr is not a terminal."""

    def __init__(self, stream=None) -> None:
        self.stream = stream or sys.stderr
        self.enabled = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.total_rows = 0
        self.total_tables = 0
        self.rows = 0
        self.tables = 0
        self.started = time.monotonic()
        self._drawn = 0.0
        self._current = ""

    def start(self, total_rows: int, total_tables: int) -> None:
        self.total_rows, self.total_tables = total_rows, total_tables
        self.started = time.monotonic()
        self._draw(force=True)

    def advance(self, rows: int) -> None:
        self.rows += rows
        self._draw()

    def table_done(self, store: str, table: str) -> None:
        self.tables += 1
        self._current = f"{store}: {table}"
        self._draw(force=True)

    def close(self) -> None:
        if self.enabled and self._drawn:
            self.stream.write("\n")
            self.stream.flush()

    def _draw(self, force: bool = False) -> None:
        now = time.monotonic()
        if not self.enabled or (not force and now - self._drawn < 0.2):
            return
        self._drawn = now
        frac = min(1.0, self.rows / self.total_rows) if self.total_rows else 1.0
        width = 30
        bar = "█" * int(frac * width) + "░" * (width - int(frac * width))
        rate = self.rows / max(now - self.started, 1e-6)
        line = (
            f"\r{bar} {frac:6.1%}  {self.rows:,}/{self.total_rows:,} rows  "
            f"{self.tables}/{self.total_tables} tables  {rate:,.0f} rows/s  {self._current[:40]}"
        )
        self.stream.write(line.ljust(120)[:160])
        self.stream.flush()
