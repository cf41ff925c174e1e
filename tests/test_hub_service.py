"""The hub service (`jupyter autoshutdown hub-service`, hub/) and `fleet --hub-url`, with a real
JupyterHub whose user list is paged in pages smaller than its users, configurable-http-proxy and
single-user servers: some with the extension, one without."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime, timezone

import pytest
from helpers import wait_for
from server_process import HubProcess, configurable_http_proxy, free_port
from test_jupyterhub import wait_for_sync

import jupyter_autoshutdown

FALLBACK_TIMEOUT_SECONDS = 10
PAGE_SIZE = 2
#: No hub activity reports from these servers: the hub's last_activity of each ages from its
#: start, so only the extension's own status can spare a held one from --timeout.
SINGLEUSER_ARGS = ["--AutoShutdown.idle_timeout=30", "--AutoShutdown.max_check_interval=1",
                   "--AutoShutdown.hub_activity_refresh=0"]
#: The role the service needs (docs/platforms.md).
SERVICE_SCOPES = ["list:users", "read:users:activity", "read:servers", "delete:servers", "proxy",
                  "access:servers"]
#: (user, server name): four users, one named server; "plain" runs without the extension.
SERVERS = [("plain", ""), ("held", ""), ("idle1", ""), ("idle1", "extra"), ("idle2", "")]

if configurable_http_proxy() is None:
    pytestmark = pytest.mark.skip(reason="configurable-http-proxy is not installed (tests/hub)")


def hub_config(public_url: str) -> dict:
    service_url = f"http://127.0.0.1:{free_port()}"
    return {
        "JupyterHub": {
            "allow_named_servers": True,
            "api_page_default_limit": PAGE_SIZE,
            "api_page_max_limit": PAGE_SIZE,
            # The hub reads the proxy's per-route activity every 2 s (300 s by default): reading a
            # server through the proxy would then count as its activity at once.
            "last_activity_interval": 2,
            "services": [{
                "name": "autoshutdown",
                "url": service_url,
                "command": [sys.executable, "-m", "jupyter_autoshutdown", "hub-service",
                            f"--timeout={FALLBACK_TIMEOUT_SECONDS}", "--cull-every=1", "--concurrency=4",
                            "--request-timeout=5", f"--page-size={PAGE_SIZE}", f"--proxy-url={public_url}"],
            }],
            "load_roles": [
                {"name": "autoshutdown-service", "scopes": SERVICE_SCOPES, "services": ["autoshutdown"]},
                {"name": "tester-reads-services", "scopes": ["access:services"], "services": ["tester"]},
            ],
        },
    }


@pytest.fixture
def hub(home):
    # "plain" turns the extension off in its own Jupyter config ($HOME/.jupyter of its server).
    config = home / "users" / "plain" / ".jupyter"
    config.mkdir(parents=True)
    (config / "jupyter_server_config.json").write_text(
        json.dumps({"ServerApp": {"jpserver_extensions": {"jupyter_autoshutdown": False}}}))
    process = HubProcess(home, SINGLEUSER_ARGS, extra_config=hub_config)
    try:
        yield process
    finally:
        process.stop()


def start_servers(hub: HubProcess) -> None:
    for user in {user for user, _ in SERVERS}:
        assert hub.request("POST", f"hub/api/users/{user}").status_code in (201, 409)
    for user, name in SERVERS:
        path = f"hub/api/users/{user}/servers/{name}" if name else f"hub/api/users/{user}/server"
        assert hub.request("POST", path).status_code in (201, 202), (user, name)
    for user, name in SERVERS:
        wait_for_sync(lambda user=user, name=name: hub.user(user)["servers"].get(name, {}).get("ready"),
                      timeout=60, what=f"{user}/{name} to be ready")


def fleet(hub: HubProcess) -> dict:
    response = hub.request("GET", "services/autoshutdown/api/fleet")
    assert response.status_code == 200, response.text
    return response.json()


def by_server(view: dict) -> dict[tuple[str, str], dict]:
    return {(entry["user"], entry["server"]): entry for entry in view["servers"]}


async def test_the_service_lists_every_server_and_culls_only_the_one_without_the_extension(hub):
    start_servers(hub)
    assert len(hub.request("GET", "hub/api/users").json()) == PAGE_SIZE, "the hub pages its users"
    response = hub.request("POST", "user/held/autoshutdown/api/keepalive", json={"minutes": 60})
    assert response.status_code == 200, response.text

    # Every server, though the hub answers PAGE_SIZE users a page, each as its extension sees it.
    def full_view() -> dict | None:
        view = fleet(hub)
        entries = by_server(view)
        complete = set(SERVERS) <= set(entries) and entries[("held", "")]["state"] == "held"
        return view if complete else None

    view = await wait_for(full_view, timeout=FALLBACK_TIMEOUT_SECONDS, what="a sweep that saw all servers")
    entries = by_server(view)
    plain = entries[("plain", "")]
    assert plain["state"] == "no-extension" and plain["version"] == "missing", plain
    assert "kept alive until" in entries[("held", "")]["held_by"]
    for key in [("idle1", ""), ("idle1", "extra"), ("idle2", "")]:
        assert entries[key]["state"] == "managed", entries[key]
        assert entries[key]["version"] == jupyter_autoshutdown.__version__
        assert entries[key]["stops_at"] and entries[key]["idle_seconds"] is not None
    assert view["sweep"]["hub_requests"] >= 3 + 1  # 3 pages of users, the routing table

    # The one without the extension is stopped by the hub's last_activity and --timeout.
    await wait_for(lambda: not hub.user("plain")["servers"], timeout=FALLBACK_TIMEOUT_SECONDS + 20,
                   what="the service to stop the server without the extension")
    assert "culling plain: no-extension: inactive for" in hub.output()
    # The held one and the extension's own (its timeout is 30 min) are left running, though the
    # hub's last_activity of each is past --timeout (they report nothing to the hub here).
    def hub_idle_seconds(user: str, name: str) -> float:
        last = datetime.fromisoformat(hub.user(user)["servers"][name]["last_activity"].replace("Z", "+00:00"))
        return (datetime.now(timezone.utc) - last).total_seconds()

    await wait_for(lambda: min(hub_idle_seconds(user, name) for user, name in SERVERS[1:])
                   > FALLBACK_TIMEOUT_SECONDS + 3, timeout=FALLBACK_TIMEOUT_SECONDS + 20,
                   what="the hub's last_activity of the others to pass --timeout")
    print(f"sweep: {fleet(hub)['sweep']}")
    for user, name in SERVERS[1:]:
        server = hub.user(user)["servers"].get(name)
        assert server and server["ready"], (user, name)
    assert "culling held" not in hub.output() and "culling idle" not in hub.output()

    page = hub.request("GET", "services/autoshutdown/")
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html"), page.text
    assert "Auto-shutdown: the fleet" in page.text and 'fetch("api/fleet"' in page.text
    assert fleet(hub)["totals"]["servers"] == len(SERVERS) - 1  # "plain" is gone

    metrics = hub.request("GET", "services/autoshutdown/metrics").text
    assert 'autoshutdown_fleet_servers{state="held"} 1' in metrics, metrics
    assert 'autoshutdown_fleet_culled_total{reason="no-extension"} 1' in metrics, metrics

    # `fleet --hub-url` pages too: every running server (named ones included) is checked.
    result = subprocess.run(
        [sys.executable, "-m", "jupyter_autoshutdown.cli.commands", "fleet", "--hub-url", hub.url,
         "--hub-token", hub.token],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    for path in ["/user/held/", "/user/idle1/", "/user/idle1/extra/", "/user/idle2/"]:
        assert f"OK   {hub.url}{path}" in result.stdout, result.stdout
    assert "4 of 4 servers healthy" in result.stdout, result.stdout
