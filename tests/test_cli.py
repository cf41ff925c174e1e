"""`jupyter autoshutdown`, as pip installs it, against real servers: a token server and a
token-less one at Studio Classic's /jupyter/default/ (its own XSRF pair). Each subcommand, its
--json shape and its exit codes."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from server_process import TOKEN, ServerProcess, StudioClassicServer, isolated_env

from jupyter_autoshutdown import __version__

#: The console script pip puts beside this Python (what `jupyter autoshutdown` runs).
COMMAND = Path(sys.executable).with_name("jupyter-autoshutdown")


def autoshutdown(home: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    jupyter = shutil.which("jupyter", path=str(COMMAND.parent))
    assert jupyter is not None and COMMAND.exists(), "pip install -e . installs the console script"
    return subprocess.run([jupyter, "autoshutdown", *args], capture_output=True, text=True,
                          env=isolated_env(home), timeout=timeout)


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
