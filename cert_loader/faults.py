"""Named pause points for the fault-injection tests: a test-only hook, inert unless its variable is set."""

from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path

# CERT_LOADER_TEST_PAUSE_AT=<point>: at that point the loader prints "PAUSED <point>" to stderr and
# sleeps, so a test can SIGKILL it there, or (with CERT_LOADER_TEST_PAUSE_SECONDS=n) break a server
# while it waits and let it go on. CERT_LOADER_TEST_PAUSE_FILE=<path>: "<point> <pid>" is also written
# there (whole, by a rename), for a loader whose stderr the test does not see: a Dagster run worker, which
# test_terminate.py stops and test_recovery_daemon.py SIGKILLs by that pid.
# Read once; never set in production.
_PAUSE_AT = os.environ.get("CERT_LOADER_TEST_PAUSE_AT", "")
_PAUSE_SECONDS = float(os.environ.get("CERT_LOADER_TEST_PAUSE_SECONDS", "0") or 0)
_PAUSE_FILE = os.environ.get("CERT_LOADER_TEST_PAUSE_FILE", "")
# Set by release_pauses(): a stopped load's paused thread goes on (and meets its cancelled statement).
_RELEASED = threading.Event()


def checkpoint(name: str) -> None:
    if not _PAUSE_AT or name != _PAUSE_AT:
        return
    print(f"PAUSED {name}", file=sys.stderr, flush=True)
    if _PAUSE_FILE:
        path = Path(_PAUSE_FILE)
        partial = path.with_name(f"{path.name}.{os.getpid()}.partial")
        partial.write_text(f"{name} {os.getpid()}")
        os.replace(partial, path)  # a reader that sees the file sees all of it
    # In slices, so a signal handler gets to run in the main thread (polars restarts interrupted waits).
    deadline = time.monotonic() + _PAUSE_SECONDS if _PAUSE_SECONDS > 0 else float("inf")
    while not _RELEASED.wait(min(0.2, max(0.0, deadline - time.monotonic()))):
        if time.monotonic() >= deadline:
            return


def release_pauses() -> None:
    """End every pause, now and later in this process (a stop request was received)."""
    _RELEASED.set()
