"""Remote kernels: a real Jupyter Kernel Gateway behind a real `jupyter server --gateway-url`."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
import time
from datetime import datetime, timezone

import pytest
from helpers import KernelSession, extension_of, wait_for
from server_process import TOKEN, KernelGatewayProcess, ServerProcess

from jupyter_autoshutdown.core.records import KernelInfo, as_utc
from jupyter_autoshutdown.decide.policy import INCOMPLETE

TIMEOUT_SECONDS = 3.0


@pytest.fixture
def server_args() -> list[str]:
    return []


@pytest.fixture
def gateway_and_server(home, server_args):
    gateway = KernelGatewayProcess(home)
    server = None
    try:
        default_timeout = [] if any("idle_timeout" in arg for arg in server_args) else [
            f"--AutoShutdown.idle_timeout={TIMEOUT_SECONDS / 60}"
        ]
        server = ServerProcess(home, *gateway.server_args(), *default_timeout, *server_args)
        yield gateway, server
    finally:
        if server is not None:
            server.stop()
        gateway.stop()


def kernel_ids(process) -> set[str]:
    return {kernel["id"] for kernel in process.request("GET", "api/kernels").json()}


async def test_remote_idle_kernel_is_culled_and_busy_one_is_kept_until_it_finishes(gateway_and_server):
    gateway, server = gateway_and_server
    idle_id = server.request("POST", "api/kernels", json={"name": "python3"}).json()["id"]
    busy_id = server.request("POST", "api/kernels", json={"name": "python3"}).json()["id"]
    assert {idle_id, busy_id} <= kernel_ids(gateway), "the kernels run on the gateway"

    busy = await KernelSession.connect_url(server.url, TOKEN, busy_id)
    try:
        idle = await KernelSession.connect_url(server.url, TOKEN, idle_id)
        await idle.execute("x = 1")
        idle.close()
        started = time.monotonic()
        msg_id = await busy.send_execute(f"import time; time.sleep({3 * TIMEOUT_SECONDS})")

        # The idle remote kernel goes, on the gateway too, one timeout after its last message.
        await wait_for(lambda: idle_id not in kernel_ids(gateway), timeout=20, what="remote cull")
        status = server.request("GET", "autoshutdown/api/status").json()
        busy_row = next(row for row in status["kernels"] if row["id"] == busy_id)
        assert busy_row["execution_state"] == "busy", busy_row
        assert "busy" in busy_row["reason"]
        assert not status["errors"], status["errors"]

        await busy.wait_idle(msg_id, timeout=30)
        assert time.monotonic() - started > 2 * TIMEOUT_SECONDS, "it ran past the timeout"
        assert busy_id in kernel_ids(gateway), "the busy remote kernel survived past the timeout"
    finally:
        busy.close()
    # Once it is idle, it goes one timeout later.
    await wait_for(lambda: busy_id not in kernel_ids(gateway), timeout=20, what="cull after work")
    assert "shutting down kernel " + busy_id in server.output()


@pytest.mark.parametrize("server_args", [["--AutoShutdown.app_action=server"]])
async def test_gateway_that_stops_answering_culls_nothing_and_never_looks_empty(gateway_and_server):
    gateway, server = gateway_and_server
    kernel_id = server.request("POST", "api/kernels", json={"name": "python3"}).json()["id"]
    past_deadline = time.monotonic() + 2 * TIMEOUT_SECONDS
    gateway.stop()

    def status():
        return server.request("GET", "autoshutdown/api/status").json()

    await wait_for(lambda: any("gateway" in error["message"] for error in status()["errors"]),
                   timeout=30, what="the gateway failure in status")
    # Past the kernel's deadline, passes keep running, and none acted on the stale record.
    await wait_for(lambda: time.monotonic() > past_deadline, timeout=10)
    passes = status()["count"]
    await wait_for(lambda: status()["count"] >= passes + 2, timeout=10, what="two more passes")
    assert f"shutting down kernel {kernel_id}" not in server.output()
    # An unreadable gateway is not "no kernels left": the server is not stopped.
    assert status()["app"]["reason"] == INCOMPLETE
    assert server.process.poll() is None


@contextlib.contextmanager
def paused(process):
    """The gateway stops answering (SIGSTOP) and answers again on leaving, whatever happens."""
    process.send_signal(signal.SIGSTOP)
    try:
        yield
    finally:
        process.send_signal(signal.SIGCONT)


OUTAGE_TIMEOUT_SECONDS = 20.0


@pytest.mark.parametrize("server_args", [[
    f"--AutoShutdown.idle_timeout={OUTAGE_TIMEOUT_SECONDS / 60}", "--AutoShutdown.shutdown_timeout=3",
]])
async def test_a_kept_alive_remote_kernel_survives_a_gateway_outage_and_the_idle_one_goes(
    gateway_and_server,
):
    gateway, server = gateway_and_server
    kept_id = server.request("POST", "api/kernels", json={"name": "python3"}).json()["id"]
    idle_id = server.request("POST", "api/kernels", json={"name": "python3"}).json()["id"]
    for kernel_id in (kept_id, idle_id):
        session = await KernelSession.connect_url(server.url, TOKEN, kernel_id)
        try:
            await session.execute("x = 1")
        finally:
            session.close()
    reply = server.request("POST", "autoshutdown/api/keepalive", json={"minutes": 60, "kernel_id": kept_id})
    assert reply.status_code == 200, reply.text

    def status():
        return server.request("GET", "autoshutdown/api/status").json()

    await wait_for(lambda: {row["id"] for row in status()["kernels"]} == {kept_id, idle_id},
                   timeout=20, what="both kernels in status")
    with paused(gateway.process):
        # Longer than shutdown_timeout: listings time out; status GETs meanwhile change nothing.
        # The gateway is asked when a deadline comes or the records are a timeout old.
        await wait_for(lambda: any("gateway" in e["message"] for e in status()["errors"]),
                       timeout=3 * OUTAGE_TIMEOUT_SECONDS, what="the outage in status")
        outage_ends = time.monotonic() + 15
        await wait_for(lambda: status() and time.monotonic() > outage_ends, timeout=30)
        assert not status()["kernels"], "an unreadable gateway lists nothing it cannot vouch for"
    # Once it answers again: the idle kernel goes, the kept one stays, its keep-alive intact.
    await wait_for(lambda: idle_id not in kernel_ids(gateway), timeout=60, what="the idle kernel's cull")
    passes = status()["count"]
    await wait_for(lambda: status()["count"] >= passes + 1, timeout=3 * OUTAGE_TIMEOUT_SECONDS,
                   what="another pass")
    assert kept_id in kernel_ids(gateway), "the kernel kept alive for an hour was culled"
    row = next(row for row in status()["kernels"] if row["id"] == kept_id)
    assert row["keep_alive_until"] is not None and "kept alive" in row["reason"], row
    assert f"shutting down kernel {kept_id}" not in server.output()


@pytest.mark.parametrize("server_args", [["--AutoShutdown.shutdown_timeout=1"]])
async def test_a_gateway_down_for_a_minute_is_asked_a_bounded_number_of_times(gateway_and_server):
    gateway, server = gateway_and_server
    server.request("POST", "api/kernels", json={"name": "python3"})

    def failed_listings():
        errors = server.request("GET", "autoshutdown/api/status").json()["errors"]
        return sum("refreshing kernels from the gateway failed" in e["message"] for e in errors)

    gateway.stop()
    await wait_for(failed_listings, timeout=20, what="the first failed listing")
    passes_before = server.request("GET", "autoshutdown/api/status").json()["count"]
    down_until = time.monotonic() + 60
    await wait_for(lambda: time.monotonic() > down_until, timeout=70, interval=1)
    status = server.request("GET", "autoshutdown/api/status").json()
    # Passes ran every timeout (3 s) meanwhile; listings backed off (5, 10, 20, 40 s).
    assert status["count"] >= passes_before + 10, status["count"]
    listings = failed_listings()
    print(f"gateway down 60 s: {status['count'] - passes_before} passes, {listings} failed listings")
    assert listings <= 6, [e["message"] for e in status["errors"]]


# ---- observing changes nothing -------------------------------------------------------------


@pytest.fixture
def kernel_gateway(home):
    gateway = KernelGatewayProcess(home)
    yield gateway
    gateway.stop()


@pytest.fixture
def jp_argv(kernel_gateway):
    """The in-process test server (pytest-jupyter's) with its kernels on the real gateway."""
    from jupyter_server.gateway.gateway_client import GatewayClient

    GatewayClient.clear_instance()  # a singleton: configured from this server's arguments
    yield kernel_gateway.server_args()
    GatewayClient.clear_instance()


class EventsSeen(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.events: list = []

    def emit(self, record: logging.LogRecord) -> None:
        self.events.append(record.msg)


async def test_reading_the_gateway_leaves_the_kernel_table_and_the_event_stream_as_they_were(
    jp_serverapp, jp_fetch, kernel_gateway
):
    kernel_manager = jp_serverapp.kernel_manager
    observer = extension_of(jp_serverapp).monitor.observer  # driven by hand: the monitor is off
    assert observer.remote
    ids = []
    try:
        for _ in range(2):
            reply = await jp_fetch("api", "kernels", method="POST", body=json.dumps({"name": "python3"}))
            ids.append(json.loads(reply.body)["id"])
        live_id, gone_id = ids
        # The gateway culls one behind the server's back: the manager still lists it.
        reply = await asyncio.to_thread(kernel_gateway.request, "DELETE", f"api/kernels/{gone_id}")
        assert reply.status_code == 204, reply.text
        gateway_model = (await asyncio.to_thread(
            kernel_gateway.request, "GET", f"api/kernels/{live_id}")).json()

        def manager_state():
            return (
                {kid: (km, km.execution_state, km.last_activity, km.kernel)
                 for kid, km in kernel_manager._kernels.items()},
                dict(kernel_manager._kernel_connections),
            )

        before = manager_state()
        assert {live_id, gone_id} <= before[0].keys()
        seen = EventsSeen()
        jp_serverapp.event_logger.register_handler(seen)
        try:
            await observer.refresh(True, fresh_for_seconds=0)  # a listing, as each pass
            assert observer.remote_error is None
            snapshot = observer.snapshot(datetime.now(timezone.utc), None)
            assert await observer.refresh_remote_kernel(live_id) is True  # before a shutdown
            assert await observer.refresh_remote_kernel(gone_id) is False
            assert observer.kernels_remain()
            fresh_live, fresh_gone = observer.read_kernel(live_id), observer.read_kernel(gone_id)
            await observer.refresh(True, fresh_for_seconds=0)  # the next pass's listing
            again = observer.snapshot(datetime.now(timezone.utc), None)
        finally:
            jp_serverapp.event_logger.remove_handler(seen)

        # Nothing written into the manager, nothing removed from it, no event in the user's stream.
        assert manager_state() == before
        assert seen.events == []
        # What we read is the gateway's: the kernel it no longer has is not ours to watch.
        assert not snapshot.errors, snapshot.errors
        assert [KernelInfo._make(kernel).id for kernel in snapshot.kernels] == [live_id]
        for record in (snapshot.kernels[0], fresh_live):
            assert KernelInfo._make(record).execution_state == gateway_model["execution_state"]
            assert KernelInfo._make(record).connections == gateway_model["connections"]
            assert KernelInfo._make(record).last_activity == as_utc(gateway_model["last_activity"])
        assert fresh_gone is None
        assert [KernelInfo._make(kernel).id for kernel in again.kernels] == [live_id] and not again.errors
    finally:
        await kernel_manager.shutdown_all()  # before the gateway stops (the gone one: a 404, ignored)
