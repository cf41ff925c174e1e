"""The `jupyterhub` action with a real JupyterHub, proxy and spawner on loopback."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time

import pytest
from helpers import wait_for
from server_process import HubProcess, configurable_http_proxy

TIMEOUT_SECONDS = 3.0
USER = "alice"
SINGLEUSER_ARGS = [
    f"--AutoShutdown.idle_timeout={TIMEOUT_SECONDS / 60}", "--AutoShutdown.max_check_interval=1"
]
#: What a hub admin grants server tokens so that the action can stop its own server over the API.
STOP_OWN_SERVER_SCOPES = ["access:servers!server", "users:activity!user", "servers!server"]

if configurable_http_proxy() is None:
    reason = "configurable-http-proxy is not installed: run `bash scripts/test-setup.sh` (npm ci, tests/hub)"
    if os.environ.get("CI"):
        raise RuntimeError(reason)  # in CI the hub tests must run, never skip
    pytestmark = pytest.mark.skip(reason=reason)


@pytest.fixture
def server_token_scopes() -> list[str] | None:
    return None


@pytest.fixture
def hub(home, server_token_scopes):
    process = HubProcess(home, SINGLEUSER_ARGS, server_token_scopes)
    try:
        yield process
    finally:
        process.stop()


def start_server(hub: HubProcess) -> dict:
    assert hub.request("POST", f"hub/api/users/{USER}").status_code in (201, 409)
    assert hub.request("POST", f"hub/api/users/{USER}/server").status_code in (201, 202)
    return wait_for_sync(lambda: hub.user(USER)["servers"].get("", {}).get("ready") and hub.user(USER),
                         timeout=60, what="the single-user server to be ready")


def wait_for_sync(condition, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


@pytest.mark.parametrize("server_token_scopes", [STOP_OWN_SERVER_SCOPES])
async def test_idle_single_user_server_is_stopped_through_the_hub_api(hub):
    start_server(hub)
    await wait_for(lambda: not hub.user(USER)["servers"], timeout=30, what="the hub to stop the server")
    output = hub.output()
    idle = re.search(r"running app action 'jupyterhub': .* server idle for (\d+) s", output)
    assert idle and int(idle.group(1)) >= TIMEOUT_SECONDS, output
    assert f"DELETE /hub/api/users/{USER}/server" in output, "stopped by our request to the hub API"
    assert "app action 'auto' is 'jupyterhub'" in output
    assert f"POST /hub/api/users/{USER}/activity" in output, "activity reported to the hub"


async def test_without_the_servers_scope_the_server_exits_and_the_hub_records_it_stopped(hub):
    start_server(hub)
    await wait_for(lambda: not hub.user(USER)["servers"], timeout=30, what="the hub to see the exit")
    output = hub.output()
    assert "the hub refused to stop this server (HTTP 403)" in output
    assert f"DELETE /hub/api/users/{USER}/server" in output


def test_fleet_check_lists_and_checks_every_running_hub_server(home):
    # A long timeout here: the server must stay up while the fleet check runs.
    hub = HubProcess(home, ["--AutoShutdown.idle_timeout=30"])
    try:
        start_server(hub)
        result = subprocess.run(
            [sys.executable, "-m", "jupyter_autoshutdown.cli.commands", "fleet", "--hub-url", hub.url,
             "--hub-token", hub.token],
            capture_output=True, text=True, timeout=60,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        assert f"/user/{USER}/" in result.stdout and "OK" in result.stdout, result.stdout
    finally:
        hub.stop()
