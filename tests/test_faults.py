"""Faults the monitor must survive, each injected into a real server with real kernels."""

from __future__ import annotations

import asyncio
import json
import os
import stat
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace

import pytest
from actions_for_tests import FailingOnceAction, HangingAction
from helpers import api, kernel_gone, start_extension, start_kernel, wait_for, wait_pass_after, wait_passes

from jupyter_autoshutdown.act.executor import BACKOFF_FIRST_SECONDS, KILL_GRACE_SECONDS

TIMEOUT_SECONDS = 3.0
STATUS = ("autoshutdown", "api", "status")
SETTINGS = ("autoshutdown", "api", "settings")


@pytest.fixture
def autoshutdown_config():
    return {"idle_timeout": TIMEOUT_SECONDS / 60, "shutdown_timeout": 1.0}


async def test_hanging_shutdown_times_out_the_rest_are_culled_and_it_is_retried_with_backoff(
    jp_serverapp, jp_fetch, monkeypatch
):
    extension = await start_extension(jp_serverapp)
    kernel_manager = jp_serverapp.kernel_manager
    hung_id = await start_kernel(jp_fetch)
    healthy_ids = [await start_kernel(jp_fetch) for _ in range(3)]
    real_shutdown = kernel_manager.shutdown_kernel
    attempts: list[tuple[datetime, int]] = []  # (when, passes completed by then)
    never = asyncio.Event()

    async def shutdown_kernel(kernel_id, *args, **kwargs):
        if kernel_id == hung_id:
            attempts.append((datetime.now(timezone.utc), extension.monitor.count))
            await never.wait()
        return await real_shutdown(kernel_id, *args, **kwargs)

    monkeypatch.setattr(kernel_manager, "shutdown_kernel", shutdown_kernel)
    for kernel_id in healthy_ids:
        await wait_for(lambda k=kernel_id: kernel_gone(jp_serverapp, k), timeout=15)
    await wait_for(lambda: attempts, timeout=15)
    # The limit (1 s), then the kill and its grace: this shutdown ignores both.
    await wait_for(lambda: any("timed out" in e["message"] for e in extension.monitor.errors),
                   timeout=5 + KILL_GRACE_SECONDS)
    status = await api(jp_fetch, *STATUS)
    (entry,) = [k for k in status["kernels"] if k["id"] == hung_id]
    assert entry["failed_attempts"] == 1 and entry["retry_at"] is not None
    await wait_for(lambda: len(attempts) >= 2, timeout=15, what="the retry after the backoff")
    (first, passes_then), (second, passes_later) = attempts[:2]
    # Not hammered: passes kept running, yet the retry waited for the timeout plus the backoff.
    assert passes_later >= passes_then + 2
    assert second - first >= timedelta(seconds=1.0 + BACKOFF_FIRST_SECONDS)
    assert extension.monitor.running
    monkeypatch.undo()
    never.set()
    await wait_for(lambda: kernel_gone(jp_serverapp, hung_id), timeout=20, what="the retry to succeed")


async def test_kernel_manager_raising_while_read(jp_serverapp, jp_fetch, monkeypatch):
    extension = await start_extension(jp_serverapp)
    kernel_id = await start_kernel(jp_fetch)
    kernel_manager = jp_serverapp.kernel_manager

    def broken():
        raise RuntimeError("injected manager failure")

    monkeypatch.setattr(kernel_manager, "list_kernel_ids", broken)
    await wait_passes(extension, 2)
    assert any("injected manager failure" in e["message"] for e in extension.monitor.errors)
    assert extension.monitor.running
    status = await api(jp_fetch, *STATUS)
    assert status["kernels"] == []  # unreadable, so nothing is touched
    monkeypatch.undo()
    await wait_for(lambda: kernel_gone(jp_serverapp, kernel_id), timeout=15)


class UnreadableKernel:
    """A manager entry whose every attribute raises, as a broken kernel object might."""

    def __getattr__(self, name):
        raise RuntimeError(f"injected failure reading {name}")


async def test_one_unreadable_kernel_does_not_hide_the_others(jp_serverapp, jp_fetch):
    extension = await start_extension(jp_serverapp)
    kernel_id = await start_kernel(jp_fetch)
    kernels = jp_serverapp.kernel_manager._kernels
    kernels["broken-kernel"] = UnreadableKernel()
    try:
        await wait_for(lambda: kernel_gone(jp_serverapp, kernel_id), timeout=15)
        assert any("broken-kernel" in e["message"] for e in extension.monitor.errors)
    finally:
        del kernels["broken-kernel"]


@pytest.mark.parametrize(
    "server_extensions", [{"jupyter_server_terminals": False, "jupyter_autoshutdown": True}]
)
async def test_without_the_terminals_extension(jp_serverapp, jp_fetch):
    assert not jp_serverapp.web_app.settings.get("terminals_available")
    extension = await start_extension(jp_serverapp)
    kernel_id = await start_kernel(jp_fetch)
    await wait_for(lambda: kernel_gone(jp_serverapp, kernel_id), timeout=15)
    status = await api(jp_fetch, *STATUS)
    assert status["terminals"] == []
    assert not extension.monitor.errors


@pytest.mark.parametrize(
    "autoshutdown_config",
    [{"idle_timeout": TIMEOUT_SECONDS / 60, "app_action": "actions_for_tests:FailingOnceAction"}],
)
async def test_failing_app_action_is_reported_and_retried_with_backoff(jp_serverapp, jp_fetch):
    FailingOnceAction.calls.clear()
    extension = await start_extension(jp_serverapp)
    await wait_for(lambda: FailingOnceAction.calls, timeout=15)
    await wait_for(lambda: any("injected app action failure" in e["message"]
                               for e in extension.monitor.errors), timeout=5)
    await wait_for(lambda: len(FailingOnceAction.calls) == 2, timeout=20, what="the retry")
    assert FailingOnceAction.calls[1] - FailingOnceAction.calls[0] >= timedelta(
        seconds=BACKOFF_FIRST_SECONDS)
    await wait_for(lambda: extension.monitor.app.last_result == "succeeded on retry", timeout=5)
    assert FailingOnceAction.max_running == 1


@pytest.mark.parametrize(
    "autoshutdown_config",
    [{"idle_timeout": TIMEOUT_SECONDS / 60, "app_action": "actions_for_tests:HangingAction",
      "app_action_timeout": 1.0}],
)
async def test_hanging_app_action_times_out_and_never_runs_twice_at_once(jp_serverapp, jp_fetch):
    HangingAction.calls.clear()
    extension = await start_extension(jp_serverapp)
    await wait_for(lambda: HangingAction.calls, timeout=15)
    # The limit (1 s), then the kill and its grace: this shutdown ignores both.
    await wait_for(lambda: any("timed out" in e["message"] for e in extension.monitor.errors),
                   timeout=5 + KILL_GRACE_SECONDS)
    # Reported only once the cancelled run has unwound (timeouts.CANCEL_GRACE_SECONDS).
    assert HangingAction.running == 0, "the timed-out run was cancelled"
    await wait_for(lambda: len(HangingAction.calls) >= 2, timeout=20)
    assert HangingAction.max_running == 1
    assert extension.monitor.running


async def test_state_file_deleted_while_running_is_written_again(jp_serverapp, jp_fetch, state_path):
    await start_extension(jp_serverapp)
    await api(jp_fetch, *SETTINGS, method="PATCH", body={"idle_timeout_minutes": 10})
    assert stat.S_IMODE(os.stat(state_path).st_mode) & 0o077 == 0, "owner-only permissions"
    state_path.unlink()
    reply = await api(jp_fetch, *SETTINGS, method="PATCH", body={"idle_timeout_minutes": 11})
    assert reply["persisted"] is True
    assert json.loads(state_path.read_text())["settings"]["idle_timeout_minutes"] == 11


@pytest.fixture
def unusable_state_path(tmp_path):
    # A directory where the file should be: unreadable and unwritable as a file, even for root.
    path = tmp_path / "state-is-a-directory"
    path.mkdir()
    return path


@pytest.mark.parametrize("autoshutdown_config", [{"idle_timeout": 50}])
async def test_unusable_state_file_is_reported_and_the_change_still_applies(
    jp_serverapp, jp_fetch, unusable_state_path
):
    extension = await start_extension(jp_serverapp)
    extension.store.state_file.path = unusable_state_path
    reply = await api(jp_fetch, *SETTINGS, method="PATCH", body={"idle_timeout_minutes": 12})
    assert reply["persisted"] is False
    assert reply["idle_timeout_minutes"] == 12
    status = await api(jp_fetch, *STATUS)
    assert str(unusable_state_path) in status["persist_error"]


async def test_timestamps_naive_future_and_missing(jp_serverapp, jp_fetch, monkeypatch):
    extension = await start_extension(jp_serverapp)
    await extension.monitor.stop()
    naive_id, future_id = [await start_kernel(jp_fetch) for _ in range(2)]
    kernel_manager = jp_serverapp.kernel_manager
    now = datetime.now(timezone.utc)
    # A naive timestamp is UTC by Jupyter's convention, whatever the local time zone.
    monkeypatch.setenv("TZ", "America/Los_Angeles")
    kernel_manager.get_kernel(naive_id).last_activity = (now - timedelta(hours=1)).replace(tzinfo=None)
    kernel_manager.get_kernel(future_id).last_activity = now + timedelta(hours=1)
    # A real kernel's trait can't lose its value; a manager entry without one stands in for
    # kernels of managers that do not record activity.
    missing_id = "kernel-without-activity"
    monkeypatch.setitem(kernel_manager._kernels, missing_id,
                        SimpleNamespace(kernel_name="python3", execution_state="idle"))
    # What a check pass does when it reads the managers (explain() and plan() only read).
    extension.monitor.observer.snapshot(now, None, record=True)
    _, explanation = extension.monitor.explain(now, extension.store.current)
    verdicts = {v.id: v for v in explanation.kernels}
    assert verdicts[naive_id].due
    assert 3599 <= verdicts[naive_id].idle_seconds <= 3601
    assert not verdicts[future_id].due and verdicts[future_id].idle_seconds == 0
    assert not verdicts[missing_id].due
    # A missing timestamp starts its idle clock when first seen, so it is culled eventually.
    assert verdicts[missing_id].deadline == now + timedelta(seconds=TIMEOUT_SECONDS)
    later = now + timedelta(seconds=TIMEOUT_SECONDS + 1)
    _, plan = extension.monitor.plan(later)
    assert {v.id for v in plan.kernels_to_cull} == {naive_id, missing_id}


async def test_stopping_mid_pass_leaves_no_tasks_or_errors(jp_serverapp, jp_fetch, monkeypatch):
    extension = await start_extension(jp_serverapp)
    kernel_manager = jp_serverapp.kernel_manager
    kernel_id = await start_kernel(jp_fetch)
    entered = asyncio.Event()
    real_shutdown = kernel_manager.shutdown_kernel

    async def slow_shutdown(kid, *args, **kwargs):
        entered.set()
        await asyncio.sleep(3600)

    monkeypatch.setattr(kernel_manager, "shutdown_kernel", slow_shutdown)
    await asyncio.wait_for(entered.wait(), 15)
    errors_before = list(extension.monitor.errors)
    await asyncio.wait_for(extension.stop_extension(), 5)
    assert not extension.monitor.running
    ours = [task for task in asyncio.all_tasks()
            if task is not asyncio.current_task() and "jupyter_autoshutdown" in repr(task.get_coro())]
    assert ours == [], ours
    assert list(extension.monitor.errors) == errors_before
    monkeypatch.undo()
    await real_shutdown(kernel_id)


@pytest.mark.parametrize(
    "autoshutdown_config",
    [{"idle_timeout": TIMEOUT_SECONDS / 60, "app_action": "actions_for_tests:RecordingAction"}],
)
async def test_unreadable_kernels_never_count_as_none_left(jp_serverapp, jp_fetch, monkeypatch):
    from actions_for_tests import RecordingAction

    RecordingAction.calls.clear()
    extension = await start_extension(jp_serverapp)
    terminal = (await api(jp_fetch, "api", "terminals", method="POST", body={}))["name"]
    terminals = jp_serverapp.web_app.settings["terminal_manager"].terminals

    def broken():
        raise RuntimeError("injected manager failure")

    monkeypatch.setattr(jp_serverapp.kernel_manager, "list_kernel_ids", broken)
    deadline = terminals[terminal].last_activity + timedelta(seconds=2 * TIMEOUT_SECONDS + 1)
    await wait_pass_after(extension, deadline)
    # Kernels might exist behind the failure: the terminal stays and the app action waits.
    assert terminal in terminals
    assert RecordingAction.calls == []
    status = await api(jp_fetch, *STATUS)
    assert "could be read" in status["app"]["reason"]
    monkeypatch.undo()
    await wait_for(lambda: terminal not in terminals, timeout=15)
    await wait_for(lambda: RecordingAction.calls, timeout=20, what="the app action once readable")


async def test_any_value_of_a_record_affects_that_record_only(jp_serverapp, jp_fetch, monkeypatch):
    extension = await start_extension(jp_serverapp)
    await extension.monitor.stop()  # values set by hand below; the kernels' own messages must not race
    kernel_manager = jp_serverapp.kernel_manager
    odd_ids = [await start_kernel(jp_fetch) for _ in range(3)]
    healthy_id = await start_kernel(jp_fetch)
    now = datetime.now(timezone.utc)
    far = datetime.max.replace(tzinfo=timezone.utc)  # year 9999: any timeout added overflows
    for kernel_id in [*odd_ids, healthy_id]:
        kernel = kernel_manager.get_kernel(kernel_id)
        monkeypatch.setattr(kernel, "execution_state", "idle")  # as after a first cell
        monkeypatch.setattr(kernel, "last_activity", now - timedelta(hours=1))
    monkeypatch.setattr(kernel_manager.get_kernel(odd_ids[0]), "last_activity", far)
    monkeypatch.setattr(kernel_manager.get_kernel(odd_ids[1]), "last_activity",
                        far.replace(tzinfo=timezone(-timedelta(hours=5))))
    monkeypatch.setitem(kernel_manager._kernel_connections, odd_ids[2], "many")
    # What a check pass does when it reads the managers (plan() only reads).
    extension.monitor.observer.snapshot(now, None, record=True)
    _, plan = extension.monitor.plan(now)  # raised OverflowError for every pass
    due = {v.id for v in plan.kernels_to_cull}
    assert healthy_id in due and odd_ids[2] in due  # an odd connection count counts as none
    assert odd_ids[0] not in due and odd_ids[1] not in due  # idle from first seen instead
    later = now + timedelta(seconds=TIMEOUT_SECONDS + 1)
    assert {v.id for v in extension.monitor.plan(later)[1].kernels_to_cull} >= set(odd_ids)
    status = await api(jp_fetch, *STATUS)  # answers (was a 500)
    assert {k["id"] for k in status["kernels"]} == {*odd_ids, healthy_id}
    monkeypatch.undo()
    for kernel_id in [*odd_ids, healthy_id]:
        await kernel_manager.shutdown_kernel(kernel_id, now=True)
