"""End to end in a real browser: `dagster dev`, find a CERT asset in the graph, materialize a district partition (issue 3)."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path
from typing import Iterator

import dagster as dg
import pytest

from cert_loader_tests.dagster_support import (
    REPO, VENV_BIN, cert_env, dagster_home, default_signals, free_port, snapshot_to, sqlalchemy_url, stop_group,
    subprocess_env, wait_http,
)
from cert_loader.sample import generate_district
from cert_loader_tests.fix_district import district_rows, new_district, store_snapshot

pytestmark = [pytest.mark.browser, pytest.mark.usefixtures("no_prepared_left")]

CHROMIUM = Path("/usr/bin/chromium")  # Debian's package (scripts/test.sh installs it); never `playwright install`
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
ARTIFACTS = REPO / "artifacts"
ASSET = "cert/hcp1/clinic"  # no parents: a one-asset selection loads on its own


@pytest.fixture(scope="module")
def dagster_ui(make_database, sample_stores, tmp_path_factory) -> Iterator[dict]:
    """`dagster dev` over the project's workspace.yaml and dagster.yaml, a registered district, stopped by process group."""
    if not CHROMIUM.is_file():
        pytest.fail(f"{CHROMIUM} is missing: run the tests with `bash scripts/test.sh`, which installs Debian's "
                    "chromium once (or apt-get install -y chromium)", pytrace=False)
    tmp = tmp_path_factory.mktemp("dagster_ui")
    data_root = tmp / "root"
    snapshot_to(sample_stores, data_root / "data" / "analysis" / "cert-schema.json")
    district = new_district()
    generate_district(data_root, district, students=50)
    home = dagster_home(tmp / "dagster_home")
    env = {"DAGSTER_HOME": str(home), "DAGSTER_PG_URL": sqlalchemy_url(make_database("dagster_ui", mark=False)),
           **cert_env(sample_stores, data_root)}
    os.environ["DAGSTER_PG_URL"] = env["DAGSTER_PG_URL"]  # for this process's own look at the instance
    with dg.DagsterInstance.from_config(str(home)) as instance:
        instance.add_dynamic_partitions("district", [district])
    port = free_port()
    log_path = tmp / "dagster-dev.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [str(VENV_BIN / "dagster"), "dev", "-h", "127.0.0.1", "-p", str(port), "-w", str(REPO / "workspace.yaml")],
            env=subprocess_env(**env), cwd=tmp, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True, preexec_fn=default_signals,
        )
    try:
        wait_http(f"http://127.0.0.1:{port}/server_info", proc, log_path)
        yield {"url": f"http://127.0.0.1:{port}", "district": district, "home": str(home), "log": log_path,
               "env": env, "data_root": data_root, "tmp": tmp}
    finally:
        stop_group(proc)
        os.environ.pop("DAGSTER_PG_URL", None)


def _wait_run(home: str, tags: dict[str, str], timeout: float = 90) -> dg.DagsterRun:
    """The finished run carrying ``tags`` (the daemon dequeues and launches it)."""
    deadline = time.monotonic() + timeout
    with dg.DagsterInstance.from_config(home) as instance:
        while time.monotonic() < deadline:
            runs = instance.get_runs(filters=dg.RunsFilter(tags=tags), limit=1)
            if runs and runs[0].is_finished:
                return runs[0]
            time.sleep(1)
    raise AssertionError(f"no run with tags {tags} finished within {timeout} s")


def test_materialize_a_district_partition_from_the_ui(dagster_ui, sample_stores) -> None:
    from playwright.sync_api import expect, sync_playwright

    url, district = dagster_ui["url"], dagster_ui["district"]
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "dagster-ui-failure.png").unlink(missing_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.set_default_timeout(30_000)
        try:
            # find the asset in the asset graph
            page.goto(f"{url}/asset-groups")
            page.get_by_placeholder("Jump to…").fill("clinic")
            page.get_by_text("clinic", exact=True).first.click()
            expect(page.get_by_text("cert / hcp1 / clinic")).to_be_visible()
            # materialize one district partition of it
            page.get_by_role("button", name="Materialize selected…").click()
            page.get_by_text("Select a partition or create one").click()
            page.get_by_placeholder("Filter partitions").fill(district)
            page.get_by_role("menuitem").filter(has_text=district).click()
            page.keyboard.press("Escape")
            page.get_by_role("button", name="Launch 1 run").click()
            expect(page.get_by_text("Launched run")).to_be_visible()

            run = _wait_run(dagster_ui["home"], {"dagster/partition": district})
            assert run.status == dg.DagsterRunStatus.SUCCESS, dagster_ui["log"].read_text()[-4000:]
            assert run.tags["dagster/partition"] == district

            page.goto(f"{url}/assets/{ASSET}?view=partitions&partition={district}")
            expect(page.get_by_text("Materialized (1)")).to_be_visible()
            expect(page.get_by_text("PREPARED-then-COMMITTED", exact=True)).to_be_visible()
            page.screenshot(path=str(ARTIFACTS / "dagster-ui-partition.png"))
            page.goto(f"{url}/assets/{ASSET}?view=checks")
            # row_count and fk_integrity ran; content (only with verify: content) did not, and is listed first
            expect(page.get_by_text("Succeeded")).to_have_count(2)
            page.get_by_text("row_count", exact=True).first.click()
            expect(page.get_by_text(district, exact=True)).to_be_visible()
            page.screenshot(path=str(ARTIFACTS / "dagster-ui-checks.png"))
        except Exception:
            page.screenshot(path=str(ARTIFACTS / "dagster-ui-failure.png"))
            raise
        finally:
            browser.close()
    rows = district_rows(sample_stores["hcp1"], district)
    assert rows["public.clinic"] > 0 and rows["public.patient"] == 0


def test_sensor_launches_a_run_when_a_passing_report_lands(dagster_ui, sample_stores) -> None:
    district = new_district()
    generate_district(dagster_ui["data_root"], district, students=30)  # writes validation-report.json last
    started = subprocess.run(
        [str(VENV_BIN / "dagster"), "sensor", "start", "validation_report_sensor", "-w", str(REPO / "workspace.yaml")],
        env=subprocess_env(**dagster_ui["env"]), cwd=dagster_ui["tmp"], capture_output=True, text=True, timeout=60,
    )
    assert started.returncode == 0, started.stdout + started.stderr
    run = _wait_run(dagster_ui["home"], {"district": district, "dagster/sensor_name": "validation_report_sensor"})
    assert run.status == dg.DagsterRunStatus.SUCCESS, dagster_ui["log"].read_text()[-4000:]
    assert run.tags["dagster/partition"] == district
    assert all(n > 0 for rows in store_snapshot(sample_stores, district).values() for n in rows.values())
