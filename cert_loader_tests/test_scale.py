"""Scale: 100k, 1M and 5M rows in a table with an FK load with bounded memory (slow; run with -m slow)."""

from __future__ import annotations

import pytest

from cert_loader.bench.workload import CHILD_DDL, make_workload, product_load
from cert_loader.testing.databases import create_database, drop_database
from cert_loader_tests.fix_pg import ADMIN_URL, DATABASE_PREFIX

pytestmark = pytest.mark.slow

# Issue 6: peak RSS of a load stays under this whatever the largest table's size.
RSS_LIMIT_MB = 300


@pytest.mark.parametrize("rows", [100_000, 1_000_000, 5_000_000])
def test_large_table_memory_stays_flat(tmp_path, rows):
    name = f"{DATABASE_PREFIX}scale"
    district = "scale-district"
    make_workload(tmp_path, district, rows)
    url = create_database(ADMIN_URL, name, CHILD_DDL)
    try:
        elapsed, rss, report = product_load(url, tmp_path, district)
        assert report["overall_status"] == "SUCCESS", report.get("error")
        assert report["totals"]["records_loaded"] == rows + 500
        print(f"\n{rows:,} rows in {elapsed:.1f} s = {rows / elapsed:,.0f} rows/s, peak RSS {rss / 2**20:.0f} MB")
        assert rss < RSS_LIMIT_MB * 2**20
    finally:
        drop_database(ADMIN_URL, name)


def test_bulk_fk_at_1m_rows_keeps_memory_and_verifies(tmp_path):
    name = f"{DATABASE_PREFIX}scale_bulk"
    district = "scale-district"
    make_workload(tmp_path, district, 1_000_000)
    url = create_database(ADMIN_URL, name, CHILD_DDL)
    try:
        elapsed, rss, report = product_load(url, tmp_path, district, bulk_fk=True)
        assert report["post_load_validation"]["fk_integrity_verification"] == "PASSED"
        print(f"\n1,000,000 rows with --bulk-fk in {elapsed:.1f} s, peak RSS {rss / 2**20:.0f} MB")
        assert rss < RSS_LIMIT_MB * 2**20
    finally:
        drop_database(ADMIN_URL, name)
