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
    the server's last activity and the moment the last kernel or terminal went away. The server's
    activity (observe/activity.py) is, by default (``server_activity = "people"``), what people do: server
    start, kernel and terminal traffic, writes through jupyter_server's contents, kernels,
    sessions and terminals APIs, and interaction reported by the front end; never the GET polls
    of an open browser tab, nor this extension's own requests. ``"any_request"`` counts every
    API request, as jupyter_server's own ``shutdown_no_activity_timeout`` does.
  - The activity sources (observe/sources.py: apps behind jupyter-server-proxy and whatever records
    in jupyter_server's ``last_activity_times``, people's SSH and console logins, other packages'
    sources) count for the app like the server's activity: the latest wins. They keep the app
    (the machine), not single kernels or terminals.
  - While such a write is in flight (a kernel, session or terminal starting), the action waits.
  - After every server start it waits the start-up grace (``startup_grace_minutes``), so that a
    tiny timeout kept from an earlier run never stops the server before a person can reach it.
  - An action with its own schedule (Studio Classic: KernelGateway apps follow their own kernels)
    runs when it asked to, and at once after the kernels or terminals changed, whatever the
    server's idleness; it decides itself what to stop.

What else moves a deadline (each from the snapshot, all off by default)
  - CPU or GPU use of a resource's processes above the threshold (`active_at`) counts as
    activity; with idle_type "activity" so does the server's last user request; with idle_type
    "kernel_connections" an open client keeps its kernel, as cull_connected off does.
  - Exempt kernels (name or path patterns, or the user's opt-out) are never shut down.
  - The daily stop: a resource whose latest activity came before the latest stop instant is due
    at that instant (busy kernels stay busy-exempt); otherwise the next stop caps its deadline.
    The app too: once nothing is left, it is due at the latest stop unless people did something
    after it (the stop's own culls, and the server left empty by them, do not count).
  - A keep-alive moves every deadline, the app's included, to at least its end; a keep-alive of
    one kernel or terminal moves only that one's deadline.
  - Warnings: scheduled shutdowns within `warning_seconds` are listed in the plan.

Two entry points share one rule per resource: ``decide`` returns only what the monitor acts on
and when to wake next (a pass over thousands of kernels allocates almost nothing), and
``explain`` returns every resource's verdict with its reason in words (for ``status``).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from datetime import datetime, timedelta
from enum import Enum
from functools import lru_cache
from typing import NamedTuple

from ..core.records import (
    TERMINAL_PREFIX,
    KernelRecord,
    Snapshot,
    TerminalRecord,
)
from ..core.settings import Settings


class Cause(str, Enum):
    """Why a deadline is what it is, for metrics and events (bounded, unlike reasons in words)."""

    IDLE = "idle"
    STARTING = "starting"
    BUSY = "busy"  # cull_busy is on
    NO_ACTIVITY = "no_activity"  # idle_type "activity"
    UTILIZATION = "utilization_dropped"
    DAILY_STOP = "daily_stop"


class Verdict(NamedTuple):
    """The decision about one kernel or terminal, with its reason in words."""

    kind: str  # "kernel" or "terminal"
    id: str
    idle_seconds: float | None
    #: When it will be shut down if nothing changes; None when it is not scheduled at all.
    deadline: datetime | None
    due: bool
    reason: str
    cause: Cause = Cause.IDLE


class AppState(NamedTuple):
    """Facts about the app action that only the monitor can know."""

    action: str  # the configured action's name; "none" disables it
    #: When the server was last seen with no kernels and no terminals (None: some exist).
    empty_since: datetime | None = None
    #: When the app action last ran.
    fired_at: datetime | None = None
    #: An action that decides itself what is idle (Studio Classic's KernelGateway apps follow their
    #: own kernels) says so here, in words; it then runs at `own_run_at`, not on server idleness.
    own_schedule: str | None = None
    own_run_at: datetime | None = None
    #: The start-up grace: the app action never runs before this (server start + the grace).
    not_before: datetime | None = None


class AppVerdict(NamedTuple):
    idle_seconds: float | None
    deadline: datetime | None
    due: bool
    reason: str
    cause: Cause = Cause.IDLE


class Plan(NamedTuple):
    """What to act on now, and when to look again."""

    kernels_to_cull: tuple[Verdict, ...]
    terminals_to_cull: tuple[Verdict, ...]
    app: AppVerdict
    #: The earliest deadline still in the future; None when nothing is scheduled.
    next_deadline: datetime | None
    #: Scheduled shutdowns close enough to warn about (within `warning_seconds`).
    warnings: tuple[Verdict, ...] = ()
    #: The earliest future moment a warning becomes due; None when none is.
    next_warning: datetime | None = None


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
    warning: timedelta
    idle_reason: dict
    starting_reason: str
    terminal_reason: str
    utilization_reason: str
    activity_reason: str
    #: Open connections keep a kernel alive (cull_connected off, or idle_type kernel_connections).
    connections_keep_alive: bool
    connections_reason: str


@lru_cache(maxsize=8)
def _limits(settings: Settings) -> _Limits:
    timeout_seconds = settings.idle_timeout_seconds
    starting_seconds = timeout_seconds
    if settings.starting_timeout_seconds > 0:
        starting_seconds = min(timeout_seconds, settings.starting_timeout_seconds)
    by_connections = settings.idle_type == "kernel_connections"
    return _Limits(
        timeout=timedelta(seconds=timeout_seconds),
        starting=timedelta(seconds=starting_seconds),
        warning=timedelta(seconds=settings.warning_seconds),
        idle_reason={},
        starting_reason=f"still starting, no code has run: shut down after {starting_seconds:g} s",
        terminal_reason=(
            f"no kernels remain: removed after {timeout_seconds:g} s without input or output"
        ),
        utilization_reason=(
            f"its processes used CPU or GPU recently, which counts as activity: shut down after "
            f"{timeout_seconds:g} s without it"
        ),
        activity_reason=(
            f"idle_type 'activity': user activity on the server keeps it; shut down after "
            f"{timeout_seconds:g} s without any"
        ),
        connections_keep_alive=by_connections or not settings.cull_connected,
        connections_reason=(
            "open connection(s) keep it alive (idle_type kernel_connections)" if by_connections
            else "open connection(s) keep it alive (cull_connected is off)"
        ),
    )


class _Signals(NamedTuple):
    """What else than a record's own activity time moves its deadline; built once per snapshot."""

    #: True when none of the below applies: the fast path.
    plain: bool
    active_at: Mapping[str, datetime] | None
    exempt: Mapping[str, str] | None
    #: The server's last activity, when it counts for every resource (idle_type "activity").
    server_activity: datetime | None
    stop_last: datetime | None
    stop_next: datetime | None
    stop_reason: str
    keep_alive_until: datetime | None
    keep_alive_reason: str
    #: Keep-alives of single kernels or terminals (key as in active_at).
    kept: Mapping[str, datetime] | None = None


def _signals(snapshot: Snapshot, settings: Settings) -> _Signals:
    server_activity = snapshot.server_last_activity if settings.idle_type == "activity" else None
    keep = snapshot.keep_alive_until
    plain = not (snapshot.active_at or snapshot.exempt or server_activity or snapshot.stop_next or keep
                 or snapshot.kept_until)
    return _Signals(
        plain=plain,
        active_at=snapshot.active_at or None,
        exempt=snapshot.exempt or None,
        server_activity=server_activity,
        stop_last=snapshot.stop_last,
        stop_next=snapshot.stop_next,
        stop_reason=f"the daily stop time ({snapshot.stop_label}) came first" if snapshot.stop_next else "",
        keep_alive_until=keep,
        keep_alive_reason=f"kept alive by a user until {keep.isoformat()}" if keep else "",
        kept=snapshot.kept_until or None,
    )


_PLAIN = _Signals(True, None, None, None, None, None, "", None, "")


OFF = "auto-shutdown is off"
NO_TIME = "no activity time known yet"
BUSY = "busy running code: never shut down"
KEEP_TERMINALS = "kept: keep_terminals is on"
KERNELS_REMAIN = "kept while kernels remain"
INCOMPLETE = "not every kernel and terminal could be read: waiting"


def _cause(reason: str, limits: _Limits, sig: _Signals, state: str = "") -> Cause:
    """The cause of a deadline, from which of the policy's own reasons set it (by identity: these
    are the very objects the rules return, not text to parse)."""
    if reason is limits.starting_reason:
        return Cause.STARTING
    if reason is limits.utilization_reason:
        return Cause.UTILIZATION
    if reason is limits.activity_reason:
        return Cause.NO_ACTIVITY
    if sig.stop_reason and reason is sig.stop_reason:
        return Cause.DAILY_STOP
    return Cause.BUSY if state == "busy" else Cause.IDLE


def _with_signals(
    key: str, last: datetime, deadline: datetime, reason: str, sig: _Signals, limits: _Limits
) -> tuple[datetime, str]:
    """Move a deadline for CPU/GPU use, server activity, the daily stop and a keep-alive."""
    latest = last
    if sig.active_at is not None:
        used = sig.active_at.get(key)
        if used is not None and used > latest:
            latest = used
            if used + limits.timeout > deadline:
                deadline, reason = used + limits.timeout, limits.utilization_reason
    if sig.server_activity is not None and sig.server_activity > latest:
        latest = sig.server_activity
        if latest + limits.timeout > deadline:
            deadline, reason = latest + limits.timeout, limits.activity_reason
    if sig.stop_next is not None:
        # The first daily stop after the last activity: one already passed, or the next one.
        stop = sig.stop_last if sig.stop_last is not None and latest < sig.stop_last else sig.stop_next
        if stop < deadline:
            deadline, reason = stop, sig.stop_reason
    if sig.keep_alive_until is not None and deadline < sig.keep_alive_until:
        deadline, reason = sig.keep_alive_until, sig.keep_alive_reason
    if sig.kept is not None:
        kept = sig.kept.get(key)
        if kept is not None and deadline < kept:
            deadline, reason = kept, f"this one kept alive by a user until {kept.isoformat()}"
    return deadline, reason


def _kernel_rule(
    kernel: KernelRecord, settings: Settings, limits: _Limits, sig: _Signals = _PLAIN
) -> tuple[datetime | None, str]:
    """(deadline or None, reason) for one kernel; auto-shutdown must be on (callers check)."""
    kernel_id, _name, state, last_activity, connections = kernel
    if last_activity is None:
        return None, NO_TIME
    if sig.exempt is not None:
        exempt_reason = sig.exempt.get(kernel_id)
        if exempt_reason is not None:
            return None, exempt_reason
    if state == "busy" and not settings.cull_busy:
        return None, BUSY
    if connections and limits.connections_keep_alive:
        return None, f"{connections} {limits.connections_reason}"
    if state == "starting":
        deadline, reason = last_activity + limits.starting, limits.starting_reason
    else:
        idle_reason: str | None = limits.idle_reason.get(state)
        if idle_reason is not None:
            reason = idle_reason
        else:
            reason = limits.idle_reason.setdefault(
                state, f"{state}: shut down after {limits.timeout.total_seconds():g} s without activity"
            )
        deadline = last_activity + limits.timeout
    if sig.plain:
        return deadline, reason
    return _with_signals(kernel_id, last_activity, deadline, reason, sig, limits)


def _terminal_rule(
    terminal: TerminalRecord, settings: Settings, limits: _Limits, kernels_remain: bool,
    sig: _Signals = _PLAIN,
) -> tuple[datetime | None, str]:
    if settings.keep_terminals:
        return None, KEEP_TERMINALS
    if kernels_remain:
        return None, KERNELS_REMAIN
    name, last_activity = terminal
    if last_activity is None:
        return None, NO_TIME
    deadline = last_activity + limits.timeout
    if sig.plain:
        return deadline, limits.terminal_reason
    return _with_signals(
        TERMINAL_PREFIX + name, last_activity, deadline, limits.terminal_reason, sig, limits
    )


def _idle_seconds(last_activity: datetime | None, now: datetime) -> float | None:
    if last_activity is None:
        return None
    return max(0.0, (now - last_activity).total_seconds())


def kernel_verdict(
    kernel: KernelRecord, settings: Settings, now: datetime, snapshot: Snapshot | None = None
) -> Verdict:
    """One kernel's verdict; `snapshot` supplies the signals (utilization, exemptions, ...)."""
    if not settings.enabled:
        kernel_id, _name, _state, last_activity, _connections = kernel
        return Verdict("kernel", kernel_id, _idle_seconds(last_activity, now), None, False, OFF)
    return _kernel_verdict(kernel, settings, now, _signals(snapshot, settings) if snapshot else _PLAIN)


def _kernel_verdict(kernel: KernelRecord, settings: Settings, now: datetime, sig: _Signals) -> Verdict:
    limits = _limits(settings)
    deadline, reason = _kernel_rule(kernel, settings, limits, sig)
    return _kernel_verdict_at(kernel, now, deadline, reason, limits, sig)


def terminal_verdict(
    terminal: TerminalRecord, settings: Settings, now: datetime, kernels_remain: bool,
    snapshot: Snapshot | None = None,
) -> Verdict:
    if not settings.enabled:
        name, last_activity = terminal
        return Verdict("terminal", name, _idle_seconds(last_activity, now), None, False, OFF)
    sig = _signals(snapshot, settings) if snapshot is not None else _PLAIN
    return _terminal_verdict(terminal, settings, now, kernels_remain, sig)


def _terminal_verdict(
    terminal: TerminalRecord, settings: Settings, now: datetime, kernels_remain: bool, sig: _Signals
) -> Verdict:
    limits = _limits(settings)
    deadline, reason = _terminal_rule(terminal, settings, limits, kernels_remain, sig)
    return _terminal_verdict_at(terminal, now, deadline, reason, limits, sig)


def _kernel_verdict_at(
    kernel: KernelRecord, now: datetime, deadline: datetime | None, reason: str, limits: _Limits,
    sig: _Signals,
) -> Verdict:
    """The verdict of a kernel whose rule gave (deadline, reason)."""
    kernel_id, _name, state, last_activity, _connections = kernel
    return Verdict("kernel", kernel_id, _idle_seconds(last_activity, now), deadline,
                   deadline is not None and now >= deadline, reason, _cause(reason, limits, sig, state))


def _terminal_verdict_at(
    terminal: TerminalRecord, now: datetime, deadline: datetime | None, reason: str, limits: _Limits,
    sig: _Signals,
) -> Verdict:
    """The verdict of a terminal whose rule gave (deadline, reason)."""
    name, last_activity = terminal
    return Verdict("terminal", name, _idle_seconds(last_activity, now), deadline,
                   deadline is not None and now >= deadline, reason, _cause(reason, limits, sig))


def app_verdict(snapshot: Snapshot, settings: Settings, now: datetime, app: AppState) -> AppVerdict:
    if app.action == "none":
        return AppVerdict(None, None, False, "no app action configured")
    if not settings.enabled:
        return AppVerdict(None, None, False, OFF)
    if snapshot.errors:
        # Some kernel or terminal could not be read: "none left" cannot be known.
        return AppVerdict(None, None, False, INCOMPLETE)
    if app.own_schedule is None and (snapshot.kernels or snapshot.terminals):
        return AppVerdict(
            None, None, False,
            f"{len(snapshot.kernels)} kernel(s) and {len(snapshot.terminals)} terminal(s) remain",
        )
    if snapshot.requests_in_flight:
        # A kernel, session or terminal may be starting: it is not in the tables yet.
        return AppVerdict(None, None, False, f"waiting for {snapshot.requests_in_flight[0]} to be answered")
    if app.own_schedule is not None:
        return _own_schedule_verdict(snapshot, now, app)
    idle_since = snapshot.last_activity()[0]  # activity sources too (observe/sources.py)
    if app.empty_since is not None and app.empty_since > idle_since:
        idle_since = app.empty_since
    idle = _idle_seconds(idle_since, now)
    if app.fired_at is not None and app.fired_at >= idle_since:
        return AppVerdict(idle, None, False, f"'{app.action}' already ran; waits for new activity")
    deadline = idle_since + timedelta(seconds=settings.idle_timeout_seconds)
    reason = (f"nothing left: '{app.action}' runs after {settings.idle_timeout_seconds:g} s "
              "without activity")
    cause = Cause.IDLE
    if snapshot.stop_next is not None or snapshot.keep_alive_until is not None:
        sig = _signals(snapshot, settings)
        # The daily stop stops the app too: what its own culls did (kernel traffic at shutdown,
        # the server left empty after the stop) is no reason to wait a timeout more, so only what
        # people did decides whether a stop has passed since.
        since = snapshot.people_last_activity or idle_since
        deadline, reason = _with_signals("app", min(since, idle_since), deadline, reason,
                                         sig._replace(active_at=None, server_activity=None),
                                         _limits(settings))
        cause = _cause(reason, _limits(settings), sig)
    if app.not_before is not None and deadline < app.not_before:
        deadline = app.not_before
        reason = (f"nothing left; the server started less than the start-up grace ago "
                  f"(startup_grace_minutes): '{app.action}' not before {deadline.isoformat()}")
    return AppVerdict(idle, deadline, now >= deadline, reason, cause)


class AppActivity(NamedTuple):
    """When the app was last active by these rules, for a platform's own idle signal (Studio's
    activity file): the latest activity of people, kernels and terminals (and their CPU or GPU use
    when utilization-aware), or `now` while something holds the app."""

    last_active: datetime
    #: What holds the app, in words ("" when nothing does: then last_active is in the past).
    held_by: str


def app_activity(snapshot: Snapshot, settings: Settings, now: datetime) -> AppActivity:
    """Pure, like the rest: `now` while a kernel runs a request (unless cull_busy), a kernel is
    exempt, a keep-alive holds, or a write is in flight; else the latest activity time known."""
    held = ""
    for kernel_id, _name, state, _last_activity, _connections in snapshot.kernels:
        if kernel_id in snapshot.exempt:
            held = f"kernel {kernel_id} is exempt ({snapshot.exempt[kernel_id]})"
            break
        if state == "busy" and not settings.cull_busy:
            held = f"kernel {kernel_id} is running code"
            break
    if not held and snapshot.keep_alive_until is not None and snapshot.keep_alive_until > now:
        held = f"kept alive by a user until {snapshot.keep_alive_until.isoformat()}"
    if not held:
        for key, until in snapshot.kept_until.items():
            if until > now:
                held = f"{key} kept alive by a user until {until.isoformat()}"
                break
    if not held and snapshot.requests_in_flight:
        held = f"waiting for {snapshot.requests_in_flight[0]} to be answered"
    if held:
        return AppActivity(now, held)
    latest = snapshot.server_last_activity
    for _id, _name, _state, last, _connections in snapshot.kernels:
        if last is not None and last > latest:
            latest = last
    for _name, last in snapshot.terminals:
        if last is not None and last > latest:
            latest = last
    for used in snapshot.active_at.values():
        if used > latest:
            latest = used
    if snapshot.source_activity is not None and snapshot.source_activity > latest:
        latest = snapshot.source_activity
    return AppActivity(min(latest, now), "")


def _own_schedule_verdict(snapshot: Snapshot, now: datetime, app: AppState) -> AppVerdict:
    """An action that follows its own rule runs when it asked to, or at once after a change."""
    deadline = app.own_run_at
    if deadline is None:
        return AppVerdict(None, None, False, f"{app.own_schedule}; nothing pending")
    reason = str(app.own_schedule)
    keep = snapshot.keep_alive_until
    if keep is not None and deadline < keep:
        deadline, reason = keep, f"kept alive by a user until {keep.isoformat()}"
    return AppVerdict(None, deadline, now >= deadline, reason)


def decide(snapshot: Snapshot, settings: Settings, now: datetime, app: AppState) -> Plan:
    """What to shut down now, what to warn about, and when to wake next.

    Allocates only for what is due or in its warning window.
    """
    if not settings.enabled:
        return Plan((), (), app_verdict(snapshot, settings, now, app), None)
    limits = _limits(settings)
    sig = _signals(snapshot, settings)
    warning = limits.warning
    warn_horizon = now + warning if warning else None
    next_deadline: datetime | None = None
    first_beyond: datetime | None = None  # the earliest deadline not yet in its warning window
    warnings: list[Verdict] = []
    due_kernels = []
    for kernel in snapshot.kernels:
        deadline, reason = _kernel_rule(kernel, settings, limits, sig)
        if deadline is None:
            continue
        if deadline <= now:
            due_kernels.append(_kernel_verdict_at(kernel, now, deadline, reason, limits, sig))
            continue
        if next_deadline is None or deadline < next_deadline:
            next_deadline = deadline
        if warn_horizon is not None:
            if deadline <= warn_horizon:
                warnings.append(_kernel_verdict_at(kernel, now, deadline, reason, limits, sig))
            elif first_beyond is None or deadline < first_beyond:
                first_beyond = deadline
    # An unreadable manager may hide kernels: then terminals wait as if kernels remained.
    kernels_remain = bool(snapshot.kernels or snapshot.errors)
    due_terminals = []
    for terminal in snapshot.terminals:
        deadline, reason = _terminal_rule(terminal, settings, limits, kernels_remain, sig)
        if deadline is None:
            continue
        if deadline <= now:
            due_terminals.append(_terminal_verdict_at(terminal, now, deadline, reason, limits, sig))
            continue
        if next_deadline is None or deadline < next_deadline:
            next_deadline = deadline
        if warn_horizon is not None:
            if deadline <= warn_horizon:
                warnings.append(_terminal_verdict_at(terminal, now, deadline, reason, limits, sig))
            elif first_beyond is None or deadline < first_beyond:
                first_beyond = deadline
    app_decision = app_verdict(snapshot, settings, now, app)
    app_deadline = app_decision.deadline
    if app_deadline is not None and app_deadline > now:
        if next_deadline is None or app_deadline < next_deadline:
            next_deadline = app_deadline
        # An action on its own schedule looks again at that time: nothing to warn about.
        if warn_horizon is not None and app.own_schedule is None:
            if app_deadline <= warn_horizon:
                warnings.append(Verdict("app", app.action, app_decision.idle_seconds, app_deadline, False,
                                        app_decision.reason, app_decision.cause))
            elif first_beyond is None or app_deadline < first_beyond:
                first_beyond = app_deadline
    # The earliest warning still ahead belongs to the earliest deadline beyond the horizon.
    next_warning = first_beyond - warning if first_beyond is not None else None
    return Plan(tuple(due_kernels), tuple(due_terminals), app_decision, next_deadline,
                tuple(warnings), next_warning)


def explain(snapshot: Snapshot, settings: Settings, now: datetime, app: AppState) -> Explanation:
    """Every resource's verdict, with its reason; consistent with `decide` by construction."""
    if not settings.enabled:
        kernels = tuple(kernel_verdict(kernel, settings, now) for kernel in snapshot.kernels)
        terminals = tuple(terminal_verdict(term, settings, now, False) for term in snapshot.terminals)
    else:
        sig = _signals(snapshot, settings)
        kernels = tuple(_kernel_verdict(kernel, settings, now, sig) for kernel in snapshot.kernels)
        kernels_remain = bool(snapshot.kernels or snapshot.errors)
        terminals = tuple(
            _terminal_verdict(terminal, settings, now, kernels_remain, sig)
            for terminal in snapshot.terminals
        )
    app_decision = app_verdict(snapshot, settings, now, app)
    future = [v.deadline for v in (*kernels, *terminals) if v.deadline is not None and v.deadline > now]
    if app_decision.deadline is not None and app_decision.deadline > now:
        future.append(app_decision.deadline)
    return Explanation(kernels, terminals, app_decision, min(future, default=None))


def dry_run_due(reported_until: datetime | None, settings: Settings, now: datetime) -> datetime | None:
    """A dry run reports a due target once per timeout: when it may report it again if it reports
    it now, or None while the last report's time has not passed."""
    if reported_until is not None and now < reported_until:
        return None
    return now + timedelta(seconds=max(1.0, settings.idle_timeout_seconds))


# ---- Studio Classic: KernelGateway apps follow their own kernels ------------------------------

KERNEL_GATEWAY = "KernelGateway"


class GatewayApps(NamedTuple):
    """What this server has seen of its Studio Classic KernelGateway apps (actions/sagemaker.py)."""

    #: App name -> since when it has had no kernel or terminal, as far as this server saw.
    idle_since: Mapping[str, datetime] = {}
    #: Apps seen in use at some look.
    seen_in_use: frozenset[str] = frozenset()
    #: Apps deleted already (never twice while nothing changed).
    deleted: frozenset[str] = frozenset()
    #: The first look: no app is idle for longer than this server has seen it.
    first_look: datetime | None = None


class GatewayAppDecision(NamedTuple):
    delete: tuple[str, ...]
    #: Apps kept, each with why, in words.
    kept: tuple[str, ...]
    #: Seconds until each kept idle app is due: the action looks again after the shortest.
    waits: tuple[float, ...]
    #: The new state; the caller marks each app of `delete` deleted once its deletion succeeded.
    state: GatewayApps


def kernel_gateway_apps(
    apps: Iterable[tuple[str, str, str, datetime | None]],
    in_use: Collection[str],
    own_app: str,
    state: GatewayApps,
    now: datetime,
    timeout_seconds: float,
) -> GatewayAppDecision:
    """Which KernelGateway apps to delete: each is deleted once it has had no kernel or terminal
    for the timeout. `apps`: (name, app type, status, creation time) as SageMaker lists them;
    `in_use`: names of apps with a live kernel or image terminal. Never this server's own app."""
    apps = list(apps)
    listed = {name for name, _, _, _ in apps}
    first_look = state.first_look or now
    idle_since = {name: since for name, since in state.idle_since.items() if name in listed}
    seen_in_use = set(state.seen_in_use) & listed
    deleted = set(state.deleted) & listed
    delete: list[str] = []
    kept: list[str] = []
    waits: list[float] = []
    for name, app_type, status, created_at in apps:
        # Never this server's own (free) JupyterServer app, whatever a listing says of its type.
        if app_type != KERNEL_GATEWAY or status != "InService" or name == own_app:
            continue
        if name in in_use:
            idle_since.pop(name, None)
            seen_in_use.add(name)
            deleted.discard(name)  # in use again: it may be deleted again later
            kept.append(f"{name} (in use)")
            continue
        if name in deleted:
            continue
        since = idle_since.get(name)
        if since is None:
            # Seen in use before: its last kernel or terminal went away since the last look.
            # Else idle since its creation, but not for longer than this server has seen it.
            since = now if name in seen_in_use else max(created_at or now, first_look)
            idle_since[name] = since
        idle = (now - since).total_seconds()
        remaining = timeout_seconds - idle
        if remaining > 0:
            kept.append(f"{name} (no kernel for {idle:.0f} s, deleted in {remaining:.0f} s)")
            waits.append(remaining)
            continue
        delete.append(name)
    new_state = GatewayApps(idle_since, frozenset(seen_in_use), frozenset(deleted), first_look)
    return GatewayAppDecision(tuple(delete), tuple(kept), tuple(waits), new_state)


def gateway_app_deleted(state: GatewayApps, name: str) -> GatewayApps:
    """`state` after `name` was deleted."""
    return state._replace(deleted=state.deleted | {name},
                          idle_since={k: v for k, v in state.idle_since.items() if k != name})
