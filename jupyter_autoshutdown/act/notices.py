"""What the monitor tells people before and instead of acting: one warning per scheduled shutdown
in its warning window, and in a dry run one report per due target and timeout (the repeat rule
is the policy's `dry_run_due`). Logged, counted and emitted as events."""

from __future__ import annotations

import collections
import logging
from collections.abc import Callable, Collection
from datetime import datetime

from ..core.records import ResourceKey, key_of
from ..core.settings import Settings
from ..core.telemetry import WARNINGS, Events
from ..decide.policy import Plan, Verdict, dry_run_due

KEPT_REPORTS = 50


def verdict_key(verdict: Verdict) -> ResourceKey:
    """The key of a verdict's resource; the app has one key whatever its action."""
    return key_of(verdict.kind, verdict.id)


def describe(verdict: Verdict) -> str:
    return f"app action '{verdict.id}'" if verdict.kind == "app" else f"{verdict.kind} {verdict.id}"


class Notices:
    def __init__(self, *, clock: Callable[[], datetime], log: logging.Logger,
                 events: Events | None = None) -> None:
        self.clock = clock
        self.log = log
        self.events = events
        #: (kind, id) -> the deadline last warned about, so each warning is emitted once.
        self.warned: dict[ResourceKey, datetime] = {}
        #: (kind, id) -> when a dry run may report it again (policy.dry_run_due).
        self.dry_run_reported: dict[ResourceKey, datetime] = {}
        self.dry_run_reports: collections.deque[dict[str, str]] = collections.deque(maxlen=KEPT_REPORTS)

    def forget(self, live: Collection[ResourceKey]) -> None:
        """Forget what a complete reading no longer shows."""
        for table in (self.warned, self.dry_run_reported):
            for gone in table.keys() - set(live):
                del table[gone]

    def next_report(self, now: datetime) -> datetime | None:
        upcoming = [until for until in self.dry_run_reported.values() if until > now]
        return min(upcoming, default=None)

    def warn(self, plan: Plan) -> None:
        """Emit one warning per scheduled shutdown that is now within the warning time."""
        for verdict in plan.warnings:
            key = verdict_key(verdict)
            if self.warned.get(key) == verdict.deadline:
                continue
            self.warned[key] = verdict.deadline  # type: ignore[assignment]  # warnings have one
            assert verdict.deadline is not None
            seconds = max(0.0, (verdict.deadline - self.clock()).total_seconds())
            happens = "runs" if verdict.kind == "app" else "will be shut down"
            message = f"{describe(verdict)} {happens} in {seconds:.0f} s unless there is activity"
            self.log.info("auto-shutdown: warning: %s (%s)", message, verdict.reason)
            WARNINGS.labels(verdict.kind).inc()
            if self.events is not None:
                self.events.emit("warning", verdict.kind, verdict.id, message, reason=verdict.reason,
                                 idle_seconds=verdict.idle_seconds, shutdown_at=verdict.deadline)

    def report_dry_run(self, plan: Plan, settings: Settings, now: datetime, action_name: str) -> None:
        """Log and report what would be shut down (policy.dry_run_due says when again)."""
        due = [*plan.kernels_to_cull, *plan.terminals_to_cull]
        if plan.app.due:
            due.append(Verdict("app", action_name, plan.app.idle_seconds, plan.app.deadline, True,
                               plan.app.reason))
        for verdict in due:
            key = verdict_key(verdict)
            report_again = dry_run_due(self.dry_run_reported.get(key), settings, now)
            if report_again is None:
                continue
            self.dry_run_reported[key] = report_again
            message = f"dry run: would {'run' if verdict.kind == 'app' else 'shut down'} {describe(verdict)}"
            self.log.info("auto-shutdown: %s (%s)", message, verdict.reason)
            self.dry_run_reports.append({"time": now.isoformat(), "kind": verdict.kind,
                                         "target": verdict.id, "reason": verdict.reason})
            if self.events is not None:
                self.events.emit("dry_run", verdict.kind, verdict.id, message, reason=verdict.reason,
                                 idle_seconds=verdict.idle_seconds)

