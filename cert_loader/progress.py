"""Progress of a long load, in one place: the interface the engine reports to, the every-10-tables log line, the terminal bar."""

from __future__ import annotations

import logging
import sys
import threading
from typing import Any, Protocol

from rich.console import Console
from rich.highlighter import NullHighlighter
from rich.logging import RichHandler
from rich.progress import BarColumn, ProgressColumn, Task, TaskID, TaskProgressColumn, TextColumn, TimeRemainingColumn
from rich.progress import Progress as RichProgress
from rich.table import Column
from rich.text import Text

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
    """The CLI's live bar (rich): rows, tables, rate and time left; silent when stderr is not a terminal.

    While the bar is up, the root logger's handlers that write to the bar's terminal print through the bar's
    console instead, so a log line lands on its own line above the bar (issue 14, point 6); close() puts
    them back.
    """

    def __init__(self, console: Console | None = None) -> None:
        # An explicit force_terminal: the bar follows isatty() alone (FORCE_COLOR in a CI job must not
        # draw it into a pipe or a log file).
        self.console = console or Console(file=sys.stderr, force_terminal=sys.stderr.isatty())
        self.enabled = self.console.is_terminal
        self.total_tables = 0
        self.tables = 0
        self._bar: RichProgress | None = None
        self._task: TaskID | None = None
        self._swapped: list[tuple[logging.Handler, logging.Handler]] = []

    def start(self, total_rows: int, total_tables: int) -> None:
        if not self.enabled or self._bar is not None:
            return
        self.total_tables = total_tables
        self._bar = RichProgress(
            BarColumn(bar_width=20), TaskProgressColumn(table_column=fixed()),
            TextColumn("{task.completed:,.0f}/{task.total:,.0f} rows", table_column=fixed()),
            TextColumn("{task.fields[tables]}", table_column=fixed()), RateColumn(table_column=fixed()),
            TextColumn("ETA", table_column=fixed()), TimeRemainingColumn(table_column=fixed()), CurrentTableColumn(),
            console=self.console, refresh_per_second=5,
        )
        self._task = self._bar.add_task("", total=total_rows, tables=self._tables_text())
        self._route_logging()
        self._bar.start()

    def advance(self, rows: int) -> None:
        if self._bar is not None:
            self._bar.advance(self._task, rows)

    def table_done(self, store: str, table: str) -> None:
        self.tables += 1
        if self._bar is not None:
            self._bar.update(self._task, description=f"{store}: {table}", tables=self._tables_text())

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
        self._restore_logging()

    def _tables_text(self) -> str:
        return f"{self.tables}/{self.total_tables} tables"

    def _route_logging(self) -> None:
        """Swap the root logger's stream handlers on this terminal for one printing through the console."""
        root = logging.getLogger()
        for handler in list(root.handlers):
            if type(handler) is logging.StreamHandler and handler.stream is self.console.file:
                through = RichHandler(console=self.console, show_time=False, show_level=False, show_path=False,
                                      highlighter=NullHighlighter(), keywords=[])
                through.setLevel(handler.level)
                through.setFormatter(handler.formatter or logging.Formatter())
                root.removeHandler(handler)
                root.addHandler(through)
                self._swapped.append((handler, through))

    def _restore_logging(self) -> None:
        root = logging.getLogger()
        for handler, through in self._swapped:
            root.removeHandler(through)
            root.addHandler(handler)
        self._swapped.clear()


def fixed() -> Column:
    """A column that is never shrunk or wrapped: on a narrow terminal the current table's name gives way."""
    return Column(no_wrap=True)


class RateColumn(ProgressColumn):
    """Rows per second as rich measures it (the same speed its time-left column divides by)."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text("" if speed is None else f"{speed:,.0f} rows/s")


class CurrentTableColumn(ProgressColumn):
    """The table finished last, cut with an ellipsis (never wrapped onto a second line) when the terminal is narrow."""

    def render(self, task: Task) -> Text:
        return Text(task.description, no_wrap=True, overflow="ellipsis")
