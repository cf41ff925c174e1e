#!/bin/bash
# jupyter-autoshutdown for a SageMaker Studio JupyterLab space: a lifecycle configuration (LCC) of
# app type JupyterLab. Studio runs it as sagemaker-user at every start of the space's JupyterLab
# app, so it is idempotent; it needs no internet (wheels from S3 or the space's home volume).
#
# Make the wheelhouse once, for the image's Python (SageMaker Distribution 1.x: 3.10; 2.x/3.x: 3.11/3.12):
#   scripts/build-wheelhouse.sh wheelhouse --python-version 3.10 && aws s3 sync wheelhouse s3://BUCKET/auto-shutdown/
# Then attach this file as the JupyterLab LCC (base64 -w0 of it as --studio-lifecycle-config-content).
set -euo pipefail

# ---- settings (edit here, or set them in the environment) ----
TIMEOUT_IN_MINS="${TIMEOUT_IN_MINS:-120}"   # idle timeout in minutes; 0 = off
KEEP_TERMINALS="${KEEP_TERMINALS:-false}"   # true: terminals are never removed
# Where the wheels are: an s3:// URI (copied with the AWS CLI; needs s3:GetObject and s3:ListBucket,
# and an S3 VPC endpoint in VPC-only domains) or a directory, e.g. on the home volume.
WHEELHOUSE="${WHEELHOUSE:-$HOME/.auto-shutdown/wheelhouse}"
# sagemaker-distribution's Python: the one the JupyterLab server runs.
PYTHON="${PYTHON:-/opt/conda/bin/python}"
# How the image restarts its JupyterLab server (supervisord program "jupyterlabserver").
SUPERVISORCTL="${SUPERVISORCTL:-supervisorctl -c /etc/supervisor/conf.d/supervisord.conf}"
LOG_FILE="${LOG_FILE:-/var/log/apps/app_container.log}"  # Studio ships this file to CloudWatch
# ---- end of settings ----

log() { echo "auto-shutdown LCC: $*"; }
if [ -w "$(dirname "$LOG_FILE")" ] || [ -w "$LOG_FILE" ]; then
  exec > >(tee -a "$LOG_FILE") 2>&1
fi

case "$WHEELHOUSE" in
  s3://*)
    local_wheels="$HOME/.auto-shutdown/wheelhouse"
    mkdir -p "$local_wheels"
    log "copying $WHEELHOUSE to $local_wheels"
    aws s3 sync --only-show-errors "$WHEELHOUSE" "$local_wheels"
    WHEELHOUSE="$local_wheels"
    ;;
esac
[ -f "$WHEELHOUSE/install.sh" ] || { log "error: $WHEELHOUSE has no install.sh (make it with scripts/build-wheelhouse.sh)"; exit 1; }

keep_flag=--no-keep-terminals
[ "$KEEP_TERMINALS" = true ] && keep_flag=--keep-terminals

# Restart only a server that runs already: on a fresh start the server starts after this script
# and loads the extension by itself.
restart=()
if $SUPERVISORCTL status jupyterlabserver 2>/dev/null | grep -q RUNNING; then
  restart=(--restart-command "$SUPERVISORCTL restart jupyterlabserver")
fi
# Studio spaces run JupyterLab without a token at /jupyterlab/default/ on port 8888; the extension
# finds the space from /opt/ml/metadata/resource-metadata.json (app action 'auto': DeleteApp,
# needs sagemaker:DeleteApp) and keeps Studio's idle-shutdown file true to its rules.
bash "$WHEELHOUSE/install.sh" --wheelhouse "$WHEELHOUSE" --python "$PYTHON" \
  --timeout "$TIMEOUT_IN_MINS" "$keep_flag" ${restart[@]+"${restart[@]}"}
log "done"
