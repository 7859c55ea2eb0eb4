"""Stores loading side by side: the same results as one after another; a failure rolls every store back and names the first."""

from __future__ import annotations

import pytest

from cert_loader.engine import LoadOptions, load_district, unload_district
from cert_loader_tests.fix_district import check_rows, rewrite, set_value, store_snapshot

pytestmark = pytest.mark.usefixtures("no_prepared_left")


def test_parallel_and_sequential_loads_agree(pg_config, make_district, sample_stores):
    district = make_district(students=40)
    parallel = load_district(pg_config(), district, LoadOptions(parallel=True))
    assert parallel.status == "SUCCESS", parallel.error
    rows = store_snapshot(sample_stores, district)
    unload_district(pg_config(), district)
    sequential = load_district(pg_config(), district, LoadOptions(parallel=False))
    assert sequential.status == "SUCCESS", sequential.error
    assert store_snapshot(sample_stores, district) == rows
    assert check_rows(parallel) == check_rows(sequential)
    assert {s: r.records_loaded for s, r in parallel.stores.items()} == {
        s: r.records_loaded for s, r in sequential.stores.items()}
    assert all(s.transaction == "PREPARED-then-COMMITTED" for s in parallel.stores.values())


def test_a_failure_in_parallel_rolls_back_every_store_and_names_the_first(pg_config, make_district, sample_stores,
                                                                          data_root):
    district = make_district(students=20)
    rewrite(data_root, district, "hcp1", "clinic", lambda t: set_value(t, "district_id", 1, "other-district"))
    rewrite(data_root, district, "adb", "assessment", lambda t: set_value(t, "title", 1, None))
    report = load_district(pg_config(), district, LoadOptions(parallel=True))
    assert report.status == "FAILED"
    assert report.error["store"] == "hcp1" and "row 2 belongs to district 'other-district'" in report.error["message"]
    assert all(s.transaction in ("ROLLED_BACK", "NOT_STARTED") for s in report.stores.values())
    assert all(n == 0 for rows in store_snapshot(sample_stores, district).values() for n in rows.values())
