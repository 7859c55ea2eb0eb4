"""The `cert-loader` command as a user runs it: plan, load, unload, recover, exit codes, no password printed."""

from __future__ import annotations

import json
import os

from cert_loader.inputs import DistrictPaths
from cert_loader_tests.fix_cli import run_cli


def run(args, sample_stores, data_root, **env):
    base = {f"CERT_{s.upper()}_URL": u for s, u in sample_stores.items()}
    return run_cli(*args, "--data-root", str(data_root), "--stores", "ids,hcp1,hcp2,adb",
                   env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **base, **env})


def test_plan_then_load_then_unload(make_district, sample_stores, data_root, no_prepared_left):
    district = make_district(students=25)
    plan = run(["plan", district], sample_stores, data_root)
    assert plan.returncode == 0, plan.stderr
    out = plan.stdout
    assert "edfi.student" in out and "marked" in out and "Nothing would be refused." in out
    assert "deferrable FK cycle" in out
    assert out.index("public.school") < out.index("edfi.enrollment")

    load = run(["load", district], sample_stores, data_root)
    assert load.returncode == 0, load.stderr + load.stdout
    assert "✓ CERT Load Complete" in load.stdout
    assert "PREPARED-then-COMMITTED" in load.stdout
    assert "Post-load validation: PASSED" in load.stdout
    report = json.loads(DistrictPaths(data_root, district).report_file.read_text())
    assert report["overall_status"] == "SUCCESS"
    assert set(report["stores"]) == {"ids", "hcp1", "hcp2", "adb"}

    again = run(["load", district], sample_stores, data_root)
    assert again.returncode == 1
    assert "✗ CERT Load FAILED" in again.stdout and "CERT was left as it was" in again.stdout

    unload = run(["unload", district], sample_stores, data_root)
    assert unload.returncode == 0, unload.stderr
    assert "IDS   deleted" in unload.stdout

    recover = run(["recover"], sample_stores, data_root)
    assert recover.returncode == 0 and "nothing in doubt" in recover.stdout


def test_plan_lists_what_would_be_refused(make_district, sample_stores, data_root):
    district = make_district(students=10)
    DistrictPaths(data_root, district).source_file("hcp2", "referral").unlink()
    plan = run(["plan", district, "--strict"], sample_stores, data_root)
    assert plan.returncode == 1
    assert "Would refuse:" in plan.stdout and "referral" in plan.stdout


def test_missing_variable_is_named(data_root):
    proc = run_cli("plan", "x", "--stores", "ids", env={"PATH": "/usr/bin:/bin"}, timeout=60)
    assert proc.returncode == 2
    assert "CERT_IDS_URL" in proc.stderr
