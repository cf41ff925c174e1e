"""`jupyter autoshutdown`, as pip installs it, against real servers: a token server and a
token-less one at Studio Classic's /jupyter/default/ (its own XSRF pair). Each subcommand, its
--json shape and its exit codes."""

from __future__ import annotations

import json
import os
import pty
import re
import shutil
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import requests
from server_process import TOKEN, ServerProcess, StudioClassicServer, isolated_env

from jupyter_autoshutdown import __version__
from jupyter_autoshutdown.cli.commands import describe_settings, describe_status

REPO = Path(__file__).resolve().parent.parent
SET_TIME_INTERVAL = REPO / "scripts" / "set-time-interval.sh"
CHECKER = REPO / "check_idle_timeout_configuration.py"
#: The console script pip puts beside this Python (what `jupyter autoshutdown` runs).
COMMAND = Path(sys.executable).with_name("jupyter-autoshutdown")
#: A time as the server writes it (ISO 8601 with its offset), never shown to a person as such.
ISO_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}")


def autoshutdown(home: Path, *args: str, timeout: float = 60, stdin=subprocess.DEVNULL
                 ) -> subprocess.CompletedProcess:
    """The command as a script runs it: no terminal on stdin (unless `stdin` is one)."""
    jupyter = shutil.which("jupyter", path=str(COMMAND.parent))
    assert jupyter is not None and COMMAND.exists(), "pip install -e . installs the console script"
    return subprocess.run([jupyter, "autoshutdown", *args], capture_output=True, text=True,
                          env=isolated_env(home), timeout=timeout, stdin=stdin)


def on_a_terminal(home: Path, answer: str, *args: str) -> subprocess.CompletedProcess:
    """The command with a terminal on stdin where a person has typed `answer`."""
    leader, follower = pty.openpty()
    try:
        os.write(leader, answer.encode())
        return autoshutdown(home, *args, stdin=follower)
    finally:
        os.close(leader)
        os.close(follower)


def state_path(home: Path) -> Path:
    """The state file of a server started with isolated_env(home) (default_state_path())."""
    return home / ".local/share/jupyter" / "jupyter_autoshutdown" / "state.json"


@pytest.fixture(scope="module", params=["token", "token-less"])
def server(request, tmp_path_factory):
    home = tmp_path_factory.mktemp(f"cli-{request.param}")
    process = (ServerProcess(home) if request.param == "token" else StudioClassicServer(home))
    process.home = home
    yield process
    process.stop()


def start_kernel(server) -> str:
    if server.token:
        return server.request("POST", "api/kernels", json={"name": "python3"}).json()["id"]
    session = requests.Session()
    session.cookies.set("_xsrf", "cli-test")
    response = session.post(f"{server.url}/api/kernels", json={"name": "python3"},
                            headers={"X-XSRFToken": "cli-test"}, timeout=30)
    return response.json()["id"]


def test_version_needs_no_server_and_has_one_source(tmp_path):
    package_json = json.loads((Path(__file__).resolve().parent.parent / "package.json").read_text())
    assert __version__ == package_json["version"]
    result = autoshutdown(tmp_path, "version")
    assert result.returncode == 0 and result.stdout.strip() == f"jupyter_autoshutdown {__version__}"
    module = subprocess.run([sys.executable, "-m", "jupyter_autoshutdown", "version"], capture_output=True,
                            text=True, timeout=60)
    assert module.stdout == result.stdout


def test_status_set_keepalive_and_check(server):
    home, url = server.home, server.url
    kernel_id = start_kernel(server)
    try:
        found = autoshutdown(home, "status")  # found through `jupyter server list`, with its token
        assert found.returncode == 0, found.stderr
        assert f"Auto-shutdown on {url}/: timeout 120 min" in found.stdout
        print(found.stdout)
        header, row = (line.split() for line in found.stdout.splitlines()[2:4])
        assert header == ["KERNEL", "STATE", "IDLE", "FOR", "STOPS", "AT", "WHY"]
        assert row[:2] == ["python3", kernel_id[:8]], row  # no session: its name and id
        assert "App action" in found.stdout

        raw = autoshutdown(home, "status", "--url", url, "--json")
        assert raw.returncode == 0, raw.stderr
        status = json.loads(raw.stdout)
        assert [kernel["id"] for kernel in status["kernels"]] == [kernel_id]
        assert "path" in status["kernels"][0] and status["running"] is True

        changed = autoshutdown(home, "set", "45", "--keep-terminals", "--url", url)
        assert changed.returncode == 0, changed.stderr
        assert "45 minutes (2700 seconds)" in changed.stdout and "keep terminals: yes" in changed.stdout
        assert autoshutdown(home, "set", "-3", "--url", url).returncode == 2

        kept = autoshutdown(home, "keepalive", "90", "--url", url, "--json")
        assert kept.returncode == 0, kept.stderr
        assert json.loads(kept.stdout)["keep_alive_until"] is not None
        one = autoshutdown(home, "keepalive", "30", "--kernel", kernel_id, "--url", url)
        assert one.returncode == 0 and f"Kernel {kernel_id} is kept alive until" in one.stdout
        kept_status = autoshutdown(home, "status", "--url", url)
        assert kept_status.returncode == 0, kept_status.stderr
        # The reason's time as STOPS AT shows times: local, to the second; never the server's ISO.
        assert re.search(r"kept alive by a user until (\d{4}-\d{2}-\d{2} )?\d{2}:\d{2}:\d{2}",
                         kept_status.stdout), kept_status.stdout
        assert not ISO_TIME.search(kept_status.stdout), kept_status.stdout
        too_long = autoshutdown(home, "keepalive", "100000", "--url", url)
        assert too_long.returncode == 6 and "rejected" in too_long.stderr
        unknown = autoshutdown(home, "keepalive", "5", "--kernel", "no-such-kernel", "--url", url)
        assert unknown.returncode == 6
        cancelled = autoshutdown(home, "keepalive", "--cancel", "--url", url)
        assert cancelled.returncode == 0 and "Everything" not in cancelled.stdout
        assert autoshutdown(home, "keepalive", "5", "--cancel", "--url", url).returncode == 2

        checked = autoshutdown(home, "check", "--url", url, "--json")
        assert checked.returncode == 0, checked.stdout + checked.stderr
        health = json.loads(checked.stdout)
        assert (health["idle_time"], health["keep_terminals"], health["healthy"]) == (2700, True, True)
    finally:
        if server.token:
            server.request("DELETE", f"api/kernels/{kernel_id}")
        autoshutdown(home, "set", "120", "--no-keep-terminals", "--url", url)


def test_exit_codes_without_a_server_or_with_a_wrong_token(tmp_path):
    assert autoshutdown(tmp_path, "status").returncode == 3
    lab = ServerProcess(tmp_path)
    try:
        refused = autoshutdown(tmp_path, "status", "--url", lab.url, "--token", "wrong")
        assert refused.returncode == 7 and "refused" in refused.stderr
        with_token = autoshutdown(tmp_path, "status", "--url", lab.url, "--token", TOKEN)
        assert with_token.returncode == 0
    finally:
        lab.stop()
    assert autoshutdown(tmp_path, "status", "--url", lab.url, "--token", TOKEN).returncode == 3


def test_bad_arguments_exit_2_with_a_message_and_no_traceback(tmp_path):
    for args, message in [
        (["status", "--timeout", "-1"], "--timeout: must be a positive number of seconds"),
        (["check", "--timeout", "0"], "--timeout: must be a positive number of seconds"),
        (["keepalive", "--timeout", "nan"], "--timeout: must be a positive number of seconds"),
        (["fleet", "--server", "http://127.0.0.1:1/", "--timeout", "inf"], "must be a positive number"),
        (["status", "--timeout", "soon"], "--timeout: must be a number of seconds"),
        (["status", "--url", "notaurl"], "--url: not an http(s) URL: 'notaurl'"),
        (["check", "--url", "localhost:8888"], "--url: not an http(s) URL"),
        (["set", "30", "--url", "http://127.0.0.1:notaport/"], "--url: not a URL"),
        (["reset", "--url", "ftp://example.org/"], "--url: not an http(s) URL"),
    ]:
        result = autoshutdown(tmp_path, *args)
        assert result.returncode == 2, (args, result.stdout, result.stderr)
        assert message in result.stderr and "Traceback" not in result.stderr, (args, result.stderr)


def test_each_wrapper_names_itself_and_every_option_says_what_it_does(tmp_path):
    env = {**isolated_env(tmp_path), "AUTOSHUTDOWN_PYTHON": sys.executable}
    wrapper = subprocess.run([str(SET_TIME_INTERVAL), "--help"], capture_output=True, text=True, env=env,
                             timeout=60, stdin=subprocess.DEVNULL)
    assert wrapper.returncode == 0, wrapper.stderr
    assert wrapper.stdout.startswith("usage: set-time-interval.sh "), wrapper.stdout
    assert "jupyter autoshutdown set [" not in wrapper.stdout
    assert re.search(r"--keep-terminals\s+never shut down terminals", wrapper.stdout), wrapper.stdout
    assert re.search(r"-y, --yes\s+set a timeout under 5 minutes without asking", wrapper.stdout)
    bad = subprocess.run([str(SET_TIME_INTERVAL), "--no-such-option"], capture_output=True, text=True,
                         env=env, timeout=60, stdin=subprocess.DEVNULL)
    assert bad.returncode == 2 and "set-time-interval.sh: error:" in bad.stderr, bad.stderr
    checker = subprocess.run([sys.executable, str(CHECKER), "--help"], capture_output=True, text=True,
                             env=env, timeout=60)
    assert checker.stdout.startswith("usage: check_idle_timeout_configuration.py "), checker.stdout
    command = autoshutdown(tmp_path, "set", "--help")
    assert command.stdout.startswith("usage: jupyter autoshutdown set "), command.stdout
    assert "--no-keep-terminals  shut down idle terminals" in command.stdout, command.stdout


def test_a_timeout_under_5_minutes_is_set_only_when_confirmed(server):
    home, url = server.home, server.url

    def minutes() -> float:
        return server.request("GET", "autoshutdown/api/settings").json()["idle_timeout_minutes"]

    try:
        # A script (no terminal) must say --yes: refused, nothing changed, before any request.
        scripted = autoshutdown(home, "set", "0.01", "--url", url)
        assert scripted.returncode == 2, scripted.stdout + scripted.stderr
        assert ("A 0.01-minute timeout stops idle kernels and, with an app action, the server itself "
                "within seconds of being idle." in scripted.stderr)
        assert "pass --yes" in scripted.stderr and minutes() == 120
        env = {**isolated_env(home), "AUTOSHUTDOWN_PYTHON": sys.executable}
        wrapped = subprocess.run([str(SET_TIME_INTERVAL), "3", "--url", url], capture_output=True, text=True,
                                 env=env, timeout=60, stdin=subprocess.DEVNULL)
        assert wrapped.returncode == 2 and "pass --yes" in wrapped.stderr, wrapped.stderr
        assert minutes() == 120

        # A person is asked on the terminal; anything but yes changes nothing.
        declined = on_a_terminal(home, "n\n", "set", "0.5", "--url", url)
        assert declined.returncode == 2, declined.stdout + declined.stderr
        assert f"Set it on {url}/? [y/N]" in declined.stderr and "not confirmed" in declined.stderr
        assert minutes() == 120
        ended = on_a_terminal(home, "\x04", "set", "0.5", "--url", url)  # Ctrl-D: end of input
        assert ended.returncode == 2 and minutes() == 120, ended.stderr
        confirmed = on_a_terminal(home, "y\n", "set", "0.5", "--url", url)
        assert confirmed.returncode == 0, confirmed.stdout + confirmed.stderr
        assert "idle timeout:   0.5 minutes (30 seconds)" in confirmed.stdout and minutes() == 0.5

        # --yes (or -y) skips the question, in the wrapper too; 5 minutes and 0 (off) are not asked.
        one = autoshutdown(home, "set", "1", "--yes", "--url", url)
        assert one.returncode == 0, one.stderr
        assert "idle timeout:   1 minute (60 seconds)" in one.stdout, one.stdout
        wrapped = subprocess.run([str(SET_TIME_INTERVAL), "2", "-y", "--url", url], capture_output=True,
                                 text=True, env=env, timeout=60, stdin=subprocess.DEVNULL)
        assert wrapped.returncode == 0 and minutes() == 2, wrapped.stderr
        assert autoshutdown(home, "set", "5", "--url", url).returncode == 0 and minutes() == 5
        off = autoshutdown(home, "set", "0", "--url", url)
        assert off.returncode == 0 and "idle timeout:   off (0)" in off.stdout, off.stdout + off.stderr
    finally:
        autoshutdown(home, "set", "120", "--url", url)


def test_reset_clears_the_saved_settings_without_a_running_server(tmp_path):
    saved = state_path(tmp_path)
    lab = ServerProcess(tmp_path)
    try:
        changed = autoshutdown(tmp_path, "set", "0.01", "--yes", "--keep-terminals", "--url", lab.url)
        assert changed.returncode == 0, changed.stderr
    finally:
        lab.stop()
    assert json.loads(saved.read_text())["settings"] == {"idle_timeout_minutes": 0.01, "keep_terminals": True}

    # No server runs: the file is cleared, and the command says which and what it held.
    reset = autoshutdown(tmp_path, "reset")
    assert reset.returncode == 0, reset.stdout + reset.stderr
    assert (f"Removed runtime settings from {saved}: idle_timeout_minutes 0.01, keep_terminals true"
            in reset.stdout), reset.stdout
    assert "No running server found" in reset.stdout
    assert not saved.exists()
    again = autoshutdown(tmp_path, "reset")
    assert again.returncode == 0 and f"Nothing to clear: {saved} does not exist" in again.stdout, again.stdout

    # The next start runs on the operator's settings; a running server is reset too.
    lab = ServerProcess(tmp_path)
    try:
        settings = lab.request("GET", "autoshutdown/api/settings").json()
        assert (settings["idle_timeout_minutes"], settings["keep_terminals"]) == (120, False)
        assert autoshutdown(tmp_path, "set", "45", "--keep-terminals", "--url", lab.url).returncode == 0
        live = autoshutdown(tmp_path, "reset")  # found through `jupyter server list`
        assert live.returncode == 0, live.stdout + live.stderr
        assert (f"Removed runtime settings from {saved}: idle_timeout_minutes 45, keep_terminals true"
                in live.stdout), live.stdout
        assert f"The running server at {lab.url}/ is back on the operator's settings" in live.stdout
        assert "idle timeout:   120 minutes" in live.stdout, live.stdout
        settings = lab.request("GET", "autoshutdown/api/settings").json()
        assert (settings["idle_timeout_minutes"], settings["keep_terminals"]) == (120, False)
        assert json.loads(saved.read_text()).get("settings") in ({}, None)  # the server forgot them too
    finally:
        lab.stop()


def test_reset_of_a_state_file_elsewhere_keeps_what_is_not_a_setting(tmp_path):
    state = tmp_path / "custom" / "state.json"
    state.parent.mkdir()
    state.write_text(json.dumps({"version": 1, "updated_at": "2026-01-01T00:00:00+00:00",
                                 "settings": {"daily_stop_time": "22:00", "idle_timeout_minutes": 2},
                                 "config": {"idle_timeout_minutes": 120}, "later": {"kept": True},
                                 "set_aside": {"cull_busy": "maybe"}}))  # a value a server could not use
    reset = autoshutdown(tmp_path, "reset", "--state-file", str(state))
    assert reset.returncode == 0, reset.stdout + reset.stderr
    assert (f'Removed runtime settings from {state}: cull_busy "maybe", daily_stop_time "22:00", '
            "idle_timeout_minutes 2" in reset.stdout), reset.stdout
    left = json.loads(state.read_text())
    assert left["later"] == {"kept": True}, left
    assert not {"settings", "config", "set_aside"} & set(left), left
    assert autoshutdown(tmp_path, "reset", "--state-file", str(state)).stdout.startswith("Nothing to clear")

    state.write_text("{not json")  # corrupt: set aside by the same code the server uses, and said
    corrupt = autoshutdown(tmp_path, "reset", "--state-file", str(state))
    assert corrupt.returncode == 0 and "is corrupt" in corrupt.stderr, corrupt.stderr
    assert not state.exists() and list(state.parent.glob("state.json.corrupt-*"))


def test_status_shows_what_is_true_in_a_person_s_words():
    now = datetime.now(timezone.utc)
    until = now + timedelta(hours=2)
    status = {
        "settings": {"idle_timeout_minutes": 1, "keep_terminals": False}, "count": 3,
        "last_check": now.isoformat(),
        "kernels": [
            {"id": "a" * 36, "name": "python3", "path": "busy.ipynb", "execution_state": "busy",
             "idle_seconds": 125.0, "shutdown_at": None, "reason": "busy"},
            {"id": "b" * 36, "name": "python3", "path": "kept.ipynb", "execution_state": "idle",
             "idle_seconds": 30.0, "shutdown_at": until.isoformat(),
             "reason": f"this one kept alive by a user until {until.isoformat()}"},
        ],
        "terminals": [],
        "app": {"action": "server", "action_at": until.isoformat(), "seconds_until_action": 7200,
                "reason": f"kept alive by a user until {until.isoformat()}"},
    }
    text = describe_status(status, "http://127.0.0.1:8888/")
    busy_row = next(line for line in text.splitlines() if line.startswith("busy.ipynb"))
    assert busy_row.split()[:3] == ["busy.ipynb", "busy", "-"], busy_row  # busy is not idle
    # A time today is shown as a time of day, one on another day with its date (after 22:00 here).
    same_day = until.astimezone().date() == datetime.now().astimezone().date()
    local = until.astimezone().strftime("%H:%M:%S" if same_day else "%Y-%m-%d %H:%M:%S")
    kept_row = next(line for line in text.splitlines() if line.startswith("kept.ipynb"))
    assert kept_row.count(local) == 2 and not ISO_TIME.search(text), text  # STOPS AT and the reason
    assert f"kept alive by a user until {local}" in text.splitlines()[-1]

    assert "1 minute (60 seconds)" in describe_settings({"idle_time": 60, "keep_terminals": False})
    assert "0.5 minutes (30 seconds)" in describe_settings({"idle_time": 30, "idle_timeout_minutes": 0.5})
    assert "45 minutes (2700 seconds)" in describe_settings({"idle_time": 2700})
