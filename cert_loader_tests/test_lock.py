"""Two loads of one district never run at once; different districts may."""

from __future__ import annotations

import threading

import psycopg

from cert_loader.engine import LoadOptions, load_district
from cert_loader.stores.postgres import LOCK_PREFIX


def test_second_load_of_same_district_fails_fast(pg_config, make_district, sample_stores, no_prepared_left):
    district = make_district(students=10)
    # Hold the district's lock in hcp2 only, as a running load would hold it in every store.
    with psycopg.connect(sample_stores["hcp2"], autocommit=True) as holder:
        holder.execute("SELECT pg_advisory_lock(hashtextextended(%s, 0))", (LOCK_PREFIX + district,))
        report = load_district(pg_config(), district)
        assert report.status == "FAILED"
        assert report.error["type"] == "LoadLockedError"
        assert f"another load of district {district} is running" in report.error["message"]
        # Another district loads meanwhile.
        other = make_district(students=10)
        assert load_district(pg_config(), other).status == "SUCCESS"
    assert load_district(pg_config(), district).status == "SUCCESS"


def test_concurrent_loads_of_different_districts(pg_config, make_district, no_prepared_left):
    districts = [make_district(students=20) for _ in range(2)]
    results = {}

    def run(d):
        results[d] = load_district(pg_config(), d, LoadOptions()).status

    threads = [threading.Thread(target=run, args=(d,)) for d in districts]
    for th in threads:
        th.start()
    for th in threads:
        th.join(120)
    assert results == {d: "SUCCESS" for d in districts}
