"""Named pause points for the fault-injection tests: a test-only hook, inert unless its variable is set."""

from __future__ import annotations

import os
import sys
import time

# CERT_LOADER_TEST_PAUSE_AT=<point>: at that point the loader prints "PAUSED <point>" to stderr
# and sleeps, so a test can SIGKILL it there. Read once; never set in production.
_PAUSE_AT = os.environ.get("CERT_LOADER_TEST_PAUSE_AT", "")


def checkpoint(name: str) -> None:
    if _PAUSE_AT and name == _PAUSE_AT:
        print(f"PAUSED {name}", file=sys.stderr, flush=True)
        while True:
            time.sleep(3600)
