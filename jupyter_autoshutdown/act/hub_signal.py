"""A platform's own idle record, kept true to our rules: JupyterHub's `last_activity` of this server.

jupyterhub-idle-culler (zero-to-jupyterhub's default culler), KubeSpawner's and anything else that
reads the hub's `last_activity` stop a server whose record is older than their timeout. The hub
learns it from three sources, and keeps the latest (it never moves a record back):

- jupyterhub's own single-user extension posts jupyter_server's `last_activity()` every
  `JUPYTERHUB_ACTIVITY_INTERVAL` (300 s): every authenticated API request counts there, the GET
  polls of an open tab too, but a cell that runs without output does not;
- the hub reads configurable-http-proxy's per-route `last_activity` (any traffic through the
  proxy) every `JupyterHub.last_activity_interval` (300 s);
- this writer.

It posts (`Monitor.on_publish`, like act/studio_signal.py) "now", at least every
`refresh_seconds`, while something holds the server by this extension's rules (a kernel running
a request, an exempt kernel, a keep-alive, utilization, a request in flight: policy.app_activity),
and otherwise the moment the server was last active by these rules (never GET polls), once each
time it moves forward. So the hub's culler never stops a running cell; what an open tab's polling
reports comes from the other two sources, never from us (docs/platforms.md).

The request is the one jupyterhub's single-user mixin sends (`POST $JUPYTERHUB_ACTIVITY_URL`,
`Authorization: token $JUPYTERHUB_API_TOKEN`, `{"servers": {name: {"last_activity": iso}},
"last_activity": iso}`), through tornado's AsyncHTTPClient with a timeout: the loop never waits.
Failures are logged (once per new message, then at most every FAILURE_LOG_SECONDS) and kept for
`status`; nothing is raised.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from tornado.httpclient import AsyncHTTPClient, HTTPRequest

from ..core.telemetry import ErrorLog
from .monitor import PassResult

#: The hub ignores nothing finer than this (its default `activity_resolution`), and checks at
#: most as often as its culler runs: "now" is posted at least this often while the server is held.
REFRESH_SECONDS = 30.0
REQUEST_TIMEOUT_SECONDS = 10.0
#: After a failed report, the next try waits this long.
RETRY_SECONDS = 5.0
#: A failure that repeats is logged again at most this often (it is in `status` every time).
FAILURE_LOG_SECONDS = 600.0


def hub_timestamp(moment: datetime) -> str:
    """ISO 8601 UTC with a Z, as jupyterhub.utils.isoformat writes it."""
    return moment.astimezone(timezone.utc).replace(tzinfo=None).isoformat() + "Z"


@dataclass(frozen=True)
class HubTarget:
    """Where and as whom to report: JupyterHub's environment of a single-user server."""

    activity_url: str
    token: str
    server_name: str = ""
    #: internal_ssl: the server's client certificate, key and the hub's CA, as jupyterhub passes them.
    client_cert: str | None = None
    client_key: str | None = None
    ca_certs: str | None = None

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] = os.environ) -> HubTarget | None:
        """The target when this server was started by a JupyterHub that takes activity reports."""
        url = environ.get("JUPYTERHUB_ACTIVITY_URL", "")
        token = environ.get("JUPYTERHUB_API_TOKEN", "") or environ.get("JPY_API_TOKEN", "")
        if not url or not token:
            return None
        return cls(
            activity_url=url, token=token, server_name=environ.get("JUPYTERHUB_SERVER_NAME", ""),
            client_cert=environ.get("JUPYTERHUB_SSL_CERTFILE") or None,
            client_key=environ.get("JUPYTERHUB_SSL_KEYFILE") or None,
            ca_certs=environ.get("JUPYTERHUB_SSL_CLIENT_CA") or None,
        )


@dataclass(frozen=True)
class Posted:
    """The writer's last outcome, for `status`."""

    at: datetime
    #: The last_activity the hub accepted (None when the post failed).
    value: datetime | None
    held_by: str
    error: str | None = None


class HubActivity:
    def __init__(self, target: HubTarget, *, clock: Callable[[], datetime], log: logging.Logger,
                 errors: ErrorLog, refresh_seconds: float = REFRESH_SECONDS,
                 fetch: Callable[[HTTPRequest], Any] | None = None) -> None:
        self.target = target
        self.clock = clock
        self.log = log
        self.errors = errors
        self.refresh_seconds = refresh_seconds
        self.last: Posted | None = None
        #: The last value the hub accepted (a failure keeps it: the hub still holds it).
        self.accepted: datetime | None = None
        self.posts = 0
        self._fetch = fetch
        self._result: PassResult | None = None
        self._published = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._failure_logged: tuple[str, datetime] | None = None

    @property
    def url(self) -> str:
        return self.target.activity_url

    def published(self, result: PassResult) -> None:
        """The monitor's listener: a new pass result to report from."""
        self._result = result
        self._published.set()

    def start(self) -> None:
        if self._task is None or self._task.done():
            self._published = asyncio.Event()
            if self._result is not None:
                self._published.set()
            self._task = asyncio.create_task(self._loop(), name="jupyter_autoshutdown.act.hub_signal")

    async def stop(self, timeout_seconds: float = 5.0) -> None:
        """Cancel the writer and wait for it, boundedly: stopping the server never hangs on it."""
        task, self._task = self._task, None
        if task is None:
            return
        task.cancel()
        _, pending = await asyncio.wait({task}, timeout=timeout_seconds)
        if pending:
            self.log.warning("auto-shutdown: the hub activity reporter did not stop within %g s",
                             timeout_seconds)

    async def _loop(self) -> None:
        while True:
            waiter = asyncio.ensure_future(self._published.wait())
            try:
                await asyncio.wait({waiter}, timeout=self.refresh_seconds)
            finally:
                waiter.cancel()
            self._published.clear()
            try:
                await self.post_once()
            except Exception:  # never: post_once catches; the reporter must not die anyway
                self.log.exception("auto-shutdown: the hub activity reporter failed")

    def due_value(self) -> tuple[datetime, str] | None:
        """What to report now, or None when the hub already has it (or before the first pass).

        Held: "now", once the last accepted value is `refresh_seconds` old (a pass each second
        must not become a hub request each second). Not held: the last activity, when it is
        later than what the hub accepted from us."""
        activity = self._result.activity if self._result is not None else None
        if activity is None:
            return None
        now = self.clock()
        accepted = self.accepted
        failed = self.last is not None and self.last.error is not None
        if failed and self.last is not None and now - self.last.at < timedelta(seconds=RETRY_SECONDS):
            return None  # a hub that is down is not asked on every pass
        if activity.held_by:
            # Refresh a little early, so that the record never ages past refresh_seconds.
            if accepted is None or failed or now - accepted >= timedelta(seconds=self.refresh_seconds * 0.9):
                return now, activity.held_by
            return None
        if accepted is None or activity.last_active > accepted or (
                failed and activity.last_active >= accepted):
            return activity.last_active, ""
        return None

    def request(self, moment: datetime) -> HTTPRequest:
        stamp = hub_timestamp(moment)
        body = {"servers": {self.target.server_name: {"last_activity": stamp}}, "last_activity": stamp}
        return HTTPRequest(
            self.target.activity_url, method="POST", body=json.dumps(body),
            headers={"Authorization": f"token {self.target.token}", "Content-Type": "application/json"},
            request_timeout=REQUEST_TIMEOUT_SECONDS, connect_timeout=REQUEST_TIMEOUT_SECONDS,
            client_cert=self.target.client_cert, client_key=self.target.client_key,
            ca_certs=self.target.ca_certs,
        )

    async def post_once(self) -> None:
        due = self.due_value()
        if due is None:
            return
        moment, held_by = due
        fetch = self._fetch or AsyncHTTPClient().fetch
        self.posts += 1
        try:
            await fetch(self.request(moment))
        except Exception as error:  # the checker never dies for the hub
            self._failed(f"reporting activity to the hub ({self.target.activity_url}) failed: {error!r}",
                         held_by)
            return
        self.accepted = moment if self.accepted is None else max(self.accepted, moment)
        self.last = Posted(self.clock(), moment, held_by)
        if self._failure_logged is not None:
            self.log.info("auto-shutdown: reporting activity to the hub works again")
            self._failure_logged = None

    def _failed(self, message: str, held_by: str) -> None:
        now = self.clock()
        logged = self._failure_logged
        if logged is None or logged[0] != message or (now - logged[1]).total_seconds() >= FAILURE_LOG_SECONDS:
            self.log.warning("auto-shutdown: %s", message)
            self.errors.record(message)
            self._failure_logged = (message, now)
        self.last = Posted(now, None, held_by, message)
