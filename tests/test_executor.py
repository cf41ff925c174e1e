"""Shutdowns and the app action run as tracked tasks: a slow or wedged one delays nothing else,
a shutdown that takes too long ends with the kernel gone, and the loop never spins.

Real server, real kernels; a kernel is made unresponsive with SIGSTOP, as a machine under memory
pressure or a kernel stuck in a system call is.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from datetime import datetime, timedelta, timezone

import pytest
from actions_for_tests import FailingOnceAction, RecordingAction, SlowAction
from helpers import KernelSession, api, kernel_gone, start_extension, start_kernel, wait_for

TIMEOUT_SECONDS = 3.0
STATUS = ("autoshutdown", "api", "status")


def config(**extra):
    return {"idle_timeout": TIMEOUT_SECONDS / 60, "max_check_interval": 60.0, **extra}


def kernel_pid(serverapp, kernel_id) -> int:
    return serverapp.kernel_manager.get_kernel(kernel_id).provisioner.pid


def process_gone(pid: int) -> bool:
    try:
        waited, _ = os.waitpid(pid, os.WNOHANG)  # reaps it if it is our zombie child
    except ChildProcessError:
        waited = pid
    if waited == pid:
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


@contextlib.contextmanager
def stopped(pid: int):
    """SIGSTOP the process; SIGKILL it at the end whatever happened (nothing outlives the test)."""
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


@pytest.mark.parametrize("autoshutdown_config", [config(
    shutdown_timeout=2.0, app_action="actions_for_tests:RecordingAction")])
async def test_a_shutdown_that_takes_too_long_ends_with_the_kernel_killed(jp_serverapp, jp_fetch):
    RecordingAction.calls.clear()
    extension = await start_extension(jp_serverapp)
    kernel_id = await start_kernel(jp_fetch)
    pid = kernel_pid(jp_serverapp, kernel_id)
    with stopped(pid):
        # jupyter_client would wait shutdown_wait_time (5 s) before killing; our limit is 2 s.
        await wait_for(lambda: kernel_gone(jp_serverapp, kernel_id), timeout=20, what="the kill")
        assert await wait_for(lambda: process_gone(pid), timeout=5, what="the process to be gone")
    errors = (await api(jp_fetch, *STATUS))["errors"]
    assert any("did not finish within 2 s" in e["message"] and "killed" in e["message"] for e in errors)
    # The kernel manager is not wedged: the app action runs, and a new kernel starts and stops.
    await wait_for(lambda: RecordingAction.calls, timeout=15, what="the app action")
    other = await start_kernel(jp_fetch)
    await api(jp_fetch, "api", "kernels", other, method="DELETE")
    assert kernel_gone(jp_serverapp, other)
    assert extension.monitor.running


@pytest.mark.parametrize("autoshutdown_config", [config(shutdown_timeout=60.0)])
async def test_a_slow_shutdown_does_not_delay_the_next_cull(jp_serverapp, jp_fetch):
    await start_extension(jp_serverapp)
    slow_id = await start_kernel(jp_fetch)
    await asyncio.sleep(1.0)  # the second kernel falls due 1 s after the first
    prompt_id = await start_kernel(jp_fetch)
    prompt = jp_serverapp.kernel_manager.get_kernel(prompt_id)
    with stopped(kernel_pid(jp_serverapp, slow_id)):
        # The stopped kernel's shutdown takes jupyter_client's shutdown_wait_time (5 s).
        await wait_for(lambda: kernel_gone(jp_serverapp, prompt_id), timeout=20, what="the cull")
        gone_at = datetime.now(timezone.utc)
        assert not kernel_gone(jp_serverapp, slow_id), "the slow shutdown is still running"
    late = (gone_at - (prompt.last_activity + timedelta(seconds=TIMEOUT_SECONDS))).total_seconds()
    print(f"second kernel culled {late:.2f} s after its deadline")
    await wait_for(lambda: kernel_gone(jp_serverapp, slow_id), timeout=20, what="the slow shutdown")


@pytest.mark.parametrize("autoshutdown_config", [config(app_action="actions_for_tests:SlowAction")])
async def test_kernels_are_culled_on_time_while_a_slow_app_action_runs(jp_serverapp, jp_fetch):
    SlowAction.calls.clear()
    await start_extension(jp_serverapp)
    await wait_for(lambda: SlowAction.running == 1, timeout=15, what="the app action to start")
    kernel_id = await start_kernel(jp_fetch)
    await wait_for(lambda: kernel_gone(jp_serverapp, kernel_id), timeout=3 * TIMEOUT_SECONDS,
                   what="the cull during the app action")
    assert SlowAction.running == 1, "the app action is still running"
    assert SlowAction.release is not None
    SlowAction.release.set()
    await wait_for(lambda: SlowAction.running == 0, what="the app action to end")


async def passes_during(extension, seconds: float) -> int:
    before = extension.monitor.count
    await asyncio.sleep(seconds)  # counting passes over a fixed time is the measurement itself
    return extension.monitor.count - before


@pytest.mark.parametrize("autoshutdown_config", [config(
    app_action="actions_for_tests:FailingOnceAction")])
async def test_no_spinning_after_a_failed_app_action_once_nothing_is_due(
    jp_serverapp, jp_fetch, jp_ws_fetch
):
    FailingOnceAction.calls.clear()
    extension = await start_extension(jp_serverapp)
    await wait_for(lambda: extension.monitor.failure_of("app", ""), timeout=15, what="the failure")
    retry_at = extension.monitor.failure_of("app", "").retry_at
    kernel_id = await start_kernel(jp_fetch)
    session = await KernelSession.connect(jp_ws_fetch, kernel_id)
    try:
        await session.send_execute("import time; time.sleep(60)")  # busy: nothing is due
        await wait_for(lambda: datetime.now(timezone.utc) > retry_at + timedelta(seconds=0.5),
                       timeout=15, what="the retry time to pass")
        passes = await passes_during(extension, 3.0)
        assert passes <= 5, f"{passes} passes in 3 s"  # a 3 s timeout: about 1; spinning: 150
    finally:
        session.close()
        await jp_serverapp.kernel_manager.shutdown_kernel(kernel_id, now=True)


@pytest.mark.parametrize("autoshutdown_config", [config(dry_run=True)])
async def test_no_spinning_after_a_dry_run_report_once_nothing_is_due(jp_serverapp, jp_fetch, jp_ws_fetch):
    extension = await start_extension(jp_serverapp)
    kernel_id = await start_kernel(jp_fetch)
    session = await KernelSession.connect(jp_ws_fetch, kernel_id)
    try:
        await wait_for(lambda: extension.monitor.notices.dry_run_reports, timeout=15, what="the report")
        reported = time.monotonic()
        await session.send_execute("import time; time.sleep(60)")
        # Past the time the report would be repeated; the kernel is busy, so nothing is due.
        await asyncio.sleep(max(0.0, reported + TIMEOUT_SECONDS + 0.5 - time.monotonic()))
        passes = await passes_during(extension, 3.0)
        assert passes <= 5, f"{passes} passes in 3 s"
    finally:
        session.close()
        await jp_serverapp.kernel_manager.shutdown_kernel(kernel_id, now=True)


async def test_a_timed_out_call_has_unwound_when_the_time_out_is_reported():
    from jupyter_autoshutdown.core.timeouts import CANCEL_GRACE_SECONDS, within

    unwound: list[bool] = []

    async def hangs_then_cleans_up():
        try:
            await asyncio.Event().wait()
        finally:
            unwound.append(True)

    with pytest.raises(asyncio.TimeoutError):
        await within(hangs_then_cleans_up(), 0.05)
    assert unwound == [True]

    released = asyncio.Event()

    async def ignores_its_cancellation():
        while not released.is_set():
            with contextlib.suppress(asyncio.CancelledError):
                await released.wait()

    started = time.monotonic()
    stubborn = asyncio.ensure_future(ignores_its_cancellation())
    with pytest.raises(asyncio.TimeoutError):
        await within(stubborn, 0.05)
    # Left behind after the grace, never awaited for ever.
    assert time.monotonic() - started < 0.05 + CANCEL_GRACE_SECONDS + 2
    assert not stubborn.done()
    released.set()
    await stubborn
