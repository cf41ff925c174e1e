"""The handlers' base: jupyter_server's APIHandler and ExtensionHandlerMixin, this extension's
auth resource, the service object, safe logging and strict JSON bodies."""

from __future__ import annotations

import json
from typing import Any

from jupyter_server.base.handlers import APIHandler
from jupyter_server.extension.handler import ExtensionHandlerMixin
from tornado import web

from .service import Service

#: The resource name an Authorizer sees for every route of this extension.
AUTH_RESOURCE = "autoshutdown"
MAX_BODY_BYTES = 64 * 1024


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON allows")


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


class AutoShutdownHandler(ExtensionHandlerMixin, APIHandler):
    auth_resource = AUTH_RESOURCE
    # Our own routes are not user activity: a status poll must not keep the server alive.
    _track_activity = False

    @property
    def service(self) -> Service:
        """The service the extension built (serve/service.py), never the app itself."""
        service = getattr(self.extensionapp, "service", None)
        if not isinstance(service, Service):  # the extension failed to load: say so, not a 500
            raise web.HTTPError(503, "auto-shutdown is not running on this server (see its log)")
        return service

    def log_exception(self, typ: Any, value: Any, tb: Any) -> None:
        # tornado's own logging of an error writes the raw URL, and with it a ?token=... .
        request = f"{self.request.method} {scrubbed(self.request.uri or '')} ({self.request.remote_ip})"
        if isinstance(value, web.HTTPError):
            if value.log_message:
                message = value.log_message % value.args if value.args else value.log_message
                self.log.warning("%d %s: %s", value.status_code, request, message)
            return
        self.log.error("Uncaught exception in %s", request, exc_info=(typ, value, tb))

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
