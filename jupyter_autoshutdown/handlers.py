"""REST handlers: validate, call the settings store or the monitor, serialise. Nothing else.

Every method is authenticated and authorized by jupyter_server. None of them counts as user
activity, so polling `status` never keeps a server alive.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import APIHandler
from tornado import web

from .activity import MAX_REPORTED_IDLE_SECONDS
from .exemptions import OPT_OUT_REFUSED
from .observe import K_ID, KernelInfo
from .settings import SettingsError, parse_minutes

if TYPE_CHECKING:
    from .app import AutoShutdown
    from .policy import Verdict

#: The resource name an Authorizer sees for every route of this extension.
AUTH_RESOURCE = "autoshutdown"
MAX_BODY_BYTES = 64 * 1024

SAGEMAKER_ROUTE = "sagemaker-studio-autoshutdown/idle_checker"
SAGEMAKER_SETTINGS_ROUTE = "sagemaker-studio-autoshutdown/settings"
#: The fields the original extension's POSTs read; others are ignored, as it ignored them.
COMPAT_FIELDS = ("idle_time", "keep_terminals")
SETTINGS_ROUTE = "autoshutdown/api/settings"
STATUS_ROUTE = "autoshutdown/api/status"
KEEPALIVE_ROUTE = "autoshutdown/api/keepalive"
ACTIVITY_ROUTE = "autoshutdown/api/activity"


#: The fields that name one resource to keep alive instead of everything.
KEEP_ALIVE_TARGETS = ("kernel_id", "terminal")


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON allows")


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _seconds_until(deadline: datetime | None, now: datetime) -> float | None:
    if deadline is None:
        return None
    return round(max(0.0, (deadline - now).total_seconds()), 3)


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


#: Query parameters whose values never reach the log (credentials).
SECRET_PARAMS = ("token", "_xsrf", "auth", "key", "password", "secret")


def scrubbed(uri: str) -> str:
    """`uri` with the values of credential-like query parameters replaced by [secret]."""
    path, sep, query = uri.partition("?")
    if not sep:
        return uri
    pairs = []
    for pair in query.split("&"):
        name, equals, _value = pair.partition("=")
        secret = equals and any(word in name.lower() for word in SECRET_PARAMS)
        pairs.append(f"{name}=[secret]" if secret else pair)
    return f"{path}?{'&'.join(pairs)}"


class AutoShutdownHandler(APIHandler):
    auth_resource = AUTH_RESOURCE
    # Our own routes are not user activity: a status poll must not keep the server alive.
    _track_activity = False

    def log_exception(self, typ: Any, value: Any, tb: Any) -> None:
        # tornado's own logging of an error writes the raw URL, and with it a ?token=... .
        request = f"{self.request.method} {scrubbed(self.request.uri or '')} ({self.request.remote_ip})"
        if isinstance(value, web.HTTPError):
            if value.log_message:
                message = value.log_message % value.args if value.args else value.log_message
                self.log.warning("%d %s: %s", value.status_code, request, message)
            return
        self.log.error("Uncaught exception in %s", request, exc_info=(typ, value, tb))

    @property
    def extension(self) -> AutoShutdown:
        return self.settings["jupyter_autoshutdown"]

    def json_object_body(self) -> dict[str, Any]:
        body = self.request.body or b""
        if len(body) > MAX_BODY_BYTES:
            raise web.HTTPError(400, f"request body too large (limit {MAX_BODY_BYTES} bytes)")
        try:
            data = json.loads(body.decode("utf-8"), parse_constant=_reject_constant)
        except (UnicodeDecodeError, ValueError, RecursionError) as error:
            raise web.HTTPError(400, f"request body is not valid JSON: {error}") from None
        if not isinstance(data, dict):
            raise web.HTTPError(400, "request body must be a JSON object")
        return data

    async def apply_changes(
        self, changes: dict[str, Any], *, allow_numeric_string: bool = False
    ) -> bool:
        """Apply validated changes (400 and nothing changed on bad input); True when persisted."""
        try:
            self.extension.store.apply(changes, allow_numeric_string=allow_numeric_string)
        except SettingsError as error:
            raise web.HTTPError(400, str(error)) from None
        return await self.extension.store.persist()

    def settings_model(self) -> dict[str, Any]:
        extension = self.extension
        settings = extension.store.current
        return {
            **settings.runtime_values(),
            "idle_timeout_seconds": settings.idle_timeout_seconds,
            "starting_timeout_minutes": settings.starting_timeout_minutes,
            "max_check_interval_seconds": extension.monitor.options.max_check_interval_seconds,
            "app_action": extension.monitor.action.name,
            "state_file": str(extension.store.state_file.path)
            if extension.store.state_file
            else None,
            "idle_type": settings.idle_type,
            "warning_minutes": settings.warning_minutes,
            "warning_seconds": settings.warning_seconds,
            "dry_run": extension.monitor.options.dry_run,
            "utilization_aware": extension.monitor.sampler is not None,
            "daily_stop_time": extension.daily_stop_time or None,
            "daily_stop_timezone": extension.daily_stop_timezone or None,
            "max_keep_alive_minutes": extension.max_keep_alive,
            **extension.store.limits.as_model(),
            "server_activity": extension.server_activity,
            "activity_paths": list(extension.activity_paths),
        }

    def keep_alive_model(self) -> dict[str, Any]:
        monitor = self.extension.monitor
        now = monitor.clock()
        until = monitor.keep_alive_until
        if until is not None and until <= now:
            until = None
        kept = monitor.kept_until(now)
        return {
            "keep_alive_until": _iso(until),
            "max_minutes": self.extension.max_keep_alive,
            "kernels": {key: _iso(at) for key, at in kept.items() if not key.startswith("t:")},
            "terminals": {key[2:]: _iso(at) for key, at in kept.items() if key.startswith("t:")},
        }


class IdleCheckerHandler(AutoShutdownHandler):
    """The route and fields of aws-samples' sagemaker-studio-autoshutdown, for existing scripts.

    ``idle_time`` is minutes in a POST and seconds in a GET, as in the original.
    """

    def compat_model(self) -> dict[str, Any]:
        extension = self.extension
        settings = extension.store.current
        return {
            "idle_time": round(settings.idle_timeout_seconds),
            "keep_terminals": settings.keep_terminals,
            "count": extension.monitor.count,
            "idle_timeout_minutes": settings.idle_timeout_minutes,
            "last_check": _iso(extension.monitor.last_check),
            "running": extension.monitor.running,
        }

    @web.authenticated
    @authorized
    async def get(self) -> None:
        self.finish(json.dumps(self.compat_model()))

    @web.authenticated
    @authorized
    async def post(self) -> None:
        persisted, ignored = await self.apply_compat_body()
        self.finish(json.dumps({**self.compat_model(), "persisted": persisted, "ignored_fields": ignored}))

    async def apply_compat_body(self) -> tuple[bool, list[str]]:
        """Apply the original's POST body: `idle_time` (minutes), optional `keep_terminals`.

        Unknown fields are ignored and returned, as the original ignored them; bad values get 400
        and change nothing. Returns (persisted, ignored field names).
        """
        body = self.json_object_body()
        ignored = sorted(str(key) for key in body if key not in COMPAT_FIELDS)
        if "idle_time" not in body:
            raise web.HTTPError(400, "idle_time (minutes) is required")
        changes: dict[str, Any] = {"idle_timeout_minutes": body["idle_time"]}
        if "keep_terminals" in body:
            changes["keep_terminals"] = body["keep_terminals"]
        # The original accepted "120" as well as 120 (it called int() on the value).
        persisted = await self.apply_changes(changes, allow_numeric_string=True)
        if ignored:
            self.log.info("auto-shutdown: %s: ignored unknown field(s) %s",
                          self.request.path, ", ".join(ignored))
        return persisted, ignored


class CompatSettingsHandler(IdleCheckerHandler):
    """`POST sagemaker-studio-autoshutdown/settings`, as the original front end's Submit sends it.

    The reply has the original's shape: `idle_time` in seconds *as a string*, `keep_terminals`.
    """

    SUPPORTED_METHODS = ("POST",)  # type: ignore[assignment]

    @web.authenticated
    @authorized
    async def post(self) -> None:
        persisted, ignored = await self.apply_compat_body()
        settings = self.extension.store.current
        self.finish(json.dumps({
            "idle_time": str(round(settings.idle_timeout_seconds)),
            "keep_terminals": settings.keep_terminals,
            "persisted": persisted,
            "ignored_fields": ignored,
        }))


class SettingsHandler(AutoShutdownHandler):
    @web.authenticated
    @authorized
    async def get(self) -> None:
        self.finish(json.dumps(self.settings_model()))

    @web.authenticated
    @authorized
    async def patch(self) -> None:
        persisted = await self.apply_changes(self.json_object_body())
        self.finish(json.dumps({**self.settings_model(), "persisted": persisted}))


class KeepAliveHandler(AutoShutdownHandler):
    """Postpone shutdowns: "I am away for 3 hours, keep my state" (everything), or keep one kernel
    (`kernel_id`) or terminal (`terminal`) without keeping every other forgotten one."""

    @web.authenticated
    @authorized
    async def get(self) -> None:
        self.finish(json.dumps(self.keep_alive_model()))

    @web.authenticated
    @authorized
    async def post(self) -> None:
        body = self.json_object_body()
        unknown = sorted(set(body) - {"minutes", *KEEP_ALIVE_TARGETS})
        if unknown or "minutes" not in body:
            raise web.HTTPError(400, "expected {\"minutes\": <number>} and optionally \"kernel_id\" or "
                                     "\"terminal\": how long to keep everything, or only that one")
        target = self.keep_alive_target(body)
        limit = self.extension.max_keep_alive
        try:
            minutes = parse_minutes("minutes", body["minutes"])
        except SettingsError as error:
            raise web.HTTPError(400, str(error)) from None
        if limit <= 0:
            raise web.HTTPError(400, "keep-alive is turned off on this server (max_keep_alive is 0)")
        if minutes > limit:
            raise web.HTTPError(400, f"minutes must be at most {limit:g} (max_keep_alive)")
        if minutes == 0:
            self.extension.monitor.cancel_keep_alive(target)
        else:
            self.extension.monitor.keep_alive(minutes * 60, target)
        self.finish(json.dumps(self.keep_alive_model()))

    @web.authenticated
    @authorized
    async def delete(self) -> None:
        """Cancel the global keep-alive, or with ?kernel_id= or ?terminal= that one's."""
        query = {key: self.get_query_argument(key) for key in KEEP_ALIVE_TARGETS
                 if self.get_query_argument(key, None) is not None}
        self.extension.monitor.cancel_keep_alive(self.keep_alive_target(query))
        self.finish(json.dumps(self.keep_alive_model()))

    def keep_alive_target(self, fields: dict[str, Any]) -> str | None:
        """The monitor's key of the one kernel or terminal named in `fields`; None: everything."""
        named = [key for key in KEEP_ALIVE_TARGETS if key in fields]
        if not named:
            return None
        if len(named) > 1:
            raise web.HTTPError(400, "name either kernel_id or terminal, not both")
        value = fields[named[0]]
        if not isinstance(value, str) or not value:
            raise web.HTTPError(400, f"{named[0]} must be a non-empty string")
        if named[0] == "kernel_id":
            if value not in self.extension.serverapp.kernel_manager:
                raise web.HTTPError(400, f"no kernel {value!r} on this server")
            return value
        terminals = self.settings.get("terminal_manager")
        if terminals is None or value not in getattr(terminals, "terminals", {}):
            raise web.HTTPError(400, f"no terminal {value!r} on this server")
        return "t:" + value


class ActivityHandler(AutoShutdownHandler):
    """The front end reports that a person is using the page (keyboard, pointer, scroll, focus)."""

    @web.authenticated
    @authorized
    async def post(self) -> None:
        body = self.json_object_body() if self.request.body else {}
        unknown = sorted(set(body) - {"idle_seconds"})
        if unknown:
            raise web.HTTPError(400, f"unknown field(s): {', '.join(unknown)}; expected idle_seconds "
                                     "(seconds since the person's last interaction, optional)")
        idle = body.get("idle_seconds", 0)
        limit = MAX_REPORTED_IDLE_SECONDS
        if isinstance(idle, bool) or not isinstance(idle, (int, float)) or not 0 <= idle <= limit:
            raise web.HTTPError(400, f"idle_seconds must be a number from 0 to {limit:g}")
        # Activity only moves deadlines later: the monitor finds that out at the old deadline.
        when = self.extension.activity.report_interaction(float(idle))
        self.finish(json.dumps({"last_activity": when.isoformat()}))


class StatusHandler(AutoShutdownHandler):
    @web.authenticated
    @authorized
    async def get(self) -> None:
        monitor = self.extension.monitor
        if monitor.exemptions is not None:
            # keep_this_kernel() shows at once, not at the next pass.
            await monitor.refresh_exemptions()
        now = monitor.clock()
        snapshot, plan = monitor.explain(now)
        by_id = {record[K_ID]: KernelInfo._make(record) for record in snapshot.kernels}

        warning = timedelta(seconds=self.extension.store.current.warning_seconds)
        usage_by_key = monitor.sampler.usage if monitor.sampler is not None else {}

        def timing(verdict: Verdict, key: str) -> dict[str, Any]:
            failure = monitor.failure_of(verdict.kind, verdict.id)
            usage = usage_by_key.get(key)
            return {
                "idle_seconds": _round(verdict.idle_seconds),
                "seconds_until_shutdown": _seconds_until(verdict.deadline, now),
                "shutdown_at": _iso(verdict.deadline),
                "warning_at": _iso(verdict.deadline - warning)
                if verdict.deadline is not None and warning else None,
                "reason": verdict.reason,
                "failed_attempts": failure.attempts if failure else 0,
                "retry_at": _iso(failure.retry_at) if failure else None,
                "usage": None if usage is None else {
                    "cpu_percent": round(usage.cpu_percent, 1),
                    "gpu_percent": None if usage.gpu_percent is None else round(usage.gpu_percent, 1),
                    "processes": usage.processes,
                    "summary": usage.describe(),
                },
            }

        exemptions = monitor.exemptions
        kept = snapshot.kept_until
        kernels = []
        for verdict in plan.kernels:
            kernel = by_id[verdict.id]
            kernels.append({
                "id": kernel.id,
                "name": kernel.name,
                "execution_state": kernel.execution_state,
                "connections": kernel.connections,
                "last_activity": _iso(kernel.last_activity),
                "exempt": verdict.id in snapshot.exempt,
                "keep_alive_until": _iso(kept.get(verdict.id)),
                **timing(verdict, verdict.id),
            })
            if exemptions is not None and verdict.id in exemptions.refused:
                kernels[-1]["reason"] = f"{verdict.reason}; {OPT_OUT_REFUSED}"
                kernels[-1]["opt_out_refused"] = True
        terminals = [{"name": verdict.id, "keep_alive_until": _iso(kept.get("t:" + verdict.id)),
                      **timing(verdict, "t:" + verdict.id)} for verdict in plan.terminals]
        last_check = monitor.last_check
        app_failure = monitor.failure_of("app", "")
        self.finish(json.dumps({
            "count": monitor.count,
            "running": monitor.running,
            "now": now.isoformat(),
            "started_at": monitor.started_at.isoformat(),
            "last_check": _iso(last_check),
            "last_check_seconds_ago": _round((now - last_check).total_seconds())
            if last_check else None,
            "next_check": _iso(monitor.next_check),
            "errors": list(monitor.errors),
            "persist_error": self.extension.store.last_persist_error,
            "settings": self.settings_model(),
            "dry_run": monitor.options.dry_run,
            "dry_run_reports": list(monitor.dry_run_reports),
            "keep_alive_until": _iso(snapshot.keep_alive_until),
            "next_daily_stop": _iso(snapshot.stop_next),
            "kernels": kernels,
            "terminals": terminals,
            "app": {
                "action": monitor.action.name,
                "own_schedule": monitor.own_schedule(),
                "last_activity": snapshot.server_last_activity.isoformat(),
                "last_activity_source": snapshot.server_activity_source,
                "requests_in_flight": list(snapshot.requests_in_flight),
                "idle_seconds": _round(plan.app.idle_seconds),
                "seconds_until_action": _seconds_until(plan.app.deadline, now),
                "action_at": _iso(plan.app.deadline),
                "reason": plan.app.reason,
                "last_run_at": _iso(monitor.app_fired_at),
                "last_result": monitor.last_action_result,
                "last_error": monitor.last_action_error,
                "failed_attempts": app_failure.attempts if app_failure else 0,
                "retry_at": _iso(app_failure.retry_at) if app_failure else None,
            },
        }))


def route_table() -> list[tuple[str, type[APIHandler]]]:
    return [
        (SAGEMAKER_ROUTE, IdleCheckerHandler),
        (SAGEMAKER_SETTINGS_ROUTE, CompatSettingsHandler),
        (SETTINGS_ROUTE, SettingsHandler),
        (STATUS_ROUTE, StatusHandler),
        (KEEPALIVE_ROUTE, KeepAliveHandler),
        (ACTIVITY_ROUTE, ActivityHandler),
    ]
