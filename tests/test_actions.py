"""App actions: `command` running real commands in a real server, and what `auto` picks."""

from __future__ import annotations

import os
import sys

import pytest
from helpers import api, start_extension, wait_for

from jupyter_autoshutdown.actions import ActionSettings, choose_automatically, load_action

TIMEOUT_MINUTES = 2 / 60
STATUS = ("autoshutdown", "api", "status")


def command_config(command, **extra):
    return {"idle_timeout": TIMEOUT_MINUTES, "app_action": "command", "app_command": command, **extra}


@pytest.fixture
def marker(tmp_path):
    return tmp_path / "marker"


@pytest.fixture
def autoshutdown_config(request, marker, tmp_path):
    kind = request.param
    if kind == "writes marker":
        # A list of arguments; the action passes how long the server was idle in the environment.
        script = f"open({str(marker)!r}, 'w').write(__import__('os').environ['AUTOSHUTDOWN_IDLE_SECONDS'])"
        return command_config([sys.executable, "-c", script])
    if kind == "fails":
        return command_config("sh -c 'echo no permission to stop this VM; exit 3'")
    if kind == "backgrounds its work":
        runs, later = tmp_path / "runs", tmp_path / "later"
        return command_config(
            f"sh -c 'date >> {runs}; (sleep 6; echo done > {later}) & echo started'", app_action_timeout=2.0)
    if kind == "hangs":
        pidfile = tmp_path / "pid"
        return command_config(f"sh -c 'echo $$ > {pidfile}; exec sleep 600'", app_action_timeout=1.0)
    raise AssertionError(kind)


@pytest.mark.parametrize("autoshutdown_config", ["writes marker"], indirect=True)
async def test_command_runs_once_when_idle_and_reports_its_exit_status(jp_serverapp, jp_fetch, marker):
    extension = await start_extension(jp_serverapp)
    assert extension.monitor.app.name == "command"
    await wait_for(marker.exists, timeout=15, what="the command's marker file")
    assert int(marker.read_text()) >= 2, "it ran after the 2 s timeout, and was told the idle time"
    await wait_for(lambda: extension.monitor.app.last_result, timeout=5)
    app = (await api(jp_fetch, *STATUS))["app"]
    assert app["action"] == "command"
    assert "exited with status 0" in app["last_result"]
    assert app["last_error"] is None and app["failed_attempts"] == 0
    assert app["last_run_at"] is not None
    marker.unlink()
    # Once per idle period: the server stays idle, the command does not run again.
    passes = extension.monitor.count
    extension.monitor.wake()
    await wait_for(lambda: extension.monitor.count > passes + 1, timeout=5)
    assert not marker.exists()


@pytest.mark.parametrize("autoshutdown_config", ["fails"], indirect=True)
async def test_failing_command_reports_status_and_output_and_is_retried(jp_serverapp, jp_fetch):
    extension = await start_extension(jp_serverapp)
    await wait_for(lambda: extension.monitor.app.last_error, timeout=15, what="the failure")
    app = (await api(jp_fetch, *STATUS))["app"]
    assert "exited with status 3" in app["last_error"]
    assert "no permission to stop this VM" in app["last_error"]
    assert app["failed_attempts"] == 1 and app["retry_at"] is not None
    assert any("exited with status 3" in error["message"] for error in extension.monitor.errors)
    assert extension.monitor.running


@pytest.mark.parametrize("autoshutdown_config", ["backgrounds its work"], indirect=True)
async def test_a_command_that_exits_0_leaving_a_background_job_has_succeeded_once(
    jp_serverapp, jp_fetch, tmp_path
):
    """Its exit status is its answer: not "timed out", not run again, its background job not killed."""
    extension = await start_extension(jp_serverapp)
    runs, later = tmp_path / "runs", tmp_path / "later"
    await wait_for(lambda: extension.monitor.app.last_result, timeout=15, what="the command's result")
    app = (await api(jp_fetch, *STATUS))["app"]
    assert "exited with status 0: started" in app["last_result"], app
    assert app["last_error"] is None and app["failed_attempts"] == 0
    # The background job outlives the action timeout (2 s) and finishes its work.
    await wait_for(later.exists, timeout=15, what="the background job's work")
    assert len(runs.read_text().splitlines()) == 1, "it ran once"


@pytest.mark.parametrize("autoshutdown_config", ["hangs"], indirect=True)
async def test_hanging_command_is_killed_at_the_action_timeout(jp_serverapp, jp_fetch, tmp_path):
    extension = await start_extension(jp_serverapp)
    pidfile = tmp_path / "pid"
    await wait_for(lambda: pidfile.exists() and pidfile.read_text().strip(), timeout=15)
    pid = int(pidfile.read_text())
    await wait_for(lambda: extension.monitor.app.last_error == "timed out", timeout=10)

    def gone() -> bool:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        return False

    await wait_for(gone, timeout=10, what="the hanging command to be killed")
    assert (await api(jp_fetch, *STATUS))["app"]["failed_attempts"] == 1


def test_command_action_without_a_command_is_refused_with_the_trait_to_set():
    with pytest.raises(ValueError, match=r"AutoShutdown\.app_command"):
        load_action("command", ActionSettings())


@pytest.mark.parametrize(
    ("files", "environ", "expected"),
    [
        ({"metadata"}, {"JUPYTERHUB_API_URL": "http://hub/api", "JUPYTERHUB_API_TOKEN": "t"}, "sagemaker"),
        (set(), {"JUPYTERHUB_API_URL": "http://hub/api", "JUPYTERHUB_API_TOKEN": "t"}, "jupyterhub"),
        ({"notebook instance"}, {}, "sagemaker"),
        ({"neither"}, {}, "none"),
        (set(), {"JUPYTERHUB_API_URL": "http://hub/api"}, "none"),
        (set(), {}, "none"),
    ],
)
def test_auto_picks_sagemaker_then_jupyterhub_then_none(tmp_path, files, environ, expected):
    metadata = tmp_path / "resource-metadata.json"
    if "metadata" in files:
        metadata.write_text('{"DomainId": "d-1", "UserProfileName": "u", "AppType": "JupyterServer"}')
    if "notebook instance" in files:  # the same file on a SageMaker notebook instance: no domain
        metadata.write_text('{"ResourceArn": "arn:aws:sagemaker:us-east-1:1:notebook-instance/nb"}')
    if "neither" in files:  # some other tool's file at that path: neither Studio nor an instance
        metadata.write_text('{"ResourceArn": "arn:aws:ec2:us-east-1:1:instance/i-1"}')
    settings = ActionSettings(sagemaker_metadata_path=str(metadata), environ=environ)
    chosen, why = choose_automatically(settings)
    assert chosen == expected and why
