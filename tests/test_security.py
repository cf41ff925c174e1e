"""Security against a real server process: XSRF for cookie sessions, tokens kept out of logs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import requests
from server_process import TOKEN, ServerProcess, isolated_env

REPO = Path(__file__).resolve().parent.parent
ROUTE = "sagemaker-studio-autoshutdown/idle_checker"


@pytest.fixture
def server(home):
    process = ServerProcess(home)
    yield process
    process.stop()


def logged_in_session(server: ServerProcess) -> requests.Session:
    """A browser-like session: logged in with a cookie, not with the token header."""
    session = requests.Session()
    session.get(f"{server.url}/login", timeout=10)
    xsrf = session.cookies.get("_xsrf")
    assert xsrf
    reply = session.post(f"{server.url}/login", data={"password": TOKEN, "_xsrf": xsrf},
                         allow_redirects=False, timeout=10)
    assert reply.status_code in (302, 303), reply.status_code
    return session


def test_cookie_writes_need_the_xsrf_token_and_token_scripts_do_not(server):
    session = logged_in_session(server)
    assert session.get(f"{server.url}/{ROUTE}", timeout=10).status_code == 200
    forged = session.post(f"{server.url}/{ROUTE}", json={"idle_time": 1}, timeout=10)
    assert forged.status_code == 403
    forged_patch = session.patch(f"{server.url}/autoshutdown/api/settings",
                                 json={"idle_timeout_minutes": 1}, timeout=10)
    assert forged_patch.status_code == 403
    assert server.request("GET", ROUTE).json()["idle_time"] == 7200
    with_xsrf = session.post(f"{server.url}/{ROUTE}", json={"idle_time": 2},
                             headers={"X-XSRFToken": session.cookies["_xsrf"]}, timeout=10)
    assert with_xsrf.status_code == 200
    by_token = server.request("POST", ROUTE, json={"idle_time": 3})
    assert by_token.status_code == 200
    assert server.request("GET", ROUTE).json()["idle_time"] == 180


def test_nobody_unauthenticated_reads_anything(server):
    for path in (ROUTE, "autoshutdown/api/settings", "autoshutdown/api/status"):
        reply = requests.get(f"{server.url}/{path}", timeout=10)
        assert reply.status_code == 403
        assert "idle" not in reply.text


def test_tokens_never_appear_in_our_logs_or_script_output(server, home):
    env = {**isolated_env(home), "AUTOSHUTDOWN_PYTHON": sys.executable}
    outputs = []
    for command in (
        [REPO / "scripts" / "set-time-interval.sh", "30", "--token", TOKEN, "--url", server.url],
        [REPO / "scripts" / "set-time-interval.sh", "31"],
        [sys.executable, REPO / "check_idle_timeout_configuration.py", "--json"],
        [sys.executable, REPO / "check_idle_timeout_configuration.py", "--token", "wrong-secret"],
    ):
        result = subprocess.run([str(c) for c in command], capture_output=True, text=True,
                                env=env, timeout=60)
        outputs.append(result.stdout + result.stderr)
    assert all(TOKEN not in output and "wrong-secret" not in output for output in outputs)
    server.stop()
    ours = [line for line in server.output().splitlines()
            if "auto-shutdown" in line or "AutoShutdown" in line]
    assert ours, "the extension logged nothing"
    assert not [line for line in ours if TOKEN in line]


def test_no_token_reaches_the_log_from_a_refused_request(home):
    server = ServerProcess(home)
    try:
        for method, path in [("PATCH", "autoshutdown/api/settings"),
                             ("POST", "sagemaker-studio-autoshutdown/idle_checker"),
                             ("POST", "autoshutdown/api/keepalive"),
                             ("POST", "autoshutdown/api/activity")]:
            reply = requests.request(method, f"{server.url}/{path}?token={TOKEN}&x=1", data=b"{bad",
                                     timeout=10)
            assert reply.status_code == 400
    finally:
        server.stop()
    log = server.output()
    assert "token=[secret]&x=1" in log
    assert TOKEN not in log
