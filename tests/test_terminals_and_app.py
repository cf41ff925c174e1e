"""Terminals once no kernels remain, keep_terminals, and the app action on a real server."""

from __future__ import annotations

from datetime import timedelta

import jupyter_server
import pytest
from actions_for_tests import RecordingAction
from helpers import (
    KernelSession,
    api,
    start_extension,
    start_kernel,
    wait_for,
    wait_pass_after,
    wait_passes,
)

TIMEOUT_SECONDS = 3.0


@pytest.fixture
def autoshutdown_config():
    return {"idle_timeout": TIMEOUT_SECONDS / 60,
            "app_action": "actions_for_tests:RecordingAction"}


@pytest.fixture(autouse=True)
def reset_recording_action():
    RecordingAction.calls.clear()
    RecordingAction.max_running = 0


def terminal_manager(serverapp):
    return serverapp.web_app.settings["terminal_manager"]


async def create_terminal(jp_fetch) -> str:
    return (await api(jp_fetch, "api", "terminals", method="POST", body={}))["name"]


async def test_terminal_is_removed_once_no_kernels_remain(jp_serverapp, jp_fetch, jp_ws_fetch):
    extension = await start_extension(jp_serverapp)
    kernel_id = await start_kernel(jp_fetch)
    client = await KernelSession.connect(jp_ws_fetch, kernel_id)
    await client.execute("import time")
    msg_id = await client.send_execute("time.sleep(2 * 3.0)")  # busy past the terminal's deadline
    name = await create_terminal(jp_fetch)
    terminals = terminal_manager(jp_serverapp).terminals
    terminal_deadline = terminals[name].last_activity + timedelta(seconds=TIMEOUT_SECONDS)

    await wait_pass_after(extension, terminal_deadline + timedelta(seconds=0.5))
    assert name in terminals, "a terminal must not be removed while kernels remain"
    status = await api(jp_fetch, "autoshutdown", "api", "status")
    assert status["terminals"][0]["reason"] == "kept while kernels remain"
    assert RecordingAction.calls == []

    await client.wait_idle(msg_id)
    client.close()
    await wait_for(lambda: kernel_id not in jp_serverapp.kernel_manager, timeout=15)
    await wait_for(lambda: name not in terminals, timeout=15, what="the terminal to be removed")


@pytest.mark.parametrize(
    "autoshutdown_config",
    [{"idle_timeout": TIMEOUT_SECONDS / 60, "keep_terminals": True,
      "app_action": "actions_for_tests:RecordingAction"}],
)
async def test_keep_terminals_keeps_them_and_the_app(jp_serverapp, jp_fetch):
    extension = await start_extension(jp_serverapp)
    name = await create_terminal(jp_fetch)
    terminals = terminal_manager(jp_serverapp).terminals
    deadline = terminals[name].last_activity + timedelta(seconds=TIMEOUT_SECONDS)
    await wait_pass_after(extension, deadline + timedelta(seconds=TIMEOUT_SECONDS))
    assert name in terminals
    assert RecordingAction.calls == []
    status = await api(jp_fetch, "autoshutdown", "api", "status")
    assert "keep_terminals" in status["terminals"][0]["reason"]
    assert "remain" in status["app"]["reason"]


async def test_app_action_runs_once_and_only_when_nothing_is_left(jp_serverapp, jp_fetch):
    extension = await start_extension(jp_serverapp)
    kernel_id = await start_kernel(jp_fetch)
    name = await create_terminal(jp_fetch)
    await wait_for(lambda: kernel_id not in jp_serverapp.kernel_manager, timeout=15)
    await wait_for(lambda: name not in terminal_manager(jp_serverapp).terminals, timeout=15)
    assert RecordingAction.calls == [], "the app action must wait a full timeout after the last one went"
    await wait_for(lambda: RecordingAction.calls, timeout=15, what="the app action")
    gone_at = extension.monitor.app.empty_since
    assert RecordingAction.calls[0] - gone_at >= timedelta(seconds=TIMEOUT_SECONDS)
    # Several more passes past another timeout: it does not run again without new activity.
    await wait_pass_after(extension, RecordingAction.calls[0] + timedelta(seconds=2 * TIMEOUT_SECONDS))
    await wait_passes(extension, 2)
    assert len(RecordingAction.calls) == 1
    assert RecordingAction.max_running == 1
    status = await api(jp_fetch, "autoshutdown", "api", "status")
    assert status["app"]["last_run_at"] is not None
    assert status["app"]["last_result"].startswith("recorded after")
    assert "already ran" in status["app"]["reason"]


async def test_polling_our_routes_is_not_activity(jp_serverapp, jp_fetch):
    await start_extension(jp_serverapp)
    before = jp_serverapp.web_app.settings.get("api_last_activity")
    for route in (("autoshutdown", "api", "status"), ("autoshutdown", "api", "settings"),
                  ("sagemaker-studio-autoshutdown", "idle_checker")):
        await api(jp_fetch, *route)
    assert jp_serverapp.web_app.settings.get("api_last_activity") == before
    # A real API call does count: the check above would have seen it (jupyter_server 2.4, the
    # lowest declared, records no API activity for these token requests at all).
    await api(jp_fetch, "api", "contents")
    recorded = jp_serverapp.web_app.settings.get("api_last_activity")
    if jupyter_server.version_info >= (2, 5):
        assert recorded is not None and recorded != before
