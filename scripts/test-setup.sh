#!/usr/bin/env bash
# The test suite's two peers that pip's test extra cannot bring, run after `pip install -e ".[test]"`
# with that environment active (the README's test command and .ci/run do):
#   - JupyterHub's proxy, configurable-http-proxy, for tests/test_jupyterhub.py: from the npm
#     registry into tests/hub/node_modules (pinned by tests/hub/package-lock.json; needs Node);
#   - Studio's activity monitor (jupyter-activity-monitor-extension, as sagemaker-distribution
#     preinstalls it), for tests/test_studio_activity.py: into tests/.peers/activity-monitor,
#     without its dependencies (its pin pyzmq<=26.4 must not change the test environment).
# Without them those tests skip and say so (in CI they fail instead). Idempotent: a second run
# checks and returns at once. A step that cannot run here (no npm, no index) is reported and
# skipped, and the script exits 0 so that the other tests run; where CI is set it exits 1.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
python="${PYTHON:-python}"
say() { echo "test-setup: $*"; }
missing=0
cannot() { say "$*" >&2; missing=1; }

hub=tests/hub
if [ -x "$hub/node_modules/.bin/configurable-http-proxy" ] \
   && [ "$hub/node_modules/.package-lock.json" -nt "$hub/package-lock.json" ]; then
  say "configurable-http-proxy: already in $hub/node_modules"
elif ! command -v npm >/dev/null; then
  cannot "no npm on PATH: the JupyterHub tests will skip (install Node.js and rerun this)"
elif npm ci --prefix "$hub" --no-audit --no-fund --loglevel=error; then
  say "configurable-http-proxy: installed into $hub/node_modules"
else
  cannot "npm ci in $hub failed: the JupyterHub tests will skip"
fi

peers=tests/.peers/activity-monitor
monitor_version=0.3.2
if [ -d "$peers/jupyter_activity_monitor_extension-$monitor_version.dist-info" ]; then
  say "jupyter-activity-monitor-extension $monitor_version: already in $peers"
elif "$python" -m pip install --quiet --disable-pip-version-check --no-deps --upgrade --target "$peers" \
       "jupyter-activity-monitor-extension==$monitor_version"; then
  say "jupyter-activity-monitor-extension $monitor_version: installed into $peers"
else
  cannot "pip could not install jupyter-activity-monitor-extension: the Studio activity tests will skip"
fi
if [ "$missing" = 1 ] && [ -n "${CI:-}" ]; then
  exit 1  # in CI every test must run
fi
