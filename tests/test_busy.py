"""Busy means a request (a cell) is running: requests on other channels never make it idle.

ipykernel answers control-channel requests (what jupyter-resource-usage's kernel usage panel
sends, or a completion) on another thread and publishes busy/idle for them while a cell runs;
jupyter_server copies that idle into the kernel's execution_state. Real server, real kernels.
"""

from __future__ import annotations

import contextlib
import json
import sys
from pathlib import Path

import pytest
from helpers import KernelSession, api, kernel_gone, start_extension, start_kernel, wait_for

TIMEOUT_SECONDS = 3.0
STATUS = ("autoshutdown", "api", "status")


def config(**extra):
    return {"idle_timeout": TIMEOUT_SECONDS / 60, "max_check_interval": 0.5, **extra}


async def kernel_row(jp_fetch, kernel_id):
    status = await api(jp_fetch, *STATUS)
    return next(row for row in status["kernels"] if row["id"] == kernel_id)


async def stays_for(condition_holds, seconds: float) -> None:
    import asyncio
    import time

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert condition_holds(), "it did not stay"
        await asyncio.sleep(0.1)


CONTROL_REQUESTS = {
    "usage_request": {},
    "complete_request": {"code": "import o", "cursor_pos": 8},
    "kernel_info_request": {},
}


@contextlib.asynccontextmanager
async def running_cell(jp_serverapp, jp_fetch, jp_ws_fetch, code="import time; time.sleep(120)",
                       kernel_name="python3"):
    """A kernel whose cell runs `code`, its websocket client connected; shut down when done."""
    await start_extension(jp_serverapp)
    kernel_id = await start_kernel(jp_fetch, kernel_name)
    session = await KernelSession.connect(jp_ws_fetch, kernel_id)
    # allow_stdin: a cell calling input() waits for the answer, as in a notebook.
    cell = await session.send("execute_request", {
        "code": code, "silent": False, "store_history": False, "user_expressions": {},
        "allow_stdin": True,
    })
    await wait_for(lambda: jp_serverapp.kernel_manager.get_kernel(kernel_id).execution_state == "busy",
                   what="the cell to start")
    try:
        yield kernel_id, session, cell
    finally:
        session.close()
        if not kernel_gone(jp_serverapp, kernel_id):
            await jp_serverapp.kernel_manager.shutdown_kernel(kernel_id, now=True)


@pytest.mark.parametrize("autoshutdown_config", [config()])
@pytest.mark.parametrize("msg_type", list(CONTROL_REQUESTS))
@pytest.mark.parametrize("channel", ["control", "shell"])
async def test_a_request_answered_while_a_cell_runs_does_not_make_it_idle(
    jp_serverapp, jp_fetch, jp_ws_fetch, msg_type, channel
):
    async with running_cell(jp_serverapp, jp_fetch, jp_ws_fetch) as (kernel_id, session, _cell):
        await session.send(msg_type, CONTROL_REQUESTS[msg_type], channel=channel)
        await stays_for(lambda: not kernel_gone(jp_serverapp, kernel_id), 2.5 * TIMEOUT_SECONDS)
        row = await kernel_row(jp_fetch, kernel_id)
        assert row["execution_state"] == "busy", row
        assert row["shutdown_at"] is None, row


@pytest.mark.parametrize("autoshutdown_config", [config()])
async def test_a_cell_waiting_for_input_is_busy_after_a_control_request(
    jp_serverapp, jp_fetch, jp_ws_fetch
):
    waiting = running_cell(jp_serverapp, jp_fetch, jp_ws_fetch, "input('name? ')")
    async with waiting as (kernel_id, session, _cell):
        await session.send("usage_request", {}, channel="control")
        await stays_for(lambda: not kernel_gone(jp_serverapp, kernel_id), 2.5 * TIMEOUT_SECONDS)
        assert (await kernel_row(jp_fetch, kernel_id))["execution_state"] == "busy"


@pytest.fixture
def slow_kernel(jp_kernel_dir):
    """A Python kernel that takes a second longer to bind its sockets, as on a loaded machine:
    whoever subscribes to its IOPub at once connects before the kernel listens."""
    spec = Path(jp_kernel_dir) / "slow-python"
    spec.mkdir()
    start = "import time; time.sleep(1.0); from ipykernel.kernelapp import launch_new_instance as go; go()"
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-c", start, "-f", "{connection_file}"],
        "display_name": "Python (slow start)", "language": "python",
    }))
    return "slow-python"


@pytest.mark.parametrize("autoshutdown_config", [config()])
async def test_a_slow_starting_kernel_waiting_for_input_stays_busy(
    jp_serverapp, jp_fetch, jp_ws_fetch, slow_kernel
):
    # The monitor subscribes when the kernel is started, a second before the kernel listens; the
    # first cell and a control request follow as soon as the kernel answers.
    waiting = running_cell(jp_serverapp, jp_fetch, jp_ws_fetch, "input('name? ')", kernel_name=slow_kernel)
    async with waiting as (kernel_id, session, _cell):
        await session.send("usage_request", {}, channel="control")
        await stays_for(lambda: not kernel_gone(jp_serverapp, kernel_id), 2.5 * TIMEOUT_SECONDS)
        assert (await kernel_row(jp_fetch, kernel_id))["execution_state"] == "busy"


@pytest.mark.parametrize("autoshutdown_config", [config()])
async def test_a_watch_that_starts_after_the_cell_and_a_control_idle_keeps_it_busy(
    jp_serverapp, jp_fetch, jp_ws_fetch, monkeypatch
):
    """The bad ordering, forced: our subscription lands after the cell said busy, and
    jupyter_server has already copied a control request's idle, so no state we can read says the
    cell runs. The kernel is busy until the extension has seen its state for itself."""
    from jupyter_autoshutdown.observe.running_requests import RunningRequests

    held_back: set[str] = set()
    sync = RunningRequests.sync

    def sync_without_held_back(self, kernels):
        return sync(self, {key: value for key, value in kernels.items() if key not in held_back})

    monkeypatch.setattr(RunningRequests, "sync", sync_without_held_back)
    extension = await start_extension(jp_serverapp)
    kernel_id = await start_kernel(jp_fetch)
    session = await KernelSession.connect(jp_ws_fetch, kernel_id)  # a client: no longer starting
    tracking = extension.monitor.observer.kernel_requests
    kernel = jp_serverapp.kernel_manager.get_kernel(kernel_id)
    try:
        await wait_for(lambda: kernel_id not in tracking.unconfirmed and kernel_id in tracking._watches,
                       what="the first watch's confirmation")
        # Forget the kernel, and watch it again only once the bad ordering is in place.
        held_back.add(kernel_id)
        await wait_for(lambda: kernel_id not in tracking._watches, what="the watch to be dropped")
        cell = await session.send("execute_request", {
            "code": "input('name? ')", "silent": False, "store_history": False,
            "user_expressions": {}, "allow_stdin": True,
        })
        await wait_for(lambda: kernel.execution_state == "busy", what="the cell to start")
        await session.send("usage_request", {}, channel="control")
        await wait_for(lambda: kernel.execution_state == "idle",
                       what="jupyter_server to copy the control idle")
        held_back.discard(kernel_id)
        await wait_for(lambda: kernel_id in tracking._watches, what="the late watch")
        await stays_for(lambda: not kernel_gone(jp_serverapp, kernel_id), 2.5 * TIMEOUT_SECONDS)
        assert (await kernel_row(jp_fetch, kernel_id))["execution_state"] == "busy"
        assert kernel_id in tracking.unconfirmed  # its probe waits behind the cell
        # The cell ends: the kernel is confirmed idle and culled.
        await api(jp_fetch, "api", "kernels", kernel_id, "interrupt", method="POST", body={})
        await session.wait_idle(cell)
        await wait_for(lambda: kernel_gone(jp_serverapp, kernel_id), timeout=20, what="the cull")
    finally:
        session.close()
        if not kernel_gone(jp_serverapp, kernel_id):
            await jp_serverapp.kernel_manager.shutdown_kernel(kernel_id, now=True)


@pytest.mark.parametrize("autoshutdown_config", [config()])
async def test_the_kernel_is_culled_once_the_cell_ends(jp_serverapp, jp_fetch, jp_ws_fetch):
    async with running_cell(jp_serverapp, jp_fetch, jp_ws_fetch) as (kernel_id, session, cell):
        await session.send("usage_request", {}, channel="control")
        await stays_for(lambda: not kernel_gone(jp_serverapp, kernel_id), 1.5 * TIMEOUT_SECONDS)
        await api(jp_fetch, "api", "kernels", kernel_id, "interrupt", method="POST", body={})
        await session.wait_idle(cell)
        await wait_for(lambda: kernel_gone(jp_serverapp, kernel_id), timeout=20, what="the cull")


@pytest.mark.parametrize("autoshutdown_config", [config()])
async def test_a_kernel_restarted_during_a_cell_is_idle_afterwards(jp_serverapp, jp_fetch, jp_ws_fetch):
    async with running_cell(jp_serverapp, jp_fetch, jp_ws_fetch) as (kernel_id, _session, _cell):
        extension = jp_serverapp.extension_manager.extension_points["jupyter_autoshutdown"].app
        await wait_for(lambda: kernel_id in extension.monitor.observer.kernel_requests.busy, what="busy seen")
        await api(jp_fetch, "api", "kernels", kernel_id, "restart", method="POST", body={})
        # The old process's cell is gone with it: the restarted kernel is culled when idle.
        await wait_for(lambda: kernel_gone(jp_serverapp, kernel_id), timeout=30, what="the cull")


def test_each_request_ends_only_itself():
    import logging

    from jupyter_autoshutdown.observe.running_requests import RunningRequests, _Watch

    requests = RunningRequests(logging.getLogger("test"))
    watch = _Watch(stream=None, pid=1)

    def status(state, msg_id, msg_type="execute_request"):
        requests._on_status("k", watch, state, {"msg_id": msg_id, "msg_type": msg_type})

    status("busy", "cell")
    status("busy", "usage", "usage_request")
    status("idle", "usage", "usage_request")
    assert requests.busy == {"k"}
    status("idle", "cell")
    assert requests.busy == set()
    status("busy", "cell2")
    requests._on_status("k", watch, "starting", {})  # a new process
    assert requests.busy == set()
    status("idle", "never-busy")
    requests._on_status("k", watch, "busy", "not a header")
    assert requests.busy == set()


def test_a_busy_missed_before_the_first_message_is_taken_from_jupyter_server():
    """On a loaded machine our IOPub subscription can land after a cell said busy: the first
    message we get (here a control request's busy) must not leave that cell unaccounted for."""
    import logging
    from types import SimpleNamespace

    from jupyter_client.session import Session

    from jupyter_autoshutdown.observe.running_requests import RunningRequests

    session = Session()
    handlers = []
    stream = SimpleNamespace(on_recv=handlers.append, close=lambda: None)
    kernel = SimpleNamespace(connect_iopub=lambda: stream, session=session, has_kernel=True,
                             execution_state="starting", provisioner=SimpleNamespace(pid=1))
    requests = RunningRequests(logging.getLogger("test"))
    requests.sync({"k": kernel})
    assert requests.busy == set()

    def deliver(state, parent):
        status = session.msg("status", {"execution_state": state}, parent=parent)
        handlers[0](session.serialize(status))

    kernel.execution_state = "busy"  # jupyter_server saw the cell start; we did not
    usage = session.msg("usage_request", {})
    deliver("busy", usage)
    deliver("idle", usage)
    assert requests.busy == {"k"}
    deliver("idle", session.msg("execute_request", {}))  # a cell ends: what we missed is over
    assert requests.busy == set()
