"""`cert-loader bench` at a small size, so the command the README shows keeps working; the seed shape's generator."""

from __future__ import annotations

import json

import pyarrow.parquet as pq

from cert_loader.bench.seed import SHAPE, seed_ddl, seed_tables, write_seed_district
from cert_loader_tests.fix_cli import run_cli
from cert_loader_tests.fix_pg import ADMIN_URL


def test_bench_runs_and_reports_every_ratio(tmp_path):
    out = tmp_path / "results.json"
    proc = run_cli("bench", "--rows", "20000", "--repeat", "1", "--sections", "relational,memory",
                   "--memory-rows", "5000", "--out", str(out), "--admin-url", ADMIN_URL)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    results = json.loads(out.read_text())
    rel = results["relational"]
    for key in ("server_copy", "insert", "bulk_fk", "server_copy_no_fk", "upsert_unchanged", "merge_unchanged"):
        assert rel[key]["rows_per_s"] > 0, key
    assert rel["insert"]["ratio_vs_server_copy"] > 0 and rel["insert"]["peak_rss_mb"] > 0
    assert results["memory"]["5000"]["peak_rss_mb"] > 0
    targets = {t["target"]: t for t in results["targets"]}
    assert targets["ordinary insert / server COPY with FK"]["measured"] == rel["insert"]["ratio_vs_server_copy"]
    assert "x" in proc.stdout and "targets:" in proc.stdout and "server-side binary COPY" in proc.stdout


def test_dagster_cost_is_a_target_against_the_cli_load_of_the_same_run():
    """Issue 15, point 6: the whole `dagster asset materialize` at most 1.25x the CLI's --parallel load."""
    from cert_loader.bench.run import targets

    def row(ratio):
        seed = {"load_parallel": {"median_s": 16.0}, "dagster": {"command_s": 16.0 * ratio, "vs_cli_parallel": ratio}}
        return next(t for t in targets({"seed": seed}) if t["target"].endswith("/ cert-loader load --parallel"))

    assert (row(1.2)["met"], row(1.3)["met"], row(1.3)["goal"]) == (True, False, "<= 1.25")
    assert next(t for t in targets({}) if "/ cert-loader load --parallel" in t["target"])["met"] is None


def test_bench_refuses_an_unknown_section():
    proc = run_cli("bench", "--sections", "relational,nope", timeout=60)
    assert proc.returncode == 2 and "unknown section(s) nope" in proc.stderr


def test_seed_shape_has_the_seeds_tables_and_rows(tmp_path):
    assert {s: len(seed_tables(s)) for s in SHAPE} == {"ids": 45, "hcp1": 32, "hcp2": 28, "adb": 52}
    assert sum(t.rows for s in SHAPE for t in seed_tables(s)) == 750_000
    ddl = seed_ddl("hcp2")
    assert ddl.count("CREATE TABLE") == 28 and "REFERENCES hcp2_t00" in ddl
    counts = write_seed_district(tmp_path, "d-shape", graph=False)
    assert counts == {s: total for s, (_, total) in SHAPE.items()}
    t = seed_tables("adb")[15]
    table = pq.read_table(tmp_path / "data" / "anonymized" / "d-shape" / "adb" / f"{t.name}.parquet")
    assert table.num_rows == t.rows and set(table.column_names) >= {"district_id", "id", "parent_id"}


def test_districts_section_reports_the_curve_for_both_engines(tmp_path):
    out = tmp_path / "results.json"
    proc = run_cli("bench", "--sections", "districts", "--district-rows", "4000", "--levels", "1",
                   "--out", str(out), "--admin-url", ADMIN_URL, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    d = json.loads(out.read_text())["districts"]
    for engine in ("cli", "dagster"):
        assert set(d[engine]) == {"1"}  # one level keeps the smoke test short; the curve is the bench's own run
        assert d[engine]["1"]["vs_one"] == 1.0 and d[engine]["1"]["rows_per_s"] > 0
        assert d[engine]["1"]["districts_per_hour"] > 0
        assert 0 < d[engine]["1"]["cpu_busy"] <= 1  # how near the cores' ceiling the level ran
    assert "throughput" in proc.stdout and "CPU busy" in proc.stdout and "4 at once" in proc.stdout
