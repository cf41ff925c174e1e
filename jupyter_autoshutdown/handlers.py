"""REST handlers: validate, call the settings store or the monitor, serialise. Nothing else.

Every method is authenticated and authorized by jupyter_server. None of them counts as user
activity, so polling `status` never keeps a server alive.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import TYPE_CHECKING, Any

from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import APIHandler
from tornado import web

from .observe import K_ID, KernelInfo
from .settings import SettingsError

if TYPE_CHECKING:
    from .app import AutoShutdown
    from .policy import Verdict

#: The resource name an Authorizer sees for every route of this extension.
AUTH_RESOURCE = "autoshutdown"
MAX_BODY_BYTES = 64 * 1024

SAGEMAKER_ROUTE = "sagemaker-studio-autoshutdown/idle_checker"
SETTINGS_ROUTE = "autoshutdown/api/settings"
STATUS_ROUTE = "autoshutdown/api/status"


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


class AutoShutdownHandler(APIHandler):
    auth_resource = AUTH_RESOURCE
    # Our own routes are not user activity: a status poll must not keep the server alive.
    _track_activity = False

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
        body = self.json_object_body()
        unknown = sorted(set(body) - {"idle_time", "keep_terminals"})
        if unknown:
            raise web.HTTPError(400, f"unknown field(s): {', '.join(unknown)}; "
                                     "expected idle_time (minutes) and keep_terminals")
        if "idle_time" not in body:
            raise web.HTTPError(400, "idle_time (minutes) is required")
        changes: dict[str, Any] = {"idle_timeout_minutes": body["idle_time"]}
        if "keep_terminals" in body:
            changes["keep_terminals"] = body["keep_terminals"]
        # The original accepted "120" as well as 120 (it called int() on the value).
        persisted = await self.apply_changes(changes, allow_numeric_string=True)
        self.finish(json.dumps({**self.compat_model(), "persisted": persisted}))


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


class StatusHandler(AutoShutdownHandler):
    @web.authenticated
    @authorized
    async def get(self) -> None:
        monitor = self.extension.monitor
        now = monitor.clock()
        snapshot, plan = monitor.explain(now)
        by_id = {record[K_ID]: KernelInfo._make(record) for record in snapshot.kernels}

        def timing(verdict: Verdict) -> dict[str, Any]:
            failure = monitor.failure_of(verdict.kind, verdict.id)
            return {
                "idle_seconds": _round(verdict.idle_seconds),
                "seconds_until_shutdown": _seconds_until(verdict.deadline, now),
                "shutdown_at": _iso(verdict.deadline),
                "reason": verdict.reason,
                "failed_attempts": failure.attempts if failure else 0,
                "retry_at": _iso(failure.retry_at) if failure else None,
            }

        kernels = []
        for verdict in plan.kernels:
            kernel = by_id[verdict.id]
            kernels.append({
                "id": kernel.id,
                "name": kernel.name,
                "execution_state": kernel.execution_state,
                "connections": kernel.connections,
                "last_activity": _iso(kernel.last_activity),
                **timing(verdict),
            })
        terminals = [{"name": verdict.id, **timing(verdict)} for verdict in plan.terminals]
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
            "kernels": kernels,
            "terminals": terminals,
            "app": {
                "action": monitor.action.name,
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
        (SETTINGS_ROUTE, SettingsHandler),
        (STATUS_ROUTE, StatusHandler),
    ]
