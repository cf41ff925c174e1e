"""The app action's runner: its state (when it ran, its last result or error, when an action on its
own schedule looks again) and its job, which the executor runs as a tracked task.

The only module that knows `ActionDeferred`: an action with nothing to do yet names when to look
again, and that time is kept here, in one place (the executor keeps only failures and their
backoff).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from ..actions import ActionContext, ActionDeferred, AppAction, description_of, own_schedule_of
from ..core.records import Snapshot
from ..core.settings import SettingsStore
from ..core.telemetry import SHUTDOWNS, ErrorLog, Events
from ..core.timeouts import within
from ..decide.policy import AppState, Plan
from ..observe.observer import live_keys
from .documents import OpenDocuments


class AppActionRunner:
    def __init__(
        self,
        *,
        action: AppAction,
        serverapp: Any,
        store: SettingsStore,
        clock: Callable[[], datetime],
        log: logging.Logger,
        errors: ErrorLog,
        timeout_seconds: float,
        events: Events | None = None,
        documents: OpenDocuments | None = None,
        startup_grace_seconds: float = 0.0,
    ) -> None:
        self.action = action
        self.serverapp = serverapp
        self.store = store
        self.clock = clock
        self.log = log
        self.errors = errors
        self.timeout_seconds = timeout_seconds
        self.events = events
        self.documents = documents
        #: The save barrier (act/documents.py): the deadline it is for, when it began, how long it
        #: waits and for what, and the documents' version it last looked at.
        self.saves_for: datetime | None = None
        self.saves_since: datetime | None = None
        self.saves_until: datetime | None = None
        self.waiting_for: tuple[str, ...] = ()
        self._saves_version = -1
        #: Since when nothing (no kernel, no terminal) has been left; None while something is.
        self.empty_since: datetime | None = None
        self.fired_at: datetime | None = None
        self.last_result: str | None = None
        self.last_error: str | None = None
        #: An action that deferred: not run again before then. For an action on its own schedule
        #: this is its next look (the first pass runs it); the policy reads it from `state()`.
        self.run_at: datetime | None = clock()
        #: The kernels and terminals an action on its own schedule last ran with.
        self._own_resources: frozenset[str] | None = None
        #: The start-up grace (startup_grace_minutes): the app action not before then.
        self.not_before: datetime | None = (
            clock() + timedelta(seconds=startup_grace_seconds) if startup_grace_seconds > 0 else None)

    @property
    def name(self) -> str:
        return self.action.name

    def own_schedule(self) -> str | None:
        """What the action follows when it keeps its own schedule (see actions), else None."""
        try:
            return own_schedule_of(self.action)
        except Exception as error:
            self.errors.record(f"asking app action '{self.name}' for its schedule failed: {error!r}")
            return None

    def description(self) -> str | None:
        """What the action stops, in words, when it says (see actions.description_of)."""
        try:
            return description_of(self.action)
        except Exception as error:
            self.errors.record(f"asking app action '{self.name}' what it stops failed: {error!r}")
            return None

    def state(self) -> AppState:
        """Everything about the app action the policy decides on (with a pass's snapshot)."""
        own = self.own_schedule()
        return AppState(action=self.name, empty_since=self.empty_since, fired_at=self.fired_at,
                        own_schedule=own, own_run_at=self.run_at if own is not None else None,
                        not_before=self.not_before)

    def ready(self, now: datetime) -> bool:
        """Not deferred (an action on its own schedule is timed by the policy instead), and not
        waiting for open pages' saves unless a page has reported since."""
        if self.saves_until is not None and now < self.saves_until and (
                self.documents is None or self.documents.version == self._saves_version):
            return False
        return self.run_at is None or now >= self.run_at or self.own_schedule() is not None

    def next_look(self, now: datetime) -> datetime | None:
        looks = [at for at in (self.run_at, self.saves_until) if at is not None and at > now]
        return min(looks, default=None)

    def _waits_for_saves(self, now: datetime, deadline: datetime | None) -> bool:
        """The save barrier before the action: True while it waits (see act/documents.py)."""
        documents = self.documents
        if documents is None:
            return False
        if self.saves_for != deadline or self.saves_since is None:
            # A new due moment (activity moved the deadline since the last one): ask pages anew.
            self.saves_for, self.saves_since, self.waiting_for = deadline, now, ()
            if documents.live(now):
                documents.request_save(now, self.name)
        self._saves_version = documents.version
        barrier = documents.barrier(now, self.saves_since, self.store.current.unsaved_grace_seconds)
        if barrier.run:
            self.saves_until, self.waiting_for = None, ()
            if barrier.not_saved:
                self.log.warning("auto-shutdown: running app action '%s' with unsaved documents in open "
                                 "pages (not saved in time): %s", self.name, ", ".join(barrier.not_saved))
            return False
        if barrier.waiting_for != self.waiting_for:
            self.log.info("auto-shutdown: app action '%s' waits until %s for open pages to save: %s",
                          self.name, barrier.until.isoformat() if barrier.until else "?",
                          ", ".join(barrier.waiting_for))
        self.saves_until, self.waiting_for = barrier.until, barrier.waiting_for
        return True

    def note_pass(self, snapshot: Snapshot, now: datetime) -> None:
        """What a pass's snapshot tells the app action: since when nothing is left (an unreadable
        manager is not "nothing"), and, for an action on its own schedule, whether the kernels or
        terminals changed (then it runs at once)."""
        if snapshot.kernels or snapshot.terminals or snapshot.errors:
            self.empty_since = None
        elif self.empty_since is None:
            self.empty_since = now
        if not snapshot.errors and self.own_schedule() is not None:
            self._note_resources(snapshot, now)

    def _note_resources(self, snapshot: Snapshot, now: datetime) -> None:
        resources = frozenset(live_keys(snapshot.kernels, snapshot.terminals))
        changed = self._own_resources is not None and resources != self._own_resources
        if changed and (self.run_at is None or self.run_at > now):
            self.run_at = now
        self._own_resources = resources

    async def run(self, replan: Callable[[datetime], tuple[Snapshot, Plan]]) -> bool:
        """The job: re-check with `replan`, run the action within its time limit, record."""
        now = self.clock()
        snapshot, plan = replan(now)
        if not plan.app.due:
            self.log.info("auto-shutdown: app action '%s' not run: %s", self.name, plan.app.reason)
            return False
        own_schedule = self.own_schedule()
        # An action on its own schedule (Studio Classic's KernelGateway apps) leaves the server
        # and its pages alone: nothing to save first.
        if own_schedule is None and self._waits_for_saves(now, plan.app.deadline):
            return False
        self.fired_at = now
        if own_schedule is not None:
            self.log.info("auto-shutdown: running app action '%s' (%s)", self.name, own_schedule)
        else:
            self.log.info(
                "auto-shutdown: running app action '%s': no kernels or terminals, server idle "
                "for %.0f s (last activity: %s)",
                self.name, plan.app.idle_seconds or 0.0, snapshot.last_activity()[1] or "server start",
            )
        timeout_seconds = self.store.current.idle_timeout_seconds
        context = ActionContext(self.serverapp, self.log, plan.app.idle_seconds or 0.0, timeout_seconds)
        try:
            result = await within(self.action.run(context), self.timeout_seconds)
        except ActionDeferred as deferral:
            # Not a failure: nothing to do yet. It runs again at the time it named (an action on
            # its own schedule also at once after a change of kernels or terminals).
            self.run_at = self.clock() + timedelta(seconds=deferral.retry_after_seconds)
            self.last_result = str(deferral)
            self.last_error = None
            if own_schedule is None:
                self.fired_at = None
            self.log.info("auto-shutdown: app action '%s' deferred until %s: %s",
                          self.name, self.run_at.isoformat(), deferral)
            return False
        except BaseException as error:
            self.fired_at = None  # it did not happen: allow a retry after the backoff
            if isinstance(error, asyncio.TimeoutError):
                self.last_error = "timed out"
            elif not isinstance(error, asyncio.CancelledError):
                self.last_error = str(error)
            raise
        # Nothing pending: an action on its own schedule looks again after a timeout.
        self.run_at = (self.clock() + timedelta(seconds=max(1.0, timeout_seconds))
                       if own_schedule is not None else None)
        self.last_result = str(result)
        self.last_error = None
        self.log.info("auto-shutdown: app action '%s': %s", self.name, result)
        SHUTDOWNS.labels("app", plan.app.cause.value).inc()
        if self.events is not None:
            self.events.emit("app_action", "app", self.name, str(result),
                             reason=plan.app.reason, idle_seconds=plan.app.idle_seconds)
        return True
