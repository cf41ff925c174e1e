"""Remote kernels: a real Jupyter Kernel Gateway behind a real `jupyter server --gateway-url`."""

from __future__ import annotations

import time

import pytest
from helpers import KernelSession, wait_for
from server_process import TOKEN, KernelGatewayProcess, ServerProcess

from jupyter_autoshutdown.policy import INCOMPLETE

TIMEOUT_SECONDS = 3.0


@pytest.fixture
def server_args() -> list[str]:
    return []


@pytest.fixture
def gateway_and_server(home, server_args):
    gateway = KernelGatewayProcess(home)
    server = None
    try:
        server = ServerProcess(
            home, *gateway.server_args(), f"--AutoShutdown.idle_timeout={TIMEOUT_SECONDS / 60}",
            *server_args,
        )
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
