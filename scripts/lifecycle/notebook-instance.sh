#!/bin/bash
# jupyter-autoshutdown for a SageMaker notebook instance: its lifecycle configuration's "Start
# notebook" script. SageMaker runs it as root at every start of the instance (and gives it 5
# minutes), so it is idempotent; it needs no internet (wheels from S3 or the ML storage volume).
#
# Make the wheelhouse once, for the instance's JupyterSystemEnv Python (3.10), from any machine:
#   scripts/build-wheelhouse.sh wheelhouse --python-version 3.10 && aws s3 sync wheelhouse s3://BUCKET/auto-shutdown/
# Once the server has been idle for the timeout, the extension stops this instance
# (StopNotebookInstance: the role needs sagemaker:StopNotebookInstance). The ML storage volume,
# and everything under /home/ec2-user/SageMaker, is kept.
set -euo pipefail

# ---- settings (edit here, or set them in the environment) ----
TIMEOUT_IN_MINS="${TIMEOUT_IN_MINS:-120}"   # idle timeout in minutes; 0 = off
KEEP_TERMINALS="${KEEP_TERMINALS:-false}"
# An s3:// URI (copied with the AWS CLI; needs s3:GetObject and s3:ListBucket) or a directory.
WHEELHOUSE="${WHEELHOUSE:-/home/ec2-user/SageMaker/.auto-shutdown/wheelhouse}"
NOTEBOOK_USER="${NOTEBOOK_USER:-ec2-user}"  # the Jupyter server runs as this user
# The Jupyter server's own environment (not the kernels' conda environments).
PYTHON="${PYTHON:-/home/ec2-user/anaconda3/envs/JupyterSystemEnv/bin/python}"
# Empty: systemd's jupyter-server unit (Amazon Linux 2 and 2023), else upstart's (Amazon Linux 1).
RESTART_COMMAND="${RESTART_COMMAND:-}"
# ---- end of settings ----

log() { echo "auto-shutdown LCC: $*"; }  # SageMaker sends this to CloudWatch (LifecycleConfigOnStart)

case "$WHEELHOUSE" in
  s3://*)
    local_wheels="/tmp/auto-shutdown-wheelhouse"
    mkdir -p "$local_wheels"
    log "copying $WHEELHOUSE to $local_wheels"
    aws s3 sync --only-show-errors "$WHEELHOUSE" "$local_wheels"
    chmod -R a+rX "$local_wheels"
    WHEELHOUSE="$local_wheels"
    ;;
esac
[ -f "$WHEELHOUSE/install.sh" ] || { log "error: $WHEELHOUSE has no install.sh (make it with scripts/build-wheelhouse.sh)"; exit 1; }

if [ -z "$RESTART_COMMAND" ]; then
  if command -v systemctl >/dev/null 2>&1; then
    RESTART_COMMAND="systemctl restart jupyter-server"
  else
    RESTART_COMMAND="initctl restart jupyter-server --no-wait"
  fi
fi
keep_flag=--no-keep-terminals
[ "$KEEP_TERMINALS" = true ] && keep_flag=--keep-terminals

# Installed and configured as the server's user (its ~/.jupyter, its ~/.auto-shutdown helper);
# the server is restarted by root, as the platform's own samples do.
as_user() {
  if [ "$(id -un)" = "$NOTEBOOK_USER" ]; then "$@"; else sudo -u "$NOTEBOOK_USER" -i "$@"; fi
}
as_user bash "$WHEELHOUSE/install.sh" --wheelhouse "$WHEELHOUSE" --python "$PYTHON" \
  --timeout "$TIMEOUT_IN_MINS" "$keep_flag"
log "restarting the Jupyter server: $RESTART_COMMAND"
bash -c "$RESTART_COMMAND"
# The server comes back in the background; the lifecycle script must not wait for it (5-minute
# limit). The saved config applies the timeout at its start; check later with:
#   ~/.auto-shutdown/set-time-interval.sh   or   python -m jupyter_autoshutdown.client check
log "done"
