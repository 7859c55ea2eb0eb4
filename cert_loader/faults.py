"""Named pause points for the fault-injection tests: a test-only hook, inert unless its variable is set."""

from __future__ import annotations

import os
import sys
import time

# CERT_LOADER_TEST_PAUSE_AT=<point>: at that point the loader prints "PAUSED <point>" to stderr and
# sleeps, so a test can SIGKILL it there, or (with CERT_LOADER_TEST_PAUSE_SECONDS=n) break a server
# while it waits and let it go on. Read once; never set in production.
_PAUSE_AT = os.environ.get("CERT_LOADER_TEST_PAUSE_AT", "")
_PAUSE_SECONDS = float(os.environ.get("CERT_LOADER_TEST_PAUSE_SECONDS", "0") or 0)


def checkpoint(name: str) -> None:
    if not _PAUSE_AT or name != _PAUSE_AT:
        return
    print(f"PAUSED {name}", file=sys.stderr, flush=True)
    if _PAUSE_SECONDS > 0:
        time.sleep(_PAUSE_SECONDS)
        return
    while True:
        time.sleep(3600)
