#!/usr/bin/env bash
# Build a directory of wheels (this package and everything it needs) for offline installs:
#
#   scripts/build-wheelhouse.sh DIR [--python PATH] [-- EXTRA_REQUIREMENTS...]
#
# then, on a machine without internet:  bash DIR/install.sh --wheelhouse DIR
# (or a lifecycle script of scripts/lifecycle/, which runs exactly that). install.sh and the
# original's helper scripts are copied into DIR, so the wheelhouse is all a machine needs.
# Build it with the same Python version and platform as the target machine.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dir="${1:-}"
if [ -z "$dir" ] || [[ "$dir" == -* ]]; then
  echo "usage: $0 DIR [--python PATH] [-- EXTRA_REQUIREMENTS...]" >&2
  exit 2
fi
shift
python="$(command -v python3 || command -v python)"
extra=()
while [ $# -gt 0 ]; do
  case "$1" in
    --python) python="${2:?--python needs a path}"; shift 2 ;;
    --) shift; extra=("$@"); break ;;
    *) echo "error: unknown argument: $1" >&2; exit 2 ;;
  esac
done
mkdir -p "$dir"
"$python" -m pip wheel --quiet --wheel-dir "$dir" "$here" ${extra[@]+"${extra[@]}"}
cp "$here/install.sh" "$here/check_idle_timeout_configuration.py" "$dir/"
cp "$here/scripts/set-time-interval.sh" "$dir/"
echo "wheelhouse ready: $dir ($(ls "$dir" | wc -l) wheels)"
