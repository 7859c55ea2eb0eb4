"""Fixture modules, as psycopg's tests load theirs; and a watchdog on the test process's own exit."""

import os
import subprocess

pytest_plugins = [
    "cert_loader_tests.fix_pg",
    "cert_loader_tests.fix_graph",
    "cert_loader_tests.fix_district",
    "cert_loader_tests.fix_role",
]

# Seconds the process may take to exit after the last test: a thread left inside a library (pyarrow's CSV
# read-ahead once did) can hang the interpreter's exit after every test passed, and CI then waits for
# its 90-minute limit. The watchdog aborts the process instead, saying why, so the run fails at once.
EXIT_GRACE_SECONDS = 120

_WATCHDOG = """
pid=$1; grace=$2; waited=0
# Alive and not a zombie (a parent that reads our pipes before it reaps pytest must not wait on us).
alive() { state=$(sed 's/.*) //' "/proc/$pid/stat" 2>/dev/null | cut -c1); [ -n "$state" ] && [ "$state" != Z ]; }
while alive; do
  if [ "$waited" -ge "$grace" ]; then
    echo "pytest (pid $pid) has not exited $grace s after its last test: a thread left running holds it; aborting it" >&2
    kill -ABRT "$pid"; exit 0
  fi
  sleep 1; waited=$((waited + 1))
done
"""


def pytest_unconfigure(config):
    subprocess.Popen(["sh", "-c", _WATCHDOG, "watchdog", str(os.getpid()), str(EXIT_GRACE_SECONDS)],
                     stdin=subprocess.DEVNULL, start_new_session=True)
