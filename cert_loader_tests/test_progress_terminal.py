"""The CLI's terminal bar (progress.TerminalProgress over rich): an ETA, and log lines that never share a line with the bar (issue 14)."""

from __future__ import annotations

import io
import logging
import re
from typing import Iterator

import pytest
from rich.console import Console

from cert_loader.progress import TerminalProgress

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
BAR_GLYPHS = "━╺╸"
MESSAGE = "loaded 10 of 24 tables (ids: edfi.student)"


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def terminal() -> Iterator[tuple[io.StringIO, Console, Clock, logging.StreamHandler]]:
    """A fake terminal, a clock the test moves, and a root stream handler on that terminal (as the CLI's basicConfig)."""
    buf, clock = io.StringIO(), Clock()
    console = Console(file=buf, force_terminal=True, width=160, get_time=clock)
    handler = logging.StreamHandler(buf)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        yield buf, console, clock, handler
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)


def screen_lines(raw: str) -> list[str]:
    """What a terminal shows, one entry per redraw: split on newlines and carriage returns, escapes dropped."""
    return [ANSI.sub("", part).rstrip() for part in re.split(r"[\r\n]", raw) if ANSI.sub("", part).strip()]


def test_eta_from_rows_done_and_the_measured_rate(terminal) -> None:
    buf, console, clock, _ = terminal
    bar = TerminalProgress(console)
    bar.start(total_rows=1000, total_tables=24)
    clock.now = 1.0
    bar.advance(100)
    clock.now = 2.0
    bar.advance(100)  # 100 rows/s measured over the last second; 800 rows to go: 8 s left
    bar.table_done("ids", "edfi.student")
    bar.close()
    last = screen_lines(buf.getvalue())[-1]
    assert "200/1,000 rows" in last and "1/24 tables" in last and "100 rows/s" in last
    assert "ETA 0:00:08" in last and "20%" in last and "ids: edfi.student" in last


def test_a_log_record_during_the_bar_gets_its_own_line(terminal) -> None:
    buf, console, clock, handler = terminal
    bar = TerminalProgress(console)
    bar.start(total_rows=1000, total_tables=24)
    clock.now = 1.0
    bar.advance(300)
    assert handler not in logging.getLogger().handlers  # routed through the bar's console meanwhile
    logging.getLogger("cert_loader.store_load").info(MESSAGE)
    bar.advance(100)
    bar.close()
    raw = buf.getvalue()
    lines = screen_lines(raw)
    logged = [line for line in lines if MESSAGE in line]
    assert logged == [f"INFO cert_loader.store_load: {MESSAGE}"], lines
    assert not any(glyph in logged[0] for glyph in BAR_GLYPHS)
    # The bar was cleared before the line and drawn again after it, and the line ended with a newline.
    before, after = raw.split(MESSAGE, 1)
    assert before.endswith("\r\x1b[2KINFO cert_loader.store_load: ")
    assert after.lstrip(" ").startswith("\n") and any(glyph in after for glyph in BAR_GLYPHS)
    # After close() the CLI's own handler is back, and it writes plain lines again.
    assert handler in logging.getLogger().handlers
    logging.getLogger("cert_loader").info("after the bar")
    assert buf.getvalue().endswith("INFO cert_loader: after the bar\n")


def test_silent_on_a_non_terminal(monkeypatch) -> None:
    """The CLI's default: a pipe or a file gets no bar at all and keeps its log handlers."""
    pipe = io.StringIO()
    monkeypatch.setenv("FORCE_COLOR", "1")  # a CI job's colour switch must not draw a bar into its log
    monkeypatch.setattr("sys.stderr", pipe)
    handler = logging.StreamHandler(pipe)
    logging.getLogger().addHandler(handler)
    try:
        bar = TerminalProgress()
        assert not bar.enabled
        bar.start(total_rows=1000, total_tables=24)
        bar.advance(500)
        bar.table_done("ids", "edfi.student")
        bar.close()
        assert handler in logging.getLogger().handlers
    finally:
        logging.getLogger().removeHandler(handler)
    assert pipe.getvalue() == ""


def test_the_bar_stays_on_one_line_of_an_80_column_terminal() -> None:
    """The current table's name gives way (cut with an ellipsis); rows, rate and ETA never wrap."""
    buf, clock = io.StringIO(), Clock()
    bar = TerminalProgress(Console(file=buf, force_terminal=True, width=80, get_time=clock))
    bar.start(total_rows=1_234_567, total_tables=157)
    clock.now = 1.0
    bar.advance(400_000)
    clock.now = 2.0
    bar.advance(400_000)
    bar.table_done("hcp2", "public.a_table_with_a_rather_long_name_indeed")
    bar.close()
    last = screen_lines(buf.getvalue())[-1]
    assert len(last) <= 80 and last.endswith("…")
    assert "800,000/1,234,567 rows" in last and "1/157 tables" in last and "400,000 rows/s" in last
    assert "ETA 0:00:02" in last
    assert all("\n" not in line for line in re.split(r"\r", ANSI.sub("", buf.getvalue()).rstrip("\n")))
