"""Progress on a terminal (a bar on stderr) and in logs (a line every few tables) for long loads."""

from __future__ import annotations

import sys
import time


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
