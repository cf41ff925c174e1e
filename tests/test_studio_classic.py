"""Studio Classic as it really runs: a token-less server at /jupyter/default/ with JupyterLab.

Studio's proxy authenticates people; the server itself has no token and no password, and
jupyter_server still requires an XSRF token on every write. Every client of ours must work there,
and so must the original extension's clients (its front end's two POSTs, its check script's GET).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from server_process import StudioClassicServer, isolated_env

REPO = Path(__file__).resolve().parent.parent
SET_TIME_INTERVAL = REPO / "scripts" / "set-time-interval.sh"
FLEET = REPO / "scripts" / "fleet-check"
CHECKER = REPO / "check_idle_timeout_configuration.py"


@pytest.fixture
def studio(home):
    server = StudioClassicServer(home)
    yield server
    server.stop()


def run(command, home, **env):
    full_env = {**isolated_env(home), "AUTOSHUTDOWN_PYTHON": sys.executable, **env}
    return subprocess.run([str(part) for part in command], capture_output=True, text=True,
                          env=full_env, timeout=120)


def settings(studio):
    return studio.request("GET", "autoshutdown/api/settings").json()


def test_our_scripts_work_against_the_token_less_server(studio, home):
    # Found from the server list (no token there), and with an explicit --url.
    assert run([SET_TIME_INTERVAL, "30"], home).returncode == 0
    assert settings(studio)["idle_timeout_minutes"] == 30
    result = run([SET_TIME_INTERVAL, "31", "--keep-terminals", "--url", studio.url], home)
    assert result.returncode == 0, result.stdout + result.stderr
    assert settings(studio)["idle_timeout_minutes"] == 31 and settings(studio)["keep_terminals"]
    check = run([sys.executable, CHECKER, "--url", studio.url], home)
    assert check.returncode == 0, check.stdout + check.stderr
    fleet = run([FLEET, "--server", studio.url, "--json"], home)
    assert fleet.returncode == 0, fleet.stdout + fleet.stderr
    assert json.loads(fleet.stdout)[0]["healthy"] is True


def test_the_original_front_ends_posts_as_a_jupyterlab_page_sends_them(studio):
    page = requests.Session()
    assert page.get(f"{studio.url}/lab", timeout=30).status_code == 200  # sets the _xsrf cookie
    xsrf = page.cookies.get("_xsrf")
    assert xsrf
    headers = {"X-XSRFToken": xsrf}
    reply = page.post(f"{studio.url}/sagemaker-studio-autoshutdown/settings", headers=headers,
                      json={"idle_time": 45, "keep_terminals": True}, timeout=10)
    assert reply.status_code == 200, reply.text
    assert {key: reply.json()[key] for key in ("idle_time", "keep_terminals")} == \
        {"idle_time": "2700", "keep_terminals": True}
    reply = page.post(f"{studio.url}/sagemaker-studio-autoshutdown/idle_checker", headers=headers,
                      json={"idle_time": 50, "keep_terminals": False}, timeout=10)
    assert reply.status_code == 200, reply.text
    # The original check script: a plain GET, no credentials at all.
    checked = requests.get(f"{studio.url}/sagemaker-studio-autoshutdown/idle_checker", timeout=10).json()
    assert (checked["idle_time"], checked["keep_terminals"]) == (3000, False)
    assert checked["count"] >= 1
    # Without the XSRF pair a write is refused, as jupyter_server refuses any.
    assert requests.post(f"{studio.url}/sagemaker-studio-autoshutdown/idle_checker",
                         json={"idle_time": 5}, timeout=10).status_code == 403


@pytest.mark.timeout(600)
def test_install_sh_as_a_lifecycle_script_from_the_checkout(studio, home, tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", venv], check=True, timeout=120)
    python = venv / "bin" / "python"
    # A lifecycle configuration: `set -e`, run from the checkout. The fresh environment sees this
    # one's packages (no index needed) but not this package: install.sh must install it.
    script = f"set -e\ncd {REPO}\nbash ./install.sh --python {python} --url {studio.url} --timeout 25\n"
    env = {key: value for key, value in isolated_env(home).items() if key != "PYTHONPATH"}
    result = subprocess.run(["bash", "-c", script], capture_output=True, text=True, env=env, timeout=500)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "is already installed" not in result.stdout
    assert settings(studio)["idle_timeout_minutes"] == 25
    where = "import jupyter_autoshutdown; print(jupyter_autoshutdown.__file__)"
    imported = subprocess.run([python, "-c", where], capture_output=True, text=True, cwd=tmp_path, timeout=60)
    assert imported.returncode == 0, imported.stderr
    assert str(venv) in imported.stdout
    assert os.access(REPO / "install.sh", os.X_OK)
    # The helper it wrote works against the token-less server too.
    helper = home / ".auto-shutdown" / "set-time-interval.sh"
    retuned = subprocess.run([str(helper), "26", "--url", studio.url], capture_output=True, text=True,
                             env=env, timeout=120)
    assert retuned.returncode == 0, retuned.stdout + retuned.stderr
    assert settings(studio)["idle_timeout_minutes"] == 26


# ---- fleet-check --sagemaker-domain: botocore's Stubber for SageMaker, local servers for Studio --


def stubbed_sagemaker(domains: dict[str, list[tuple[str, str]]], list_all: bool = False):
    """A SageMaker client answering for `domains`: id -> [(profile, presigned login URL)]."""
    import boto3
    from botocore.stub import Stubber

    client = boto3.client("sagemaker", region_name="eu-west-1", aws_access_key_id="test",
                          aws_secret_access_key="test")
    stubber = Stubber(client)
    if list_all:
        stubber.add_response("list_domains", {"Domains": [{"DomainId": d} for d in domains]}, {})
    for domain, profiles in domains.items():
        # Two pages, as a domain with many profiles answers.
        first, rest = profiles[:1], profiles[1:]
        stubber.add_response("list_user_profiles", {
            "UserProfiles": [{"DomainId": domain, "UserProfileName": p} for p, _ in first],
            **({"NextToken": "page-2"} if rest else {})}, {"DomainIdEquals": domain})
        if rest:
            stubber.add_response("list_user_profiles", {
                "UserProfiles": [{"DomainId": domain, "UserProfileName": p} for p, _ in rest]},
                {"DomainIdEquals": domain, "NextToken": "page-2"})
    for domain, profiles in domains.items():
        for profile, login_url in profiles:
            stubber.add_response("create_presigned_domain_url", {"AuthorizedUrl": login_url},
                                 {"DomainId": domain, "UserProfileName": profile, "ExpiresInSeconds": 60})
    stubber.activate()
    return client, stubber


def test_fleet_check_of_sagemaker_domains(studio, home, monkeypatch, capsys):
    from server_process import free_port

    from jupyter_autoshutdown.cli import commands as fleet

    bare = StudioClassicServer(home, "--ServerApp.jpserver_extensions={'jupyter_autoshutdown': False}")
    try:
        sagemaker, stubber = stubbed_sagemaker({
            "d-healthy": [("alice", f"{studio.url}/lab"),
                          ("bob", f"http://127.0.0.1:{free_port()}/auth?token=expired")],
        })
        # One worker: the Stubber answers in order.
        results = fleet.check_studio(sagemaker, ["d-healthy"], "eu-west-1", 10,
                                     studio_url=f"{studio.url}/", workers=1)
        stubber.assert_no_pending_responses()
        states = {h.data["server"]: fleet.STUDIO_STATES[h.code] for h in results}
        assert states == {"d-healthy/alice": "OK", "d-healthy/bob": "unreachable"}

        # The command line, every domain of the region, as JSON; a server without the extension.
        sagemaker, stubber = stubbed_sagemaker({"d-bare": [("carol", f"{bare.url}/lab")]}, list_all=True)
        monkeypatch.setattr(fleet, "_sagemaker_client", lambda region: sagemaker)
        code = fleet.main(["fleet", "--sagemaker-domain", "--region", "eu-west-1", "--json",
                           "--studio-url", f"{bare.url}/"])
        assert code == 1  # not every profile is OK
        (report,) = json.loads(capsys.readouterr().out)
        assert (report["server"], report["state"]) == ("d-bare/carol", "missing")
    finally:
        bare.stop()
