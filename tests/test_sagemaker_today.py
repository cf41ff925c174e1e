"""SageMaker as it runs today: notebook instances and Studio spaces, through the real boto3 against
a local endpoint speaking SageMaker's JSON protocol (fake_sagemaker.py). Studio's own idle
shutdown signal: tests/test_studio_activity.py."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest
import requests
from fake_sagemaker import ACCOUNT, FakeSageMaker
from helpers import api, extension_of, start_extension, wait_for, wait_passes
from server_process import StudioClassicServer, isolated_env

from jupyter_autoshutdown.act.studio_signal import parse_timestamp, write_unless_later
from jupyter_autoshutdown.actions import ActionContext
from jupyter_autoshutdown.actions.sagemaker import StopStudioApps

REPO = Path(__file__).resolve().parent.parent
STATUS = ("autoshutdown", "api", "status")
TIMEOUT_MINUTES = 0.05  # 3 s
NOTEBOOK_INSTANCE = {
    "ResourceArn": f"arn:aws:sagemaker:eu-west-1:{ACCOUNT}:notebook-instance/my-notebook",
    "ResourceName": "my-notebook",
}
SPACE = {
    "DomainId": "d-space123", "SpaceName": "alice-space", "UserProfileName": "alice",
    "AppType": "JupyterLab", "ResourceName": "default",
    "ResourceArn": f"arn:aws:sagemaker:us-west-2:{ACCOUNT}:app/d-space123/alice-space/jupyterlab/default",
}


@pytest.fixture
def sagemaker(monkeypatch):
    fake = FakeSageMaker()
    for name, value in fake.environ().items():
        monkeypatch.setenv(name, value)
    yield fake
    fake.close()


@pytest.fixture
def metadata():
    return NOTEBOOK_INSTANCE


@pytest.fixture
def autoshutdown_config(tmp_path, metadata):
    path = tmp_path / "resource-metadata.json"
    path.write_text(json.dumps(metadata))
    return {"idle_timeout": TIMEOUT_MINUTES, "app_action": "auto", "sagemaker_metadata_path": str(path),
            "max_check_interval": 0.5, "sagemaker_activity_file": str(tmp_path / "last-active")}


async def app_status(jp_fetch):
    return (await api(jp_fetch, *STATUS))["app"]


async def test_an_idle_notebook_instance_stops_itself_once(sagemaker, jp_serverapp, jp_fetch):
    extension = await start_extension(jp_serverapp)
    assert extension.monitor.app.name == "sagemaker"  # `auto` found the notebook instance
    await wait_for(lambda: sagemaker.operations("StopNotebookInstance"), timeout=30,
                   what="StopNotebookInstance")
    assert sagemaker.operations("StopNotebookInstance") == [{"NotebookInstanceName": "my-notebook"}]
    assert sagemaker.regions[-1] == "eu-west-1"  # from the ARN, not the environment's us-east-1
    app = await app_status(jp_fetch)
    assert "ML storage volume is kept" in app["last_result"]
    assert app["description"] == "this SageMaker notebook instance stops (its ML storage volume is kept)"
    await wait_passes(extension, 4)
    assert len(sagemaker.operations("StopNotebookInstance")) == 1  # once, until new activity


@pytest.mark.parametrize(("metadata", "operation"), [(NOTEBOOK_INSTANCE, "StopNotebookInstance"),
                                                     (SPACE, "DeleteApp")])
async def test_a_refused_call_says_which_permission_it_needs(sagemaker, jp_serverapp, jp_fetch, operation):
    sagemaker.refuse[operation] = "AccessDeniedException"
    await start_extension(jp_serverapp)
    app = await wait_for(lambda: _failed(jp_fetch), timeout=30, what=f"the refused {operation}")
    sentence = app["last_error"]
    assert f"SageMaker refused {operation} (AccessDeniedException)" in sentence
    assert f"needs the IAM permission sagemaker:{operation}" in sentence
    assert "keeps running (and billing) and auto-shutdown tries again with backoff" in sentence
    assert app["retry_at"] and app["failed_attempts"] >= 1
    status = await api(jp_fetch, *STATUS)
    assert any(f"sagemaker:{operation}" in error["message"] for error in status["errors"])
    # Allowed again: the retry goes through, once.
    del sagemaker.refuse[operation]
    await wait_for(lambda: _succeeded(jp_fetch), timeout=60, what=f"{operation} after the refusal")
    calls = sagemaker.operations(operation)
    assert calls[-1] == ({"NotebookInstanceName": "my-notebook"} if operation == "StopNotebookInstance" else
                         {"DomainId": "d-space123", "SpaceName": "alice-space", "AppType": "JupyterLab",
                          "AppName": "default"})


async def _failed(jp_fetch):
    app = await app_status(jp_fetch)
    return app if app["last_error"] else None


async def _succeeded(jp_fetch):
    app = await app_status(jp_fetch)
    return app if app["last_result"] and not app["last_error"] else None


async def test_an_unreachable_api_and_a_missing_boto3_are_explained(sagemaker, jp_serverapp, jp_fetch,
                                                                      monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL_SAGEMAKER", "http://127.0.0.1:9")  # nothing listens there
    await start_extension(jp_serverapp)
    app = await wait_for(lambda: _failed(jp_fetch), timeout=60, what="the unreachable API")
    assert "could not reach the SageMaker API" in app["last_error"]
    assert "interface endpoint for com.amazonaws.<region>.api.sagemaker" in app["last_error"]

    action = StopStudioApps(extension_of(jp_serverapp).action_settings())
    monkeypatch.setitem(sys.modules, "boto3", None)  # fault injection: boto3 not installed
    with pytest.raises(Exception, match=r"needs boto3, which is not installed .*notebook instance keeps"):
        await action.run(ActionContext(jp_serverapp, jp_serverapp.log, 10.0, 3.0))


# ---- Studio's own idle shutdown: the activity file ------------------------------------------


def test_the_file_is_written_atomically_and_never_moved_earlier(tmp_path):
    path = tmp_path / "stamp"
    later = datetime(2026, 12, 1, 12, 0, 0, 500000, tzinfo=timezone.utc)
    assert write_unless_later(path, later) == later
    assert path.read_text() == "2026-12-01T12:00:00.500000Z"  # the format Studio's reader parses
    earlier = datetime(2026, 12, 1, 11, 0, tzinfo=timezone.utc)
    assert write_unless_later(path, earlier) == later and parse_timestamp(path.read_text()) == later
    assert sorted(p.name for p in tmp_path.iterdir()) == ["stamp"]  # no temporary file left


# ---- a Studio space as it runs: token-less JupyterLab at /jupyterlab/default/ ----------------


@pytest.fixture
def space_server(home, tmp_path, sagemaker):
    path = tmp_path / "space-metadata.json"
    path.write_text(json.dumps(SPACE))
    server = StudioClassicServer(
        home, "--AutoShutdown.idle_timeout=60", "--AutoShutdown.max_check_interval=0.5",
        f"--AutoShutdown.sagemaker_metadata_path={path}",
        f"--AutoShutdown.sagemaker_activity_file={tmp_path / 'last-active'}",
        base_url="/jupyterlab/default/", env=sagemaker.environ())
    yield server
    server.stop()


def test_a_studio_space_culls_stops_its_app_and_takes_our_scripts(space_server, sagemaker, home, tmp_path):
    env = {**isolated_env(home), "AUTOSHUTDOWN_PYTHON": sys.executable}
    url = space_server.url
    # First a kernel (a timeout of 3 s with nothing left would stop the app at once), started as
    # a page would (no token: its own matching XSRF cookie and header).
    xsrf = {"cookies": {"_xsrf": "space-test"}, "headers": {"X-XSRFToken": "space-test"}}
    kernel = requests.post(f"{url}/api/kernels", json={"name": "python3"}, timeout=60, **xsrf).json()
    # A 3-second timeout is asked about first; a script says --yes.
    retune = subprocess.run([str(REPO / "scripts" / "set-time-interval.sh"), "0.05", "--yes", "--url", url],
                            capture_output=True, text=True, env=env, timeout=120)
    assert retune.returncode == 0, retune.stdout + retune.stderr
    check = subprocess.run([sys.executable, str(REPO / "check_idle_timeout_configuration.py"), "--url", url],
                           capture_output=True, text=True, env=env, timeout=120)
    assert check.returncode == 0, check.stdout + check.stderr
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not sagemaker.operations("DeleteApp"):
        time.sleep(0.2)
    assert sagemaker.operations("DeleteApp") == [{"DomainId": "d-space123", "SpaceName": "alice-space",
                                                  "AppType": "JupyterLab", "AppName": "default"}]
    assert requests.get(f"{url}/api/kernels", timeout=10).json() == []  # culled before
    assert sagemaker.regions[-1] == "us-west-2"
    status = requests.get(f"{url}/autoshutdown/api/status", timeout=10).json()
    assert "JupyterLab app 'default'" in status["app"]["last_result"], status["app"]
    assert f"kernel {kernel['id']}" in space_server.output()  # its cull is logged
    assert (tmp_path / "last-active").exists()  # Studio's idle signal, kept meanwhile


def test_fleet_check_across_a_domains_spaces(space_server, sagemaker, capsys):
    from jupyter_autoshutdown.cli import commands as client

    created = 1764547200.0  # what the JSON protocol sends for a timestamp
    sagemaker.replies.update({
        "ListSpaces": {"Spaces": [
            {"DomainId": "d-space123", "SpaceName": "alice-space",
             "OwnershipSettingsSummary": {"OwnerUserProfileName": "alice"}},
            {"DomainId": "d-space123", "SpaceName": "idle-space",
             "OwnershipSettingsSummary": {"OwnerUserProfileName": "bob"}},
            {"DomainId": "d-space123", "SpaceName": "team-space"},  # shared: no owner
        ]},
        "ListApps": {"Apps": [
            {"DomainId": "d-space123", "SpaceName": "alice-space", "AppType": "JupyterLab",
             "AppName": "default", "Status": "InService", "CreationTime": created},
            {"DomainId": "d-space123", "SpaceName": "idle-space", "AppType": "JupyterLab",
             "AppName": "default", "Status": "Deleted", "CreationTime": created},
            {"DomainId": "d-space123", "SpaceName": "team-space", "AppType": "JupyterLab",
             "AppName": "default", "Status": "InService", "CreationTime": created},
        ]},
        # Opening the space in a browser session lands on its JupyterLab.
        "CreatePresignedDomainUrl": lambda body: {"AuthorizedUrl": f"{space_server.url}/lab"},
    })
    code = client.main(["fleet", "--sagemaker-spaces", "d-space123", "--region", "us-west-2", "--json",
                        "--space-url", f"{space_server.url}/"])
    report = {item["server"]: item for item in json.loads(capsys.readouterr().out)}
    assert code == 1  # the shared space cannot be checked from outside
    assert report["d-space123/alice-space"]["state"] == "OK", report
    assert report["d-space123/idle-space"]["state"] == "stopped"
    assert report["d-space123/team-space"]["state"] == "unreachable"
    assert "InService since" in report["d-space123/team-space"]["message"]
    (presigned,) = sagemaker.operations("CreatePresignedDomainUrl")
    assert presigned["SpaceName"] == "alice-space" and presigned["UserProfileName"] == "alice"


def test_each_kind_of_refusal_is_one_sentence_naming_what_it_needs():
    from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError

    from jupyter_autoshutdown.actions.sagemaker import refusal

    meanwhile = "the notebook instance keeps running (and billing) and auto-shutdown tries again with backoff"
    denied = ClientError({"Error": {"Code": "AccessDeniedException", "Message": "no"}},
                         "StopNotebookInstance")
    assert refusal("stop_notebook_instance", denied, meanwhile) == (
        "SageMaker refused StopNotebookInstance (AccessDeniedException): the execution role needs the "
        f"IAM permission sagemaker:StopNotebookInstance; {meanwhile}.")
    unreachable = EndpointConnectionError(endpoint_url="https://api.sagemaker.eu-west-1.amazonaws.com/")
    assert "interface endpoint for com.amazonaws.<region>.api.sagemaker" in refusal(
        "delete_app", unreachable, meanwhile)
    assert "Unable to locate credentials" in refusal("delete_app", NoCredentialsError(), meanwhile)
    other = ClientError({"Error": {"Code": "ValidationException", "Message": "Status is Stopping"}},
                        "StopNotebookInstance")
    assert refusal("stop_notebook_instance", other, meanwhile) == (
        f"SageMaker refused StopNotebookInstance (ValidationException: Status is Stopping); {meanwhile}.")
    for sentence in (refusal("delete_app", error, meanwhile) for error in (denied, unreachable, other)):
        assert sentence.count(". ") == 0 and sentence.endswith(f"{meanwhile}.")
