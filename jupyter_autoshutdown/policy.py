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
  - "No kernels remain" and "nothing left" need a complete reading: when any kernel or terminal
    could not be read, terminals are kept and the app action waits.
The app action
  - Once no kernels and no terminals remain, and the server has seen no activity for T, the
    configured app action runs, once per idle period. The idle period starts at the latest of:
    the server's last activity (server start, user HTTP requests, kernel and terminal traffic)
    and the moment the last kernel or terminal went away.

Two entry points share one rule per resource: ``decide`` returns only what the monitor acts on
and when to wake next (a pass over thousands of kernels allocates almost nothing), and
``explain`` returns every resource's verdict with its reason in words (for ``status``).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from functools import lru_cache
from typing import NamedTuple

from .observe import (
    K_CONNECTIONS,
    K_ID,
    K_LAST_ACTIVITY,
    K_STATE,
    T_LAST_ACTIVITY,
    T_NAME,
    KernelInfo,
    Snapshot,
    TerminalInfo,
)
from .settings import Settings


class Verdict(NamedTuple):
    """The decision about one kernel or terminal, with its reason in words."""

    kind: str  # "kernel" or "terminal"
    id: str
    idle_seconds: float | None
    #: When it will be shut down if nothing changes; None when it is not scheduled at all.
    deadline: datetime | None
    due: bool
    reason: str


class AppState(NamedTuple):
    """Facts about the app action that only the monitor can know."""

    action: str  # the configured action's name; "none" disables it
    #: When the server was last seen with no kernels and no terminals (None: some exist).
    empty_since: datetime | None = None
    #: When the app action last ran.
    fired_at: datetime | None = None


class AppVerdict(NamedTuple):
    idle_seconds: float | None
    deadline: datetime | None
    due: bool
    reason: str


class Plan(NamedTuple):
    """What to act on now, and when to look again."""

    kernels_to_cull: tuple[Verdict, ...]
    terminals_to_cull: tuple[Verdict, ...]
    app: AppVerdict
    #: The earliest deadline still in the future; None when nothing is scheduled.
    next_deadline: datetime | None


class Explanation(NamedTuple):
    """Every resource's verdict: what `status` shows."""

    kernels: tuple[Verdict, ...]
    terminals: tuple[Verdict, ...]
    app: AppVerdict
    next_deadline: datetime | None


class _Limits(NamedTuple):
    """Per-settings constants, computed once rather than per resource."""

    timeout: timedelta
    starting: timedelta
    idle_reason: dict
    starting_reason: str
    terminal_reason: str


@lru_cache(maxsize=8)
def _limits(settings: Settings) -> _Limits:
    timeout_seconds = settings.idle_timeout_seconds
    starting_seconds = timeout_seconds
    if settings.starting_timeout_seconds > 0:
        starting_seconds = min(timeout_seconds, settings.starting_timeout_seconds)
    return _Limits(
        timeout=timedelta(seconds=timeout_seconds),
        starting=timedelta(seconds=starting_seconds),
        idle_reason={},
        starting_reason=f"still starting, no code has run: shut down after {starting_seconds:g} s",
        terminal_reason=(
            f"no kernels remain: removed after {timeout_seconds:g} s without input or output"
        ),
    )


OFF = "auto-shutdown is off"
NO_TIME = "no activity time known yet"
BUSY = "busy running code: never shut down"
KEEP_TERMINALS = "kept: keep_terminals is on"
KERNELS_REMAIN = "kept while kernels remain"
INCOMPLETE = "not every kernel and terminal could be read: waiting"


def _kernel_rule(kernel: KernelInfo, settings: Settings, limits: _Limits) -> tuple[datetime | None, str]:
    """(deadline or None, reason) for one kernel; auto-shutdown must be on (callers check)."""
    last_activity = kernel[K_LAST_ACTIVITY]
    if last_activity is None:
        return None, NO_TIME
    state = kernel[K_STATE]
    if state == "busy" and not settings.cull_busy:
        return None, BUSY
    connections = kernel[K_CONNECTIONS]
    if connections and not settings.cull_connected:
        return None, f"{connections} open connection(s) keep it alive (cull_connected is off)"
    if state == "starting":
        return last_activity + limits.starting, limits.starting_reason
    reason = limits.idle_reason.get(state)
    if reason is None:
        reason = limits.idle_reason.setdefault(
            state, f"{state}: shut down after {limits.timeout.total_seconds():g} s without activity"
        )
    return last_activity + limits.timeout, reason


def _terminal_rule(
    terminal: TerminalInfo, settings: Settings, limits: _Limits, kernels_remain: bool
) -> tuple[datetime | None, str]:
    if settings.keep_terminals:
        return None, KEEP_TERMINALS
    if kernels_remain:
        return None, KERNELS_REMAIN
    last_activity = terminal[T_LAST_ACTIVITY]
    if last_activity is None:
        return None, NO_TIME
    return last_activity + limits.timeout, limits.terminal_reason


def _idle_seconds(last_activity: datetime | None, now: datetime) -> float | None:
    if last_activity is None:
        return None
    return max(0.0, (now - last_activity).total_seconds())


def kernel_verdict(kernel: KernelInfo, settings: Settings, now: datetime) -> Verdict:
    if not settings.enabled:
        return Verdict("kernel", kernel[K_ID], _idle_seconds(kernel[K_LAST_ACTIVITY], now), None, False, OFF)
    deadline, reason = _kernel_rule(kernel, settings, _limits(settings))
    return Verdict("kernel", kernel[K_ID], _idle_seconds(kernel[K_LAST_ACTIVITY], now), deadline,
                   deadline is not None and now >= deadline, reason)


def terminal_verdict(
    terminal: TerminalInfo, settings: Settings, now: datetime, kernels_remain: bool
) -> Verdict:
    if not settings.enabled:
        return Verdict("terminal", terminal[T_NAME], _idle_seconds(terminal[T_LAST_ACTIVITY], now), None,
                       False, OFF)
    deadline, reason = _terminal_rule(terminal, settings, _limits(settings), kernels_remain)
    return Verdict("terminal", terminal[T_NAME], _idle_seconds(terminal[T_LAST_ACTIVITY], now), deadline,
                   deadline is not None and now >= deadline, reason)


def app_verdict(snapshot: Snapshot, settings: Settings, now: datetime, app: AppState) -> AppVerdict:
    if app.action == "none":
        return AppVerdict(None, None, False, "no app action configured")
    if not settings.enabled:
        return AppVerdict(None, None, False, OFF)
    if snapshot.errors:
        # Some kernel or terminal could not be read: "none left" cannot be known.
        return AppVerdict(None, None, False, INCOMPLETE)
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
        return AppVerdict(idle, None, False, f"'{app.action}' already ran; waits for new activity")
    deadline = idle_since + timedelta(seconds=settings.idle_timeout_seconds)
    return AppVerdict(idle, deadline, now >= deadline,
                      f"nothing left: '{app.action}' runs after "
                      f"{settings.idle_timeout_seconds:g} s without activity")


def decide(snapshot: Snapshot, settings: Settings, now: datetime, app: AppState) -> Plan:
    """What to shut down now and when the next deadline is. Allocates only for what is due."""
    if not settings.enabled:
        return Plan((), (), app_verdict(snapshot, settings, now, app), None)
    limits = _limits(settings)
    next_deadline: datetime | None = None
    due_kernels = []
    for kernel in snapshot.kernels:
        deadline, reason = _kernel_rule(kernel, settings, limits)
        if deadline is None:
            continue
        if deadline <= now:
            due_kernels.append(Verdict("kernel", kernel[K_ID], _idle_seconds(kernel[K_LAST_ACTIVITY], now),
                                       deadline, True, reason))
        elif next_deadline is None or deadline < next_deadline:
            next_deadline = deadline
    # An unreadable manager may hide kernels: then terminals wait as if kernels remained.
    kernels_remain = bool(snapshot.kernels or snapshot.errors)
    due_terminals = []
    for terminal in snapshot.terminals:
        deadline, reason = _terminal_rule(terminal, settings, limits, kernels_remain)
        if deadline is None:
            continue
        if deadline <= now:
            due_terminals.append(Verdict("terminal", terminal[T_NAME],
                                         _idle_seconds(terminal[T_LAST_ACTIVITY], now), deadline, True,
                                         reason))
        elif next_deadline is None or deadline < next_deadline:
            next_deadline = deadline
    app_decision = app_verdict(snapshot, settings, now, app)
    if app_decision.deadline is not None and app_decision.deadline > now and (
        next_deadline is None or app_decision.deadline < next_deadline
    ):
        next_deadline = app_decision.deadline
    return Plan(tuple(due_kernels), tuple(due_terminals), app_decision, next_deadline)


def explain(snapshot: Snapshot, settings: Settings, now: datetime, app: AppState) -> Explanation:
    """Every resource's verdict, with its reason; consistent with `decide` by construction."""
    kernels = tuple(kernel_verdict(kernel, settings, now) for kernel in snapshot.kernels)
    kernels_remain = bool(snapshot.kernels or snapshot.errors)
    terminals = tuple(
        terminal_verdict(terminal, settings, now, kernels_remain) for terminal in snapshot.terminals
    )
    app_decision = app_verdict(snapshot, settings, now, app)
    future = [v.deadline for v in (*kernels, *terminals) if v.deadline is not None and v.deadline > now]
    if app_decision.deadline is not None and app_decision.deadline > now:
        future.append(app_decision.deadline)
    return Explanation(kernels, terminals, app_decision, min(future, default=None))
