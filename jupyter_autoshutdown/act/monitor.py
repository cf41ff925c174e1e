"""The check loop, and only the loop: observe, decide, dispatch, publish; then sleep until the next
deadline.

It sleeps until the earliest deadline the policy reports, capped by the idle timeout itself and by
``max_check_interval``. The cap at the timeout is what makes culls punctual: any new activity at
time t moves a deadline to t + timeout, and a pass at most one timeout apart sees it in time to
schedule a wake-up at exactly that deadline. Settings changes, keep-alives, kernel start/shutdown
and the end of every job wake it.

Data flows one way: the observer (observe/observer.py) reads the managers into a snapshot, the
policy (decide/policy.py) decides, due targets go to the executor as jobs (act/shutdown_jobs.py,
act/app_runner.py), and each pass's result is published as an immutable `PassResult` that handlers,
metrics and events read. A failure is logged and kept for `status`; it never stops the pass or the
loop."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from functools import partial

from ..core.records import APP_KEY, Snapshot, key_of, terminal_key
from ..core.settings import Settings, SettingsStore
from ..core.telemetry import LAST_CHECK, PASSES, SECONDS_UNTIL_NEXT, ErrorLog, Events
from ..decide.policy import AppActivity, Explanation, Plan, app_activity, decide, explain
from ..observe.keepalive import KeepAlives
from ..observe.observer import REMOTE_FAILED, Observer, live_keys
from .app_runner import AppActionRunner
from .executor import Executor, Failure
from .notices import Notices
from .shutdown_jobs import ShutdownJobs

#: Never sleep less than this between passes, whatever the deadlines say.
MIN_SLEEP_SECONDS = 0.02
#: How long stop() waits for the loop task after cancelling it.
STOP_TIMEOUT_SECONDS = 5.0



@dataclass(frozen=True)
class MonitorOptions:
    max_check_interval_seconds: float = 60.0
    #: Log and report what would be shut down; shut nothing down.
    dry_run: bool = False


@dataclass(frozen=True)
class PassResult:
    """What one check pass saw and decided; replaced, never changed, after each pass."""

    count: int
    checked_at: datetime | None
    plan: Plan | None
    next_check: datetime | None = None
    #: When the app was last active by our rules, or held now (policy.app_activity).
    activity: AppActivity | None = None


class Monitor:
    def __init__(
        self,
        *,
        observer: Observer,
        store: SettingsStore,
        app: AppActionRunner,
        executor: Executor,
        jobs: ShutdownJobs,
        keep_alives: KeepAlives,
        errors: ErrorLog,
        options: MonitorOptions,
        log: logging.Logger,
        events: Events | None = None,
    ) -> None:
        self.observer = observer
        self.store = store
        self.app = app
        self.executor = executor
        self.jobs = jobs
        self.keep_alives = keep_alives
        self.errors = errors
        self.options = options
        self.log = log
        self.events = events
        self.clock: Callable[[], datetime] = observer.clock
        self.started_at = observer.started_at
        self.result = PassResult(0, None, None)
        #: Warnings and dry-run reports (act/notices.py).
        self.notices = Notices(clock=self.clock, log=log, events=events)
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._listeners: list[Callable[[PassResult], None]] = []

    # ---- what handlers read (the latest published result) ------------------------------------

    @property
    def count(self) -> int:
        return self.result.count

    @property
    def last_check(self) -> datetime | None:
        return self.result.checked_at

    @property
    def next_check(self) -> datetime | None:
        return self.result.next_check

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def failure_of(self, kind: str, ident: str) -> Failure | None:
        """The pending retry of a kernel, terminal or (kind "app") the app action, if any."""
        return self.executor.failures.get(key_of(kind, ident))

    def plan(self, now: datetime) -> tuple[Snapshot, Plan]:
        """What the policy decides right now (the app action's re-check); changes nothing."""
        settings = self.store.current
        snapshot = self.observer.snapshot(now, settings.daily_stop)
        return snapshot, decide(snapshot, settings, now, self.app.state())

    def explain(self, now: datetime, settings: Settings) -> tuple[Snapshot, Explanation]:
        """Every resource's verdict right now, for `status`; changes nothing.

        A fresh reading, not the last pass's: a pass runs only at deadlines, and a kernel used
        since then would show a countdown that no longer holds. Reading and the policy change
        nothing, so a GET stays a GET."""
        snapshot = self.observer.snapshot(now, settings.daily_stop)
        return snapshot, explain(snapshot, settings, now, self.app.state())

    # ---- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._loop(), name="jupyter_autoshutdown.act.monitor")
            self.observer.start()

    async def stop(self) -> None:
        tasks = [task for task in (self._task, self.observer.stop()) if task is not None]
        self._task = None
        for task in tasks:
            task.cancel()
        if tasks:
            # Bounded: stopping the server must never wait for ever on a task that survived its
            # cancellation (Python 3.11's wait_for race; see core/timeouts.py).
            _, pending = await asyncio.wait(tasks, timeout=STOP_TIMEOUT_SECONDS)
            for task in pending:
                self.log.warning("auto-shutdown: %s did not stop within %g s; left behind",
                                 task.get_name(), STOP_TIMEOUT_SECONDS)
        await self.executor.stop()

    def on_publish(self, listener: Callable[[PassResult], None]) -> None:
        """Call `listener` with each pass's result once it is published (it must not block)."""
        self._listeners.append(listener)

    def wake(self) -> None:
        """Run a pass now (settings changed, a kernel started or stopped, a job ended)."""
        self._wake.set()

    async def _loop(self) -> None:
        while True:
            try:
                await self.run_pass()
            except asyncio.CancelledError:
                raise
            except Exception as error:  # the checker never dies
                self.log.exception("auto-shutdown: check pass failed")
                self.errors.record(f"check pass failed: {error!r}")
            delay = self._seconds_until_next_check()
            self.result = replace(self.result, next_check=self.clock() + timedelta(seconds=delay))
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
        wake_times = []
        for wake_at in (self.notices.next_report(now), self.executor.next_retry(now),
                        self.app.next_look(now)):
            if wake_at is not None:
                wake_times.append(wake_at)
        plan = self.result.plan
        if plan is not None:
            wake_times.extend(at for at in (plan.next_deadline, plan.next_warning) if at is not None)
        for wake_at in wake_times:
            delay = min(delay, (wake_at - now).total_seconds())
        return max(MIN_SLEEP_SECONDS, delay)

    # ---- one pass --------------------------------------------------------------------------

    def _deadline_reached(self, now: datetime) -> bool:
        """Whether the last plan had something due, or a deadline or warning that has come by
        `now`: then a gateway's kernels are read fresh before this pass decides on them."""
        plan = self.result.plan
        if plan is None:
            return True
        if plan.kernels_to_cull or plan.terminals_to_cull or plan.app.due:
            return True
        return any(at is not None and at <= now for at in (plan.next_deadline, plan.next_warning))

    async def run_pass(self) -> bool:
        """One check: returns True when it started a shutdown or the app action (see executor)."""
        self._wake.clear()
        observer = self.observer
        # One settings value for the whole pass: a change landing while it awaits wakes the next
        # pass, and every shutdown re-checks with the settings in force when it runs.
        settings = self.store.current
        # Remote records are fresh enough for one check interval (status and deadlines).
        fresh_for = self.options.max_check_interval_seconds
        if settings.enabled:
            fresh_for = min(fresh_for, settings.idle_timeout_seconds)
        await observer.refresh(self._deadline_reached(self.clock()), fresh_for)
        now = self.clock()
        self.keep_alives.expire(now)
        snapshot = observer.snapshot(now, settings.daily_stop, record=True)
        notices = self.notices
        tables = notices.warned or notices.dry_run_reported or self.executor.failures
        if observer.prune(snapshot) and tables:
            # A complete reading: forget warnings, dry-run reports and retries of what is gone.
            live = live_keys(snapshot.kernels, snapshot.terminals)
            notices.forget(live)
            self.executor.forget(live)
        self.app.note_pass(snapshot, now)  # since when nothing is left; may move its next look
        for message in snapshot.errors:
            if not message.startswith(REMOTE_FAILED):  # recorded once per failed listing
                self.errors.record(message)
        # Reading and deciding in two steps of the event loop: over thousands of resources each
        # takes milliseconds, and the server's other work runs between them. The decision is for
        # `now`, and every shutdown re-checks its target first.
        await asyncio.sleep(0)
        # Decided after the app noted this pass: its idle period may start at this pass.
        plan = decide(snapshot, settings, now, self.app.state())
        self.log.debug(
            "auto-shutdown: pass %d: %d kernel(s), %d terminal(s), next deadline %s",
            self.count + 1, len(snapshot.kernels), len(snapshot.terminals), plan.next_deadline,
        )
        self.notices.warn(plan)
        acted = self.dispatch(plan, settings, now)
        self.result = PassResult(self.result.count + 1, now, plan, self.result.next_check,
                                 app_activity(snapshot, settings, now))
        for listener in self._listeners:
            try:
                listener(self.result)
            except Exception:  # a listener's failure is its own, never the pass's
                self.log.exception("auto-shutdown: a pass result listener failed")
        PASSES.inc()
        LAST_CHECK.set(now.timestamp())
        upcoming = [d for d in (plan.next_deadline, plan.app.deadline) if d is not None and d > now]
        SECONDS_UNTIL_NEXT.set((min(upcoming) - now).total_seconds() if upcoming else -1)
        return acted

    def dispatch(self, plan: Plan, settings: Settings, now: datetime) -> bool:
        """Hand what is due to the executor; True when a job started (they run on their own)."""
        if self.options.dry_run:
            self.notices.report_dry_run(plan, settings, now, self.app.name)
            return False
        executor, jobs = self.executor, self.jobs
        started = False
        for verdict in plan.kernels_to_cull:
            key = verdict.id
            if executor.ready(key, now):
                started |= executor.submit(key, partial(jobs.shut_down_kernel, verdict))
        for verdict in plan.terminals_to_cull:
            key = terminal_key(verdict.id)
            if executor.ready(key, now):
                started |= executor.submit(key, partial(jobs.remove_terminal, verdict))
        if plan.app.due and executor.ready(APP_KEY, now) and self.app.ready(now):
            started |= executor.submit(APP_KEY, lambda: self.app.run(self.plan))
        return started
