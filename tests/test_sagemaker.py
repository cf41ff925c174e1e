"""The `sagemaker` action against a real server: Studio's app endpoint faked on that server, and the
SageMaker API through botocore's Stubber (moto has no SageMaker apps)."""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import datetime, timedelta, timezone

import boto3
import pytest
from botocore.stub import Stubber
from helpers import api, kernel_gone, start_extension, start_kernel, wait_for, wait_pass_after
from jupyter_server.base.handlers import APIHandler
from tornado import web

from jupyter_autoshutdown.actions import ActionContext, ActionDeferred, ActionSettings
from jupyter_autoshutdown.actions.sagemaker import StopStudioApps

TIMEOUT_SECONDS = 3.0
DOMAIN = "d-abc123"
PROFILE = "alice"
IMAGE = "arn:aws:sagemaker:us-east-1:123456789012:image/datascience-1.0"
CLASSIC = {
    "DomainId": DOMAIN, "UserProfileName": PROFILE, "AppType": "JupyterServer", "ResourceName": "default",
    "ResourceArn": f"arn:aws:sagemaker:us-east-1:123456789012:app/{DOMAIN}/{PROFILE}/jupyterserver/default",
}
LONG_AGO = datetime(2026, 1, 1, tzinfo=timezone.utc)


def endpoint_app(name, app_type="KernelGateway", status="InService", created=LONG_AGO):
    return {"app_name": name, "app_type": app_type, "status": status, "instance_type": "ml.t3.medium",
            "environment_arn": IMAGE, "creation_time": created.isoformat()}


class FakeStudioApps:
    """What Studio Classic serves on its JupyterServer at sagemaker/api/apps (as the original used it)."""

    def __init__(self, apps: list[dict], slow_to_delete: bool = False) -> None:
        self.apps = {app["app_name"]: app for app in apps}
        self.deleted: list[str] = []
        self.deleted_at: list[datetime] = []
        fake = self

        class AppsHandler(APIHandler):
            @web.authenticated  # the action authenticates with the server's own token
            def get(self):
                now = datetime.now(timezone.utc).isoformat()
                created = [app for app in fake.apps.values() if app["creation_time"] <= now]
                self.finish(json.dumps(created))

        class AppHandler(APIHandler):
            @web.authenticated
            def delete(self, name):
                fake.deleted.append(name)
                fake.deleted_at.append(datetime.now(timezone.utc))
                if not slow_to_delete:  # a slow Studio still lists it InService for a while
                    fake.apps[name] = {**fake.apps[name], "status": "Deleting"}
                self.set_status(204)
                self.finish()

        self.handlers = [("sagemaker/api/apps", AppsHandler), ("sagemaker/api/apps/([^/]+)", AppHandler)]

    def install(self, serverapp) -> None:
        base = serverapp.base_url
        serverapp.web_app.add_handlers(".*$", [(base + path, handler) for path, handler in self.handlers])


@pytest.fixture
def metadata_path(tmp_path):
    path = tmp_path / "resource-metadata.json"
    path.write_text(json.dumps(CLASSIC))
    return path


@pytest.fixture
def autoshutdown_config(metadata_path):
    return {"idle_timeout": TIMEOUT_SECONDS / 60, "app_action": "auto",
            "sagemaker_metadata_path": str(metadata_path), "max_check_interval": 0.5}


async def test_idle_studio_classic_deletes_only_old_idle_kernel_gateway_apps_via_the_endpoint(
    jp_serverapp, jp_fetch
):
    # Launched by the user while the server is idle, just before the app action runs.
    young = datetime.now(timezone.utc) + timedelta(seconds=TIMEOUT_SECONDS * 0.5)
    fake = FakeStudioApps([
        endpoint_app("datascience-1-0-ml-t3-medium-old"),
        endpoint_app("datascience-1-0-ml-g4dn-xlarge-new", created=young),
        # The free JupyterServer app this server runs in, even if listed as a KernelGateway app.
        endpoint_app("default"),
        endpoint_app("already-gone", status="Deleted"),
    ])
    fake.install(jp_serverapp)
    extension = await start_extension(jp_serverapp)
    assert extension.monitor.app.name == "sagemaker", "auto found the metadata file"

    await wait_for(lambda: fake.deleted, timeout=15, what="the first deletion")
    assert fake.deleted == ["datascience-1-0-ml-t3-medium-old"]
    status = await api(jp_fetch, "autoshutdown", "api", "status")
    assert "kept datascience-1-0-ml-g4dn-xlarge-new (no kernel for" in status["app"]["last_result"]
    # Studio Classic: the action keeps its own schedule and names its next look; no failure.
    assert status["app"]["own_schedule"].startswith("Studio Classic")
    assert status["app"]["action_at"] is not None and status["app"]["failed_attempts"] == 0

    # The young app is deleted once it is one timeout old, not before.
    await wait_for(lambda: len(fake.deleted) == 2, timeout=15, what="the deferred deletion")
    assert fake.deleted[1] == "datascience-1-0-ml-g4dn-xlarge-new"
    assert datetime.now(timezone.utc) - young >= timedelta(seconds=TIMEOUT_SECONDS)
    await wait_for(lambda: "via endpoint" in (extension.monitor.app.last_result or ""), timeout=5)
    assert extension.monitor.app.last_error is None


def stubbed_action(metadata_path, method="boto3") -> tuple[StopStudioApps, Stubber]:
    client = boto3.client("sagemaker", region_name="us-east-1",
                          aws_access_key_id="test", aws_secret_access_key="test")
    action = StopStudioApps(ActionSettings(sagemaker_metadata_path=str(metadata_path),
                                           sagemaker_method=method))
    action.client_factory = lambda region: client
    return action, Stubber(client)


def api_app(name, app_type="KernelGateway", instance="ml.t3.medium", image=IMAGE, created=LONG_AGO):
    return {"DomainId": DOMAIN, "UserProfileName": PROFILE, "AppType": app_type, "AppName": name,
            "Status": "InService", "CreationTime": created,
            "ResourceSpec": {"SageMakerImageArn": image, "InstanceType": instance}}


def context_for(serverapp, timeout_seconds: float = TIMEOUT_SECONDS) -> ActionContext:
    return ActionContext(serverapp, logging.getLogger("test"), idle_seconds=600,
                         idle_timeout_seconds=timeout_seconds)


async def run_past_first_look(action: StopStudioApps, serverapp) -> str:
    """Run the action twice, a timeout apart: an app is never idle for longer than it was seen."""
    with pytest.raises(ActionDeferred) as first:
        await action.run(context_for(serverapp, timeout_seconds=0.2))
    assert "deleted KernelGateway app(s) none" in str(first.value)
    # The action asked to be run again then: wait for exactly that moment.
    await asyncio.sleep(first.value.retry_after_seconds)
    return await action.run(context_for(serverapp, timeout_seconds=0.2))


@pytest.mark.parametrize("autoshutdown_config", [{"idle_timeout": 60}])
async def test_apps_with_a_live_kernel_or_image_terminal_are_never_deleted(
    jp_serverapp, jp_fetch, metadata_path, monkeypatch
):
    kernel_id = await start_kernel(jp_fetch)
    # Studio Classic's kernel manager names the app each kernel runs in; local kernels do not.
    kernel_manager = jp_serverapp.kernel_manager
    plain_model = kernel_manager.kernel_model
    monkeypatch.setattr(kernel_manager, "kernel_model", lambda kid: {
        **plain_model(kid), "app_name": "app-with-kernel" if kid == kernel_id else "?"})
    terminal = await api(jp_fetch, "api", "terminals", method="POST",
                         body={"name": f"{IMAGE}__term1__ml.m5.large"})
    assert terminal["name"].startswith("arn:")

    action, stubber = stubbed_action(metadata_path)
    for _ in range(2):
        stubber.add_response(
            "list_apps",
            {"Apps": [api_app("app-with-kernel"), api_app("app-with-terminal", instance="ml.m5.large"),
                      api_app("idle-app", instance="ml.g4dn.xlarge"), api_app("default", "JupyterServer")]},
            {"DomainIdEquals": DOMAIN, "UserProfileNameEquals": PROFILE},
        )
    stubber.add_response("delete_app", {}, {"DomainId": DOMAIN, "UserProfileName": PROFILE,
                                            "AppType": "KernelGateway", "AppName": "idle-app"})
    with stubber:
        result = await run_past_first_look(action, jp_serverapp)
    stubber.assert_no_pending_responses()  # exactly one delete_app, for idle-app
    assert "deleted KernelGateway app(s) idle-app via boto3" in result
    assert "app-with-kernel (in use)" in result and "app-with-terminal (in use)" in result


@pytest.mark.parametrize("autoshutdown_config", [{"idle_timeout": 60}])
async def test_a_kernel_that_names_no_app_keeps_every_app(jp_serverapp, jp_fetch, metadata_path):
    await start_kernel(jp_fetch)  # a local kernel: its model has no app_name
    action, stubber = stubbed_action(metadata_path)
    stubber.add_response("list_apps", {"Apps": [api_app("idle-app")]},
                         {"DomainIdEquals": DOMAIN, "UserProfileNameEquals": PROFILE})
    with stubber:  # any delete_app call would fail here: none is stubbed
        result = await action.run(context_for(jp_serverapp))
    assert "deleted KernelGateway app(s) none" in result


@pytest.mark.parametrize("autoshutdown_config", [{"idle_timeout": 60}])
async def test_young_app_is_deferred_through_the_api_too(jp_serverapp, metadata_path):
    action, stubber = stubbed_action(metadata_path)
    stubber.add_response("list_apps", {"Apps": [api_app("new-app", created=datetime.now(timezone.utc))]},
                         {"DomainIdEquals": DOMAIN, "UserProfileNameEquals": PROFILE})
    with stubber, pytest.raises(ActionDeferred) as deferred:
        await action.run(context_for(jp_serverapp))
    assert 0 < deferred.value.retry_after_seconds <= TIMEOUT_SECONDS


@pytest.mark.parametrize("autoshutdown_config", [{"idle_timeout": 60}])
async def test_studio_jupyterlab_space_app_stops_itself(jp_serverapp, tmp_path):
    metadata = tmp_path / "space-metadata.json"
    metadata.write_text(json.dumps({"DomainId": DOMAIN, "SpaceName": "alice-space", "AppType": "JupyterLab",
                                    "ResourceName": "default", "ResourceArn": CLASSIC["ResourceArn"]}))
    action, stubber = stubbed_action(metadata, method="auto")
    stubber.add_response("delete_app", {}, {"DomainId": DOMAIN, "SpaceName": "alice-space",
                                            "AppType": "JupyterLab", "AppName": "default"})
    with stubber:
        result = await action.run(context_for(jp_serverapp))
    stubber.assert_no_pending_responses()
    assert "JupyterLab app 'default'" in result and "storage is kept" in result


@pytest.mark.parametrize("autoshutdown_config", [{"idle_timeout": 60}])
async def test_missing_metadata_is_a_clear_failure(jp_serverapp, tmp_path):
    action = StopStudioApps(ActionSettings(sagemaker_metadata_path=str(tmp_path / "absent.json")))
    with pytest.raises(Exception, match="cannot read SageMaker metadata"):
        await action.run(context_for(jp_serverapp))


@pytest.mark.parametrize("autoshutdown_config", [{"idle_timeout": 60}])
async def test_auto_method_falls_back_to_the_api_when_the_endpoint_does_not_answer(
    jp_serverapp, http_server_client, metadata_path
):
    action, stubber = stubbed_action(metadata_path, method="auto")  # no fake endpoint installed
    for _ in range(2):
        stubber.add_response("list_apps", {"Apps": [api_app("idle-app")]},
                             {"DomainIdEquals": DOMAIN, "UserProfileNameEquals": PROFILE})
    stubber.add_response("delete_app", {}, {"DomainId": DOMAIN, "UserProfileName": PROFILE,
                                            "AppType": "KernelGateway", "AppName": "idle-app"})
    with stubber:
        result = await run_past_first_look(action, jp_serverapp)
    stubber.assert_no_pending_responses()
    assert result == "deleted KernelGateway app(s) idle-app via boto3"


async def test_a_kernel_gateway_app_follows_its_own_kernels_while_a_tab_polls(
    jp_serverapp, jp_fetch, monkeypatch
):
    """The original's rule without its bugs: the KernelGateway app (the bill) is deleted a timeout
    after its last kernel went away, whatever the free JupyterServer app sees; once."""
    fake = FakeStudioApps([endpoint_app("kg-app")], slow_to_delete=True)
    fake.install(jp_serverapp)
    kernel_manager = jp_serverapp.kernel_manager
    plain_model = kernel_manager.kernel_model
    monkeypatch.setattr(kernel_manager, "kernel_model",
                        lambda kid: {**plain_model(kid), "app_name": "kg-app"})
    extension = await start_extension(jp_serverapp)
    kernel_id = await start_kernel(jp_fetch)

    polling = True

    async def poll() -> None:  # an open Studio Classic tab
        while polling:
            for route in (("api", "kernels"), ("api", "sessions"), ("api", "terminals")):
                await jp_fetch(*route)
            await asyncio.sleep(0.5)

    poller = asyncio.ensure_future(poll())
    try:
        await wait_for(lambda: kernel_gone(jp_serverapp, kernel_id), timeout=TIMEOUT_SECONDS + 15)
        gone_at = datetime.now(timezone.utc)
        assert fake.deleted == [], "not while its kernel was there, nor at once after it went"
        await wait_for(lambda: fake.deleted, timeout=TIMEOUT_SECONDS + 10, what="the app's deletion")
        since_gone = (fake.deleted_at[0] - gone_at).total_seconds()
        assert TIMEOUT_SECONDS - 0.5 <= since_gone <= TIMEOUT_SECONDS + 5, since_gone
        # Still listed as InService, polled all the while: deleted once, not again.
        await wait_pass_after(extension, fake.deleted_at[0] + timedelta(seconds=3 * TIMEOUT_SECONDS))
        assert fake.deleted == ["kg-app"]
    finally:
        polling = False
        await poller
    status = await api(jp_fetch, "autoshutdown", "api", "status")
    assert status["app"]["last_error"] is None


async def test_the_actions_own_requests_are_never_activity(jp_serverapp, http_server_client):
    fake = FakeStudioApps([endpoint_app("kg-app")])
    fake.install(jp_serverapp)
    settings = jp_serverapp.web_app.settings
    extension = await start_extension(jp_serverapp)
    # No request of the test itself from here on: only the action talks to the server.
    api_activity_before = settings.get("api_last_activity")
    server_activity_before = jp_serverapp.web_app.last_activity()
    await wait_for(lambda: fake.deleted, timeout=TIMEOUT_SECONDS + 10, what="the app's deletion")
    await wait_for(lambda: extension.monitor.count >= 3, timeout=10)
    assert settings.get("api_last_activity") == api_activity_before
    assert jp_serverapp.web_app.last_activity() == server_activity_before
    assert extension.activity.last_activity is None
