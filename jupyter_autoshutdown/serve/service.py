"""The service handlers talk to, and `build_service`: the one function that wires the extension.

`build_service` makes every part from plain configuration (`ServiceConfig`, which app.py fills
from its traits), connects every wake-up in one place, and returns the `Service`. Handlers
validate and serialise; through the service they change settings and keep-alives, report people's
activity and open documents, and read the monitor's latest published result. They never cull
anything themselves, and reading changes nothing.

Wake-ups (each runs a pass at once rather than at the next deadline): a settings change; a
keep-alive set or cancelled; an answered write (it may release an app action that waited for it);
a page's report on its unsaved documents; a kernel started, restarted or shut down (jupyter_server's
kernel_actions events); a kernel's busy or idle seen in its own messages; the end of every job.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from ..act.app_runner import AppActionRunner
from ..act.documents import OpenDocuments
from ..act.executor import Executor
from ..act.hub_signal import HubActivity, HubTarget
from ..act.monitor import Monitor, MonitorOptions
from ..act.shutdown_jobs import ShutdownJobs
from ..act.studio_signal import ActivityFile
from ..actions import AppAction
from ..core.records import Snapshot, utcnow
from ..core.settings import Settings, SettingsStore
from ..core.telemetry import ErrorLog, Events
from ..decide.policy import Explanation
from ..observe.activity import DEFAULT_ACTIVITY_PATHS, PeopleActivity
from ..observe.exemptions import Exemptions
from ..observe.keepalive import KeepAlives
from ..observe.observer import Observer
from ..observe.sources import ActivitySources, build_sources
from ..observe.utilization import Usage, UtilizationSampler

#: jupyter_server's event for kernels started, restarted and shut down by anyone.
KERNEL_ACTIONS_SCHEMA = "https://events.jupyter.org/jupyter_server/kernel_actions/v1"


@dataclass(frozen=True)
class ServiceConfig:
    """What the operator configured (app.py's traits), as plain values."""

    action: AppAction
    activity_paths: tuple[str, ...] = DEFAULT_ACTIVITY_PATHS
    server_activity: str = "people"
    exempt_kernel_names: tuple[str, ...] = ()
    exempt_paths: tuple[str, ...] = ()
    #: CPU/GPU sampling when utilization-aware, else None.
    sampler: UtilizationSampler | None = None
    #: The platform idle-signal file to keep true to our rules (act/studio_signal.py), if any.
    activity_file_path: Path | None = None
    #: How often to report "now" to JupyterHub while the server is held (act/hub_signal.py; 0: off).
    hub_activity_refresh_seconds: float = 0.0
    max_keep_alive_minutes: float = 24 * 60
    shutdown_timeout_seconds: float = 60.0
    app_action_timeout_seconds: float = 300.0
    startup_grace_seconds: float = 0.0
    max_concurrent_shutdowns: int = 8
    utilization_interval_seconds: float = 10.0
    #: Activity sources (observe/sources.py): people's logins count; names of sources (and of
    #: jupyter_server's last_activity_times entries) that do not.
    login_sessions: bool = True
    ignored_activity_sources: tuple[str, ...] = ()
    options: MonitorOptions = field(default_factory=MonitorOptions)
    #: Why the checker does not run on this server (jupyter_server too old), or None.
    refusal: str | None = None


class Service:
    """Everything handlers may use, and nothing deeper: they never reach into the monitor's parts."""

    def __init__(
        self,
        *,
        config: ServiceConfig,
        store: SettingsStore,
        monitor: Monitor,
        activity: PeopleActivity,
        documents: OpenDocuments,
        activity_file: ActivityFile | None,
        hub_activity: HubActivity | None = None,
        serverapp: Any,
        log: logging.Logger,
    ) -> None:
        self.config = config
        self.store = store
        self.monitor = monitor
        self.activity = activity
        self.keep_alives: KeepAlives = monitor.keep_alives
        #: What open pages hold unsaved, as they report it (act/documents.py).
        self.documents = documents
        self.activity_file = activity_file
        #: The hub's last_activity of this server, kept true to our rules (act/hub_signal.py).
        self.hub_activity = hub_activity
        self._serverapp = serverapp
        self._log = log
        self._transform = activity.transform()
        self._listening = False

    # ---- what the status models read ---------------------------------------------------------

    @property
    def refusal(self) -> str | None:
        return self.config.refusal

    @property
    def activity_sources(self) -> ActivitySources:
        return self.monitor.observer.sources

    @property
    def server_activity(self) -> str:
        return self.config.server_activity

    @property
    def activity_paths(self) -> tuple[str, ...]:
        return self.config.activity_paths

    def now(self) -> datetime:
        return self.monitor.clock()

    def explain(self, now: datetime, settings: Settings) -> tuple[Snapshot, Explanation]:
        """Every resource's verdict at `now` under `settings`, from a fresh read-only reading (see
        Monitor.explain)."""
        return self.monitor.explain(now, settings)

    @property
    def utilization_aware(self) -> bool:
        return self.config.sampler is not None

    def usage(self) -> dict[str, Usage]:
        """The last CPU/GPU sample per kernel id or "t:<terminal name>" (empty when not sampling)."""
        sampler = self.config.sampler
        return dict(sampler.usage) if sampler is not None else {}

    @property
    def opt_outs_refused(self) -> frozenset[str]:
        """Kernels whose keep_this_kernel() this server does not honour (allow_user_exemptions)."""
        exemptions = self.monitor.observer.exemptions
        return exemptions.refused if exemptions is not None else frozenset()

    def save_wait(self, now: datetime) -> tuple[datetime | None, tuple[str, ...]]:
        """Until when the app action waits for open pages to save, and for which documents."""
        runner = self.monitor.app
        if runner.saves_until is not None and runner.saves_until > now:
            return runner.saves_until, runner.waiting_for
        return None, ()

    @property
    def dry_run_reports(self) -> list[dict[str, str]]:
        return list(self.monitor.notices.dry_run_reports)

    # ---- lifecycle ---------------------------------------------------------------------------

    def install(self) -> None:
        """At load, before the first request: see every request's start and end (people's
        activity) through tornado's public output-transform hook."""
        self._serverapp.web_app.add_transform(self._transform)

    def start(self) -> None:
        """Start the check loop and what feeds it (the server's loop is running)."""
        event_logger = getattr(self._serverapp, "event_logger", None)
        if event_logger is not None:
            event_logger.add_listener(schema_id=KERNEL_ACTIONS_SCHEMA, listener=self._on_kernel_action)
            self._listening = True
        self.monitor.start()
        if self.activity_file is not None:
            self.activity_file.start()
            self._log.info("auto-shutdown: keeping %s true to these rules for SageMaker's idle shutdown",
                           self.activity_file.path)
        if self.hub_activity is not None:
            self.hub_activity.start()
            self._log.info("auto-shutdown: reporting activity to the hub at %s by these rules",
                           self.hub_activity.url)

    async def stop(self) -> None:
        """Undo start() and install(); safe whatever ran of them (a failed load included)."""
        with contextlib.suppress(ValueError, AttributeError):
            self._serverapp.web_app.transforms.remove(self._transform)
        if self._listening:
            self._listening = False
            with contextlib.suppress(Exception):
                self._serverapp.event_logger.remove_listener(
                    schema_id=KERNEL_ACTIONS_SCHEMA, listener=self._on_kernel_action
                )
        if self.activity_file is not None:
            await self.activity_file.stop()
        if self.hub_activity is not None:
            await self.hub_activity.stop()
        await self.monitor.stop()

    async def _on_kernel_action(self, *, logger: Any, schema_id: str, data: Any) -> None:
        # Called by jupyter_events with these keywords; it must never raise into a kernel action.
        if isinstance(data, dict) and data.get("action") == "restart":
            self.monitor.observer.kernel_restarted(str(data.get("kernel_id")))
        self.monitor.wake()


def activity_sources(config: ServiceConfig, serverapp: Any, log: logging.Logger,
                     clock: Callable[[], datetime]) -> ActivitySources | None:
    """The activity sources besides Jupyter's APIs; None when none can be built (logged)."""
    try:
        return ActivitySources(build_sources(serverapp, log, login_sessions=config.login_sessions,
                                             ignored=config.ignored_activity_sources), log, clock)
    except Exception as error:  # an addition: the server's own activity still counts
        log.warning("auto-shutdown: activity sources left out: %r", error)
        return None


def build_service(
    config: ServiceConfig,
    *,
    serverapp: Any,
    store: SettingsStore,
    log: logging.Logger,
    terminal_manager: Callable[[], Any] | None = None,
    events: Events | None = None,
    clock: Callable[[], datetime] = utcnow,
) -> Service:
    """Every part, wired along the one-way flow (see act/monitor.py): observer -> policy ->
    executor -> actions, with every wake-up connected here and nowhere else."""
    monitor: Monitor | None = None

    def wake() -> None:  # the monitor is made last; nothing wakes it before it starts
        if monitor is not None:
            monitor.wake()

    action = config.action
    errors = ErrorLog(clock)
    activity = PeopleActivity(serverapp.base_url, config.activity_paths, clock=clock, log=log)
    activity.on_change(wake)  # an answered write may release an app action that waited for it
    documents = OpenDocuments(clock=clock, log=log, events=events)
    documents.on_change(wake)  # a page's answer may release the app action
    keep_alives = KeepAlives(clock=clock, log=log, max_minutes=config.max_keep_alive_minutes,
                             on_change=wake, events=events, action_name=action.name)
    exemptions = Exemptions(config.exempt_kernel_names, config.exempt_paths,
                            honour_opt_outs=store.limits.allow_user_exemptions)
    observer = Observer(
        serverapp=serverapp, clock=clock, log=log, errors=errors, keep_alives=keep_alives,
        terminal_manager=terminal_manager, activity=activity, server_activity=config.server_activity,
        exemptions=exemptions, sampler=config.sampler,
        remote_timeout_seconds=config.shutdown_timeout_seconds,
        utilization_interval_seconds=config.utilization_interval_seconds, on_change=wake,
        sources=activity_sources(config, serverapp, log, clock),
    )
    executor = Executor(max_concurrent=config.max_concurrent_shutdowns, clock=clock, log=log,
                        on_done=wake, errors=errors, action_name=action.name, events=events)
    monitor = Monitor(
        observer=observer, store=store, executor=executor, keep_alives=keep_alives, errors=errors,
        log=log, events=events, options=config.options,
        app=AppActionRunner(action=action, serverapp=serverapp, store=store, clock=clock, log=log,
                            errors=errors, timeout_seconds=config.app_action_timeout_seconds,
                            events=events, documents=documents,
                            startup_grace_seconds=config.startup_grace_seconds),
        jobs=ShutdownJobs(observer=observer, store=store, executor=executor, log=log,
                          shutdown_timeout_seconds=config.shutdown_timeout_seconds, events=events),
    )
    store.on_change(lambda _settings: wake())
    activity_file = None
    if config.activity_file_path is not None:
        activity_file = ActivityFile(config.activity_file_path, clock=clock, log=log, errors=errors)
        monitor.on_publish(activity_file.published)
    hub_activity = None
    hub_target = HubTarget.from_environment() if config.hub_activity_refresh_seconds > 0 else None
    if hub_target is not None:
        hub_activity = HubActivity(hub_target, clock=clock, log=log, errors=errors,
                                   refresh_seconds=config.hub_activity_refresh_seconds)
        monitor.on_publish(hub_activity.published)
    return Service(config=config, store=store, monitor=monitor, activity=activity, documents=documents,
                   activity_file=activity_file, hub_activity=hub_activity, serverapp=serverapp, log=log)
