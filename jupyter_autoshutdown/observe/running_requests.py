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
jupyter_server does). That socket subscribes only to the topics ipykernel publishes status on
(``kernel.<ident>.status``, with ``execute_input`` and errors beside it), never to output
(``stream.*``, ``display_data``, ...): a cell printing thousands of lines puts nothing in its queue, so
the queue never reaches its high-water mark and never drops the idle that ends the cell. Gateway
kernels keep the gateway's `execution_state`.

Recovery when an idle is lost anyway (jupyter_server's own socket does lose them in output storms,
and its `execution_state` then says busy for ever): a kernel taken for busy that has sent nothing we
receive for `PROBE_AFTER_SECONDS` is sent a shell-channel `kernel_info_request`. The shell channel
is served one request at a time, so the reply means every request sent before it has ended; what
was registered as running before the probe went out is cleared. The probe's own status messages
are not activity: when the reply comes at once, the kernel's last activity stays what it was
before the probe (see `probed`). jupyter_server's `execution_state` is not touched.

Until this extension has seen a kernel's state for itself, the kernel is busy ("unconfirmed"):
our subscription can land after a cell said busy (a loaded machine, a kernel already running when
the checker starts), and jupyter_server may meanwhile have copied a control request's idle, so no
source we can read would say the cell runs. The watch therefore confirms the kernel itself: once
its IOPub delivers (the subscription is live, so nothing later is missed), a shell-channel probe
goes out; its answer means every request sent before it has ended, and with the subscription live
every later one is seen. Seeing a cell (`execute_request`) end, or the kernel say `starting` (a
new process), confirms it too. A kernel jupyter_server calls starting, restarting or dead runs no
cell, so being unconfirmed does not make it busy; a kernel whose IOPub never delivers anything for
`UNCONFIRMED_GIVE_UP_SECONDS` while no probe waits is left to jupyter_server's state (logged). The
confirmation is not activity: its status messages come at the moment the watch starts, which
counts as the kernel's activity anyway (below).

One effect of watching: ipykernel's XPUB answers each new subscription topic with an
`iopub_welcome` message to every subscriber, and jupyter_server counts any message without a
parent as the kernel's activity. The monitor is woken when a kernel starts and watches it at once,
so that moment is the kernel's start; a kernel that was already running when the checker started
(the extension enabled on a running server) counts as active once, when it is first watched, as
a resource first seen does.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import zmq

from ..core.records import NOT_RUNNING_STATES, utcnow
from .readers import activity_of

#: The request a kernel was running before we subscribed to it (it said busy and we missed why).
UNKNOWN_REQUEST = "?"
#: A kernel that never says idle for requests (lost messages) must not grow without bound.
MAX_TRACKED_REQUESTS = 256
#: IOPub topics we read: ipykernel's status (and execute_input, error, debug_event) go out as
#: "kernel.<ident>.<type>". Output topics ("stream.stdout", ...) are left out. One topic, so one
#: welcome message per kernel (see the module docstring). Not the delimiter "<IDS|MSG>" (messages
#: without a topic): the welcome's topic is the subscription, sent to every subscriber, and one
#: equal to the delimiter breaks jupyter_server's own parsing of it. A kernel we hear nothing from
#: keeps jupyter_server's state.
STATUS_TOPICS = (b"kernel.",)
#: The msg_id of every probe starts with this.
PROBE_ID_PREFIX = "jupyter_autoshutdown-probe-"
#: A kernel taken for busy that sent nothing for this long is probed (see the module docstring).
PROBE_AFTER_SECONDS = 15.0
#: How often busy kernels are looked at for a probe.
PROBE_CHECK_SECONDS = 5.0
#: A probe answered within this long was answered at once: nothing was running.
PROBE_PROMPT_SECONDS = 2.0
#: A probe not answered for this long is sent again on a fresh socket (the first may be lost).
PROBE_RESEND_SECONDS = 600.0
#: jupyter_server records the probe's status messages a little after the reply: that long is
#: still the probe's.
PROBE_ECHO_SECONDS = 1.0
#: An unconfirmed kernel whose IOPub has delivered nothing this long, with no probe waiting behind
#: a running request, is left to jupyter_server's state (its status messages do not reach us).
UNCONFIRMED_GIVE_UP_SECONDS = 60.0



class _Probe:
    __slots__ = ("activity_before", "msg_id", "sent_at", "sent_monotonic", "sent_while_live", "stream")

    def __init__(self, stream: Any, msg_id: str, activity_before: Any, sent_at: datetime,
                 sent_while_live: bool) -> None:
        self.stream = stream
        self.msg_id = msg_id
        self.activity_before = activity_before
        self.sent_at = sent_at
        self.sent_monotonic = time.monotonic()
        #: Sent after the kernel's IOPub delivered: its answer confirms the kernel's state.
        self.sent_while_live = sent_while_live


class _Watch:
    __slots__ = ("kernel", "last_message", "live", "pid", "probe", "running", "stream", "watched_at")

    def __init__(self, stream: Any, pid: Any, kernel: Any = None) -> None:
        self.stream = stream
        #: request msg_id -> (its msg_type, monotonic time its busy came), for requests said busy
        #: and not yet idle.
        self.running: dict[str, tuple[str, float]] = {}
        self.pid = pid
        self.kernel = kernel
        #: Monotonic time of the last message this socket delivered.
        self.last_message = self.watched_at = time.monotonic()
        #: The socket has delivered a message: the subscription is in place, nothing later is missed.
        self.live = False
        self.probe: _Probe | None = None


class _KernelProbes:
    """Probing for RunningRequests (below): the shell-channel requests that confirm a kernel's
    state when it is first watched, and repair a busy whose idle was lost."""

    log: logging.Logger
    clock: Callable[[], datetime]
    on_change: Callable[[], None]
    busy: set[str]
    probed: dict[str, tuple[Any, datetime]]
    unconfirmed: set[str]
    _watches: dict[str, _Watch | None]
    _silent: set[str]

    def taken_for_busy(self, kernel_id: str, kernel: Any) -> bool:
        raise NotImplementedError

    def _confirm(self, kernel_id: str, why: str) -> None:
        if kernel_id in self.unconfirmed:
            self.unconfirmed.discard(kernel_id)
            self.log.debug("auto-shutdown: kernel %s's state is confirmed (%s)", kernel_id, why)
            self.on_change()

    # ---- probing kernels taken for busy ---------------------------------------------------

    async def _probe_loop(self) -> None:
        while True:
            await asyncio.sleep(PROBE_CHECK_SECONDS)
            try:
                self.probe_quiet_kernels()
            except Exception as error:  # probing is a repair: it must never stop
                self.log.warning("auto-shutdown: probing busy kernels failed: %r", error)

    def probe_quiet_kernels(self) -> int:
        """Probe every kernel taken for busy that has sent nothing for PROBE_AFTER_SECONDS; how
        many were probed."""
        quiet_seconds = PROBE_AFTER_SECONDS
        now = time.monotonic()
        probes = 0
        for kernel_id, watch in list(self._watches.items()):
            if watch is None:
                continue
            if kernel_id in self.unconfirmed:
                probes += self._confirm_quiet_kernel(kernel_id, watch, now)
                continue
            if kernel_id in self._silent:
                continue
            kernel = watch.kernel
            if not self.taken_for_busy(kernel_id, kernel):
                continue
            if watch.probe is not None:
                if now - watch.probe.sent_monotonic < PROBE_RESEND_SECONDS:
                    continue  # queued behind a running cell: its answer comes when the cell ends
                _drop_probe(watch)
            if now - watch.last_message < quiet_seconds:
                continue
            activity = activity_of(kernel)
            if isinstance(activity, datetime) and (self.clock() - activity).total_seconds() < quiet_seconds:
                continue
            if self._send_probe(kernel_id, watch):
                probes += 1
        return probes

    def _confirm_quiet_kernel(self, kernel_id: str, watch: _Watch, now: float) -> int:
        """Probe an unconfirmed kernel again, or give up when its IOPub never delivers; probes sent."""
        probe = watch.probe
        # A kernel whose IOPub never delivers (its topics are not ipykernel's, as IRkernel's) is
        # left to jupyter_server's state, whether or not a probe waits.
        if probe is not None and (watch.live or now - watch.watched_at < UNCONFIRMED_GIVE_UP_SECONDS):
            if now - probe.sent_monotonic < PROBE_RESEND_SECONDS:
                return 0  # waiting behind a running request: busy, as it should be
            _drop_probe(watch)
        if not watch.live and now - watch.watched_at >= UNCONFIRMED_GIVE_UP_SECONDS:
            _drop_probe(watch)
            self.unconfirmed.discard(kernel_id)
            self.log.warning("auto-shutdown: kernel %s sent us no status message in %.0f s; its busy "
                             "state is jupyter_server's from now on", kernel_id, now - watch.watched_at)
            self.on_change()
            return 0
        return int(self._confirming_probe(kernel_id, watch))

    def _confirming_probe(self, kernel_id: str, watch: _Watch) -> bool:
        """Probe an unconfirmed kernel unless a probe waits or it runs nothing yet (not a starting
        one: jupyter_server would call it idle, and one nobody talks to is culled as starting)."""
        if kernel_id not in self.unconfirmed or watch.probe is not None:
            return False
        if getattr(watch.kernel, "execution_state", None) in NOT_RUNNING_STATES:
            return False
        return self._send_probe(kernel_id, watch)

    def _send_probe(self, kernel_id: str, watch: _Watch) -> bool:
        kernel = watch.kernel
        try:
            stream, msg_id = _send_kernel_info_request(kernel)
        except Exception as error:
            self.log.debug("auto-shutdown: cannot probe kernel %s: %r", kernel_id, error)
            return False
        probe = _Probe(stream, msg_id, activity_of(kernel), self.clock(), watch.live)
        watch.probe = probe
        self.log.debug("auto-shutdown: probing kernel %s", kernel_id)

        def on_reply(frames: list[bytes]) -> None:
            if _parent_id_of(kernel.session, frames) == probe.msg_id:
                self._probe_answered(kernel_id, watch, probe)

        stream.on_recv(on_reply)
        return True

    def _probe_answered(self, kernel_id: str, watch: _Watch, probe: _Probe) -> None:
        """Every request registered before the probe went out has ended."""
        if watch.probe is not probe:
            return
        _drop_probe(watch)
        ended = [request for request, (_, since) in watch.running.items() if since <= probe.sent_monotonic]
        for request in ended:
            del watch.running[request]
        if not watch.running:
            self.busy.discard(kernel_id)
        if kernel_id in self.unconfirmed:  # a confirming probe, not a repair
            if probe.sent_while_live:
                self._confirm(kernel_id, "it answered a probe")
            elif watch.live:
                self._confirming_probe(kernel_id, watch)  # live since: this one confirms
            if ended:
                self.on_change()
            return
        answered_at = self.clock()
        prompt = (answered_at - probe.sent_at).total_seconds() <= PROBE_PROMPT_SECONDS
        if prompt:
            # Nothing ran: the probe's status messages (which jupyter_server counts as activity
            # while it takes the kernel for busy) are not activity. A repair worth a line:
            # jupyter_server lost the kernel's idle and showed it busy.
            self.probed[kernel_id] = (probe.activity_before,
                                      answered_at + timedelta(seconds=PROBE_ECHO_SECONDS))
            self.log.info(
                "auto-shutdown: kernel %s looked busy but is idle (it answered at once; its idle "
                "message was lost): its idle time counts again", kernel_id)
        else:
            # The usual end of a cell that printed nothing for a while: nothing went wrong.
            self.log.debug("auto-shutdown: kernel %s finished its quiet work (%d request(s) ended)",
                           kernel_id, len(ended))
        self.on_change()


class RunningRequests(_KernelProbes):
    """Per local kernel: the requests it is running; `busy` is the set of kernels running any."""

    def __init__(
        self,
        log: logging.Logger,
        clock: Callable[[], datetime] = utcnow,
        on_change: Callable[[], None] | None = None,
    ) -> None:
        self.log = log
        self.clock = clock
        #: Called when a probe finds a kernel taken for busy idle (its deadlines moved).
        self.on_change = on_change or (lambda: None)
        #: Kernel ids running at least one request now. Read by observe on every pass.
        self.busy: set[str] = set()
        #: Kernel id -> (its last activity before a probe answered at once, until when the probe's
        #: echo lasted): activity times up to then are the probe's, not the kernel's, and a busy
        #: jupyter_server still shows is a lost idle.
        self.probed: dict[str, tuple[Any, datetime]] = {}
        #: Watched kernels whose state this extension has not seen for itself yet (the module
        #: docstring): busy unless jupyter_server says they run nothing. Read by observe.
        self.unconfirmed: set[str] = set()
        self._watches: dict[str, _Watch | None] = {}
        #: Watched kernels whose socket has delivered nothing yet: a busy it missed while connecting
        #: is taken from jupyter_server's state until then (the fallback where no probe can go).
        self._silent: set[str] = set()
        self._prober: asyncio.Task[None] | None = None

    def sync(self, kernels: dict[str, Any]) -> None:
        """Watch new local kernels, forget gone ones. `kernels`: the manager's id -> kernel table."""
        watches = self._watches
        if watches.keys() != kernels.keys():
            for gone in watches.keys() - kernels.keys():
                self._unwatch(gone)
            for kernel_id in kernels.keys() - watches.keys():
                watches[kernel_id] = self._watch(kernel_id, kernels[kernel_id])
                self.log.debug("auto-shutdown: %s kernel %s's status messages",
                               "watching" if watches[kernel_id] else "not watching", kernel_id)
        for kernel_id in self.unconfirmed | self._silent:
            watch = watches.get(kernel_id)
            if watch is not None:
                self._confirming_probe(kernel_id, watch)  # e.g. no longer starting
                if kernel_id in self._silent:
                    self._take_servers_busy(kernel_id, watch)
        # A kernel restarted (its process changed) runs nothing of what its old process ran. Every
        # watch learns its new process, so a cell of the new one is never taken for the old's.
        for kernel_id, watch in watches.items():
            if watch is not None and _pid_of(kernels.get(kernel_id)) != watch.pid:
                watch.pid = _pid_of(kernels.get(kernel_id))
                if kernel_id in self.busy:
                    self.log.debug("auto-shutdown: kernel %s has a new process: what it ran is over",
                                   kernel_id)
                    self._clear(kernel_id, watch)

    def restarted(self, kernel_id: str) -> None:
        """The kernel was restarted (kernel_actions event): what it ran is over."""
        watch = self._watches.get(kernel_id)
        if watch is not None:
            watch.pid = _pid_of(watch.kernel)
            self._clear(kernel_id, watch)

    def start(self) -> None:
        """Start looking for kernels taken for busy that show no sign of running (probes)."""
        if self._prober is None or self._prober.done():
            self._prober = asyncio.ensure_future(self._probe_loop())

    def close(self) -> None:
        if self._prober is not None:
            self._prober.cancel()
            self._prober = None
        for kernel_id in list(self._watches):
            self._unwatch(kernel_id)

    # ---- reading (no side effects) --------------------------------------------------------

    def taken_for_busy(self, kernel_id: str, kernel: Any) -> bool:
        """Busy by our tracking, or by jupyter_server's state unless a probe showed it stale."""
        if kernel_id in self.busy:
            return True
        state = getattr(kernel, "execution_state", None)
        if kernel_id in self.unconfirmed and state not in NOT_RUNNING_STATES:
            return True
        return state == "busy" and not self.settled(kernel_id, activity_of(kernel))

    def settled(self, kernel_id: str, last_activity: Any) -> bool:
        """True when a probe answered at once and nothing happened on the kernel since."""
        probed = self.probed.get(kernel_id)
        return probed is not None and _within(last_activity, probed[1])

    def activity_before_probe(self, kernel_id: str, last_activity: Any) -> Any:
        """`last_activity`, or the time before our probe when its echo is all that happened since."""
        probed = self.probed.get(kernel_id)
        if probed is not None and probed[0] is not None and _within(last_activity, probed[1]):
            return probed[0]
        return last_activity

    # ---- watching -------------------------------------------------------------------------

    def _watch(self, kernel_id: str, kernel: Any) -> _Watch | None:
        connect = getattr(kernel, "connect_iopub", None)
        session = getattr(kernel, "session", None)
        if connect is None or session is None or not getattr(kernel, "has_kernel", True):
            return None  # a remote (gateway) kernel, or a test double: its own state is used
        try:
            stream = connect()
            _subscribe_to_status_only(stream)
        except Exception as error:
            self.log.debug("auto-shutdown: cannot watch kernel %s's IOPub: %r", kernel_id, error)
            return None
        watch = _Watch(stream, _pid_of(kernel), kernel)
        self._silent.add(kernel_id)
        self._take_servers_busy(kernel_id, watch)  # subscribed mid-request
        # Unconfirmed until a probe sent once the subscription is live answers (module docstring);
        # a kernel that cannot be probed (a test double) keeps the fallbacks.
        if hasattr(kernel, "connect_shell"):
            self.unconfirmed.add(kernel_id)
            self._confirming_probe(kernel_id, watch)

        def on_message(frames: list[bytes]) -> None:
            watch.last_message = time.monotonic()
            if not watch.live:
                watch.live = True
                self._confirming_probe(kernel_id, watch)  # the one whose answer confirms
            if kernel_id in self._silent:
                # The first message delivered: from now on nothing is missed. Whatever started
                # before is known only to jupyter_server: take its busy now, before a control
                # request's idle can overwrite it.
                self._silent.discard(kernel_id)
                self._take_servers_busy(kernel_id, watch)
            status = _status_of(session, frames)
            if status is not None:
                self._on_status(kernel_id, watch, *status)

        stream.on_recv(on_message)
        return watch

    def _on_status(self, kernel_id: str, watch: _Watch, state: Any, parent: Any) -> None:
        request = parent.get("msg_id") if isinstance(parent, dict) else None
        running = watch.running
        self.log.debug("auto-shutdown: kernel %s: %s for %s; running: %s", kernel_id, state, request, running)
        if state == "starting":
            self._clear(kernel_id, watch)  # a new kernel process
            self._confirm(kernel_id, "it said starting")
            return
        if not request or not isinstance(request, str):
            return
        if request.startswith(PROBE_ID_PREFIX):
            return  # our own probe's busy and idle: not the kernel's work
        if state == "busy":
            if len(running) < MAX_TRACKED_REQUESTS:
                running[request] = (str(parent.get("msg_type")), time.monotonic())
            self.busy.add(kernel_id)
        elif state == "idle":
            running.pop(request, None)
            if parent.get("msg_type") == "execute_request":
                # Cells run one at a time: whatever ran before this one has ended too.
                running.pop(UNKNOWN_REQUEST, None)
                self._confirm(kernel_id, "a cell ended")
            if not running:
                self.busy.discard(kernel_id)

    def _take_servers_busy(self, kernel_id: str, watch: _Watch) -> None:
        """A busy only jupyter_server saw (it went out before we subscribed): busy until a cell ends."""
        if getattr(watch.kernel, "execution_state", None) == "busy":
            watch.running.setdefault(UNKNOWN_REQUEST, ("execute_request", time.monotonic()))
            self.busy.add(kernel_id)

    def _clear(self, kernel_id: str, watch: _Watch) -> None:
        watch.running.clear()
        self.busy.discard(kernel_id)

    def _unwatch(self, kernel_id: str) -> None:
        watch = self._watches.pop(kernel_id, None)
        self.busy.discard(kernel_id)
        self._silent.discard(kernel_id)
        self.unconfirmed.discard(kernel_id)
        self.probed.pop(kernel_id, None)
        if watch is not None:
            _drop_probe(watch)
            try:
                watch.stream.close()
            except Exception as error:
                self.log.debug("auto-shutdown: closing kernel %s's IOPub failed: %r", kernel_id, error)


def _drop_probe(watch: _Watch) -> None:
    probe, watch.probe = watch.probe, None
    if probe is not None:
        with contextlib.suppress(Exception):
            probe.stream.close()


def _send_kernel_info_request(kernel: Any) -> tuple[Any, str]:
    """Send a kernel_info_request on a fresh shell socket: the socket and the request's id."""
    stream = kernel.connect_shell()
    message = kernel.session.msg("kernel_info_request", {})
    # A recognisable id: its busy and idle are ours, whenever they arrive.
    message["header"]["msg_id"] = message["msg_id"] = PROBE_ID_PREFIX + uuid.uuid4().hex
    kernel.session.send(stream, message)
    return stream, message["header"]["msg_id"]


def _parent_id_of(session: Any, frames: list[bytes]) -> Any:
    """The msg_id of the request a reply answers; None for a malformed message."""
    try:
        _, parts = session.feed_identities(frames, copy=True)
        parent = session.unpack(parts[2])
    except Exception:
        return None
    return parent.get("msg_id") if isinstance(parent, dict) else None


def _status_of(session: Any, frames: list[bytes]) -> tuple[Any, Any] | None:
    """(execution_state, parent header) of a status message; None for any other message."""
    try:
        _, parts = session.feed_identities(frames, copy=True)
        # parts: signature, header, parent header, metadata, content, buffers...
        if b'"status"' not in parts[1]:
            return None
        if session.unpack(parts[1]).get("msg_type") != "status":
            return None
        return session.unpack(parts[4]).get("execution_state"), session.unpack(parts[2])
    except Exception:  # a malformed message tells us nothing; never raise into zmq
        return None


def _within(moment: Any, until: datetime | None) -> bool:
    if until is None or not isinstance(moment, datetime):
        return False
    try:
        return moment <= until
    except TypeError:  # a naive time: not ours to compare
        return False


def _subscribe_to_status_only(stream: Any) -> None:
    """Replace the everything-subscription connect_iopub made by the status topics only."""
    socket = getattr(stream, "socket", stream)
    if not hasattr(socket, "setsockopt"):
        return  # a test double
    for topic in STATUS_TOPICS:
        socket.setsockopt(zmq.SUBSCRIBE, topic)
    socket.setsockopt(zmq.UNSUBSCRIBE, b"")


def _pid_of(kernel: Any) -> Any:
    return getattr(getattr(kernel, "provisioner", None), "pid", None)
