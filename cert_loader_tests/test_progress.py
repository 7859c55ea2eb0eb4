"""Progress (progress.py): the log line every LOG_EVERY_TABLES tables that DESIGN.md section 3 promises, in a real load."""

from __future__ import annotations

import logging
import re
import threading

import pytest

from cert_loader.engine import LoadOptions, load_district
from cert_loader.progress import LOG_EVERY_TABLES, TableCounter

LINE = re.compile(r"loaded (\d+) of (\d+) tables \((\w+): ([\w.]+)\)")


def _lines(caplog) -> list[tuple[int, int, str, str]]:
    out = []
    for record in caplog.records:
        m = LINE.fullmatch(record.getMessage())
        if m and record.name == "cert_loader.progress":
            out.append((int(m[1]), int(m[2]), m[3], m[4]))
    return out


@pytest.mark.parametrize("parallel", [True, False], ids=["stores-side-by-side", "one-after-another"])
def test_a_load_logs_every_ten_tables(parallel, pg_config, make_district, caplog, no_prepared_left):
    caplog.set_level(logging.INFO, logger="cert_loader.progress")
    district = make_district(students=10)
    report = load_district(pg_config(), district, LoadOptions(parallel=parallel))
    assert report.status == "SUCCESS", report.error
    total = sum(s.tables_loaded for s in report.stores.values())
    assert total >= 2 * LOG_EVERY_TABLES  # the sample district: 24 tables over four stores
    lines = _lines(caplog)
    assert [(done, n) for done, n, _, _ in lines] == [
        (k, total) for k in range(LOG_EVERY_TABLES, total + 1, LOG_EVERY_TABLES)]
    assert f"loaded 10 of {total} tables (" in caplog.text
    tables = {(s, t.table) for s, sr in report.stores.items() for t in sr.tables}
    assert all((store, table) in tables for _, _, store, table in lines)


def test_the_count_is_shared_by_the_stores_threads(caplog):
    """Four threads, 25 tables each: exactly one line per ten tables, numbered 10, 20 … 100."""
    caplog.set_level(logging.INFO, logger="cert_loader.progress")
    counter = TableCounter(100)
    start = threading.Barrier(4)

    def store(name: str) -> None:
        start.wait()
        for i in range(25):
            counter.one_more(name, f"public.t{i}")

    threads = [threading.Thread(target=store, args=(f"s{n}",)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [(done, n) for done, n, _, _ in _lines(caplog)] == [(k, 100) for k in range(10, 101, 10)]
    assert counter.done == 100
