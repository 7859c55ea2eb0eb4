#!/usr/bin/env bash
# The test command (README): set up, then run the default suite against the real PostgreSQL and a
# Bolt server the fixtures start. Extra arguments go to pytest (e.g. -m slow).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
cd "$ROOT"
exec "$VENV/bin/python" -m pytest -p no:cacheprovider "$@"
