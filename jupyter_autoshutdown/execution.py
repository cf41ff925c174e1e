"""Which kernels are running a request right now, from each kernel's own status messages.

jupyter_server's `execution_state` is the state of the *last* status message whose parent type it
tracks. ipykernel answers control-channel requests (a completion, jupyter-resource-usage's
`usage_request`) on another thread while a cell runs, and publishes busy and then idle for each:
the idle makes a kernel that is still running a cell look idle, and it would be culled with the
cell running. Here a kernel is busy while any request it said busy for has not been followed by
idle *for that same request* (status messages carry their request's id as parent). So a control
request answered in the middle of a cell ends only itself, whatever channel it came on; a cell
waiting in `input()` stays busy.

Local kernels only: each is watched on its own IOPub socket, read on the server's event loop (as
jupyter_server does) with only the header parsed for messages that are not status messages.
Gateway kernels keep the gateway's `execution_state`.
"""

from __future__ import annotations

import logging
from typing import Any

#: The request a kernel was running before we subscribed to it (it said busy and we missed why).
UNKNOWN_REQUEST = "?"
#: A kernel that never says idle for requests (lost messages) must not grow without bound.
MAX_TRACKED_REQUESTS = 256


class _Watch:
    __slots__ = ("pid", "running", "stream")

    def __init__(self, stream: Any, pid: Any) -> None:
        self.stream = stream
        #: request msg_id -> its msg_type, for requests said busy and not yet idle.
        self.running: dict[str, str] = {}
        self.pid = pid


class RunningRequests:
    """Per local kernel: the requests it is running; `busy` is the set of kernels running any."""

    def __init__(self, log: logging.Logger) -> None:
        self.log = log
        #: Kernel ids running at least one request now. Read by observe on every pass.
        self.busy: set[str] = set()
        self._watches: dict[str, _Watch | None] = {}
        #: Watched kernels whose socket has delivered nothing yet: a busy it missed while connecting
        #: is taken from jupyter_server's state until then.
        self._unconfirmed: set[str] = set()

    def sync(self, kernels: dict[str, Any]) -> None:
        """Watch new local kernels, forget gone ones. `kernels`: the manager's id -> kernel table."""
        watches = self._watches
        if watches.keys() != kernels.keys():
            for gone in watches.keys() - kernels.keys():
                self._unwatch(gone)
            for kernel_id in kernels.keys() - watches.keys():
                watches[kernel_id] = self._watch(kernel_id, kernels[kernel_id])
                self.log.debug("auto-shutdown: %s kernel %s's status messages (jupyter_server says %s)",
                               "watching" if watches[kernel_id] else "not watching", kernel_id,
                               getattr(kernels[kernel_id], "execution_state", None))
        for kernel_id in list(self._unconfirmed):
            watch = watches.get(kernel_id)
            kernel = kernels.get(kernel_id)
            if watch is not None and getattr(kernel, "execution_state", None) == "busy":
                watch.running.setdefault(UNKNOWN_REQUEST, "execute_request")
                self.busy.add(kernel_id)
        # A kernel restarted (its process changed) runs nothing of what its old process ran.
        for kernel_id in list(self.busy):
            watch = watches.get(kernel_id)
            if watch is not None and _pid_of(kernels.get(kernel_id)) != watch.pid:
                self.log.debug("auto-shutdown: kernel %s has a new process: what it ran is over", kernel_id)
                watch.pid = _pid_of(kernels.get(kernel_id))
                self._clear(kernel_id, watch)

    def restarted(self, kernel_id: str) -> None:
        """The kernel was restarted (kernel_actions event): what it ran is over."""
        watch = self._watches.get(kernel_id)
        if watch is not None:
            self._clear(kernel_id, watch)

    def close(self) -> None:
        for kernel_id in list(self._watches):
            self._unwatch(kernel_id)

    def _watch(self, kernel_id: str, kernel: Any) -> _Watch | None:
        connect = getattr(kernel, "connect_iopub", None)
        session = getattr(kernel, "session", None)
        if connect is None or session is None or not getattr(kernel, "has_kernel", True):
            return None  # a remote (gateway) kernel, or a test double: its own state is used
        try:
            stream = connect()
        except Exception as error:
            self.log.debug("auto-shutdown: cannot watch kernel %s's IOPub: %r", kernel_id, error)
            return None
        watch = _Watch(stream, _pid_of(kernel))
        self._unconfirmed.add(kernel_id)
        if getattr(kernel, "execution_state", None) == "busy":
            # Subscribed mid-request: keep it busy until a cell ends.
            watch.running[UNKNOWN_REQUEST] = "execute_request"
            self.busy.add(kernel_id)
        unpack = session.unpack
        feed_identities = session.feed_identities

        def on_message(frames: list[bytes]) -> None:
            if kernel_id in self._unconfirmed:
                # The first message delivered: from now on nothing is missed. Whatever started
                # before (a cell whose busy went out before we were subscribed, on a loaded
                # machine) is known only to jupyter_server: take its busy now, before a control
                # request's idle can overwrite it.
                self._unconfirmed.discard(kernel_id)
                state_now = getattr(kernel, "execution_state", None)
                self.log.debug("auto-shutdown: kernel %s's IOPub delivers (jupyter_server says %s)",
                               kernel_id, state_now)
                if state_now == "busy":
                    watch.running.setdefault(UNKNOWN_REQUEST, "execute_request")
                    self.busy.add(kernel_id)
            try:
                _, parts = feed_identities(frames, copy=True)
                # parts: signature, header, parent header, metadata, content, buffers...
                if b'"status"' not in parts[1]:
                    return
                header = unpack(parts[1])
                if header.get("msg_type") != "status":
                    return
                parent = unpack(parts[2])
                state = unpack(parts[4]).get("execution_state")
            except Exception:  # a malformed message tells us nothing; never raise into zmq
                return
            self._on_status(kernel_id, watch, state, parent)

        stream.on_recv(on_message)
        return watch

    def _on_status(self, kernel_id: str, watch: _Watch, state: Any, parent: Any) -> None:
        request = parent.get("msg_id") if isinstance(parent, dict) else None
        running = watch.running
        if self.log.isEnabledFor(logging.DEBUG):
            self.log.debug("auto-shutdown: kernel %s: %s for %s %s; running before: %s", kernel_id, state,
                           parent.get("msg_type") if isinstance(parent, dict) else None, request,
                           list(running.values()))
        if state == "starting":
            self._clear(kernel_id, watch)  # a new kernel process
            return
        if not request or not isinstance(request, str):
            return
        if state == "busy":
            if len(running) < MAX_TRACKED_REQUESTS:
                running[request] = str(parent.get("msg_type"))
            self.busy.add(kernel_id)
        elif state == "idle":
            running.pop(request, None)
            if parent.get("msg_type") == "execute_request":
                running.pop(UNKNOWN_REQUEST, None)
            if not running:
                self.busy.discard(kernel_id)

    def _clear(self, kernel_id: str, watch: _Watch) -> None:
        watch.running.clear()
        self.busy.discard(kernel_id)

    def _unwatch(self, kernel_id: str) -> None:
        watch = self._watches.pop(kernel_id, None)
        self.busy.discard(kernel_id)
        self._unconfirmed.discard(kernel_id)
        if watch is not None:
            try:
                watch.stream.close()
            except Exception as error:
                self.log.debug("auto-shutdown: closing kernel %s's IOPub failed: %r", kernel_id, error)


def _pid_of(kernel: Any) -> Any:
    return getattr(getattr(kernel, "provisioner", None), "pid", None)
