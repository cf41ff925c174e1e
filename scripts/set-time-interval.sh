#!/usr/bin/env bash
# Set the idle timeout of the running Jupyter server (and optionally keep_terminals).
#
#   set-time-interval.sh MINUTES [--keep-terminals | --no-keep-terminals] [--yes] [--url URL] [--token TOKEN]
#
# MINUTES may also come from TIMEOUT_IN_MINS. A timeout under 5 minutes (not 0, which is off)
# is asked about on a terminal; without one (a script) it needs --yes, else nothing is changed
# and it exits 2. Without --url, the running server is found with `jupyter server list` of this
# environment (JUPYTER_RUNTIME_DIR is honoured); the token comes from --token, JUPYTER_TOKEN or
# that list. Prints the settings now in force. Exit codes: 0 done, 1 request failed, 2 bad
# arguments or a short timeout not confirmed, 3 no server found, 4 extension not loaded,
# 6 value rejected (the server's message is shown), 7 token refused.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
python="${AUTOSHUTDOWN_PYTHON:-$(command -v python3 || command -v python || true)}"
if [ -z "$python" ]; then
  echo "error: no python3 found; set AUTOSHUTDOWN_PYTHON to the Python of your Jupyter server" >&2
  exit 2
fi
# Run from a checkout, the client works before the package is installed.
if [ -d "$here/../jupyter_autoshutdown" ]; then
  export PYTHONPATH="$here/..${PYTHONPATH:+:$PYTHONPATH}"
fi
# `jupyter autoshutdown set`, with this script's name in its --help and errors.
exec "$python" -c 'import sys
from jupyter_autoshutdown.client import main
sys.exit(main(sys.argv[2:], command="set", prog=sys.argv[1]))' "$(basename "$0")" "$@"
