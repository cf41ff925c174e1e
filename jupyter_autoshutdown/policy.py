"""Every rule about what is idle and when it is shut down. Pure: no I/O, no clock, no globals.

With a timeout T (``idle_timeout`` minutes; 0 turns everything off):

Kernels
  - A kernel is shut down once ``now - last_activity >= T``. Activity is any message the kernel
    sends (output, status changes, replies), as jupyter_server records it.
  - A busy kernel (running code) is never shut down, unless ``cull_busy`` is on.
  - Open connections (browser tabs) do not keep a kernel alive, unless ``cull_connected`` is off.
  - A kernel still ``starting`` (no client has talked to it yet, so no code has run in it) is
    shut down after ``min(T, starting_timeout)``; ``starting_timeout = 0`` means just T.
Terminals
  - Only once no kernels remain, a terminal whose last input or output is older than T is
    removed, unless ``keep_terminals`` is on.
The app action
  - Once no kernels and no terminals remain, and the server has seen no activity for T, the
    configured app action runs, once per idle period. The idle period starts at the latest of:
    the server's last activity (server start, user HTTP requests, kernel and terminal traffic)
    and the moment the last kernel or terminal went away.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from .observe import KernelInfo, Snapshot, TerminalInfo
from .settings import Settings


@dataclass(frozen=True)
class Verdict:
    """The decision about one kernel or terminal, with its reason in words."""

    kind: str  # "kernel" or "terminal"
    id: str
    idle_seconds: float | None
    #: When it will be shut down if nothing changes; None when it is not scheduled at all.
    deadline: datetime | None
    due: bool
    reason: str


@dataclass(frozen=True)
class AppState:
    """Facts about the app action that only the monitor can know."""

    action: str  # the configured action's name; "none" disables it
    #: When the server was last seen with no kernels and no terminals (None: some exist).
    empty_since: datetime | None = None
    #: When the app action last ran.
    fired_at: datetime | None = None


@dataclass(frozen=True)
class AppVerdict:
    idle_seconds: float | None
    deadline: datetime | None
    due: bool
    reason: str


@dataclass(frozen=True)
class Plan:
    kernels: tuple[Verdict, ...]
    terminals: tuple[Verdict, ...]
    app: AppVerdict
    #: The earliest deadline still in the future; None when nothing is scheduled.
    next_deadline: datetime | None

    @property
    def kernels_to_cull(self) -> list[Verdict]:
        return [verdict for verdict in self.kernels if verdict.due]

    @property
    def terminals_to_cull(self) -> list[Verdict]:
        return [verdict for verdict in self.terminals if verdict.due]


def _idle_seconds(last_activity: datetime | None, now: datetime) -> float | None:
    if last_activity is None:
        return None
    return max(0.0, (now - last_activity).total_seconds())


def _scheduled(kind: str, ident: str, idle: float | None, deadline: datetime, now: datetime,
               reason: str) -> Verdict:
    return Verdict(kind, ident, idle, deadline, now >= deadline, reason)


def kernel_verdict(kernel: KernelInfo, settings: Settings, now: datetime) -> Verdict:
    idle = _idle_seconds(kernel.last_activity, now)
    if not settings.enabled:
        return Verdict("kernel", kernel.id, idle, None, False, "auto-shutdown is off")
    if kernel.last_activity is None:
        return Verdict("kernel", kernel.id, idle, None, False, "no activity time known yet")
    if kernel.execution_state == "busy" and not settings.cull_busy:
        return Verdict("kernel", kernel.id, idle, None, False, "busy running code: never shut down")
    if kernel.connections > 0 and not settings.cull_connected:
        return Verdict(
            "kernel", kernel.id, idle, None, False,
            f"{kernel.connections} open connection(s) keep it alive (cull_connected is off)",
        )
    timeout = settings.idle_timeout_seconds
    if kernel.execution_state == "starting":
        if settings.starting_timeout_seconds > 0:
            timeout = min(timeout, settings.starting_timeout_seconds)
        deadline = kernel.last_activity + timedelta(seconds=timeout)
        return _scheduled("kernel", kernel.id, idle, deadline, now,
                          f"still starting, no code has run: shut down after {timeout:g} s")
    deadline = kernel.last_activity + timedelta(seconds=timeout)
    return _scheduled("kernel", kernel.id, idle, deadline, now,
                      f"{kernel.execution_state}: shut down after {timeout:g} s without activity")


def terminal_verdict(
    terminal: TerminalInfo, settings: Settings, now: datetime, kernels_remain: bool
) -> Verdict:
    idle = _idle_seconds(terminal.last_activity, now)
    if not settings.enabled:
        return Verdict("terminal", terminal.name, idle, None, False, "auto-shutdown is off")
    if settings.keep_terminals:
        return Verdict("terminal", terminal.name, idle, None, False, "kept: keep_terminals is on")
    if kernels_remain:
        return Verdict("terminal", terminal.name, idle, None, False,
                       "kept while kernels remain")
    if terminal.last_activity is None:
        return Verdict("terminal", terminal.name, idle, None, False, "no activity time known yet")
    timeout = settings.idle_timeout_seconds
    deadline = terminal.last_activity + timedelta(seconds=timeout)
    return _scheduled("terminal", terminal.name, idle, deadline, now,
                      f"no kernels remain: removed after {timeout:g} s without input or output")


def app_verdict(snapshot: Snapshot, settings: Settings, now: datetime, app: AppState) -> AppVerdict:
    if app.action == "none":
        return AppVerdict(None, None, False, "no app action configured")
    if not settings.enabled:
        return AppVerdict(None, None, False, "auto-shutdown is off")
    if snapshot.kernels or snapshot.terminals:
        return AppVerdict(
            None, None, False,
            f"{len(snapshot.kernels)} kernel(s) and {len(snapshot.terminals)} terminal(s) remain",
        )
    idle_since = snapshot.server_last_activity
    if app.empty_since is not None and app.empty_since > idle_since:
        idle_since = app.empty_since
    idle = _idle_seconds(idle_since, now)
    if app.fired_at is not None and app.fired_at >= idle_since:
        return AppVerdict(idle, None, False,
                          f"'{app.action}' already ran; waits for new activity")
    deadline = idle_since + timedelta(seconds=settings.idle_timeout_seconds)
    return AppVerdict(idle, deadline, now >= deadline,
                      f"nothing left: '{app.action}' runs after "
                      f"{settings.idle_timeout_seconds:g} s without activity")


def decide(snapshot: Snapshot, settings: Settings, now: datetime, app: AppState) -> Plan:
    kernels = tuple(kernel_verdict(kernel, settings, now) for kernel in snapshot.kernels)
    kernels_remain = bool(snapshot.kernels)
    terminals = tuple(
        terminal_verdict(terminal, settings, now, kernels_remain) for terminal in snapshot.terminals
    )
    app_decision = app_verdict(snapshot, settings, now, app)
    return Plan(kernels, terminals, app_decision,
                earliest_future([*kernels, *terminals], app_decision, now))


def earliest_future(
    verdicts: Sequence[Verdict], app: AppVerdict, now: datetime
) -> datetime | None:
    deadlines = [v.deadline for v in verdicts if v.deadline is not None and v.deadline > now]
    if app.deadline is not None and app.deadline > now:
        deadlines.append(app.deadline)
    return min(deadlines, default=None)
