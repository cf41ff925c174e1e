"""The operator's tools, run as subprocesses against real servers: set-time-interval.sh, the
checker, the fleet check, and install.sh in a fresh virtual environment, offline."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from server_process import TOKEN, ServerProcess, free_port, isolated_env

REPO = Path(__file__).resolve().parent.parent
SET_TIME_INTERVAL = REPO / "scripts" / "set-time-interval.sh"
CHECKER = REPO / "check_idle_timeout_configuration.py"
FLEET = REPO / "scripts" / "fleet-check"
INSTALL = REPO / "install.sh"


def run(command, home, *, env_extra=None, timeout=120):
    env = {**isolated_env(home), "AUTOSHUTDOWN_PYTHON": sys.executable, **(env_extra or {})}
    return subprocess.run([str(part) for part in command], capture_output=True, text=True,
                          env=env, timeout=timeout)


@pytest.fixture
def server(home):
    process = ServerProcess(home)
    yield process
    process.stop()


def settings_of(server):
    return server.request("GET", "sagemaker-studio-autoshutdown/idle_checker").json()


def test_set_time_interval_finds_the_server_and_prints_the_settings(server, home):
    result = run([SET_TIME_INTERVAL, "15", "--keep-terminals"], home)
    assert result.returncode == 0, result.stderr
    assert "15 minutes (900 seconds)" in result.stdout
    assert "keep terminals: yes" in result.stdout
    assert settings_of(server)["idle_time"] == 900
    assert settings_of(server)["keep_terminals"] is True

    result = run([SET_TIME_INTERVAL, "--no-keep-terminals"], home, env_extra={"TIMEOUT_IN_MINS": "20"})
    assert result.returncode == 0, result.stderr
    now_in_force = settings_of(server)
    assert (now_in_force["idle_time"], now_in_force["keep_terminals"]) == (1200, False)


@pytest.mark.parametrize("minutes", ["abc", "-5", "1e9", "nan", ""])
def test_set_time_interval_rejects_bad_minutes_and_changes_nothing(server, home, minutes):
    result = run([SET_TIME_INTERVAL, minutes], home)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "minutes must be" in result.stderr
    assert settings_of(server)["idle_time"] == 7200


def test_set_time_interval_with_explicit_url_and_token(server, home):
    result = run([SET_TIME_INTERVAL, "5", "--url", server.url, "--token", TOKEN], home)
    assert result.returncode == 0, result.stderr
    assert settings_of(server)["idle_time"] == 300
    wrong = run([SET_TIME_INTERVAL, "6", "--url", server.url, "--token", "wrong"], home)
    assert wrong.returncode == 7
    assert "refused" in wrong.stderr
    assert settings_of(server)["idle_time"] == 300


def test_set_time_interval_without_a_server(home):
    result = run([SET_TIME_INTERVAL, "5"], home)
    assert result.returncode == 3
    assert "no running Jupyter server found" in result.stderr
    unreachable = run([SET_TIME_INTERVAL, "5", "--url", f"http://127.0.0.1:{free_port()}/"], home)
    assert unreachable.returncode == 3


def test_checker_reports_a_healthy_server(server, home):
    result = run([sys.executable, CHECKER], home)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Auto-shutdown is active" in result.stdout
    assert "idle timeout:   120 minutes (7200 seconds)" in result.stdout
    assert "keep terminals: no" in result.stdout
    assert "checks run:" in result.stdout
    raw = run([sys.executable, CHECKER, "--json"], home)
    assert raw.returncode == 0
    data = json.loads(raw.stdout)
    assert data["healthy"] is True and data["exit_code"] == 0
    assert data["count"] >= 1  # the compat route's fields at the top level, as `jq .count` wants
    assert data["idle_time"] == 7200 and data["keep_terminals"] is False
    assert data["status"]["running"] is True


def test_checker_exit_codes_without_server_and_without_extension(home, tmp_path):
    no_server = run([sys.executable, CHECKER], home)
    assert no_server.returncode == 3
    assert "no running Jupyter server found" in no_server.stderr

    config = home / ".jupyter" / "jupyter_server_config.json"
    config.parent.mkdir(parents=True)
    config.write_text(json.dumps({"ServerApp": {"jpserver_extensions": {"jupyter_autoshutdown": False}}}))
    bare = ServerProcess(home)
    try:
        missing = run([sys.executable, CHECKER], home)
        assert missing.returncode == 4, missing.stdout + missing.stderr
        assert "not loaded" in missing.stderr
        assert run([SET_TIME_INTERVAL, "5"], home).returncode == 4
    finally:
        bare.stop()


def test_fleet_check_lists_the_server_without_the_extension(home, tmp_path):
    healthy = ServerProcess(home)
    other_home = tmp_path / "other"
    other_home.mkdir()
    (other_home / ".jupyter").mkdir()
    (other_home / ".jupyter" / "jupyter_server_config.json").write_text(
        json.dumps({"ServerApp": {"jpserver_extensions": {"jupyter_autoshutdown": False}}}))
    bare = ServerProcess(other_home)
    try:
        servers_file = tmp_path / "servers.txt"
        servers_file.write_text(f"# url token\n{healthy.url} {TOKEN}\n{bare.url} {TOKEN}\n")
        result = run([FLEET, "--servers", servers_file], home)
        assert result.returncode == 1, result.stdout + result.stderr
        assert f"OK   {healthy.url}/: healthy" in result.stdout
        assert f"FAIL {bare.url}/: missing: jupyter_autoshutdown is not loaded" in result.stdout
        assert "1 of 2 servers healthy" in result.stdout
        as_json = run([FLEET, "--server", f"{healthy.url},{TOKEN}", "--json"], home)
        assert as_json.returncode == 0
        assert json.loads(as_json.stdout)[0]["healthy"] is True
        assert run([FLEET], home).returncode == 2
    finally:
        healthy.stop()
        bare.stop()


# ---- install.sh in a fresh virtual environment, offline -------------------------------------


def stop_process_in(pid_file):
    """Stop the server a restart command started in the background (its pid in `pid_file`)."""
    if not pid_file.exists():
        return
    pid = int(pid_file.read_text())
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)  # never outlives the test session


@pytest.fixture(scope="session")
def wheelhouse(tmp_path_factory):
    directory = tmp_path_factory.mktemp("wheelhouse")
    result = subprocess.run(["bash", REPO / "scripts" / "build-wheelhouse.sh", directory],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    assert any(path.name.startswith("jupyter_autoshutdown-") for path in directory.iterdir())
    return directory


@pytest.fixture
def fresh_venv(tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", venv], check=True, timeout=120)
    return venv / "bin" / "python"


def install(home, *args, timeout=300):
    # No index at all: everything must come from the wheelhouse.
    env_extra = {"PIP_NO_INDEX": "1", "PIP_CONFIG_FILE": os.devnull}
    return run(["bash", INSTALL, *args], home, env_extra=env_extra, timeout=timeout)


def test_install_help_prints_the_usage(home):
    for flag in ("--help", "-h"):
        result = run(["bash", INSTALL, flag], home)
        assert result.returncode == 0, result.stderr
        assert result.stdout.startswith("Usage: install.sh ")
        assert "set -euo" not in result.stdout
        for option in ("--timeout MINUTES", "--wheelhouse DIR", "--reinstall", "--uninstall", "--purge"):
            assert option in result.stdout
    misplaced = run(["bash", INSTALL, "--purge"], home)
    assert misplaced.returncode == 2 and "--purge goes with --uninstall" in misplaced.stderr


def checkout_version():
    return json.loads((REPO / "package.json").read_text())["version"]


def stub_install(venv_python, version):
    """A stand-in for an installed jupyter_autoshutdown `version` (pip's metadata, with a RECORD so
    that pip uninstalls it): its command line answers "no server found" (exit code 3)."""
    (site,) = venv_python.parent.parent.glob("lib/python3*/site-packages")
    package = site / "jupyter_autoshutdown"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "client.py").write_text("import sys\nsys.exit(3)\n")
    info = site / f"jupyter_autoshutdown-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: jupyter_autoshutdown\nVersion: {version}\n")
    record = ["jupyter_autoshutdown/__init__.py,,", "jupyter_autoshutdown/client.py,,",
              f"{info.name}/METADATA,,", f"{info.name}/RECORD,,"]
    (info / "RECORD").write_text("\n".join(record) + "\n")
    return package


def test_install_skips_the_version_already_installed(home, fresh_venv, tmp_path):
    stub_install(fresh_venv, checkout_version())
    # From the checkout (the default): its version is package.json's.
    result = install(home, "--python", fresh_venv, "--timeout", "7")
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"jupyter_autoshutdown {checkout_version()} is already installed" in result.stdout
    assert "no running server found" in result.stdout
    # A wheel or a wheelhouse of the installed version: skipped (pip would fail on these files).
    wheel = tmp_path / f"jupyter_autoshutdown-{checkout_version()}-py3-none-any.whl"
    wheel.write_text("not a wheel")
    for source in (["--package", wheel], ["--wheelhouse", tmp_path]):
        result = install(home, "--python", fresh_venv, *source, "--timeout", "7")
        assert result.returncode == 0, result.stdout + result.stderr
        assert "is already installed" in result.stdout
    # Another version, or --reinstall: pip runs (and fails on the stand-in file).
    other = tmp_path / "elsewhere" / "jupyter_autoshutdown-99.0.0-py3-none-any.whl"
    other.parent.mkdir()
    other.write_text("not a wheel")
    for args in (["--package", other], ["--package", wheel, "--reinstall"]):
        result = install(home, "--python", fresh_venv, *args, "--timeout", "7")
        assert result.returncode == 1 and "is already installed" not in result.stdout
        assert "installing jupyter_autoshutdown from" in result.stdout
        assert "pip could not install" in result.stderr


def test_uninstall_removes_what_install_wrote_and_keeps_the_users_settings(home, fresh_venv):
    package = stub_install(fresh_venv, checkout_version())
    config_file = home / ".jupyter" / "jupyter_server_config.json"
    config_file.parent.mkdir()
    config_file.write_text(json.dumps({
        "AutoShutdown": {"idle_timeout": 7.0, "keep_terminals": True, "app_action": "server"},
        "ServerApp": {"root_dir": "/srv/notebooks"},
    }))
    helper = home / ".auto-shutdown" / "set-time-interval.sh"
    helper.parent.mkdir()
    helper.write_text("#!/bin/sh\n")
    state_dir = home / ".local" / "share" / "jupyter" / "jupyter_autoshutdown"
    state_dir.mkdir(parents=True)
    (state_dir / "state.json").write_text('{"settings": {"idle_timeout_minutes": 30}}\n')
    (state_dir / ".state.json.lock").write_text("")
    (state_dir / ".state-interrupted.tmp").write_text("{")

    removed = install(home, "--python", fresh_venv, "--uninstall")
    assert removed.returncode == 0, removed.stdout + removed.stderr
    assert not package.exists()
    # Only the two keys install.sh writes: the user's own settings stay.
    assert json.loads(config_file.read_text()) == {
        "AutoShutdown": {"app_action": "server"}, "ServerApp": {"root_dir": "/srv/notebooks"}}
    assert not helper.parent.exists()
    # The saved runtime settings are kept (without --purge); the lock and leftovers are not.
    assert sorted(path.name for path in state_dir.iterdir()) == ["state.json"]
    assert "kept the runtime settings" in removed.stdout and "--purge" in removed.stdout

    again = install(home, "--python", fresh_venv, "--uninstall", "--purge")
    assert again.returncode == 0, again.stdout + again.stderr
    assert "the package is not installed" in again.stdout
    assert not state_dir.exists() and state_dir.parent.exists()
    assert json.loads(config_file.read_text())["ServerApp"] == {"root_dir": "/srv/notebooks"}


@pytest.mark.parametrize("leftover", [{"AutoShutdown": {"idle_timeout": 7.0, "keep_terminals": False}}, {}])
def test_uninstall_deletes_a_config_file_that_held_only_the_timeout(home, fresh_venv, leftover):
    # `{}` is what an older install.sh's uninstall left behind.
    config_file = home / ".jupyter" / "jupyter_server_config.json"
    config_file.parent.mkdir()
    config_file.write_text(json.dumps(leftover))
    removed = install(home, "--python", fresh_venv, "--uninstall")
    assert removed.returncode == 0, removed.stdout + removed.stderr
    assert not config_file.exists()
    assert config_file.parent.exists()  # Jupyter's own folder stays
    assert "kept the runtime settings" not in removed.stdout  # there were none


@pytest.mark.timeout(900)
def test_install_offline_retune_verify_uninstall(home, wheelhouse, fresh_venv, tmp_path):
    bad = install(home, "--python", fresh_venv, "--wheelhouse", wheelhouse, "--timeout", "abc")
    assert bad.returncode == 2 and "must be a number of minutes" in bad.stderr
    assert not (home / ".jupyter" / "jupyter_server_config.json").exists()

    first = install(home, "--python", fresh_venv, "--wheelhouse", wheelhouse, "--timeout", "7",
                    "--keep-terminals")
    assert first.returncode == 0, first.stdout + first.stderr
    assert "no running server found" in first.stdout
    config = json.loads((home / ".jupyter" / "jupyter_server_config.json").read_text())
    assert config["AutoShutdown"] == {"idle_timeout": 7.0, "keep_terminals": True}
    helper = home / ".auto-shutdown" / "set-time-interval.sh"
    assert os.access(helper, os.X_OK)
    again = install(home, "--python", fresh_venv, "--wheelhouse", wheelhouse, "--timeout", "7",
                    "--keep-terminals")
    assert again.returncode == 0, again.stderr
    assert "is already installed" in again.stdout  # the wheelhouse's version is

    # The next start uses the timeout with no request.
    server = ServerProcess(home, python=str(fresh_venv))
    try:
        assert settings_of(server)["idle_time"] == 420
        assert settings_of(server)["keep_terminals"] is True
        retune = run([helper, "9"], home)
        assert retune.returncode == 0, retune.stderr
        assert settings_of(server)["idle_time"] == 540
        # install.sh again, with the server running: applied at once.
        live = install(home, "--python", fresh_venv, "--wheelhouse", wheelhouse, "--timeout", "11")
        assert live.returncode == 0, live.stderr
        assert "settings now in force" in live.stdout
        assert settings_of(server)["idle_time"] == 660
        assert settings_of(server)["keep_terminals"] is False
        check = run([fresh_venv, CHECKER], home)
        assert check.returncode == 0, check.stdout + check.stderr
        # The command pip installed, run outside any checkout: what a pip-only user has.
        jupyter = fresh_venv.parent / "jupyter"
        outside = {"cwd": tmp_path}
        set_45 = subprocess.run([jupyter, "autoshutdown", "set", "45"], capture_output=True, text=True,
                                env=isolated_env(home), timeout=60, **outside)
        assert set_45.returncode == 0, set_45.stdout + set_45.stderr
        assert settings_of(server)["idle_time"] == 2700
        healthy = subprocess.run([jupyter, "autoshutdown", "check"], capture_output=True, text=True,
                                 env=isolated_env(home), timeout=60, **outside)
        assert healthy.returncode == 0 and "Auto-shutdown is active" in healthy.stdout, healthy
    finally:
        server.stop()

    removed = install(home, "--python", fresh_venv, "--uninstall")
    assert removed.returncode == 0, removed.stderr
    assert subprocess.run([fresh_venv, "-c", "import jupyter_autoshutdown"],
                          capture_output=True, cwd=tmp_path).returncode != 0
    # The config file held only the timeout: gone, as is the helper's folder. The runtime settings
    # the server saved are kept (--purge removes them), without the server's lock file.
    assert not (home / ".jupyter" / "jupyter_server_config.json").exists()
    assert not helper.parent.exists()
    state_dir = home / ".local" / "share" / "jupyter" / "jupyter_autoshutdown"
    assert sorted(path.name for path in state_dir.iterdir()) == ["state.json"]
    purged = install(home, "--python", fresh_venv, "--uninstall", "--purge")
    assert purged.returncode == 0, purged.stderr
    assert not state_dir.exists()


@pytest.mark.timeout(600)
def test_install_restart_command_waits_until_the_server_answers(home, wheelhouse, fresh_venv, tmp_path):
    port = free_port()
    pid_file = tmp_path / "server.pid"
    start = (
        f"nohup {fresh_venv} -m jupyter_server --port={port} --ip=127.0.0.1 --no-browser "
        f"--allow-root --IdentityProvider.token={TOKEN} --ServerApp.root_dir={home} "
        f"> {tmp_path / 'restarted.log'} 2>&1 & echo $! > {pid_file}"
    )
    try:
        # This one installs from the wheel file itself (--package), its dependencies offline.
        (wheel,) = wheelhouse.glob("jupyter_autoshutdown-*.whl")
        result = install(home, "--python", fresh_venv, "--package", wheel,
                         "--wheelhouse", wheelhouse, "--timeout", "3",
                         "--restart-command", start, "--wait", "90",
                         "--url", f"http://127.0.0.1:{port}/", "--token", TOKEN)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "the server is back with auto-shutdown loaded" in result.stdout
        assert f"from {wheel}" in result.stdout
        reply = requests.get(f"http://127.0.0.1:{port}/sagemaker-studio-autoshutdown/idle_checker",
                             headers={"Authorization": f"token {TOKEN}"}, timeout=10).json()
        assert reply["idle_time"] == 180
        # A timeout under 5 minutes is asked about, and refused without a terminal, unless the
        # operator chose it: install.sh's (above) and its helper's without arguments are.
        helper = home / ".auto-shutdown" / "set-time-interval.sh"
        reapplied = run([helper], home)
        assert reapplied.returncode == 0, reapplied.stdout + reapplied.stderr
        assert "settings now in force" in reapplied.stdout
    finally:
        stop_process_in(pid_file)


# ---- SageMaker lifecycle configurations (scripts/lifecycle/), against a stand-in layout --------

LCC = REPO / "scripts" / "lifecycle"
#: SageMaker's limit on a lifecycle configuration's content (Studio and notebook instances).
LCC_LIMIT = 16384


def run_lcc(script, home, **settings):
    """A lifecycle script as the platform runs it: bash, `set -e`, no index at all."""
    env = {**isolated_env(home), "PIP_NO_INDEX": "1", "PIP_CONFIG_FILE": os.devnull, **settings}
    env.pop("PYTHONPATH", None)
    return subprocess.run(["bash", str(LCC / script)], capture_output=True, text=True, env=env,
                          timeout=400)


def token_less_settings(url):
    return requests.get(f"{url}/sagemaker-studio-autoshutdown/idle_checker", timeout=10).json()


@pytest.mark.timeout(900)
def test_studio_jupyterlab_lcc_installs_offline_and_is_idempotent(home, wheelhouse, fresh_venv, tmp_path):
    assert (LCC / "studio-jupyterlab.sh").stat().st_size <= LCC_LIMIT
    log_file = tmp_path / "app_container.log"
    settings = {"WHEELHOUSE": str(wheelhouse), "PYTHON": str(fresh_venv), "TIMEOUT_IN_MINS": "15",
                "SUPERVISORCTL": "false",  # no supervisord here: the server starts after the LCC
                "LOG_FILE": str(log_file)}
    for _ in range(2):  # every app start runs it again
        result = run_lcc("studio-jupyterlab.sh", home, **settings)
        assert result.returncode == 0, result.stdout + result.stderr
    assert log_file.read_text().count("auto-shutdown LCC: done") == 2
    # The server Studio starts next: token-less at /jupyterlab/default/, with the LCC's timeout.
    port = free_port()
    url = f"http://127.0.0.1:{port}/jupyterlab/default"
    server = subprocess.Popen(
        [str(fresh_venv), "-m", "jupyter_server", f"--port={port}", "--ip=127.0.0.1", "--no-browser",
         "--allow-root", "--IdentityProvider.token=", "--ServerApp.password=",
         "--ServerApp.base_url=/jupyterlab/default/", f"--ServerApp.root_dir={home}"],
        env=isolated_env(home), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_answering(url)
        assert token_less_settings(url)["idle_time"] == 900
        helper = home / ".auto-shutdown" / "set-time-interval.sh"
        retuned = run([helper, "20"], home)
        assert retuned.returncode == 0, retuned.stdout + retuned.stderr
        assert token_less_settings(url)["idle_time"] == 1200
        check = run([fresh_venv, wheelhouse / "check_idle_timeout_configuration.py"], home)
        assert check.returncode == 0, check.stdout + check.stderr
    finally:
        server.terminate()
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(10)


def _wait_answering(url, timeout=90):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if requests.get(f"{url}/api/status", timeout=5).status_code == 200:
                return
        except requests.ConnectionError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"no server answered at {url} within {timeout} s")


@pytest.mark.timeout(900)
def test_notebook_instance_lcc_installs_offline_and_restarts_the_server(home, wheelhouse, fresh_venv,
                                                                          tmp_path):
    assert (LCC / "notebook-instance.sh").stat().st_size <= LCC_LIMIT
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    pid_file = tmp_path / "jupyter-server.pid"
    # The stand-in for `systemctl restart jupyter-server`: stop the server if it runs, start it.
    restart = tmp_path / "restart-jupyter-server"
    restart.write_text(f"""#!/bin/bash
if [ -f {pid_file} ]; then
  pid=$(cat {pid_file}); kill "$pid" 2>/dev/null || true
  while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
fi
nohup {fresh_venv} -m jupyter_server --port={port} --ip=127.0.0.1 --no-browser --allow-root \\
  --IdentityProvider.token= --ServerApp.password= --ServerApp.root_dir={home} \\
  >> {tmp_path / 'jupyter-server.log'} 2>&1 &
echo $! > {pid_file}
""")
    restart.chmod(0o755)
    settings = {"WHEELHOUSE": str(wheelhouse), "PYTHON": str(fresh_venv), "TIMEOUT_IN_MINS": "30",
                "NOTEBOOK_USER": subprocess.run(["id", "-un"], capture_output=True, text=True).stdout.strip(),
                "RESTART_COMMAND": str(restart)}
    try:
        for minutes in ("30", "35"):  # every instance start runs it again
            result = run_lcc("notebook-instance.sh", home, **{**settings, "TIMEOUT_IN_MINS": minutes})
            assert result.returncode == 0, result.stdout + result.stderr
            assert "restarting the Jupyter server" in result.stdout
            _wait_answering(url)
            assert token_less_settings(url)["idle_time"] == int(minutes) * 60
    finally:
        stop_process_in(pid_file)


@pytest.mark.timeout(600)
def test_on_jupyter_server_1_the_extension_refuses_at_load_and_says_why(home, tmp_path):
    """JupyterLab 3.6's jupyter_server 1.x, with this package installed without dependencies as
    Studio Classic's lifecycle scripts did: an ERROR line, and the compat GET says why."""
    venv = tmp_path / "server1"
    subprocess.run([sys.executable, "-m", "venv", venv], check=True, timeout=120)
    python = venv / "bin" / "python"
    pip = [python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run([*pip, "jupyter_server>=1.24,<2", "requests", "psutil", "prometheus_client"],
                   check=True, timeout=400)
    subprocess.run([*pip, "--no-deps", REPO], check=True, timeout=300)
    old = ServerProcess(home, f"--ServerApp.token={TOKEN}", python=str(python))  # 1.x: no IdentityProvider
    try:
        compat = old.request("GET", "sagemaker-studio-autoshutdown/idle_checker").json()
        assert compat["running"] is False and compat["count"] == 0
        assert "needs jupyter_server 2.4 or newer" in compat["message"], compat
        log = old.output()
        assert "[E" in log and "auto-shutdown: jupyter_autoshutdown needs jupyter_server 2.4" in log, log
        checked = run([sys.executable, CHECKER, "--url", old.url, "--token", TOKEN], home)
        assert checked.returncode == 5 and "needs jupyter_server 2.4" in checked.stdout, checked
    finally:
        old.stop()
