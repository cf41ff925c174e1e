"""The check loop: observe, decide, act; then sleep until the next deadline.

It sleeps until the earliest deadline the policy reports, capped by the idle timeout itself and by
``max_check_interval``. The cap at the timeout is what makes culls punctual: any new activity at
time t moves a deadline to t + timeout, and a pass at most one timeout apart sees it in time to
schedule a wake-up at exactly that deadline. Settings changes and kernel start/shutdown wake it.

Due targets are handed to the executor (executor.py), which runs each shutdown and the app action
as a tracked task: the loop never waits for them, so one slow shutdown delays nothing else. Each is
re-checked against the policy right before it starts: the re-check and the start of the shutdown
run in one step of the event loop, so no kernel message can slip in between. A failure is logged,
kept for `status`, and the target is retried later with exponential backoff; it never stops the
pass or the loop.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import logging
import time
from collections.abc import Awaitable, Collection
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone, tzinfo
from datetime import time as dt_time
from typing import Any, Callable

from .actions import ActionContext, ActionDeferred, AppAction, own_schedule_of
from .activity import PeopleActivity
from .execution import RunningRequests
from .executor import Executor, Failure
from .exemptions import Exemptions
from .observe import (
    K_ID,
    K_NAME,
    T_NAME,
    KernelInfo,
    Snapshot,
    TerminalInfo,
    is_remote,
    kernel_table,
    read_kernel,
    read_kernels,
    read_server_last_activity,
    read_terminal,
    read_terminals,
    refresh_remote_kernel,
    refresh_remote_kernels,
)
from .policy import (
    AppState,
    Explanation,
    Plan,
    Verdict,
    decide,
    explain,
    kernel_verdict,
    terminal_verdict,
)
from .schedule import stops_around
from .settings import SettingsStore
from .telemetry import LAST_CHECK, PASSES, SECONDS_UNTIL_NEXT, SHUTDOWNS, WARNINGS, Events, cause_of
from .timeouts import within
from .utilization import UtilizationSampler

#: Never sleep less than this between passes, whatever the deadlines say.
MIN_SLEEP_SECONDS = 0.02
KEPT_ERRORS = 50
#: How long stop() waits for the loop and sampler tasks after cancelling them.
STOP_TIMEOUT_SECONDS = 5.0
#: Backoff of gateway listings that fail: the first retry, and the longest wait.
REMOTE_BACKOFF_FIRST_SECONDS = 5.0
REMOTE_BACKOFF_MAX_SECONDS = 300.0


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def _key(verdict: Verdict) -> tuple[str, str]:
    """The bookkeeping key of a verdict: (kind, id); the app has one key whatever its action."""
    return (verdict.kind, "" if verdict.kind == "app" else verdict.id)


def _describe(verdict: Verdict) -> str:
    return f"app action '{verdict.id}'" if verdict.kind == "app" else f"{verdict.kind} {verdict.id}"


@dataclass(frozen=True)
class DailyStop:
    time: dt_time
    zone: tzinfo
    label: str


@dataclass(frozen=True)
class MonitorOptions:
    max_check_interval_seconds: float = 60.0
    max_concurrent_shutdowns: int = 8
    shutdown_timeout_seconds: float = 60.0
    app_action_timeout_seconds: float = 300.0
    #: Log and report what would be shut down; shut nothing down.
    dry_run: bool = False
    daily_stop: DailyStop | None = None
    utilization_interval_seconds: float = 10.0
    #: What the server's idleness counts: "people" (activity.py) or "any_request".
    server_activity: str = "people"


class Monitor:
    def __init__(
        self,
        *,
        serverapp: Any,
        store: SettingsStore,
        action: AppAction,
        options: MonitorOptions,
        log: logging.Logger,
        terminal_manager: Callable[[], Any] | None = None,
        clock: Callable[[], datetime] = utcnow,
        exemptions: Exemptions | None = None,
        sampler: UtilizationSampler | None = None,
        events: Events | None = None,
        activity: PeopleActivity | None = None,
    ) -> None:
        self.serverapp = serverapp
        self.store = store
        self.action = action
        self.options = options
        self.log = log
        self._terminal_manager = terminal_manager or (lambda: None)
        self.clock = clock
        self.started_at = clock()

        self.count = 0
        self.last_check: datetime | None = None
        self.next_check: datetime | None = None
        self.errors: collections.deque[dict[str, str]] = collections.deque(maxlen=KEPT_ERRORS)
        self.last_plan: Plan | None = None
        self.app_fired_at: datetime | None = None
        self.last_action_result: str | None = None
        self.last_action_error: str | None = None
        #: Kernels on a Kernel or Enterprise Gateway: their records are refreshed before reading.
        self._remote_kernels = is_remote(serverapp.kernel_manager)
        self._remote_refresh_error: str | None = None
        #: When the gateway last answered a listing; failed listings in a row, and when to ask again.
        self._remote_refreshed_at: datetime | None = None
        self._remote_failures = 0
        self._remote_retry_at: datetime | None = None
        #: Requests each local kernel is running, from its own status messages (execution.py).
        self.kernel_requests: RunningRequests | None = None if self._remote_kernels else RunningRequests(
            log, clock, on_change=lambda: self.wake()
        )
        self.exemptions = exemptions
        self.sampler = sampler
        self.events = events
        #: What people do on the server (requests, front-end reports); None: only jupyter_server's.
        self.activity = activity
        self._exempt: dict[str, str] = {}
        #: A user's keep-alive: nothing is shut down before this time.
        self.keep_alive_until: datetime | None = None
        #: Keep-alives of one kernel (its id) or terminal ("t:<name>"): only that one is kept.
        self.kept_targets: dict[str, datetime] = {}
        #: (kind, id) -> the deadline last warned about, so each warning is emitted once.
        self._warned: dict[tuple[str, str], datetime] = {}
        #: (kind, id) -> when a dry run reports it again if it is still due.
        self._dry_run_until: dict[tuple[str, str], datetime] = {}
        self.dry_run_reports: collections.deque[dict[str, str]] = collections.deque(maxlen=KEPT_ERRORS)
        self._sampler_task: asyncio.Task[None] | None = None

        self._empty_since: datetime | None = None
        # When we first saw a resource that reports no activity time: its idle clock starts there.
        self._first_seen: dict[str, datetime] = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        #: Runs shutdowns and the app action as tracked tasks; their failures and retries.
        self.executor = Executor(
            max_concurrent=options.max_concurrent_shutdowns, clock=clock, log=log, on_done=self.wake,
            record_error=self._record_error, action_name=lambda: self.action.name, events=events,
        )
        # An action on its own schedule: when it runs next (the first pass runs it), and the
        # kernels and terminals it last ran with (a change runs it at once).
        self._own_run_at: datetime | None = self.started_at
        self._own_resources: frozenset[str] | None = None

    # ---- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        if self._task is None or self._task.done():
            # Made again inside the running loop: on Python 3.9 these bind to the loop current at
            # creation, and __init__ runs before the server's loop starts.
            self._wake = asyncio.Event()
            self._task = asyncio.create_task(self._loop(), name="jupyter_autoshutdown.monitor")
            if self.kernel_requests is not None:
                self.kernel_requests.start()
        if self.sampler is not None and (self._sampler_task is None or self._sampler_task.done()):
            self._sampler_task = asyncio.create_task(
                self._sample_loop(), name="jupyter_autoshutdown.utilization"
            )

    async def stop(self) -> None:
        if self.kernel_requests is not None:
            self.kernel_requests.close()
        tasks = [task for task in (self._task, self._sampler_task) if task is not None]
        self._task = self._sampler_task = None
        for task in tasks:
            task.cancel()
        if tasks:
            # Bounded: stopping the server must never wait for ever on a task that survived its
            # cancellation (Python 3.11's wait_for race; see timeouts.py).
            _, pending = await asyncio.wait(tasks, timeout=STOP_TIMEOUT_SECONDS)
            for task in pending:
                self.log.warning("auto-shutdown: %s did not stop within %g s; left behind",
                                 task.get_name(), STOP_TIMEOUT_SECONDS)
            for task in tasks:
                if task.done() and not task.cancelled() and task.exception() is not None:
                    self.log.warning("auto-shutdown: %s ended with %r", task.get_name(), task.exception())
        await self.executor.stop()

    # ---- keep-alive ------------------------------------------------------------------------

    def keep_alive(self, seconds: float, target: str | None = None) -> datetime:
        """Postpone shutdowns until `seconds` from now (the caller bounds `seconds`): every one, or
        only `target`'s (a kernel id, or "t:<terminal name>")."""
        until = self.clock() + timedelta(seconds=seconds)
        if target is None:
            self.keep_alive_until = until
            self.log.info("auto-shutdown: kept alive until %s", until.isoformat())
        else:
            self.kept_targets[target] = until
            self.log.info("auto-shutdown: %s kept alive until %s", _target_words(target), until.isoformat())
        self._emit_keep_alive(target, f"kept alive until {until.isoformat()}", shutdown_at=until)
        self.wake()
        return until

    def cancel_keep_alive(self, target: str | None = None) -> None:
        if target is None:
            if self.keep_alive_until is not None:
                self.log.info("auto-shutdown: keep-alive cancelled")
                self._emit_keep_alive(None, "keep-alive cancelled")
            self.keep_alive_until = None
        elif self.kept_targets.pop(target, None) is not None:
            self.log.info("auto-shutdown: keep-alive of %s cancelled", _target_words(target))
            self._emit_keep_alive(target, "keep-alive cancelled")
        self.wake()

    def _emit_keep_alive(self, target: str | None, message: str, **fields: Any) -> None:
        """Front ends show a keep-alive at once (another tab's, or the panel's)."""
        if self.events is None:
            return
        if target is None:
            self.events.emit("keep_alive", "app", self.action.name, f"everything {message}", **fields)
        elif target.startswith("t:"):
            self.events.emit("keep_alive", "terminal", target[2:], f"terminal {message}", **fields)
        else:
            self.events.emit("keep_alive", "kernel", target, f"kernel {message}", **fields)

    def kept_until(self, now: datetime) -> dict[str, datetime]:
        """The per-kernel and per-terminal keep-alives still in force at `now` (changes nothing)."""
        return {key: until for key, until in self.kept_targets.items() if until > now}

    def _expire_keep_alives(self, now: datetime) -> None:
        if self.keep_alive_until is not None and self.keep_alive_until <= now:
            self.keep_alive_until = None
        for target in [key for key, until in self.kept_targets.items() if until <= now]:
            del self.kept_targets[target]

    # ---- utilization -----------------------------------------------------------------------

    def _process_ids(self) -> dict[str, int]:
        """Kernel id or "t:<name>" -> the pid at the root of its process tree (local ones only)."""
        pids: dict[str, int] = {}
        kernels, _ = kernel_table(self.serverapp.kernel_manager)
        for kernel_id, kernel in list(kernels.items()):
            pid = getattr(getattr(kernel, "provisioner", None), "pid", None)
            if isinstance(pid, int):
                pids[kernel_id] = pid
        terminal_manager = self._terminal_manager()
        if terminal_manager is not None:
            for name, terminal in list(terminal_manager.terminals.items()):
                pid = getattr(getattr(terminal, "ptyproc", None), "pid", None)
                if isinstance(pid, int):
                    pids["t:" + name] = pid
        return pids

    async def _sample_loop(self) -> None:
        assert self.sampler is not None
        while True:
            try:
                await asyncio.to_thread(
                    self.sampler.sample, self._process_ids(), self.clock(), time.monotonic()
                )
            except asyncio.CancelledError:
                raise
            except Exception as error:  # sampling failing must never stop the checker
                self._record_error(f"sampling CPU/GPU use failed: {error!r}")
            await asyncio.sleep(self.options.utilization_interval_seconds)

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def wake(self) -> None:
        """Run a pass now (settings changed, a kernel started or stopped)."""
        self._wake.set()

    async def _loop(self) -> None:
        while True:
            try:
                await self.run_pass()
            except asyncio.CancelledError:
                raise
            except Exception as error:  # the checker never dies
                self.log.exception("auto-shutdown: check pass failed")
                self._record_error(f"check pass failed: {error!r}")
            # A job that ends wakes the loop: terminals or the app action may be due then.
            delay = self._seconds_until_next_check()
            self.next_check = self.clock() + timedelta(seconds=delay)
            # asyncio.wait, not wait_for: Python 3.11's wait_for can hang when it is cancelled in
            # the same loop step as the wake-up (a job ending as the server stops).
            waiter = asyncio.ensure_future(self._wake.wait())
            try:
                await asyncio.wait({waiter}, timeout=delay)
            finally:
                waiter.cancel()

    def _seconds_until_next_check(self) -> float:
        now = self.clock()
        settings = self.store.current
        delay = self.options.max_check_interval_seconds
        if settings.enabled:
            delay = min(delay, settings.idle_timeout_seconds)
        # Only times still to come: a past retry or dry-run time of a target that is not due any
        # more (it turned busy) would otherwise make the loop spin.
        wake_times = [until for until in self._dry_run_until.values() if until > now]
        retry = self.executor.next_retry(now)
        if retry is not None:
            wake_times.append(retry)
        if self.last_plan is not None:
            if self.last_plan.next_deadline is not None:
                wake_times.append(self.last_plan.next_deadline)
            if self.last_plan.next_warning is not None:
                wake_times.append(self.last_plan.next_warning)
        for wake_at in wake_times:
            delay = min(delay, (wake_at - now).total_seconds())
        return max(MIN_SLEEP_SECONDS, delay)

    # ---- one pass --------------------------------------------------------------------------

    def snapshot(self, now: datetime, *, record: bool = False) -> Snapshot:
        """What the managers say now, with the signals in force. Changes nothing, except that
        with `record` (the check pass only) a resource seen for the first time is remembered."""
        first_seen_at = self._first_seen

        def first_seen(key: str) -> datetime:
            # A resource that reports no activity time starts its idle clock when first seen.
            if record:
                return first_seen_at.setdefault(key, now)
            return first_seen_at.get(key, now)

        kernels, kernel_errors = read_kernels(
            self.serverapp.kernel_manager, first_seen, self.kernel_requests
        )
        if self._remote_refresh_error:
            # Stale remote records could make a kernel that is working now look idle.
            kernels, kernel_errors = [], [self._remote_refresh_error]
        terminals, terminal_errors = read_terminals(self._terminal_manager(), first_seen)
        last_activity, source, activity_errors = read_server_last_activity(
            self.serverapp.web_app, self.activity, self.options.server_activity, self.started_at
        )
        return self._with_signals(Snapshot(
            kernels=tuple(kernels),
            terminals=tuple(terminals),
            server_last_activity=last_activity,
            errors=tuple(kernel_errors + terminal_errors + activity_errors),
            server_activity_source=source,
            requests_in_flight=self.activity.in_flight(now) if self.activity is not None else (),
        ), now)

    def _with_signals(self, snapshot: Snapshot, now: datetime) -> Snapshot:
        """Add what moves deadlines besides activity: CPU/GPU use, exemptions, schedule, keep-alive."""
        keep_alive = self.keep_alive_until
        if keep_alive is not None and keep_alive <= now:
            keep_alive = None  # expired; the pass forgets it (_expire_keep_alives)
        stop_last = stop_next = None
        daily_stop = self.options.daily_stop
        if daily_stop is not None:
            stop_last, stop_next = stops_around(daily_stop.time, daily_stop.zone, now)
        return dataclasses.replace(
            snapshot,
            active_at=self.sampler.active_at if self.sampler is not None else {},
            exempt=self._exempt,
            stop_last=stop_last,
            stop_next=stop_next,
            stop_label=daily_stop.label if daily_stop is not None else "",
            keep_alive_until=keep_alive,
            kept_until=self.kept_until(now) if self.kept_targets else {},
        )

    def _watch_kernels(self) -> None:
        """Watch the status messages of kernels started since the last pass (execution.py)."""
        if self.kernel_requests is None:
            return
        try:
            self.kernel_requests.sync(kernel_table(self.serverapp.kernel_manager)[0])
        except Exception as error:  # watching is an addition: jupyter_server's state still applies
            self._record_error(f"watching kernels' status messages failed: {error!r}")

    def _forget_gone(self, kernels: Collection[KernelInfo], terminals: Collection[TerminalInfo]) -> None:
        live = {kernel[K_ID] for kernel in kernels} | {f"t:{term[T_NAME]}" for term in terminals}
        for stale in self._first_seen.keys() - live:
            del self._first_seen[stale]
        for stale in self.kept_targets.keys() - live:
            del self.kept_targets[stale]
        live_keys = {("kernel", kernel[K_ID]) for kernel in kernels}
        live_keys |= {("terminal", term[T_NAME]) for term in terminals}
        live_keys.add(("app", ""))
        for table in (self._warned, self._dry_run_until):
            for gone in table.keys() - live_keys:
                del table[gone]
        self.executor.forget(live_keys)

    def _first_seen_at(self, key: str) -> datetime:
        return self._first_seen.get(key) or self.clock()

    def own_schedule(self) -> str | None:
        """What the action follows when it keeps its own schedule (see actions), else None."""
        try:
            return own_schedule_of(self.action)
        except Exception as error:
            self._record_error(f"asking app action '{self.action.name}' for its schedule failed: {error!r}")
            return None

    def app_state(self) -> AppState:
        own = self.own_schedule()
        return AppState(
            action=self.action.name, empty_since=self._empty_since, fired_at=self.app_fired_at,
            own_schedule=own, own_run_at=self._own_run_at if own is not None else None,
        )

    def _note_resources(self, snapshot: Snapshot, now: datetime) -> None:
        """An action on its own schedule runs at once when the kernels or terminals changed."""
        resources = frozenset(
            [kernel[K_ID] for kernel in snapshot.kernels] + ["t:" + t[T_NAME] for t in snapshot.terminals]
        )
        changed = self._own_resources is not None and resources != self._own_resources
        if changed and (self._own_run_at is None or self._own_run_at > now):
            self._own_run_at = now
        self._own_resources = resources

    def plan(self, now: datetime) -> tuple[Snapshot, Plan]:
        """What the policy decides right now; no side effects beyond bookkeeping."""
        snapshot = self.snapshot(now)
        return snapshot, decide(snapshot, self.store.current, now, self.app_state())

    def explain(self, now: datetime) -> tuple[Snapshot, Explanation]:
        """Every resource's verdict right now, for `status`."""
        snapshot = self.snapshot(now)
        return snapshot, explain(snapshot, self.store.current, now, self.app_state())

    async def run_pass(self) -> bool:
        """One check: returns True when it started a shutdown or the app action (see executor)."""
        self._wake.clear()
        self._watch_kernels()
        if self._remote_kernels:
            await self._refresh_remote_kernels_if_needed()
        if self.exemptions is not None:
            await self.refresh_exemptions()
        now = self.clock()
        self._expire_keep_alives(now)
        snapshot = self.snapshot(now, record=True)
        if not snapshot.errors:
            # Only a complete reading says what is gone: an incomplete one (a gateway that did
            # not answer, an unreadable manager) keeps keep-alives, first-seen times, warnings
            # and retries of what it could not see.
            self._forget_gone(snapshot.kernels, snapshot.terminals)
        if snapshot.kernels or snapshot.terminals or snapshot.errors:
            self._empty_since = None
        elif self._empty_since is None:
            self._empty_since = now
        for message in snapshot.errors:
            if message != self._remote_refresh_error:  # recorded once per failed listing
                self._record_error(message)
        app_state = self.app_state()
        if app_state.own_schedule is not None and not snapshot.errors:
            self._note_resources(snapshot, now)  # may move own_run_at to now
            app_state = self.app_state()
        # Decided after _empty_since is updated: the app's idle period may start at this pass.
        settings = self.store.current
        plan = decide(snapshot, settings, now, app_state)
        self.last_plan = plan
        self.log.debug(
            "auto-shutdown: pass %d: %d kernel(s), %d terminal(s), next deadline %s",
            self.count + 1, len(snapshot.kernels), len(snapshot.terminals), plan.next_deadline,
        )
        self._warn(plan)
        acted = await self._execute(plan, now)
        self.count += 1
        self.last_check = now
        PASSES.inc()
        LAST_CHECK.set(now.timestamp())
        upcoming = [d for d in (plan.next_deadline, plan.app.deadline) if d is not None and d > now]
        SECONDS_UNTIL_NEXT.set((min(upcoming) - now).total_seconds() if upcoming else -1)
        return acted

    async def refresh_exemptions(self) -> None:
        assert self.exemptions is not None
        try:
            self._exempt = await self.exemptions.read(self.serverapp)
        except asyncio.CancelledError:
            raise
        except Exception as error:
            # Keep the last known exemptions: forgetting them could shut down an exempt kernel.
            self._record_error(f"reading exemptions failed: {error!r}")

    def _warn(self, plan: Plan) -> None:
        """Emit one warning per scheduled shutdown that is now within the warning time."""
        for verdict in plan.warnings:
            key = _key(verdict)
            if self._warned.get(key) == verdict.deadline:
                continue
            self._warned[key] = verdict.deadline
            assert verdict.deadline is not None
            seconds = max(0.0, (verdict.deadline - self.clock()).total_seconds())
            happens = "runs" if verdict.kind == "app" else "will be shut down"
            message = f"{_describe(verdict)} {happens} in {seconds:.0f} s unless there is activity"
            self.log.info("auto-shutdown: warning: %s (%s)", message, verdict.reason)
            WARNINGS.labels(verdict.kind).inc()
            if self.events is not None:
                self.events.emit("warning", verdict.kind, verdict.id, message, reason=verdict.reason,
                                 idle_seconds=verdict.idle_seconds, shutdown_at=verdict.deadline)

    async def _refresh_remote_kernels_if_needed(self) -> None:
        """List the gateway's kernels when this pass needs fresh remote state: a remote kernel is
        due or in its warning window on the records held, the app action is due, or the records
        are older than a check interval. After a failure, ask again only after a backoff."""
        now = self.clock()
        if self._remote_retry_at is not None:
            if now < self._remote_retry_at:
                return  # still failing: the snapshot stays incomplete until it answers
        elif self._remote_refreshed_at is not None:
            settings = self.store.current
            fresh_for = self.options.max_check_interval_seconds
            if settings.enabled:
                fresh_for = min(fresh_for, settings.idle_timeout_seconds)
            if (now - self._remote_refreshed_at).total_seconds() < fresh_for:
                plan = decide(self.snapshot(now), settings, now, self.app_state())
                if not (plan.kernels_to_cull or plan.app.due
                        or any(verdict.kind == "kernel" for verdict in plan.warnings)):
                    return
        await self._refresh_remote_kernels()

    async def _refresh_remote_kernels(self) -> None:
        try:
            await within(
                refresh_remote_kernels(self.serverapp.kernel_manager),
                self.options.shutdown_timeout_seconds,
            )
        except asyncio.CancelledError:
            raise
        except Exception as error:
            error_text = "timed out" if isinstance(error, asyncio.TimeoutError) else repr(error)
            self._remote_failures += 1
            backoff = min(REMOTE_BACKOFF_MAX_SECONDS,
                          REMOTE_BACKOFF_FIRST_SECONDS * 2 ** (self._remote_failures - 1))
            self._remote_retry_at = self.clock() + timedelta(seconds=backoff)
            self._remote_refresh_error = (
                f"refreshing kernels from the gateway failed: {error_text}; asking again in {backoff:g} s"
            )
            self._record_error(self._remote_refresh_error)
        else:
            self._remote_refresh_error = self._remote_retry_at = None
            self._remote_failures = 0
            self._remote_refreshed_at = self.clock()

    async def _execute(self, plan: Plan, now: datetime) -> bool:
        """Hand what is due to the executor; True when a job started (they run on their own)."""
        if self.options.dry_run:
            self._report_dry_run(plan, now)
            return False
        executor = self.executor
        started = False
        for verdict in plan.kernels_to_cull:
            key = ("kernel", verdict.id)
            if executor.ready(key, now):
                started |= executor.submit(key, lambda v=verdict: self._shut_down_kernel(v))
        for verdict in plan.terminals_to_cull:
            key = ("terminal", verdict.id)
            if executor.ready(key, now):
                started |= executor.submit(key, lambda v=verdict: self._terminate_terminal(v))
        if plan.app.due and executor.ready(("app", ""), now):
            started |= executor.submit(("app", ""), self._run_app_action)
        return started

    def _report_dry_run(self, plan: Plan, now: datetime) -> None:
        """Log and report what would be shut down; report each again after another timeout."""
        again = now + timedelta(seconds=max(1.0, self.store.current.idle_timeout_seconds))
        due = [*plan.kernels_to_cull, *plan.terminals_to_cull]
        if plan.app.due:
            due.append(Verdict("app", self.action.name, plan.app.idle_seconds, plan.app.deadline, True,
                               plan.app.reason))
        for verdict in due:
            key = _key(verdict)
            if now < self._dry_run_until.get(key, now):
                continue
            self._dry_run_until[key] = again
            message = f"dry run: would {'run' if verdict.kind == 'app' else 'shut down'} {_describe(verdict)}"
            self.log.info("auto-shutdown: %s (%s)", message, verdict.reason)
            self.dry_run_reports.append({"time": now.isoformat(), "kind": verdict.kind,
                                         "target": verdict.id, "reason": verdict.reason})
            if self.events is not None:
                self.events.emit("dry_run", verdict.kind, verdict.id, message, reason=verdict.reason,
                                 idle_seconds=verdict.idle_seconds)

    def failure_of(self, kind: str, ident: str) -> Failure | None:
        """The pending retry of a kernel, terminal or (kind "app") the app action, if any."""
        return self.executor.failures.get((kind, ident))

    async def _shut_down_kernel(self, planned: Verdict) -> bool:
        kernel_manager = self.serverapp.kernel_manager
        if self._remote_kernels and not await within(
            refresh_remote_kernel(kernel_manager, planned.id), self.options.shutdown_timeout_seconds
        ):
            return False  # the gateway no longer has it
        #: Set by the shutdown task once the re-check has found the kernel still due.
        decided: list[tuple[Verdict, KernelInfo]] = []

        async def recheck_then_shut_down() -> None:
            # The task's first step: the re-check and the start of jupyter_server's shutdown (which
            # stops watching the kernel at once) run in one step of the event loop, nothing between.
            fresh = read_kernel(kernel_manager, planned.id, self._first_seen_at, self.kernel_requests)
            if fresh is None:
                return  # already gone
            now = self.clock()
            verdict = kernel_verdict(fresh, self.store.current, now, self._signals_now(now))
            if not verdict.due:
                self.log.info("auto-shutdown: sparing kernel %s: %s", planned.id, verdict.reason)
                return
            self.log.info(
                "auto-shutdown: shutting down kernel %s (%s): idle for %.0f s (%s)",
                planned.id, fresh[K_NAME], verdict.idle_seconds or 0.0, verdict.reason,
            )
            decided.append((verdict, fresh))
            await kernel_manager.shutdown_kernel(planned.id)

        in_time = await self.executor.run_with_limit(
            recheck_then_shut_down(),
            self.options.shutdown_timeout_seconds,
            what=f"shutting down kernel {planned.id}",
            kill=self._killer(planned.id),
        )
        if not decided:
            return False
        verdict, fresh = decided[0]
        if planned.id in kernel_manager:
            raise RuntimeError("the kernel manager still lists the kernel after its shutdown")
        how = "shut down" if in_time else "killed (its shutdown took too long)"
        self._record_shutdown(verdict, f"kernel {planned.id} ({fresh[K_NAME]}) {how}")
        return True

    def _killer(self, kernel_id: str) -> Callable[[], Awaitable[None]] | None:
        """Kills a local kernel's process (its provisioner's kill); None for remote kernels."""
        if self._remote_kernels:
            return None
        try:
            provisioner = self.serverapp.kernel_manager.get_kernel(kernel_id).provisioner
        except Exception:
            return None
        if provisioner is None:
            return None

        async def kill() -> None:
            try:
                await provisioner.kill()
            except Exception as error:  # the process may be gone already
                self.log.warning("auto-shutdown: killing kernel %s failed: %r", kernel_id, error)

        return kill

    async def _terminate_terminal(self, planned: Verdict) -> bool:
        terminal_manager = self._terminal_manager()
        if terminal_manager is None:
            return False
        fresh = read_terminal(terminal_manager, planned.id, self._first_seen_at)
        if fresh is None:
            return False
        kernels_remain = bool(self.serverapp.kernel_manager.list_kernel_ids())
        now = self.clock()
        verdict = terminal_verdict(fresh, self.store.current, now, kernels_remain,
                                   self._signals_now(now))
        if not verdict.due:
            self.log.info("auto-shutdown: sparing terminal %s: %s", planned.id, verdict.reason)
            return False
        self.log.info(
            "auto-shutdown: removing terminal %s: idle for %.0f s (%s)",
            planned.id, verdict.idle_seconds or 0.0, verdict.reason,
        )
        await within(terminal_manager.terminate(planned.id, force=True),
                     self.options.shutdown_timeout_seconds)
        self._record_shutdown(verdict, f"terminal {planned.id} removed")
        return True

    def _signals_now(self, now: datetime) -> Snapshot:
        """The signals in force right now (for re-checks), on an empty snapshot."""
        last_activity, _, _ = read_server_last_activity(
            self.serverapp.web_app, self.activity, self.options.server_activity, self.started_at
        )
        return self._with_signals(Snapshot((), (), last_activity), now)

    def _record_shutdown(self, verdict: Verdict, message: str) -> None:
        SHUTDOWNS.labels(verdict.kind, cause_of(verdict.reason)).inc()
        if self.events is not None:
            self.events.emit("culled", verdict.kind, verdict.id, message, reason=verdict.reason,
                             idle_seconds=verdict.idle_seconds)

    async def _run_app_action(self) -> bool:
        # Re-check: a kernel, terminal or request may have arrived since the plan was made.
        now = self.clock()
        snapshot, plan = self.plan(now)
        if not plan.app.due:
            self.log.info("auto-shutdown: app action '%s' not run: %s", self.action.name,
                          plan.app.reason)
            return False
        self.app_fired_at = now
        own_schedule = self.own_schedule()
        try:
            if own_schedule is not None:
                self.log.info("auto-shutdown: running app action '%s' (%s)", self.action.name, own_schedule)
            else:
                self.log.info(
                    "auto-shutdown: running app action '%s': no kernels or terminals, server idle "
                    "for %.0f s (last activity: %s)",
                    self.action.name, plan.app.idle_seconds or 0.0,
                    snapshot.server_activity_source or "server start",
                )
            context = ActionContext(
                self.serverapp, self.log, plan.app.idle_seconds or 0.0,
                self.store.current.idle_timeout_minutes * 60,
            )
            try:
                result = await within(self.action.run(context), self.options.app_action_timeout_seconds)
            except ActionDeferred as deferral:
                if own_schedule is None:
                    raise
                # Its own schedule: it runs again when it asked to (or at once after a change).
                self._own_run_at = self.clock() + timedelta(seconds=deferral.retry_after_seconds)
                self.last_action_result = str(deferral)
                self.last_action_error = None
                self.log.info("auto-shutdown: app action '%s': %s; next look at %s",
                              self.action.name, deferral, self._own_run_at.isoformat())
                return False
            if own_schedule is not None:
                # Nothing pending: look again after a timeout (an app started without a kernel).
                self._own_run_at = self.clock() + timedelta(
                    seconds=max(1.0, self.store.current.idle_timeout_seconds))
            self.last_action_result = str(result)
            self.last_action_error = None
            self.log.info("auto-shutdown: app action '%s': %s", self.action.name, result)
            SHUTDOWNS.labels("app", cause_of(plan.app.reason)).inc()
            if self.events is not None:
                self.events.emit("app_action", "app", self.action.name, str(result),
                                 reason=plan.app.reason, idle_seconds=plan.app.idle_seconds)
            return True
        except ActionDeferred as deferral:
            self.app_fired_at = None  # it runs again at the time it named (see _guarded)
            self.last_action_result = str(deferral)
            raise
        except BaseException as error:
            self.app_fired_at = None  # it did not happen: allow a retry after the backoff
            if isinstance(error, asyncio.TimeoutError):
                self.last_action_error = "timed out"
            elif not isinstance(error, asyncio.CancelledError):
                self.last_action_error = str(error)
            raise

    def _record_error(self, message: str) -> None:
        self.errors.append({"time": self.clock().isoformat(), "message": message})


def _target_words(target: str) -> str:
    return f"terminal {target[2:]}" if target.startswith("t:") else f"kernel {target}"
