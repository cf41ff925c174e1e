#!/usr/bin/env bash
# Install jupyter-autoshutdown and configure its idle timeout. Idempotent: safe to run at every
# server start (e.g. as a SageMaker Studio lifecycle configuration).
#
#   install.sh [--timeout MINUTES] [--keep-terminals] [--python PATH]
#              [--wheelhouse DIR] [--package FILE] [--reinstall]
#              [--restart-command "CMD"] [--wait SECONDS] [--url URL] [--token TOKEN]
#   install.sh --uninstall [--python PATH]
#
# What it does:
#   1. installs the package with the pip of the active Python (or --python): from this checkout by
#      default, fully offline from a directory of wheels (--wheelhouse DIR, made by
#      scripts/build-wheelhouse.sh), or from a given wheel or sdist (--package FILE);
#   2. writes the timeout into the user's Jupyter config (jupyter_server_config.json), so the
#      next server start uses it with no request;
#   3. creates ~/.auto-shutdown/set-time-interval.sh, which re-applies that timeout when run;
#   4. with --restart-command, restarts the server (e.g. "supervisorctl restart jupyterlabserver")
#      and waits until it answers (at most --wait seconds, default 120);
#   5. applies the timeout to the running server, if one is found.
# The timeout comes from --timeout, else TIMEOUT_IN_MINS, else 120 minutes.
set -euo pipefail

repo_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
timeout="${TIMEOUT_IN_MINS:-120}"
keep_terminals=false
python=""
wheelhouse=""
package=""
reinstall=false
restart_command=""
wait_seconds=120
uninstall=false
url=""
token=""

say() { echo "install.sh: $*"; }
die() { echo "install.sh: error: $1" >&2; exit "${2:-1}"; }
usage() { sed -n '2,22p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }

while [ $# -gt 0 ]; do
  case "$1" in
    --timeout) timeout="${2:?--timeout needs MINUTES}"; shift 2 ;;
    --timeout=*) timeout="${1#*=}"; shift ;;
    --keep-terminals) keep_terminals=true; shift ;;
    --no-keep-terminals) keep_terminals=false; shift ;;
    --python) python="${2:?--python needs a path}"; shift 2 ;;
    --wheelhouse) wheelhouse="${2:?--wheelhouse needs a directory}"; shift 2 ;;
    --package) package="${2:?--package needs a file}"; shift 2 ;;
    --reinstall) reinstall=true; shift ;;
    --restart-command) restart_command="${2:?--restart-command needs a command}"; shift 2 ;;
    --wait) wait_seconds="${2:?--wait needs SECONDS}"; shift 2 ;;
    --url) url="${2:?--url needs a URL}"; shift 2 ;;
    --token) token="${2:?--token needs a token}"; shift 2 ;;
    --uninstall) uninstall=true; shift ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; die "unknown argument: $1" 2 ;;
  esac
done

if [ -z "$python" ]; then
  python="$(command -v python3 || command -v python || true)"
  [ -n "$python" ] || die "no python3 on PATH; pass --python /path/to/python of your Jupyter server" 2
fi
case "$python" in
  */*) python="$(cd "$(dirname "$python")" && pwd)/$(basename "$python")" ;;  # absolute: see in_python
esac
"$python" -m pip --version >/dev/null 2>&1 || die "$python has no pip; pass --python with the Python of your Jupyter server" 2

# Python run from / : started in the checkout, `import jupyter_autoshutdown` would find the
# checkout's source tree instead of what is installed.
in_python() { (cd / && "$python" "$@"); }

if ! [[ "$timeout" =~ ^[0-9]+([.][0-9]+)?$ ]] \
   || ! "$python" -c "import sys; sys.exit(0 if float(sys.argv[1]) <= 525600 else 1)" "$timeout"; then
  die "the timeout must be a number of minutes between 0 (off) and 525600, got '$timeout'" 2
fi
[[ "$wait_seconds" =~ ^[0-9]+$ ]] || die "--wait must be a whole number of seconds, got '$wait_seconds'" 2

pip=("$python" -m pip --disable-pip-version-check)
config_dir="$("$python" -c 'from jupyter_core.paths import jupyter_config_dir; print(jupyter_config_dir())' 2>/dev/null || echo "${JUPYTER_CONFIG_DIR:-$HOME/.jupyter}")"
config_file="$config_dir/jupyter_server_config.json"
helper_dir="$HOME/.auto-shutdown"
helper="$helper_dir/set-time-interval.sh"

# Edit the AutoShutdown section of the user's JSON config, keeping everything else in it.
edit_config() {  # edit_config set MINUTES KEEP | edit_config remove
  "$python" - "$config_file" "$@" <<'PY'
import json, os, sys, tempfile
path, action = sys.argv[1], sys.argv[2]
data = {}
if os.path.exists(path):
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except ValueError as error:
        sys.exit(f"install.sh: error: {path} is not valid JSON ({error}); fix or remove it first")
    if not isinstance(data, dict):
        sys.exit(f"install.sh: error: {path} does not hold a JSON object; fix or remove it first")
elif action == "remove":
    sys.exit(0)
section = data.setdefault("AutoShutdown", {})
if action == "set":
    section["idle_timeout"] = float(sys.argv[3])
    section["keep_terminals"] = sys.argv[4] == "true"
else:
    section.pop("idle_timeout", None)
    section.pop("keep_terminals", None)
    if not section:
        del data["AutoShutdown"]
os.makedirs(os.path.dirname(path), exist_ok=True)
fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".jupyter_server_config.")
with os.fdopen(fd, "w", encoding="utf-8") as handle:
    json.dump(data, handle, indent=2)
    handle.write("\n")
os.replace(tmp, path)
PY
}

installed_version() {
  in_python -c 'import jupyter_autoshutdown; print(jupyter_autoshutdown.__version__)' 2>/dev/null || true
}

if $uninstall; then
  state_file="$("$python" -c 'from jupyter_core.paths import jupyter_data_dir; print(jupyter_data_dir())' 2>/dev/null)/jupyter_autoshutdown/state.json"
  if [ -n "$(installed_version)" ]; then
    "${pip[@]}" uninstall --yes --quiet jupyter_autoshutdown
    say "removed the jupyter_autoshutdown package from $python"
  else
    say "the package is not installed in $python"
  fi
  edit_config remove
  say "removed the AutoShutdown settings from $config_file (other settings kept)"
  rm -f "$helper" "$state_file"
  rmdir "$helper_dir" "$(dirname "$state_file")" 2>/dev/null || true
  say "removed $helper and $state_file; notebooks and other files are untouched"
  say "restart the Jupyter server to unload the extension"
  exit 0
fi

# 1. Install.
if [ -n "$package" ]; then
  [ -f "$package" ] || die "package file not found: $package" 2
  source_args=("$package")
  description="$package"
elif [ -n "$wheelhouse" ]; then
  [ -d "$wheelhouse" ] || die "wheelhouse directory not found: $wheelhouse" 2
  source_args=(jupyter_autoshutdown)
  description="the wheelhouse $wheelhouse"
else
  [ -f "$repo_dir/pyproject.toml" ] || die "no checkout at $repo_dir; use --wheelhouse or --package" 2
  source_args=("$repo_dir")
  description="the checkout $repo_dir"
fi
index_args=()
if [ -n "$wheelhouse" ]; then
  index_args=(--no-index --find-links "$wheelhouse")
fi
checkout_version="$(sed -n 's/^__version__ = "\(.*\)"$/\1/p' "$repo_dir/jupyter_autoshutdown/_version.py" 2>/dev/null || true)"
current="$(installed_version)"
if [ -z "$package" ] && [ -z "$wheelhouse" ] && [ -n "$current" ] && [ "$current" = "$checkout_version" ] && ! $reinstall; then
  say "jupyter_autoshutdown $current is already installed in $python (use --reinstall to force)"
else
  reinstall_args=()
  if $reinstall; then reinstall_args=(--force-reinstall --no-deps); fi
  say "installing jupyter_autoshutdown from $description with $python"
  "${pip[@]}" install --quiet ${index_args[@]+"${index_args[@]}"} ${reinstall_args[@]+"${reinstall_args[@]}"} "${source_args[@]}" \
    || die "pip could not install jupyter_autoshutdown from $description (offline? use --wheelhouse DIR)"
  say "installed jupyter_autoshutdown $(installed_version)"
fi

# 2. Static config: the next server start uses this timeout with no request.
edit_config set "$timeout" "$keep_terminals"
say "wrote idle_timeout=$timeout minutes, keep_terminals=$keep_terminals to $config_file"

# 3. The helper the original's users look for.
keep_flag="--no-keep-terminals"
if $keep_terminals; then keep_flag="--keep-terminals"; fi
mkdir -p "$helper_dir"
cat > "$helper" <<EOF
#!/usr/bin/env bash
# Created by jupyter-autoshutdown's install.sh: re-applies the configured idle timeout to the
# running Jupyter server. Pass other minutes as the first argument, or set TIMEOUT_IN_MINS.
set -euo pipefail
minutes="\${1:-\${TIMEOUT_IN_MINS:-$timeout}}"
[ \$# -gt 0 ] && shift
cd /  # never import a checkout's source tree from the current directory
exec "$python" -m jupyter_autoshutdown.client set "\$minutes" $keep_flag "\$@"
EOF
chmod +x "$helper"
say "created $helper"

server_args=()
if [ -n "$url" ]; then server_args+=(--url "$url"); fi
if [ -n "$token" ]; then server_args+=(--token "$token"); fi

# 4. Restart the server when asked, and wait until it answers with the extension loaded.
if [ -n "$restart_command" ]; then
  say "restarting the server: $restart_command"
  bash -c "$restart_command" || die "the restart command failed: $restart_command"
  deadline=$((SECONDS + wait_seconds))
  while :; do
    rc=0
    in_python -m jupyter_autoshutdown.client check ${server_args[@]+"${server_args[@]}"} --timeout 5 >/dev/null 2>&1 || rc=$?
    if [ "$rc" -eq 0 ] || [ "$rc" -eq 5 ]; then break; fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      die "the server did not answer with the extension loaded within $wait_seconds s (last exit code $rc); check its log"
    fi
    sleep 1
  done
  say "the server is back with auto-shutdown loaded"
fi

# 5. Apply to a running server now, if there is one.
rc=0
output="$(in_python -m jupyter_autoshutdown.client set "$timeout" "$keep_flag" ${server_args[@]+"${server_args[@]}"} 2>&1)" || rc=$?
case "$rc" in
  0) echo "$output" ;;
  3) say "no running server found: the timeout applies when the server starts" ;;
  4) say "a server is running without the extension loaded: restart it (or rerun with --restart-command) to activate auto-shutdown" ;;
  *) echo "$output" >&2; die "could not apply the timeout to the running server (exit code $rc)" "$rc" ;;
esac
say "done"
