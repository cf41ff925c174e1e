"""A real `jupyter server` process: persistence across restarts and the `server` app action."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

TOKEN = "autoshutdown-test-token"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ServerProcess:
    def __init__(self, home: Path, *args: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {
            **os.environ,
            "HOME": str(home),
            "JUPYTER_CONFIG_DIR": str(home / ".jupyter"),
            "JUPYTER_DATA_DIR": str(home / ".local/share/jupyter"),
            "JUPYTER_RUNTIME_DIR": str(home / ".local/share/jupyter/runtime"),
        }
        self.log_path = home / f"server-{self.port}.log"
        self.log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "jupyter_server", f"--port={self.port}", "--ip=127.0.0.1",
             "--no-browser", "--allow-root", f"--IdentityProvider.token={TOKEN}",
             f"--ServerApp.root_dir={home}", *args],
            env=env, stdout=self.log, stderr=subprocess.STDOUT,
        )
        self.wait_until_answering()

    def request(self, method: str, path: str, **kwargs) -> requests.Response:
        headers = {"Authorization": f"token {TOKEN}"}
        return requests.request(method, f"{self.url}/{path}", headers=headers, timeout=10, **kwargs)

    def wait_until_answering(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"server exited early:\n{self.output()}")
            try:
                if self.request("GET", "api/status").status_code == 200:
                    return
            except requests.ConnectionError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"server did not answer in {timeout} s:\n{self.output()}")

    def output(self) -> str:
        if not self.log.closed:
            self.log.flush()
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            self.process.send_signal(signal.SIGINT)  # the second one skips the confirmation
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self.log.close()


@pytest.fixture
def home(tmp_path):
    path = tmp_path / "home"
    path.mkdir()
    return path


def test_extension_is_enabled_by_pip_install_and_listed(home):
    result = subprocess.run(
        [sys.executable, "-m", "jupyter_server", "extension", "list"],
        capture_output=True, text=True, timeout=60,
        env={**os.environ, "HOME": str(home), "JUPYTER_CONFIG_DIR": str(home / ".jupyter")},
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
