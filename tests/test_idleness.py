"""What counts as activity, each rule against a real server with real kernels, terminals, processes."""

from __future__ import annotations

import asyncio
import contextlib
import time
from datetime import datetime

import psutil
import pytest
from helpers import KernelSession, api, kernel_gone, start_extension, start_kernel, wait_for

TIMEOUT_SECONDS = 3.0
STATUS = ("autoshutdown", "api", "status")
KEEPALIVE = ("autoshutdown", "api", "keepalive")


def config(**extra):
    return {"idle_timeout": TIMEOUT_SECONDS / 60, "max_check_interval": 0.5, **extra}


async def kernel_row(jp_fetch, kernel_id):
    status = await api(jp_fetch, *STATUS)
    return next(row for row in status["kernels"] if row["id"] == kernel_id)


async def stays_for(condition_holds, seconds: float) -> None:
    """Assert that `condition_holds()` stays true for `seconds` (polled; fails at the first false)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert condition_holds(), "it did not stay"
        await asyncio.sleep(0.1)


async def kernel_that_ran(jp_serverapp, jp_fetch, jp_ws_fetch, code: str) -> tuple[str, KernelSession]:
    """Start the checker and a kernel, run `code` in it, and keep the client connected."""
    await start_extension(jp_serverapp)
    kernel_id = await start_kernel(jp_fetch)
    session = await KernelSession.connect(jp_ws_fetch, kernel_id)
    await session.execute(code)
    return kernel_id, session


BURN = """
import threading
stop_burning = threading.Event()
def burn():
    while not stop_burning.is_set():
        sum(range(1000))
threading.Thread(target=burn, daemon=True).start()
"""


@pytest.mark.parametrize("autoshutdown_config", [config(
    utilization_aware=True, utilization_interval=0.2, utilization_window=1.0, cpu_threshold=20.0)])
async def test_kernel_burning_cpu_in_a_background_thread_is_kept_until_it_stops(
    jp_serverapp, jp_fetch, jp_ws_fetch
):
    # The cell returns at once: the kernel is idle, its thread is not.
    kernel_id, session = await kernel_that_ran(jp_serverapp, jp_fetch, jp_ws_fetch, BURN)
    try:
        await stays_for(lambda: not kernel_gone(jp_serverapp, kernel_id), 2.5 * TIMEOUT_SECONDS)
        row = await kernel_row(jp_fetch, kernel_id)
        assert row["execution_state"] == "idle"
        assert "CPU or GPU" in row["reason"], row
        assert row["usage"]["cpu_percent"] > 20, row["usage"]
        await session.execute("stop_burning.set()")
        stopped = time.monotonic()
    finally:
        session.close()
    await wait_for(lambda: kernel_gone(jp_serverapp, kernel_id), timeout=20, what="cull after work")
    assert time.monotonic() - stopped >= TIMEOUT_SECONDS - 0.5


@pytest.mark.parametrize("autoshutdown_config", [config(
    utilization_aware=True, utilization_interval=0.2, utilization_window=1.0, cpu_threshold=20.0)])
async def test_quiet_cpu_job_in_a_terminal_keeps_it(jp_serverapp, jp_fetch):
    await start_extension(jp_serverapp)
    name = (await api(jp_fetch, "api", "terminals", method="POST", body={}))["name"]
    terminals = jp_serverapp.web_app.settings["terminal_manager"].terminals
    shell = psutil.Process(terminals[name].ptyproc.pid)
    # A job that prints nothing: only its CPU use says it is working.
    terminals[name].ptyproc.write("python3 -c 'while True: pass'\r")
    try:
        await stays_for(lambda: name in terminals, 2.5 * TIMEOUT_SECONDS)
        row = (await api(jp_fetch, *STATUS))["terminals"][0]
        assert "CPU or GPU" in row["reason"] and row["usage"]["processes"] >= 2, row
        terminals[name].ptyproc.write("\x03")  # Ctrl-C: the job ends
        await wait_for(lambda: name not in terminals, timeout=20, what="the terminal to be removed")
    finally:
        # Whatever happened, the busy loop must not outlive the test (it would burn a core).
        with contextlib.suppress(psutil.Error):
            for child in shell.children(recursive=True):
                child.kill()


@pytest.mark.parametrize("autoshutdown_config", [config(idle_type="activity")])
async def test_idle_type_activity_any_user_request_keeps_kernels(jp_serverapp, jp_fetch):
    await start_extension(jp_serverapp)
    kernel_id = await start_kernel(jp_fetch)
    until = time.monotonic() + 2.5 * TIMEOUT_SECONDS
    while time.monotonic() < until:  # a user editing and saving a file, not touching the kernel
        await jp_fetch("api", "contents", "notes.txt", method="PUT",
                       body='{"type": "file", "format": "text", "content": "more"}')
        assert not kernel_gone(jp_serverapp, kernel_id)
        await asyncio.sleep(0.5)
    assert "idle_type 'activity'" in (await kernel_row(jp_fetch, kernel_id))["reason"]
    await wait_for(lambda: kernel_gone(jp_serverapp, kernel_id), timeout=20)


@pytest.mark.parametrize("autoshutdown_config", [config(idle_type="kernel_connections")])
async def test_idle_type_kernel_connections_an_open_tab_keeps_its_kernel(
    jp_serverapp, jp_fetch, jp_ws_fetch
):
    kernel_id, session = await kernel_that_ran(jp_serverapp, jp_fetch, jp_ws_fetch, "x = 1")
    try:
        await stays_for(lambda: not kernel_gone(jp_serverapp, kernel_id), 2 * TIMEOUT_SECONDS)
        assert "idle_type kernel_connections" in (await kernel_row(jp_fetch, kernel_id))["reason"]
    finally:
        session.close()
    await wait_for(lambda: kernel_gone(jp_serverapp, kernel_id), timeout=20)


@pytest.mark.parametrize("autoshutdown_config", [config(exempt_kernel_names=["python*"])])
async def test_kernel_name_pattern_exempts(jp_serverapp, jp_fetch):
    await start_extension(jp_serverapp)
    kernel_id = await start_kernel(jp_fetch)
    await stays_for(lambda: not kernel_gone(jp_serverapp, kernel_id), 2 * TIMEOUT_SECONDS)
    row = await kernel_row(jp_fetch, kernel_id)
    assert row["exempt"] and "matches 'python*'" in row["reason"] and row["shutdown_at"] is None


@pytest.mark.parametrize("autoshutdown_config", [config(exempt_paths=["long-runs/*"])])
async def test_notebook_path_pattern_exempts_only_that_notebook(jp_serverapp, jp_fetch):
    await start_extension(jp_serverapp)
    session = await api(jp_fetch, "api", "sessions", method="POST", body={
        "path": "long-runs/train.ipynb", "type": "notebook", "kernel": {"name": "python3"}})
    exempt_id = session["kernel"]["id"]
    other = await api(jp_fetch, "api", "sessions", method="POST", body={
        "path": "scratch.ipynb", "type": "notebook", "kernel": {"name": "python3"}})
    await wait_for(lambda: kernel_gone(jp_serverapp, other["kernel"]["id"]), timeout=20)
    assert not kernel_gone(jp_serverapp, exempt_id)
    assert "notebook 'long-runs/train.ipynb'" in (await kernel_row(jp_fetch, exempt_id))["reason"]


@pytest.mark.parametrize("autoshutdown_config", [config()])
async def test_user_opts_a_kernel_out_from_the_notebook_and_back_in(jp_serverapp, jp_fetch, jp_ws_fetch):
    kernel_id, session = await kernel_that_ran(
        jp_serverapp, jp_fetch, jp_ws_fetch,
        "import jupyter_autoshutdown; jupyter_autoshutdown.keep_this_kernel()",
    )
    try:
        await stays_for(lambda: not kernel_gone(jp_serverapp, kernel_id), 2 * TIMEOUT_SECONDS)
        assert "keep_this_kernel()" in (await kernel_row(jp_fetch, kernel_id))["reason"]
        await session.execute("jupyter_autoshutdown.keep_this_kernel(False)")
    finally:
        session.close()
    await wait_for(lambda: kernel_gone(jp_serverapp, kernel_id), timeout=20)


@pytest.mark.parametrize("autoshutdown_config", [config(max_keep_alive=1.0)])
async def test_keep_alive_postpones_every_shutdown_and_is_bounded(jp_serverapp, jp_fetch):
    from tornado.httpclient import HTTPClientError

    await start_extension(jp_serverapp)
    for bad in ({"minutes": 2}, {"minutes": -1}, {"minutes": "soon"}, {}, {"minutes": 1, "x": 1}):
        with pytest.raises(HTTPClientError) as error:
            await api(jp_fetch, *KEEPALIVE, method="POST", body=bad)
        assert error.value.code == 400, bad
    kernel_id = await start_kernel(jp_fetch)
    reply = await api(jp_fetch, *KEEPALIVE, method="POST", body={"minutes": 0.1})  # 6 s
    until = datetime.fromisoformat(reply["keep_alive_until"])
    assert reply["max_minutes"] == 1.0
    await stays_for(lambda: not kernel_gone(jp_serverapp, kernel_id), 1.5 * TIMEOUT_SECONDS)
    status = await api(jp_fetch, *STATUS)
    assert status["keep_alive_until"] == reply["keep_alive_until"]
    row = next(row for row in status["kernels"] if row["id"] == kernel_id)
    assert row["reason"].startswith("kept alive by a user until") and row["shutdown_at"] == until.isoformat()
    await wait_for(lambda: kernel_gone(jp_serverapp, kernel_id), timeout=20)
    assert datetime.now(until.tzinfo) >= until

    # A second kernel, and the keep-alive cancelled: it goes at its own deadline.
    second = await start_kernel(jp_fetch)
    await api(jp_fetch, *KEEPALIVE, method="POST", body={"minutes": 1})
    assert (await api(jp_fetch, *KEEPALIVE, method="DELETE"))["keep_alive_until"] is None
    await wait_for(lambda: kernel_gone(jp_serverapp, second), timeout=20)


@pytest.mark.parametrize("autoshutdown_config", [config(max_keep_alive=1.0)])
async def test_a_keep_alive_of_one_kernel_keeps_only_that_one(jp_serverapp, jp_fetch):
    from tornado.httpclient import HTTPClientError

    await start_extension(jp_serverapp)
    kept, other = await start_kernel(jp_fetch), await start_kernel(jp_fetch)
    for bad, code in (({"minutes": 1, "kernel_id": "nope"}, 400), ({"minutes": 1, "terminal": "nope"}, 400),
                      ({"minutes": 1, "kernel_id": kept, "terminal": "1"}, 400),
                      ({"minutes": 1, "kernel_id": 7}, 400), ({"minutes": 1, "kernel_id": ""}, 400)):
        with pytest.raises(HTTPClientError) as error:
            await api(jp_fetch, *KEEPALIVE, method="POST", body=bad)
        assert error.value.code == code, bad
    reply = await api(jp_fetch, *KEEPALIVE, method="POST", body={"minutes": 0.15, "kernel_id": kept})  # 9 s
    assert reply["keep_alive_until"] is None, "the global keep-alive is untouched"
    until = reply["kernels"][kept]
    await wait_for(lambda: kernel_gone(jp_serverapp, other), timeout=20, what="the other kernel's cull")
    assert not kernel_gone(jp_serverapp, kept)
    row = await kernel_row(jp_fetch, kept)
    assert row["keep_alive_until"] == until and row["shutdown_at"] == until
    assert row["reason"].startswith("this one kept alive by a user until"), row
    # Cancelled: it goes at its own deadline, long passed.
    reply = await api(jp_fetch, *KEEPALIVE, method="DELETE", params={"kernel_id": kept})
    assert reply["kernels"] == {}
    await wait_for(lambda: kernel_gone(jp_serverapp, kept), timeout=20, what="the cull after the cancel")
    assert (await api(jp_fetch, *KEEPALIVE))["kernels"] == {}


@pytest.mark.parametrize("autoshutdown_config", [config()])
async def test_a_kernel_cannot_opt_out_another_one(jp_serverapp, jp_fetch, jp_ws_fetch):
    forged_id, empty_id = await start_kernel(jp_fetch), await start_kernel(jp_fetch)
    _writer_id, session = await kernel_that_ran(
        jp_serverapp, jp_fetch, jp_ws_fetch,
        # What keep_this_kernel() does, for other kernels: signed with this kernel's own key, and
        # an empty marker as earlier versions wrote.
        "import jupyter_autoshutdown.observe.exemptions as e, pathlib\n"
        "from ipykernel.connect import get_connection_file, get_connection_info\n"
        "d = e.marker_dir(pathlib.Path(get_connection_file()).parent); d.mkdir(exist_ok=True)\n"
        f"(d / '{empty_id}').touch()\n"
        "key = get_connection_info(unpack=True)['key'].encode()\n"
        f"(d / '{forged_id}').write_text(e.marker_proof(key, '{forged_id}'))",
    )
    try:
        for victim_id in (forged_id, empty_id):
            await wait_for(lambda k=victim_id: kernel_gone(jp_serverapp, k), timeout=20, what="the cull")
    finally:
        session.close()


@pytest.mark.parametrize("autoshutdown_config", [config(exempt_paths=["long-runs/*"])])
async def test_exempt_paths_match_the_normalised_path(jp_serverapp, jp_fetch):
    await start_extension(jp_serverapp)
    escaping = await api(jp_fetch, "api", "sessions", method="POST", body={
        "path": "long-runs/../scratch.ipynb", "type": "notebook", "kernel": {"name": "python3"}})
    kept = await api(jp_fetch, "api", "sessions", method="POST", body={
        "path": "long-runs/./train.ipynb", "type": "notebook", "kernel": {"name": "python3"}})
    await wait_for(lambda: kernel_gone(jp_serverapp, escaping["kernel"]["id"]), timeout=20)
    assert not kernel_gone(jp_serverapp, kept["kernel"]["id"])
    assert "matches 'long-runs/*'" in (await kernel_row(jp_fetch, kept["kernel"]["id"]))["reason"]
