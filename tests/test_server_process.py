"""A real `jupyter server` process: persistence across restarts and the `server` app action."""

from __future__ import annotations

import subprocess
import sys
import time

from server_process import ServerProcess, isolated_env


def test_extension_is_enabled_by_pip_install_and_listed(home):
    result = subprocess.run(
        [sys.executable, "-m", "jupyter_server", "extension", "list"],
        capture_output=True, text=True, timeout=60,
        env=isolated_env(home),
    )
    output = result.stdout + result.stderr
    assert "jupyter_autoshutdown" in output and "enabled" in output, output
    assert "jupyter_autoshutdown 0." in output and "OK" in output, output


def test_runtime_change_survives_a_server_restart(home):
    server = ServerProcess(home)
    try:
        reply = server.request("POST", "sagemaker-studio-autoshutdown/idle_checker",
                               json={"idle_time": 42, "keep_terminals": True})
        assert reply.status_code == 200, reply.text
        assert reply.json()["persisted"] is True
    finally:
        server.stop()
    server = ServerProcess(home)
    try:
        got = server.request("GET", "sagemaker-studio-autoshutdown/idle_checker").json()
        assert got["idle_time"] == 42 * 60
        assert got["keep_terminals"] is True
        assert got["count"] >= 1, "the checker runs without any POST after a restart"
    finally:
        server.stop()
    assert "runtime settings from" in server.output()


def test_static_config_changed_after_a_runtime_change_wins(home):
    server = ServerProcess(home, "--AutoShutdown.idle_timeout=100")
    try:
        server.request("PATCH", "autoshutdown/api/settings", json={"idle_timeout_minutes": 42})
    finally:
        server.stop()
    # The operator now sets a new value in the static config: that newer decision applies.
    server = ServerProcess(home, "--AutoShutdown.idle_timeout=15")
    try:
        got = server.request("GET", "autoshutdown/api/settings").json()
        assert got["idle_timeout_minutes"] == 15
    finally:
        server.stop()


def test_corrupt_state_file_is_ignored_and_the_server_starts(home):
    state = home / ".local/share/jupyter/jupyter_autoshutdown/state.json"
    state.parent.mkdir(parents=True)
    state.write_text("{ this is not json")
    server = ServerProcess(home, "--AutoShutdown.idle_timeout=33")
    try:
        got = server.request("GET", "autoshutdown/api/settings").json()
        assert got["idle_timeout_minutes"] == 33
        assert got["state_file"] == str(state)
    finally:
        server.stop()
    assert "is corrupt" in server.output()


def test_server_action_stops_an_idle_server_by_itself(home):
    started = time.monotonic()
    server = ServerProcess(home, "--AutoShutdown.idle_timeout=0.05", "--AutoShutdown.app_action=server")
    try:
        server.process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        server.stop()
        raise AssertionError(f"server still running after 30 s:\n{server.output()}") from None
    finally:
        server.log.close()
    elapsed = time.monotonic() - started
    output = server.output()
    assert server.process.returncode == 0, output
    assert "running app action 'server'" in output
    assert elapsed >= 3, "it must wait a full timeout without activity first"
