#!/usr/bin/env bash
# The test command (README): set up, then run the default suite against the real PostgreSQL and a
# Bolt server the fixtures start. Extra arguments go to pytest (e.g. -m slow).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
cd "$ROOT"
# The browser test drives Debian's chromium (never a browser a tool downloads): install it once, as root.
if [ ! -x /usr/bin/chromium ]; then
  if [ "$(id -u)" != "0" ]; then
    echo "the browser test needs Debian's chromium: run 'sudo apt-get install -y chromium' once, then this again" >&2
    exit 1
  fi
  say "installing Debian's chromium for the browser test (once)"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
exec "$VENV/bin/python" -m pytest -p no:cacheprovider "$@"
