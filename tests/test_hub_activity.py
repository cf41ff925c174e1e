"""The hub's view kept true (act/hub_signal.py), with a real JupyterHub, proxy, single-user servers
and the real jupyterhub-idle-culler as a hub service at a short timeout."""

from __future__ import annotations

import asyncio
import sys
import time
from datetime import datetime, timezone

import pytest
from helpers import KernelSession, wait_for
from server_process import HubProcess, configurable_http_proxy
from test_jupyterhub import wait_for_sync

CULL_TIMEOUT_SECONDS = 15
CULL_EVERY_SECONDS = 3
#: The silent cell runs three times the culler's timeout.
CELL_SECONDS = 3 * CULL_TIMEOUT_SECONDS
#: Below the culler's timeout (the default, 30 s, is for the chart's culler at 3600 s).
REFRESH_SECONDS = 3
SINGLEUSER_ARGS = [
    "--AutoShutdown.idle_timeout=30",  # minutes: here the hub's culler is the one that stops
    "--AutoShutdown.max_check_interval=1",
    f"--AutoShutdown.hub_activity_refresh={REFRESH_SECONDS}",
]
CULLER = {
    "JupyterHub": {
        "services": [{
            "name": "idle-culler",
            "command": [sys.executable, "-m", "jupyterhub_idle_culler",
                        f"--timeout={CULL_TIMEOUT_SECONDS}", f"--cull-every={CULL_EVERY_SECONDS}"],
        }],
        "load_roles": [{
            "name": "idle-culler",
            "scopes": ["list:users", "read:users:activity", "read:servers", "delete:servers"],
            "services": ["idle-culler"],
        }],
    },
}

if configurable_http_proxy() is None:
    pytestmark = pytest.mark.skip(reason="configurable-http-proxy is not installed (tests/hub)")


def start_servers(hub: HubProcess, *users: str) -> None:
    for user in users:
        assert hub.request("POST", f"hub/api/users/{user}").status_code in (201, 409)
        assert hub.request("POST", f"hub/api/users/{user}/server").status_code in (201, 202)
    for user in users:
        wait_for_sync(lambda user=user: hub.user(user)["servers"].get("", {}).get("ready"),
                      timeout=60, what=f"{user}'s server to be ready")


def running(hub: HubProcess, user: str) -> bool:
    return bool(hub.user(user)["servers"])


async def test_the_hub_culler_spares_a_silently_running_cell_and_culls_an_idle_server(home):
    hub = HubProcess(home, SINGLEUSER_ARGS, extra_config=CULLER)
    try:
        start_servers(hub, "busy", "idle")
        kernel = hub.request("POST", "user/busy/api/kernels", json={"name": "python3"}).json()["id"]
        session = await KernelSession.connect_url(f"{hub.url}/user/busy", hub.token, kernel)
        await session.send_execute(f"import time; time.sleep({CELL_SECONDS})")
        # The cell runs with nobody connected: no traffic through the proxy, no output.
        await asyncio.sleep(0.5)
        session.close()
        cell_started = time.monotonic()

        await wait_for(lambda: not running(hub, "idle"),
                       timeout=CULL_TIMEOUT_SECONDS + 4 * CULL_EVERY_SECONDS,
                       what="the culler to stop the idle server")
        idle_culled_after = time.monotonic() - cell_started
        while time.monotonic() - cell_started < CELL_SECONDS - 1:
            assert running(hub, "busy"), f"the culler stopped the busy server mid-cell:\n{hub.output()}"
            await asyncio.sleep(1)
        busy = hub.user("busy")["servers"][""]
        reported = datetime.fromisoformat(busy["last_activity"].replace("Z", "+00:00"))
        age = datetime.now(timezone.utc) - reported
        status = hub.request("GET", "user/busy/autoshutdown/api/status").json()
        assert status["hub_activity"]["error"] is None, status["hub_activity"]
        print(f"idle server culled {idle_culled_after:.1f} s after the busy cell started; busy server "
              f"still running after {time.monotonic() - cell_started:.1f} s (culler timeout "
              f"{CULL_TIMEOUT_SECONDS} s), its hub last_activity {age.total_seconds():.1f} s old, "
              f"{status['hub_activity']['requests']} activity reports")
        assert age.total_seconds() < CULL_TIMEOUT_SECONDS
        assert "Culling server idle" in hub.output()
        assert "Culling server busy" not in hub.output()
    finally:
        hub.stop()
