"""The server extension: configuration traits and the wiring of settings, monitor and handlers."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

from jupyter_server.extension.application import ExtensionApp
from traitlets import Bool, Enum, Float, Int, List, Unicode, Union, validate

from .act.hub_signal import REFRESH_SECONDS as HUB_REFRESH_SECONDS
from .act.monitor import MonitorOptions
from .act.studio_signal import SAGEMAKER_ACTIVITY_FILE
from .actions import (
    BUILTIN_ACTION_NAMES,
    SAGEMAKER_METADATA_PATH,
    STUDIO_SPACE,
    ActionSettings,
    AppAction,
    NoAction,
    choose_automatically,
    load_action,
    read_sagemaker_metadata,
    sagemaker_kind,
)
from .core.schedule import ScheduleError, parse_stop_time
from .core.settings import (
    IDLE_TYPES,
    Limits,
    Settings,
    SettingsError,
    SettingsStore,
    StateFile,
    default_state_path,
    parse_daily_stop,
    parse_minutes,
)
from .core.telemetry import Events
from .observe.activity import DEFAULT_ACTIVITY_PATHS, SERVER_ACTIVITY_MODES, compile_paths
from .observe.utilization import UtilizationSampler, nvml_reader
from .serve.handlers import default_handlers
from .serve.service import ServiceConfig, build_service

#: The oldest jupyter_server this extension runs on (pyproject's dependency says the same).
MIN_SERVER_VERSION = (2, 4)


def refusal_for_server() -> str | None:
    """Why the checker cannot run on the jupyter_server in use, or None. jupyter_server 1.x (the
    last Studio Classic runtimes) loads the extension, but lacks what the checker runs on; an
    install without dependencies gets there."""
    import jupyter_server

    found = getattr(jupyter_server, "__version__", "0")
    try:
        major_minor = tuple(int(part) for part in found.split(".")[:2])
    except ValueError:
        return None  # a development build: let it try
    if major_minor >= MIN_SERVER_VERSION:
        return None
    needed = ".".join(map(str, MIN_SERVER_VERSION))
    return (f"jupyter_autoshutdown needs jupyter_server {needed} or newer, and this server runs "
            f"{found}: nothing will be shut down automatically. Upgrade it (pip install "
            f"'jupyter_server>={needed}'; JupyterLab 4 brings it) and restart the server")


class AutoShutdown(ExtensionApp):
    """Shut down idle kernels and terminals, then stop what costs money.

    Configure with ``c.AutoShutdown.<trait>`` in any Jupyter server config file, or
    ``--AutoShutdown.<trait>=...`` on the command line.
    """

    name = "jupyter_autoshutdown"
    load_other_extensions = True

    idle_timeout = Float(
        120.0,
        config=True,
        help="""Minutes without activity after which an idle kernel is shut down (and, once no
        kernels remain, a terminal is removed and the app action runs). 0 turns auto-shutdown off.
        A runtime change over REST overrides this until this value itself is changed.""",
    ).tag(unit="minutes")
    min_idle_timeout = Float(
        0.0,
        config=True,
        help="""Minutes (operator limit): the shortest idle timeout a user may choose at run time
        (REST, the front end, set-time-interval.sh). 0: no lower bound. A saved or static
        idle_timeout below it is raised to it at start (logged).""",
    ).tag(unit="minutes")
    max_idle_timeout = Float(
        0.0,
        config=True,
        help="""Minutes (operator limit): the longest idle timeout a user may choose at run time.
        0: no upper bound (beyond one year). A saved or static idle_timeout above it is lowered to
        it at start (logged).""",
    ).tag(unit="minutes")
    allow_disable = Bool(
        True,
        config=True,
        help="""Operator limit: whether a runtime change may set the idle timeout to 0 (off).
        When False, a saved 0 is replaced by the static idle_timeout at start.""",
    )
    allow_user_exemptions = Bool(
        True,
        config=True,
        help="""Operator limit: whether keep_this_kernel() is honoured. When False, a kernel that
        called it is shut down like any other, and status says its opt-out was ignored.""",
    )
    allow_user_daily_stop = Bool(
        False,
        config=True,
        help="""Operator limit: whether users may move or clear the daily stop time (and its time
        zone) at run time, through PATCH autoshutdown/api/settings and the panel's form. The
        configured daily_stop_time is the default, and what resetting the user's time (DELETE)
        brings back. When False, such changes are refused with 403, and a saved user time is
        ignored at start.""",
    )
    unsaved_grace_minutes = Float(
        5.0,
        config=True,
        help="""Minutes: before the app action runs, open pages of this front end save the
        documents they hold with unsaved changes. A document that cannot be saved (read-only, a
        conflict, an error) holds the app action for at most this many minutes, then it runs
        anyway. 0: never wait.""",
    ).tag(unit="minutes")
    keep_terminals = Bool(
        False,
        config=True,
        help="""Never remove terminals. Open terminals then also keep the app action from running.""",
    )
    cull_busy = Bool(
        False,
        config=True,
        help="""Also shut down kernels that are busy running code once their last activity
        (output included) is older than the timeout. Off by default: busy kernels are never culled.""",
    )
    cull_connected = Bool(
        True,
        config=True,
        help="""Shut down idle kernels even when a client (a browser tab) is connected to them,
        as the original SageMaker extension did. Turn off to let open tabs keep kernels alive.""",
    )
    starting_timeout = Float(
        30.0,
        config=True,
        help="""Minutes after which a kernel still in the 'starting' state (no client has talked to
        it, so no code has run in it) is shut down, if that is sooner than idle_timeout.
        0 means such kernels follow idle_timeout alone.""",
    ).tag(unit="minutes")
    max_check_interval = Float(
        60.0,
        config=True,
        help="""Seconds: the longest time between two checks. The checker wakes at each deadline anyway, so
        this only bounds how late it notices changes it is not told about (minimum 0.1).""",
    ).tag(unit="seconds")
    max_concurrent_shutdowns = Int(
        8,
        config=True,
        help="""How many kernels or terminals are shut down at the same time (minimum 1).""",
    )
    shutdown_timeout = Float(
        60.0,
        config=True,
        help="""Seconds one kernel or terminal shutdown may take before it counts as failed and is
        retried later with backoff.""",
    ).tag(unit="seconds")
    app_action = Unicode(
        "auto",
        config=True,
        help=f"""What runs once no kernels or terminals remain and the server has been idle for
        idle_timeout: one of {', '.join(BUILTIN_ACTION_NAMES)}, or the import path of a class
        ('package.module:ClassName'). 'server' stops this Jupyter server; 'jupyterhub' asks the hub
        to stop this single-user server; 'sagemaker' deletes idle SageMaker Studio apps or stops
        this notebook instance; 'command' runs app_command. 'auto' picks 'sagemaker' when
        SageMaker's metadata file describes a Studio app or a notebook instance, 'jupyterhub' when
        the hub's environment is set, else 'none'.""",
    )
    app_command = Union(
        [Unicode(), List(Unicode())],
        default_value="",
        config=True,
        help="""The command the 'command' app action runs, as a string (split like a shell would,
        but run without one; use "sh -c '...'" for shell syntax) or a list of arguments.
        Examples: 'sudo shutdown -h now', 'oci data-science notebook-session deactivate
        --notebook-session-id <ocid> --auth resource_principal'.""",
    )
    sagemaker_metadata_path = Unicode(
        SAGEMAKER_METADATA_PATH,
        config=True,
        help="""Where SageMaker describes the Studio app or notebook instance this server runs in.""",
    )
    sagemaker_activity_file = Unicode(
        None,
        allow_none=True,
        config=True,
        help=f"""A file to keep true to this extension's rules for SageMaker Studio's own idle
        shutdown: the moment the app was last active (people, kernels, terminals), and the current
        time, refreshed every 30 s, while a kernel runs code, a kernel is exempt, a keep-alive
        holds or a write is in flight. Studio's idle shutdown (through
        jupyter-activity-monitor-extension's api/idle) reads {SAGEMAKER_ACTIVITY_FILE}; with this,
        it never stops a space under a running cell and follows what people do. Default (unset):
        that file in a Studio JupyterLab space (found from sagemaker_metadata_path), nothing
        elsewhere. An empty string turns it off.""",
    )
    hub_activity_refresh = Float(
        HUB_REFRESH_SECONDS,
        min=0.0,
        config=True,
        help="""Seconds: in a JupyterHub single-user server (JUPYTERHUB_ACTIVITY_URL set), this
        extension reports to the hub, as its last_activity, the current time at least this often
        while anything holds the server (a kernel running code, a keep-alive, an exempt kernel,
        utilization, a request in flight), and the true last activity otherwise, so that the hub's
        culler (jupyterhub-idle-culler) never stops a running cell. Keep it below the culler's
        timeout. 0 turns the reporting off.""",
    ).tag(unit="seconds")
    sagemaker_method = Enum(
        ["auto", "endpoint", "boto3"],
        default_value="auto",
        config=True,
        help="""How the 'sagemaker' action reaches SageMaker in Studio Classic: 'endpoint' (Studio's
        own app endpoint on this server, no IAM permission needed), 'boto3' (the SageMaker API with
        the execution role), or 'auto' (the endpoint when it answers, else boto3). Studio's
        JupyterLab and Code Editor apps always use boto3.""",
    )
    app_action_timeout = Float(
        300.0,
        config=True,
        help="""Seconds the app action may take before it counts as failed.""",
    ).tag(unit="seconds")
    startup_grace_minutes = Float(
        5.0,
        min=0.0,
        config=True,
        help="""Minutes: after every start of the server, the app action waits at least this long,
        whatever the timeout. A timeout set at run time is kept across restarts, so without it a
        tiny one (set by mistake) would stop a restarted server before anyone could reach it and
        change the setting. Only the app action waits: kernels and terminals are culled as
        usual. 0 turns it off (for an operator whose config sets a short timeout on purpose).""",
    ).tag(unit="minutes")
    idle_type = Enum(
        list(IDLE_TYPES),
        default_value="kernels_or_terminals",
        config=True,
        help="""What counts as activity. 'kernels_or_terminals': a kernel's own messages, a
        terminal's input and output. 'kernel_connections': also, an open client (browser tab)
        keeps its kernel alive. 'activity': also, the server's activity (what server_activity
        counts: by default what people do, such as saving a file or typing in a page) keeps every
        kernel and terminal alive.""",
    )
    server_activity = Enum(
        list(SERVER_ACTIVITY_MODES),
        default_value="people",
        config=True,
        help="""What keeps the server itself (and so the app action) from being idle.
        'people': what people do: kernel activity, terminal input and output, writes (POST, PUT,
        PATCH, DELETE) on activity_paths (saving, creating, renaming, deleting, starting and
        stopping kernels, sessions and terminals), and keyboard, pointer, wheel or focus use of
        a JupyterLab page, reported by this extension's front end. GET requests (the polls of an open browser
        tab), websocket pings, other extensions' requests and this extension's own never count, so
        an open tab that nobody uses does not keep the bill running. 'any_request': every
        authenticated API request counts, as for jupyter_server's own
        shutdown_no_activity_timeout (an open tab then keeps the server running).""",
    )
    activity_paths = List(
        Unicode(),
        default_value=list(DEFAULT_ACTIVITY_PATHS),
        config=True,
        help="""Request paths (regular expressions matched against the whole path after the
        server's base URL) whose POST, PUT, PATCH and DELETE requests count as a person's
        activity with server_activity 'people'. Requests carrying no_track_activity never count.""",
    )
    login_sessions = Bool(
        True,
        config=True,
        help="""Whether people logged in on the machine (SSH, a console, a tmux attached there)
        count as activity for the app action: found in /proc as the terminals of processes whose
        parent is sshd or login, each counted by its terminal's last input (the idle time `w`
        shows), so an open session nobody types into does not hold the machine. The server's own
        terminals count as terminal activity either way.""",
    )
    ignored_activity_sources = List(
        Unicode(),
        default_value=[],
        config=True,
        help="""Activity sources that do not count: names of entries in jupyter_server's
        activity hook (settings['last_activity_times'], e.g. 'jupyter-server-proxy' for every
        proxied app; for a proxied dashboard that polls by itself, prefer jupyter-server-proxy's
        own per-app update_last_activity), or of whole sources: 'last_activity_times',
        'login_sessions', or an entry point's name in the group
        'jupyter_autoshutdown.activity_sources'. (With server_activity 'any_request',
        jupyter_server's own last_activity() counts every hook entry anyway.)""",
    )
    warning_minutes = Float(
        5.0,
        config=True,
        help="""Minutes before a kernel, terminal or the app is shut down at which a 'warning'
        event is emitted (for front ends), at most half the timeout. 0: no warnings.""",
    ).tag(unit="minutes")
    dry_run = Bool(
        False,
        config=True,
        help="""Log and report (in status and as 'dry_run' events) what would be shut down, and
        shut nothing down.""",
    )
    utilization_aware = Bool(
        False,
        config=True,
        help="""Count CPU and GPU use of a kernel's or terminal's processes as activity, so silent
        work (a training loop in a thread, a quiet script in a terminal) is not shut down.""",
    )
    cpu_threshold = Float(
        10.0,
        config=True,
        help="""Percent of one CPU core, averaged over utilization_window, above which a process
        tree counts as active.""",
    ).tag(unit="percent")
    gpu_threshold = Float(
        10.0,
        config=True,
        help="""Percent of GPU (SM) utilization above which a process counts as active. Needs pynvml
        or nvidia-smi; without a GPU only CPU is sampled.""",
    ).tag(unit="percent")
    utilization_window = Float(
        60.0, config=True, help="""Seconds over which CPU use is averaged."""
    ).tag(unit="seconds")
    utilization_interval = Float(
        10.0, config=True, help="""Seconds between two CPU/GPU samples (minimum 0.1)."""
    ).tag(unit="seconds")
    exempt_kernel_names = List(
        Unicode(),
        config=True,
        help="""Kernel (kernelspec) names never shut down; shell-style patterns ('*gpu*').""",
    )
    exempt_paths = List(
        Unicode(),
        config=True,
        help="""Notebook paths (relative to the server's root) whose kernels are never shut down;
        shell-style patterns ('long-runs/*').""",
    )
    max_keep_alive = Float(
        720.0,
        config=True,
        help="""Minutes: the longest keep-alive a user may ask for (POST autoshutdown/api/keepalive).
        0 turns keep-alive off.""",
    ).tag(unit="minutes")
    daily_stop_time = Unicode(
        "",
        config=True,
        help="""A local time of day ('22:00') at which everything not busy is shut down and the app
        action runs, whatever the idle time. Empty: no daily stop. Users may move it at run time
        only where allow_user_daily_stop is True.""",
    )
    daily_stop_timezone = Unicode(
        "",
        config=True,
        help="""IANA time zone of daily_stop_time ('Europe/Berlin'). Empty: the machine's.""",
    )
    state_file = Unicode(
        "",
        config=True,
        help="""Path of the JSON file that keeps settings changed at run time across restarts.
        Empty: <jupyter data dir>/jupyter_autoshutdown/state.json.""",
    )

    @validate("idle_timeout", "starting_timeout", "min_idle_timeout", "max_idle_timeout",
              "unsaved_grace_minutes")
    def _validate_minutes(self, proposal: Any) -> float:
        try:
            return parse_minutes(proposal["trait"].name, proposal["value"])
        except SettingsError as error:
            from traitlets import TraitError

            raise TraitError(str(error)) from None

    @validate("max_check_interval", "utilization_interval")
    def _validate_interval(self, proposal: Any) -> float:
        return max(0.1, float(proposal["value"]))

    @validate("daily_stop_time")
    def _validate_stop_time(self, proposal: Any) -> str:
        try:
            parse_stop_time(proposal["value"])
        except ScheduleError as error:
            from traitlets import TraitError

            raise TraitError(str(error)) from None
        return proposal["value"]

    @validate("activity_paths")
    def _validate_activity_paths(self, proposal: Any) -> list[str]:
        try:
            compile_paths(proposal["value"])
        except ValueError as error:
            from traitlets import TraitError

            raise TraitError(str(error)) from None
        return proposal["value"]

    @validate("max_concurrent_shutdowns")
    def _validate_concurrency(self, proposal: Any) -> int:
        return max(1, int(proposal["value"]))

    def configured_settings(self) -> Settings:
        return Settings(
            idle_timeout_minutes=self.idle_timeout,
            keep_terminals=self.keep_terminals,
            cull_busy=self.cull_busy,
            cull_connected=self.cull_connected,
            starting_timeout_minutes=self.starting_timeout,
            idle_type=self.idle_type,
            warning_minutes=max(0.0, self.warning_minutes),
            unsaved_grace_minutes=self.unsaved_grace_minutes,
            **self._configured_daily_stop(),
        )

    def _configured_daily_stop(self) -> dict[str, str]:
        """The configured daily stop, or none where its time zone is unknown (logged)."""
        try:
            parse_daily_stop(self.daily_stop_time, self.daily_stop_timezone)
        except ValueError as error:
            self.log.error("auto-shutdown: %s; no daily stop", error)
            return {}
        return {"daily_stop_time": self.daily_stop_time.strip(),
                "daily_stop_timezone": self.daily_stop_timezone.strip()}

    def limits(self) -> Limits:
        low, high = self.min_idle_timeout, self.max_idle_timeout
        if low and high and low > high:
            # Both are the operator's; the lower cost wins rather than turning culling off.
            self.log.error(
                "auto-shutdown: min_idle_timeout %g is above max_idle_timeout %g; using %g for both",
                low, high, high,
            )
            low = high
        return Limits(
            min_idle_timeout_minutes=low,
            max_idle_timeout_minutes=high,
            allow_disable=self.allow_disable,
            allow_user_exemptions=self.allow_user_exemptions,
            allow_user_daily_stop=self.allow_user_daily_stop,
        )

    def action_settings(self) -> ActionSettings:
        command = self.app_command
        return ActionSettings(
            command=tuple(shlex.split(command) if isinstance(command, str) else command),
            sagemaker_metadata_path=self.sagemaker_metadata_path,
            sagemaker_method=self.sagemaker_method,
        )

    def _load_app_action(self) -> AppAction:
        settings = self.action_settings()
        if self.app_action == "auto":
            chosen, why = choose_automatically(settings)
            self.log.info("auto-shutdown: app action 'auto' is '%s': %s", chosen, why)
        try:
            return load_action(self.app_action, settings)
        except ValueError as error:
            # A typo in the action must not also switch off kernel culling.
            self.log.error("auto-shutdown: %s; using app action 'none'", error)
            return NoAction()
        except Exception as error:  # a custom action's constructor failing, likewise
            self.log.error("auto-shutdown: creating app action %r failed (%r); using app action 'none'",
                           self.app_action, error)
            return NoAction()

    @property
    def server(self) -> Any:
        """The ServerApp (set before any of our hooks run)."""
        assert self.serverapp is not None
        return self.serverapp

    def _terminal_manager(self) -> Any:
        settings = self.server.web_app.settings
        if not settings.get("terminals_available"):
            return None
        return settings.get("terminal_manager")

    def _sampler(self) -> UtilizationSampler | None:
        if not self.utilization_aware:
            return None
        gpu_reader = nvml_reader(self.log)
        self.log.info("auto-shutdown: utilization-aware: CPU above %g%%%s over %g s counts as activity",
                      self.cpu_threshold,
                      f" or GPU above {self.gpu_threshold:g}%" if gpu_reader else " (no GPU found)",
                      self.utilization_window)
        return UtilizationSampler(
            cpu_threshold_percent=self.cpu_threshold, gpu_threshold_percent=self.gpu_threshold,
            window_seconds=self.utilization_window, gpu_reader=gpu_reader,
        )

    @property
    def service_refusal(self) -> str | None:
        """Why this server cannot run the checker, or None (see refusal_for_server)."""
        service = getattr(self, "service", None)
        return service.refusal if service is not None else None

    def initialize_settings(self) -> None:
        state_path = Path(self.state_file).expanduser() if self.state_file else default_state_path()
        self.store = SettingsStore(
            self.configured_settings(), StateFile(state_path, self.log), self.log, self.limits()
        )
        self.service = build_service(
            self.service_config(), serverapp=self.server, store=self.store, log=self.log,
            terminal_manager=self._terminal_manager, events=Events(self.serverapp, self.log),
        )
        # Kept as attributes for tests and for people reading a live server from a debugger.
        self.monitor = self.service.monitor
        self.activity = self.service.activity
        self.service.install()
        if self.service.refusal:
            self.log.error("auto-shutdown: %s", self.service.refusal)
        elif not hasattr(getattr(self.serverapp, "extension_manager", None), "start_all_extensions"):
            # jupyter_server before 2.16 has no start hook for extensions: start once its loop runs.
            from tornado.ioloop import IOLoop

            IOLoop.current().add_callback(self._start_jupyter_server_extension, self.serverapp)

    def service_config(self) -> ServiceConfig:
        """The traits, as the plain configuration build_service wires the extension from."""
        return ServiceConfig(
            action=self._load_app_action(),
            activity_paths=tuple(self.activity_paths),
            server_activity=self.server_activity,
            exempt_kernel_names=tuple(self.exempt_kernel_names),
            exempt_paths=tuple(self.exempt_paths),
            sampler=self._sampler(),
            activity_file_path=self.activity_file_path(),
            hub_activity_refresh_seconds=self.hub_activity_refresh,
            max_keep_alive_minutes=self.max_keep_alive,
            shutdown_timeout_seconds=self.shutdown_timeout,
            app_action_timeout_seconds=self.app_action_timeout,
            startup_grace_seconds=self.startup_grace_minutes * 60.0,
            max_concurrent_shutdowns=self.max_concurrent_shutdowns,
            utilization_interval_seconds=self.utilization_interval,
            login_sessions=self.login_sessions,
            ignored_activity_sources=tuple(self.ignored_activity_sources),
            options=MonitorOptions(max_check_interval_seconds=self.max_check_interval, dry_run=self.dry_run),
            refusal=refusal_for_server(),
        )

    def activity_file_path(self) -> Path | None:
        """The activity file to keep, if any (see sagemaker_activity_file)."""
        if self.sagemaker_activity_file is not None:
            return Path(self.sagemaker_activity_file).expanduser() if self.sagemaker_activity_file else None
        metadata = read_sagemaker_metadata(self.sagemaker_metadata_path)
        if sagemaker_kind(metadata) == STUDIO_SPACE and (metadata or {}).get("AppType") == "JupyterLab":
            return Path(SAGEMAKER_ACTIVITY_FILE)
        return None

    def initialize_handlers(self) -> None:
        self.handlers.extend(default_handlers)

    async def _start_jupyter_server_extension(self, serverapp: Any) -> None:
        if self.service_refusal:
            return  # logged at load (jupyter_server 1.x never calls this hook)
        if getattr(self, "monitor", None) is None:
            # initialize_settings failed (jupyter_server logged why); the server runs without us.
            self.log.error("auto-shutdown: not started: the extension failed to initialise (see above); "
                           "nothing will be shut down automatically")
            return
        self.service.start()
        settings = self.store.current
        daily_stop = settings.daily_stop
        self.log.info(
            "auto-shutdown: active: idle_timeout %g min%s, keep_terminals %s, cull_busy %s, "
            "cull_connected %s, idle_type %s, server_activity %s, app action '%s'%s, state file %s%s%s",
            settings.idle_timeout_minutes,
            "" if settings.enabled else " (off)",
            settings.keep_terminals,
            settings.cull_busy,
            settings.cull_connected,
            settings.idle_type,
            self.server_activity,
            self.monitor.app.name,
            f" ({own})" if (own := self.monitor.app.own_schedule()) else "",
            self.store.state_file.path if self.store.state_file else None,
            f", daily stop {daily_stop.label}" if daily_stop else "",
            ", DRY RUN: nothing will be shut down" if self.dry_run else "",
        )

    async def stop_extension(self) -> None:
        # Also called when initialize_settings failed partway: stopping the server must still work.
        service = getattr(self, "service", None)
        if service is not None:
            await service.stop()
