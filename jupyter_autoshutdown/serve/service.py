"""The narrow service handlers talk to: settings, keep-alives, people's activity, and the monitor's
latest published result. Handlers validate and serialise; they change settings and keep-alives
and wake the monitor through this object, and never cull anything themselves."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..act.app_runner import AppActionRunner
from ..act.documents import OpenDocuments
from ..act.executor import Executor
from ..act.hub_signal import HubActivity
from ..act.monitor import Monitor, MonitorOptions, utcnow
from ..act.shutdown_jobs import ShutdownJobs
from ..act.studio_signal import ActivityFile
from ..actions import AppAction
from ..core.settings import SettingsStore
from ..core.telemetry import ErrorLog, Events
from ..observe.activity import PeopleActivity
from ..observe.exemptions import Exemptions
from ..observe.keepalive import KeepAlives
from ..observe.observer import Observer
from ..observe.utilization import UtilizationSampler


@dataclass(frozen=True)
class Service:
    store: SettingsStore
    monitor: Monitor
    activity: PeopleActivity
    keep_alives: KeepAlives
    #: What open pages hold unsaved, as they report it (act/documents.py).
    documents: OpenDocuments
    #: Operator configuration shown in `settings` (read only at run time).
    server_activity: str = "people"
    activity_paths: tuple[str, ...] = ()
    #: The platform idle-signal file kept true to our rules (act/studio_signal.py), if any.
    activity_file: ActivityFile | None = None
    #: The hub's last_activity of this server kept true to our rules (act/hub_signal.py), if any.
    hub_activity: HubActivity | None = None
    #: Why the checker does not run on this server (jupyter_server too old), or None.
    refusal: str | None = None


def build_monitor(
    *,
    serverapp: Any,
    store: SettingsStore,
    action: AppAction,
    log: logging.Logger,
    terminal_manager: Callable[[], Any] | None = None,
    activity: PeopleActivity | None = None,
    server_activity: str = "people",
    exemptions: Exemptions | None = None,
    sampler: UtilizationSampler | None = None,
    events: Events | None = None,
    documents: OpenDocuments | None = None,
    max_keep_alive_minutes: float = 24 * 60,
    shutdown_timeout_seconds: float = 60.0,
    app_action_timeout_seconds: float = 300.0,
    startup_grace_seconds: float = 0.0,
    max_concurrent_shutdowns: int = 8,
    utilization_interval_seconds: float = 10.0,
    options: MonitorOptions | None = None,
    clock: Callable[[], Any] = utcnow,
) -> Monitor:
    """The parts, wired along the one-way flow (see act/monitor.py): observer -> policy -> executor."""
    monitor: Monitor | None = None

    def wake() -> None:  # the monitor is made last; nothing wakes it before it starts
        if monitor is not None:
            monitor.wake()

    errors = ErrorLog(clock)
    keep_alives = KeepAlives(clock=clock, log=log, max_minutes=max_keep_alive_minutes, on_change=wake,
                             events=events, action_name=action.name)
    observer = Observer(
        serverapp=serverapp, clock=clock, log=log, errors=errors, keep_alives=keep_alives,
        terminal_manager=terminal_manager, activity=activity, server_activity=server_activity,
        exemptions=exemptions, sampler=sampler, daily_stop=lambda: store.current.daily_stop,
        remote_timeout_seconds=shutdown_timeout_seconds,
        utilization_interval_seconds=utilization_interval_seconds, on_change=wake,
    )
    documents = documents or OpenDocuments(clock=clock, log=log, events=events)
    documents.on_change(wake)  # a page's answer may release the app action
    executor = Executor(max_concurrent=max_concurrent_shutdowns, clock=clock, log=log, on_done=wake,
                        errors=errors, action_name=action.name, events=events)
    monitor = Monitor(
        observer=observer, store=store, executor=executor, keep_alives=keep_alives, errors=errors,
        log=log, events=events, options=options or MonitorOptions(),
        app=AppActionRunner(action=action, serverapp=serverapp, store=store, clock=clock, log=log,
                            errors=errors, timeout_seconds=app_action_timeout_seconds, events=events,
                            documents=documents, startup_grace_seconds=startup_grace_seconds),
        jobs=ShutdownJobs(observer=observer, store=store, executor=executor, log=log,
                          shutdown_timeout_seconds=shutdown_timeout_seconds, events=events),
    )
    return monitor
