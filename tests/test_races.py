"""Races that must not lose work, with real kernels, and crash safety of the state file."""

from __future__ import annotations

import asyncio
import json
import random
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone

import pytest
from helpers import KernelSession, api, start_extension, start_kernel, wait_for
from tornado.httpclient import HTTPClientError

SETTINGS = ("autoshutdown", "api", "settings")


@pytest.fixture
def autoshutdown_config():
    return {"idle_timeout": 3.0 / 60}


async def test_settings_changed_after_the_decision_take_effect_at_the_recheck(
    jp_serverapp, jp_fetch
):
    extension = await start_extension(jp_serverapp)
    await extension.monitor.stop()
    kernel_id = await start_kernel(jp_fetch)
    later = datetime.now(timezone.utc) + timedelta(seconds=10)
    # Plan as if 10 s had passed: the 3 s timeout makes the kernel due.
    _, plan = extension.monitor.plan(later)
    assert [v.id for v in plan.kernels_to_cull] == [kernel_id]
    await api(jp_fetch, *SETTINGS, method="PATCH", body={"idle_timeout_minutes": 60})
    extension.monitor.dispatch(plan, extension.store.current, later)
    assert await extension.monitor.executor.wait() == [False]
    assert kernel_id in jp_serverapp.kernel_manager


async def test_fifty_concurrent_changes_leave_a_valid_state_file(jp_serverapp, jp_fetch, state_path):
    extension = await start_extension(jp_serverapp)
    sent = [round(1 + i * 0.5, 1) for i in range(50)]
    replies = await asyncio.gather(*(
        jp_fetch(*SETTINGS, method="PATCH", body=json.dumps({"idle_timeout_minutes": minutes}))
        for minutes in sent
    ))
    assert all(reply.code == 200 for reply in replies)
    saved = json.loads(state_path.read_text())["settings"]["idle_timeout_minutes"]
    assert saved in sent
    assert saved == extension.store.current.idle_timeout_minutes


WRITER = """
import logging, sys
from pathlib import Path
from jupyter_autoshutdown.core.settings import StateFile
state = StateFile(Path(sys.argv[1]), logging.getLogger())
i = 0
while True:
    i += 1
    # Large, varying payloads widen the window in which a kill can land mid-write.
    state.write({"settings": {"idle_timeout_minutes": i}, "padding": "x" * (200_000 + i % 7919)})
"""


def test_sigkill_while_writing_never_leaves_a_corrupt_state_file(tmp_path):
    path = tmp_path / "state.json"
    trials = 25
    rng = random.Random(1234)
    for _ in range(trials):
        writer = subprocess.Popen([sys.executable, "-c", WRITER, str(path)])
        deadline = time.monotonic() + 20
        while not path.exists():
            assert time.monotonic() < deadline and writer.poll() is None
            time.sleep(0.005)
        time.sleep(rng.uniform(0.0, 0.15))
        writer.send_signal(signal.SIGKILL)
        writer.wait(10)
        data = json.loads(path.read_text())  # raises if the file were torn
        assert data["settings"]["idle_timeout_minutes"] >= 1
    leftovers = [p.name for p in tmp_path.iterdir() if p.name != "state.json"]
    # A kill mid-write can leave a temp file behind; the state file itself is always whole.
    assert all(name.startswith(".state-") for name in leftovers)


@pytest.mark.timeout(180)
@pytest.mark.parametrize("autoshutdown_config", [{"idle_timeout": 1.0 / 60}])
async def test_no_busy_kernel_is_ever_culled_in_many_racing_trials(
    jp_serverapp, jp_fetch, jp_ws_fetch, monkeypatch
):
    """Clients send work right around each kernel's 1 s deadline; record the state of every
    kernel at the moment its shutdown starts. Not one may be busy."""
    extension = await start_extension(jp_serverapp)
    kernel_manager = jp_serverapp.kernel_manager
    real_shutdown = kernel_manager.shutdown_kernel
    states_at_shutdown: list[str] = []

    async def recording_shutdown(kernel_id, *args, **kwargs):
        states_at_shutdown.append(kernel_manager.get_kernel(kernel_id).execution_state)
        return await real_shutdown(kernel_id, *args, **kwargs)

    monkeypatch.setattr(kernel_manager, "shutdown_kernel", recording_shutdown)
    rng = random.Random(42)
    trials = 0
    completed = 0
    target_trials = 120

    async def worker() -> None:
        nonlocal trials, completed
        while trials < target_trials:
            kernel_id = await start_kernel(jp_fetch)
            try:
                client = await KernelSession.connect(jp_ws_fetch, kernel_id)
            except HTTPClientError:
                continue  # culled while still starting (1 s timeout on a loaded machine)
            try:
                while trials < target_trials and kernel_id in kernel_manager:
                    await asyncio.sleep(rng.uniform(0.85, 1.15))  # straddle the 1 s deadline
                    trials += 1
                    try:
                        await client.execute("__import__('time').sleep(0.05)", timeout=2)
                        completed += 1
                    except (AssertionError, asyncio.TimeoutError):
                        break  # culled while idle, before the request arrived: legitimate
            finally:
                client.close()

    await asyncio.gather(*(worker() for _ in range(4)))
    await wait_for(lambda: not kernel_manager.list_kernel_ids(), timeout=30)
    busy_lost = states_at_shutdown.count("busy")
    print(f"\nrace trials: {trials}, completed executions: {completed}, "
          f"kernels culled: {len(states_at_shutdown)}, busy kernels culled: {busy_lost}")
    assert trials >= target_trials
    assert len(states_at_shutdown) >= 4
    assert busy_lost == 0
    assert extension.monitor.running
