"""The `jupyterhub` action: ask the hub to stop this single-user server.

JupyterHub gives every single-user server its own API token and the hub's API URL in the
environment (`JUPYTERHUB_API_TOKEN`, `JUPYTERHUB_API_URL`, `JUPYTERHUB_USER`,
`JUPYTERHUB_SERVER_NAME`, `JUPYTERHUB_ACTIVITY_URL`). The action first reports our last activity
time to the hub, so the hub's view of this server matches ours, then sends
``DELETE /users/{user}/server`` (or ``/servers/{name}`` for a named server) with that token. The
hub then stops the server through its spawner (a KubeSpawner pod is deleted; the user's volume
stays).

Stopping a server needs the `servers` scope, which server tokens hold only when the hub grants it
(``c.Spawner.server_token_scopes``, JupyterHub 4+). When the hub refuses (403), the action stops
this server process instead: the hub notices the exit at its next poll and marks the server stopped,
the same as jupyter_server's own ``shutdown_no_activity_timeout``.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING
from urllib.parse import quote

from tornado.httpclient import AsyncHTTPClient, HTTPRequest

if TYPE_CHECKING:
    from .base import ActionContext, ActionSettings

REQUEST_TIMEOUT_SECONDS = 30.0


class HubRequestFailed(Exception):
    """The hub answered a stop request with an unexpected status."""


class StopHubServer:
    name = "jupyterhub"

    def __init__(self, settings: ActionSettings) -> None:
        environ = settings.environ
        self.api_url = environ.get("JUPYTERHUB_API_URL", "").rstrip("/")
        self.token = environ.get("JUPYTERHUB_API_TOKEN") or environ.get("JPY_API_TOKEN", "")
        self.user = environ.get("JUPYTERHUB_USER", "")
        self.server_name = environ.get("JUPYTERHUB_SERVER_NAME", "")
        self.activity_url = environ.get("JUPYTERHUB_ACTIVITY_URL", "")
        missing = [
            variable
            for variable, value in (
                ("JUPYTERHUB_API_URL", self.api_url),
                ("JUPYTERHUB_API_TOKEN", self.token),
                ("JUPYTERHUB_USER", self.user),
            )
            if not value
        ]
        if missing:
            raise ValueError(
                f"app action 'jupyterhub' needs {', '.join(missing)} in the environment: "
                "it works only in a server spawned by JupyterHub"
            )

    @property
    def server_url(self) -> str:
        user = quote(self.user, safe="")
        if self.server_name:
            return f"{self.api_url}/users/{user}/servers/{quote(self.server_name, safe='')}"
        return f"{self.api_url}/users/{user}/server"

    def _request(self, url: str, method: str, body: dict | None = None) -> HTTPRequest:
        return HTTPRequest(
            url,
            method=method,
            headers={"Authorization": f"token {self.token}", "Content-Type": "application/json"},
            body=json.dumps(body) if body is not None else None,
            allow_nonstandard_methods=True,
            request_timeout=REQUEST_TIMEOUT_SECONDS,
        )

    async def _report_activity(self, context: ActionContext) -> None:
        if not self.activity_url:
            return
        last_activity = datetime.now(timezone.utc) - timedelta(seconds=context.idle_seconds)
        stamp = last_activity.isoformat().replace("+00:00", "Z")
        body = {"last_activity": stamp, "servers": {self.server_name: {"last_activity": stamp}}}
        response = await AsyncHTTPClient().fetch(
            self._request(self.activity_url, "POST", body), raise_error=False
        )
        if response.code >= 400:
            # Not fatal: the stop below matters more than the activity record.
            context.log.warning(
                "auto-shutdown: the hub did not take our activity report (HTTP %s)", response.code
            )

    async def run(self, context: ActionContext) -> str:
        await self._report_activity(context)
        response = await AsyncHTTPClient().fetch(
            self._request(self.server_url, "DELETE"), raise_error=False
        )
        if response.code in (202, 204):
            return f"asked the hub to stop this server (DELETE {self.server_url}: HTTP {response.code})"
        if response.code == 403:
            context.log.warning(
                "auto-shutdown: the hub refused to stop this server (HTTP 403): its token lacks the "
                "'servers' scope (see c.Spawner.server_token_scopes); stopping the server process "
                "instead, which the hub records as stopped at its next poll"
            )
            context.serverapp.stop()
            return "the hub refused the stop request (HTTP 403); stopped the server process instead"
        detail = response.body.decode(errors="replace")[:500] if response.body else response.reason
        raise HubRequestFailed(f"DELETE {self.server_url} answered HTTP {response.code}: {detail}")
