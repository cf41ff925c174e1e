#!/usr/bin/env bash
# Build a directory of wheels (this package and everything it needs) for offline installs:
#
#   scripts/build-wheelhouse.sh DIR [--python PATH] [--python-version X.Y [--platform TAG]...]
#                                   [-- EXTRA_REQUIREMENTS...]
#
# then, on a machine without internet:  bash DIR/install.sh --wheelhouse DIR
# (or a lifecycle script of scripts/lifecycle/, which runs exactly that). install.sh and the
# original's helper scripts are copied into DIR, so the wheelhouse is all a machine needs.
#
# Without --python-version the wheels are for the Python that runs pip (--python PATH), so build
# on a machine like the target. With --python-version the dependencies are resolved and downloaded
# as binary wheels for that Python and platform, from any machine: a SageMaker notebook instance's
# JupyterSystemEnv is Python 3.10 on x86_64 Linux, so
#
#   scripts/build-wheelhouse.sh wheelhouse --python-version 3.10
#
# (--platform defaults to manylinux2014_x86_64, which Amazon Linux 2 and 2023 both run; give it
# more than once for more platforms, e.g. manylinux2014_aarch64 for Graviton instances).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
usage="usage: $0 DIR [--python PATH] [--python-version X.Y [--platform TAG]...] [-- EXTRA_REQUIREMENTS...]"
dir="${1:-}"
if [ -z "$dir" ] || [[ "$dir" == -* ]]; then
  echo "$usage" >&2
  exit 2
fi
shift
python="$(command -v python3 || command -v python)"
target_version=""
platforms=()
extra=()
while [ $# -gt 0 ]; do
  case "$1" in
    --python) python="${2:?--python needs a path}"; shift 2 ;;
    --python-version) target_version="${2:?--python-version needs a version such as 3.10}"; shift 2 ;;
    --platform) platforms+=("${2:?--platform needs a platform tag}"); shift 2 ;;
    --) shift; extra=("$@"); break ;;
    *) echo "error: unknown argument: $1" >&2; echo "$usage" >&2; exit 2 ;;
  esac
done
if [ -n "$target_version" ] && ! [[ "$target_version" =~ ^3\.[0-9]+$ ]]; then
  echo "error: --python-version takes a version such as 3.10, not '$target_version'" >&2
  exit 2
fi
if [ "${#platforms[@]}" -gt 0 ] && [ -z "$target_version" ]; then
  echo "error: --platform needs --python-version" >&2
  exit 2
fi
mkdir -p "$dir"
if [ -z "$target_version" ]; then
  "$python" -m pip wheel --quiet --wheel-dir "$dir" "$here" ${extra[@]+"${extra[@]}"}
else
  [ "${#platforms[@]}" -gt 0 ] || platforms=(manylinux2014_x86_64)
  # This package is pure Python: build its wheel here, then let pip resolve it and everything it
  # needs as the target Python would (its requires-python included), binary wheels only.
  "$python" -m pip wheel --quiet --no-deps --wheel-dir "$dir" "$here"
  wheel="$(ls -t "$dir"/jupyter_autoshutdown-*.whl | head -n 1)"
  platform_args=()
  for platform in "${platforms[@]}"; do platform_args+=(--platform "$platform"); done
  "$python" -m pip download --quiet --dest "$dir" --only-binary=:all: \
    --python-version "$target_version" --implementation cp "${platform_args[@]}" \
    "$wheel" ${extra[@]+"${extra[@]}"}
fi
cp "$here/install.sh" "$here/check_idle_timeout_configuration.py" "$dir/"
cp "$here/scripts/set-time-interval.sh" "$dir/"
echo "wheelhouse ready: $dir ($(ls "$dir"/*.whl | wc -l) wheels${target_version:+, for Python $target_version})"
