"""REST handlers: validate, call the service (settings, keep-alives, activity), serialise the
models of serve/status.py. Nothing else: no handler culls anything or reads state it changes.

Every method is authenticated and authorized by jupyter_server. None of them counts as user
activity, so polling `status` never keeps a server alive.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from typing import Any

from jupyter_server.auth.decorator import authorized
from tornado import web

from ..act.documents import MAX_PATHS, MAX_TEXT, Unsavable
from ..core.routes import (
    ACTIVITY_ROUTE,
    DOCUMENTS_ROUTE,
    KEEPALIVE_ROUTE,
    SAGEMAKER_ROUTE,
    SAGEMAKER_SETTINGS_ROUTE,
    SETTINGS_ROUTE,
    STATUS_ROUTE,
)
from ..core.settings import SettingsError, SettingsForbidden, parse_minutes
from ..observe.activity import MAX_REPORTED_IDLE_SECONDS
from ..observe.keepalive import KeepAliveRefused, terminal_key
from .mixin import AutoShutdownHandler
from .status import compat_model, documents_model, keep_alive_model, settings_model, status_model

#: The fields the original extension's POSTs read; others are ignored, as it ignored them.
COMPAT_FIELDS = ("idle_time", "keep_terminals")
#: The fields of a page's report of its documents.
DOCUMENT_FIELDS = frozenset({"page", "unsaved", "unsavable", "saving", "saved", "closing"})

#: Names that stand for several runtime fields in `DELETE settings?field=`.
FIELD_GROUPS = {"daily_stop": ("daily_stop_time", "daily_stop_timezone")}

#: The fields that name one resource to keep alive instead of everything.
KEEP_ALIVE_TARGETS = ("kernel_id", "terminal")


class SettingsChangingHandler(AutoShutdownHandler):
    async def apply_changes(
        self, changes: dict[str, Any], *, allow_numeric_string: bool = False
    ) -> bool:
        """Apply validated changes (400 and nothing changed on bad input); True when persisted."""
        store = self.service.store
        with refused_as_http_errors():
            store.apply(changes, allow_numeric_string=allow_numeric_string)
        return await store.persist()


@contextlib.contextmanager
def refused_as_http_errors() -> Iterator[None]:
    """403 for what the operator does not allow users, 400 for an invalid value; message kept."""
    try:
        yield
    except SettingsForbidden as error:
        raise web.HTTPError(403, str(error)) from None
    except SettingsError as error:
        raise web.HTTPError(400, str(error)) from None


class IdleCheckerHandler(SettingsChangingHandler):
    """The route and fields of aws-samples' sagemaker-studio-autoshutdown, for existing scripts.

    ``idle_time`` is minutes in a POST and seconds in a GET, as in the original.
    """

    @web.authenticated
    @authorized
    async def get(self) -> None:
        self.finish(json.dumps(compat_model(self.service)))

    @web.authenticated
    @authorized
    async def post(self) -> None:
        persisted, ignored = await self.apply_compat_body()
        self.finish(json.dumps({**compat_model(self.service), "persisted": persisted,
                                "ignored_fields": ignored}))

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

    SUPPORTED_METHODS = ("POST",)

    @web.authenticated
    @authorized
    async def post(self) -> None:
        persisted, ignored = await self.apply_compat_body()
        settings = self.service.store.current
        self.finish(json.dumps({
            "idle_time": str(round(settings.idle_timeout_seconds)),
            "keep_terminals": settings.keep_terminals,
            "persisted": persisted,
            "ignored_fields": ignored,
        }))


class SettingsHandler(SettingsChangingHandler):
    @web.authenticated
    @authorized
    async def get(self) -> None:
        self.finish(json.dumps(settings_model(self.service)))

    @web.authenticated
    @authorized
    async def patch(self) -> None:
        persisted = await self.apply_changes(self.json_object_body())
        self.finish(json.dumps({**settings_model(self.service), "persisted": persisted}))

    @web.authenticated
    @authorized
    async def delete(self) -> None:
        """Bring back the operator's values: `?field=daily_stop` (both its fields) or field names."""
        names = self.get_query_arguments("field")
        if not names:
            raise web.HTTPError(400, "name what to reset: ?field=daily_stop, or ?field=<runtime field>")
        fields = [part for name in names for part in FIELD_GROUPS.get(name, (name,))]
        store = self.service.store
        with refused_as_http_errors():
            store.reset(fields)
        persisted = await store.persist()
        self.finish(json.dumps({**settings_model(self.service), "persisted": persisted}))


class KeepAliveHandler(AutoShutdownHandler):
    """Postpone shutdowns: "I am away for 3 hours, keep my state" (everything), or keep one kernel
    (`kernel_id`) or terminal (`terminal`) without keeping every other forgotten one."""

    @web.authenticated
    @authorized
    async def get(self) -> None:
        self.finish(json.dumps(keep_alive_model(self.service)))

    @web.authenticated
    @authorized
    async def post(self) -> None:
        body = self.json_object_body()
        unknown = sorted(set(body) - {"minutes", *KEEP_ALIVE_TARGETS})
        if unknown or "minutes" not in body:
            raise web.HTTPError(400, "expected {\"minutes\": <number>} and optionally \"kernel_id\" or "
                                     "\"terminal\": how long to keep everything, or only that one")
        target = self.keep_alive_target(body)
        try:
            minutes = parse_minutes("minutes", body["minutes"])
            self.service.keep_alives.keep(minutes, target)
        except (SettingsError, KeepAliveRefused) as error:
            raise web.HTTPError(400, str(error)) from None
        self.finish(json.dumps(keep_alive_model(self.service)))

    @web.authenticated
    @authorized
    async def delete(self) -> None:
        """Cancel the global keep-alive, or with ?kernel_id= or ?terminal= that one's."""
        query = {key: self.get_query_argument(key) for key in KEEP_ALIVE_TARGETS
                 if self.get_query_argument(key, None) is not None}
        self.service.keep_alives.cancel(self.keep_alive_target(query))
        self.finish(json.dumps(keep_alive_model(self.service)))

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
            if value not in self.serverapp.kernel_manager:
                raise web.HTTPError(400, f"no kernel {value!r} on this server")
            return value
        terminals = self.settings.get("terminal_manager")
        if terminals is None or value not in getattr(terminals, "terminals", {}):
            raise web.HTTPError(400, f"no terminal {value!r} on this server")
        return terminal_key(value)


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
        when = self.service.activity.report_interaction(float(idle))
        self.finish(json.dumps({"last_activity": when.isoformat()}))


class DocumentsHandler(AutoShutdownHandler):
    """A page reports the documents it holds unsaved, announces saves it makes on auto-shutdown's
    behalf (`saving`: not counted as activity), and what it saved (act/documents.py)."""

    @web.authenticated
    @authorized
    async def post(self) -> None:
        body = self.json_object_body()
        unknown = sorted(set(body) - DOCUMENT_FIELDS)
        if unknown:
            raise web.HTTPError(400, f"unknown field(s): {', '.join(unknown)}; expected "
                                     f"{', '.join(sorted(DOCUMENT_FIELDS))}")
        page = body.get("page")
        if not isinstance(page, str) or not 0 < len(page) <= MAX_TEXT:
            raise web.HTTPError(400, "page must be a non-empty string naming the reporting page")
        closing = body.get("closing", False)
        if not isinstance(closing, bool):
            raise web.HTTPError(400, "closing must be true or false")
        unsavable = [Unsavable(path, reason) for path, reason in
                     (self._unsavable(item) for item in self._list(body, "unsavable"))]
        saving = [self._path(item, "saving") for item in self._list(body, "saving")]
        if saving:
            self.service.activity.excuse_saves(saving)
        self.service.documents.report(
            page, [self._path(item, "unsaved") for item in self._list(body, "unsaved")], unsavable,
            # `saved` (even empty) ends a round of saving on our behalf; a plain report has none.
            [self._path(item, "saved") for item in self._list(body, "saved")] if "saved" in body else None,
            closing=closing,
        )
        self.finish(json.dumps(documents_model(self.service)))

    @staticmethod
    def _list(body: dict[str, Any], field: str) -> list[Any]:
        value = body.get(field, [])
        if not isinstance(value, list) or len(value) > MAX_PATHS:
            raise web.HTTPError(400, f"{field} must be a list of at most {MAX_PATHS} items")
        return value

    @staticmethod
    def _path(value: Any, field: str) -> str:
        if not isinstance(value, str) or not 0 < len(value) <= MAX_TEXT:
            raise web.HTTPError(400, f"{field}: each item must be a document path (a non-empty string)")
        return value

    @classmethod
    def _unsavable(cls, value: Any) -> tuple[str, str]:
        if not isinstance(value, dict) or set(value) - {"path", "reason"}:
            raise web.HTTPError(400, 'unsavable: each item must be {"path": ..., "reason": ...}')
        reason = value.get("reason", "")
        if not isinstance(reason, str):
            raise web.HTTPError(400, "unsavable: reason must be a string")
        return cls._path(value.get("path"), "unsavable"), reason[:MAX_TEXT]


class StatusHandler(AutoShutdownHandler):
    """Serialises the latest state: a GET does no I/O and changes nothing, however often open tabs
    ask (kernels' opt-outs show from the next pass)."""

    @web.authenticated
    @authorized
    async def get(self) -> None:
        self.finish(json.dumps(status_model(self.service)))


#: The extension's routes (relative to the server's base_url), as jupyter_server extensions name them.
default_handlers: list[tuple[str, type[AutoShutdownHandler]]] = [
    (SAGEMAKER_ROUTE, IdleCheckerHandler),
    (SAGEMAKER_SETTINGS_ROUTE, CompatSettingsHandler),
    (SETTINGS_ROUTE, SettingsHandler),
    (STATUS_ROUTE, StatusHandler),
    (KEEPALIVE_ROUTE, KeepAliveHandler),
    (ACTIVITY_ROUTE, ActivityHandler),
    (DOCUMENTS_ROUTE, DocumentsHandler),
]


def route_table() -> list[tuple[str, type[AutoShutdownHandler]]]:
    return list(default_handlers)
