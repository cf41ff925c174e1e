#!/usr/bin/env bash
# Install jupyter-autoshutdown and configure its idle timeout. Idempotent: safe to run at every
# server start (e.g. as a SageMaker Studio lifecycle configuration). `install.sh --help` says how.
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
purge=false
url=""
token=""

say() { echo "install.sh: $*"; }
die() { echo "install.sh: error: $1" >&2; exit "${2:-1}"; }
usage() {
  cat <<'EOF'
Usage: install.sh [--timeout MINUTES] [--keep-terminals] [--python PATH]
                  [--wheelhouse DIR] [--package FILE] [--reinstall]
                  [--restart-command "CMD"] [--wait SECONDS] [--url URL] [--token TOKEN]
       install.sh --uninstall [--purge] [--python PATH]

Installs jupyter-autoshutdown into the Python of your Jupyter server and sets its idle timeout.
Safe to run at every server start (e.g. as a lifecycle configuration):
  1. installs the package with that Python's pip: from this checkout by default, offline from a
     directory of wheels (--wheelhouse, made by scripts/build-wheelhouse.sh), or from a wheel or
     sdist (--package); skipped when that version is already installed;
  2. writes the timeout into the user's jupyter_server_config.json (other settings there are
     kept), so the next server start uses it;
  3. creates ~/.auto-shutdown/set-time-interval.sh, which re-applies that timeout when run;
  4. with --restart-command, restarts the server and waits until it answers;
  5. applies the timeout to the running server, if one is found.

Options:
  --timeout MINUTES      the idle timeout, 0 (off) to 525600 minutes;
                         default: $TIMEOUT_IN_MINS, else 120
  --keep-terminals       never shut down terminals (--no-keep-terminals: the default)
  --python PATH          the Python of the Jupyter server (default: python3 on PATH)
  --wheelhouse DIR       install offline from this directory of wheels (pip --no-index)
  --package FILE         install this wheel or sdist (its dependencies from --wheelhouse or
                         the index)
  --reinstall            install even when the same version is already installed
  --restart-command CMD  restart the server with CMD, e.g.
                         "supervisorctl restart jupyterlabserver"
  --wait SECONDS         how long to wait for the restarted server to answer (default 120)
  --url URL              the running server, when it is not found by itself
  --token TOKEN          its token (default: JUPYTER_TOKEN, or what `jupyter server list` shows)
  --uninstall            remove the package, the timeout keys this script wrote into
                         jupyter_server_config.json, and the helper; keeps the runtime
                         settings the server saved (state.json) unless --purge
  --purge                with --uninstall: also remove the saved runtime settings
  -h, --help             show this help and exit

Exit codes: 0 done (also when no server runs yet: the timeout applies when it starts);
2 bad arguments (nothing changed); otherwise 1, or the exit code of `jupyter autoshutdown set`.
EOF
}

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
    --purge) purge=true; shift ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; die "unknown argument: $1" 2 ;;
  esac
done
if $purge && ! $uninstall; then
  die "--purge goes with --uninstall (install.sh --help)" 2
fi

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
if action == "set":
    section = data.setdefault("AutoShutdown", {})
    section["idle_timeout"] = float(sys.argv[3])
    section["keep_terminals"] = sys.argv[4] == "true"
else:
    # Only the keys this script writes: any other setting, AutoShutdown's too, is the user's.
    section = data.get("AutoShutdown")
    removed = isinstance(section, dict) and any(
        [section.pop("idle_timeout", None) is not None, section.pop("keep_terminals", None) is not None])
    if section == {}:
        del data["AutoShutdown"]
    if not data:  # nothing else in it (`{}`): the file held only what this script wrote
        os.remove(path)
        print(f"install.sh: removed {path} (it held only auto-shutdown's timeout)")
        sys.exit(0)
    if not removed:
        sys.exit(0)
    print(f"install.sh: removed the AutoShutdown timeout from {path} (other settings kept)")
os.makedirs(os.path.dirname(path), exist_ok=True)
fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".jupyter_server_config.")
with os.fdopen(fd, "w", encoding="utf-8") as handle:
    json.dump(data, handle, indent=2)
    handle.write("\n")
os.replace(tmp, path)
PY
}

# The installed version, as pip's metadata has it (an editable install too); empty when none.
installed_version() {
  in_python -c 'import importlib.metadata as m; print(m.version("jupyter_autoshutdown"))' 2>/dev/null || true
}

# The version about to be installed, normalised as pip names it: of the wheel or sdist (--package),
# of the one version in the wheelhouse, or of the checkout (package.json, the version's source).
# Empty when it cannot be told (several versions in the wheelhouse): then pip decides.
version_to_install() {  # version_to_install checkout DIR | package FILE | wheelhouse DIR
  in_python - "$@" <<'PY' 2>/dev/null || true
import json, os, re, sys
kind, where = sys.argv[1], sys.argv[2]
try:
    from packaging.version import Version
except ImportError:
    try:
        from pip._vendor.packaging.version import Version
    except ImportError:
        Version = str
if kind == "checkout":
    with open(os.path.join(where, "package.json"), encoding="utf-8") as handle:
        found = {json.load(handle)["version"]}
else:
    names = [os.path.basename(where)] if kind == "package" else os.listdir(where)
    pattern = re.compile(r"jupyter[-_.]autoshutdown-([^-]+?)(-.+\.whl|\.tar\.gz|\.zip)$", re.IGNORECASE)
    found = {match.group(1) for match in map(pattern.match, names) if match}
versions = {str(Version(version)) for version in found}
print(versions.pop() if len(versions) == 1 else "")
PY
}

if $uninstall; then
  data_dir="$(in_python -c 'from jupyter_core.paths import jupyter_data_dir; print(jupyter_data_dir())' 2>/dev/null \
    || echo "${JUPYTER_DATA_DIR:-$HOME/.local/share/jupyter}")"
  state_dir="$data_dir/jupyter_autoshutdown"
  state_file="$state_dir/state.json"
  current="$(installed_version)"
  if [ -n "$current" ]; then
    "${pip[@]}" uninstall --yes --quiet jupyter_autoshutdown
    say "removed jupyter_autoshutdown $current from $python"
  else
    say "the package is not installed in $python"
  fi
  edit_config remove
  rm -f "$helper"
  rmdir "$helper_dir" 2>/dev/null || true
  say "removed $helper"
  # The server's own files beside its saved settings: the lock and what an interrupted write left.
  rm -f "$state_dir/.state.json.lock" "$state_dir"/.state-*.tmp
  if $purge; then
    rm -f "$state_file" "$state_dir"/state.json.corrupt-*
    say "removed the saved runtime settings ($state_file)"
  elif [ -e "$state_file" ]; then
    say "kept the runtime settings the server saved in $state_file (--uninstall --purge removes them)"
  fi
  rmdir "$state_dir" 2>/dev/null || true
  say "notebooks and other files are untouched; restart the Jupyter server to unload the extension"
  exit 0
fi

# 1. Install.
if [ -n "$package" ]; then
  [ -f "$package" ] || die "package file not found: $package" 2
  source_args=("$package")
  description="$package"
  version_source=(package "$package")
elif [ -n "$wheelhouse" ]; then
  [ -d "$wheelhouse" ] || die "wheelhouse directory not found: $wheelhouse" 2
  source_args=(jupyter_autoshutdown)
  description="the wheelhouse $wheelhouse"
  version_source=(wheelhouse "$(cd "$wheelhouse" && pwd)")
else
  [ -f "$repo_dir/pyproject.toml" ] || die "no checkout at $repo_dir; use --wheelhouse or --package" 2
  source_args=("$repo_dir")
  description="the checkout $repo_dir"
  version_source=(checkout "$repo_dir")
fi
index_args=()
if [ -n "$wheelhouse" ]; then
  index_args=(--no-index --find-links "$wheelhouse")
fi
current="$(installed_version)"
wanted="$(version_to_install "${version_source[@]}")"
if [ -n "$wanted" ] && [ -z "$package" ] && [ -n "$wheelhouse" ]; then
  source_args=("jupyter_autoshutdown==$wanted")  # pip keeps an installed older version otherwise
fi
if [ -n "$current" ] && [ "$current" = "$wanted" ] && ! $reinstall; then
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
# With neither, the timeout install.sh was given: the operator's choice, so asked about no more.
if [ \$# -eq 0 ] && [ -z "\${TIMEOUT_IN_MINS:-}" ]; then set -- "$timeout" --yes; fi
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

# 5. Apply to a running server now, if there is one. --yes: the operator chose this timeout (set
# asks before one under a few minutes, and refuses it where there is no terminal to ask on).
rc=0
output="$(in_python -m jupyter_autoshutdown.client set "$timeout" "$keep_flag" --yes ${server_args[@]+"${server_args[@]}"} 2>&1)" || rc=$?
case "$rc" in
  0) echo "$output" ;;
  3) say "no running server found: the timeout applies when the server starts" ;;
  4) say "a server is running without the extension loaded: restart it (or rerun with --restart-command) to activate auto-shutdown" ;;
  *) echo "$output" >&2; die "could not apply the timeout to the running server (exit code $rc)" "$rc" ;;
esac
say "done"
