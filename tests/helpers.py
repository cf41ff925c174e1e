"""Helpers for driving a real server: polling with deadlines, real kernels over the websocket."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from jupyter_autoshutdown.app import AutoShutdown


async def wait_for(
    condition: Callable[[], Any], timeout: float = 20.0, interval: float = 0.02, what: str = ""
) -> Any:
    """Poll `condition` (sync or async) until it returns a truthy value; fail after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if isinstance(value, Awaitable):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what or condition}")
        await asyncio.sleep(interval)


def kernel_gone(serverapp: Any, kernel_id: str) -> bool:
    return kernel_id not in serverapp.kernel_manager


def extension_of(serverapp: Any) -> AutoShutdown:
    return serverapp.extension_manager.extension_points["jupyter_autoshutdown"].app


async def start_extension(serverapp: Any) -> AutoShutdown:
    """jp_serverapp does not run extensions' start hooks; this starts the monitor."""
    if hasattr(serverapp.extension_manager, "start_all_extensions"):
        await serverapp.extension_manager.start_all_extensions()
    # else: jupyter_server < 2.16 has no start hook; the extension starts itself on the loop
    extension = extension_of(serverapp)
    await wait_for(lambda: extension.monitor.count >= 1, what="the first check pass")
    return extension


async def wait_passes(extension: AutoShutdown, passes: int = 2) -> None:
    """Wait until the monitor has completed `passes` more check passes."""
    target = extension.monitor.count + passes
    await wait_for(lambda: extension.monitor.count >= target, what=f"{passes} check passes")


async def wait_pass_after(extension: AutoShutdown, moment: Any) -> None:
    """Wait until a check pass has run at or after the UTC datetime `moment`."""
    await wait_for(
        lambda: extension.monitor.last_check is not None and extension.monitor.last_check >= moment,
        what=f"a check pass after {moment}",
    )


async def api(jp_fetch: Any, *parts: str, method: str = "GET", body: Any = None, **kwargs: Any) -> Any:
    if body is not None and not isinstance(body, (str, bytes)):
        body = json.dumps(body)
    response = await jp_fetch(*parts, method=method, body=body, **kwargs)
    return json.loads(response.body) if response.body else None


async def start_kernel(jp_fetch: Any, name: str = "python3") -> str:
    model = await api(jp_fetch, "api", "kernels", method="POST", body={"name": name})
    return model["id"]


class KernelSession:
    """A websocket client of one kernel, speaking the JSON messaging protocol."""

    def __init__(self, ws: Any, kernel_id: str) -> None:
        self.ws = ws
        self.kernel_id = kernel_id
        self.session = uuid.uuid4().hex

    @classmethod
    async def connect(cls, jp_ws_fetch: Any, kernel_id: str) -> KernelSession:
        ws = await jp_ws_fetch("api", "kernels", kernel_id, "channels")
        return cls(ws, kernel_id)

    @classmethod
    async def connect_url(cls, http_url: str, token: str, kernel_id: str) -> KernelSession:
        """Connect to a kernel of a server running in another process."""
        from tornado.httpclient import HTTPRequest
        from tornado.websocket import websocket_connect

        url = http_url.replace("http", "ws", 1) + f"/api/kernels/{kernel_id}/channels"
        ws = await websocket_connect(HTTPRequest(url, headers={"Authorization": f"token {token}"}))
        return cls(ws, kernel_id)

    async def send(self, msg_type: str, content: dict, channel: str = "shell") -> str:
        """Send one request on `channel` (shell, control, stdin); its msg_id."""
        message = self._message(msg_type, content)
        message["channel"] = channel
        await self.ws.write_message(json.dumps(message))
        return message["header"]["msg_id"]

    def _message(self, msg_type: str, content: dict) -> dict:
        return {
            "header": {
                "msg_id": uuid.uuid4().hex,
                "msg_type": msg_type,
                "session": self.session,
                "username": "test",
                "version": "5.3",
                "date": "",
            },
            "parent_header": {},
            "metadata": {},
            "content": content,
            "channel": "shell",
            "buffers": [],
        }

    async def send_execute(self, code: str) -> str:
        message = self._message(
            "execute_request",
            {"code": code, "silent": False, "store_history": False,
             "user_expressions": {}, "allow_stdin": False},
        )
        await self.ws.write_message(json.dumps(message))
        return message["header"]["msg_id"]

    async def wait_idle(self, msg_id: str, timeout: float = 30.0) -> None:
        """Read messages until the kernel reports idle for the request `msg_id`."""

        async def read() -> None:
            while True:
                try:
                    raw = await self.ws.read_message()
                except asyncio.CancelledError:
                    # Tornado cancels a pending read when the server closes the connection.
                    task = asyncio.current_task()
                    if task is not None and task.cancelling():
                        raise
                    raw = None
                if raw is None:
                    raise AssertionError("kernel websocket closed")
                msg = json.loads(raw)
                if (
                    msg.get("msg_type") == "status"
                    and msg.get("parent_header", {}).get("msg_id") == msg_id
                    and msg["content"].get("execution_state") == "idle"
                ):
                    return

        await asyncio.wait_for(read(), timeout)

    async def wait_reply(self, msg_id: str, timeout: float = 60.0) -> dict:
        """Read messages until the shell reply to `msg_id` (never dropped, unlike IOPub's idle)."""

        async def read() -> dict:
            while True:
                raw = await self.ws.read_message()
                if raw is None:
                    raise AssertionError("kernel websocket closed")
                if '_reply"' not in raw:
                    continue  # output: a cheap test first
                msg = json.loads(raw)
                if msg.get("channel") == "shell" and msg.get("parent_header", {}).get("msg_id") == msg_id:
                    return msg

        return await asyncio.wait_for(read(), timeout)

    async def execute(self, code: str, timeout: float = 30.0) -> None:
        await self.wait_idle(await self.send_execute(code), timeout)

    def close(self) -> None:
        self.ws.close()
