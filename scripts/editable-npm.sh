#!/usr/bin/env bash
# The "npm" of editable installs (pyproject.toml, [tool.hatch.build.hooks.jupyter-builder.
# editable-build-kwargs]): hatch-jupyter-builder runs `<this> install` and `<this> run
# build:editable` at every `pip install -e .`. While the prebuilt front end is there
# (jupyter_autoshutdown/labextension/, committed), this does nothing, so an editable install takes
# seconds, needs no Node and leaves no node_modules/ or lib/ in the checkout. A front-end developer
# rebuilds with `npm ci && npm run build:prod`, or lets the install do it:
# AUTOSHUTDOWN_BUILD_FRONTEND=1 pip install -e .
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
if [ -f jupyter_autoshutdown/labextension/package.json ] && [ "${AUTOSHUTDOWN_BUILD_FRONTEND:-}" != 1 ]; then
  echo "jupyter_autoshutdown: npm $* skipped: the prebuilt front end in jupyter_autoshutdown/labextension" \
       "is used (rebuild it with npm run build:prod, or AUTOSHUTDOWN_BUILD_FRONTEND=1 pip install -e .)" >&2
  exit 0
fi
exec npm "$@"
