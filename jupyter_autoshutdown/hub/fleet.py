"""One sweep over a JupyterHub's fleet: list, read, judge, cull.

Each sweep lists every ready server (core/hub_api.py: paged `GET /hub/api/users?state=ready`,
named servers too), reads each server's `autoshutdown/api/status` through the hub's proxy with the
service's token, and judges it (`judge`, pure):

- the extension answers and its checker is fresh: the server is the extension's to stop; the
  service shows when and why, and what holds it. It is never culled here but by `--max-age`, and a
  held server (a kernel running code, a keep-alive, an exempt kernel, a request in flight) never;
- the server answers 404 (no extension: an old image, uninstalled), does not answer (timeout,
  proxy error), or its checker is stale (no pass for `stale_seconds`): the idle-culler's rule, as
  a fallback: culled once the hub's `last_activity` (else its start) is `timeout_seconds` old.

Server-hours stopped early (`savings`): when a server the extension managed is gone at the next
sweep and its extension had given it a stop time that has passed, idle shutdown stopped it. The
reference is the idle-culler's rule, the one the service itself applies as a fallback: without the
extension the server would have run until its last activity (by the extension's rules, as it
reported it at the sweep before) plus `--timeout` (3600 s, zero-to-jupyterhub's default, when the
service's own is 0). The hours between the stop (the extension's stop time, else the sweep that
found it gone) and that moment are counted; a stop after it counts nothing. The count covers the
last seven days and lives in the service's memory (a restart starts it again).

Its load on the hub is bounded: one semaphore (`concurrency`) holds every request (hub API pages,
stops, status reads through the proxy), and each has a timeout. Requests are counted per sweep.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import quote

from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest, HTTPResponse

from ..core.hub_api import (
    DEFAULT_PAGE_SIZE,
    PAGINATION_MEDIA_TYPE,
    HubServer,
    parse_hub_time,
    read_users_page,
    servers_of,
    users_url,
)
from ..core.routes import STATUS_ROUTE

MISSING = "missing"

# States of a server in the fleet view.
MANAGED = "managed"  # the extension answers: it stops the server itself
HELD = "held"  # the extension answers, and something holds the server
NO_EXTENSION = "no-extension"
UNREACHABLE = "unreachable"
STALE = "stale"
PENDING = "pending"  # starting or stopping: never touched
#: States the fallback rule (the hub's last_activity and --timeout) applies to.
FALLBACK_STATES = (NO_EXTENSION, UNREACHABLE, STALE)
#: The savings reference when the service's own --timeout is 0: zero-to-jupyterhub's culler default.
REFERENCE_TIMEOUT_SECONDS = 3600.0
SAVINGS_WINDOW = timedelta(days=7)


@dataclass(frozen=True)
class Options:
    #: The fallback rule: cull a server without a working extension idle this long by the hub's
    #: last_activity (0: never).
    timeout_seconds: float = 3600.0
    #: Cull any server running this long, unless it is held (0: never).
    max_age_seconds: float = 0.0
    cull_users: bool = False
    cull_admin_users: bool = True
    remove_named_servers: bool = False
    cull_default_servers: bool = True
    cull_named_servers: bool = True
    #: A checker that has not completed a pass for this long is not trusted.
    stale_seconds: float = 600.0
    concurrency: int = 10
    request_timeout_seconds: float = 10.0
    page_size: int = DEFAULT_PAGE_SIZE
    #: Judge and show, but stop nothing.
    dry_run: bool = False
    #: "direct": read each server at its proxy target (from the hub's routing table, scope
    #: `proxy`), so that reading is not traffic through configurable-http-proxy, which records
    #: any answered request (a 404 too) as the route's activity and the hub then as the server's
    #: last_activity; "proxy": through the proxy's public URL (that side effect included).
    read_via: str = "direct"


@dataclass(frozen=True)
class Reading:
    """What one server's status route answered."""

    status: dict[str, Any] | None = None
    code: int | None = None
    error: str | None = None


@dataclass(frozen=True)
class Entry:
    """One server in the fleet view (`api/fleet`)."""

    user: str
    server: str
    url: str
    state: str
    version: str | None
    idle_seconds: float | None
    stops_at: str | None
    stop_reason: str | None
    held_by: str | None
    hub_last_activity: str | None
    started: str | None
    #: Why the service culls (or culled) it; None when it does not.
    cull_reason: str | None = None
    culled: bool = False
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {key: getattr(self, key) for key in self.__dataclass_fields__}


@dataclass
class Sweep:
    """One sweep's outcome: the fleet, and what it cost."""

    started_at: datetime
    entries: list[Entry] = field(default_factory=list)
    duration_seconds: float = 0.0
    hub_requests: int = 0
    status_requests: int = 0
    culled_users: list[str] = field(default_factory=list)
    error: str | None = None


@dataclass(frozen=True)
class EarlyStop:
    """A server idle shutdown stopped before the idle-culler's rule would have."""

    user: str
    server: str
    stopped_at: datetime
    early_seconds: float


def early_stop(previous: Entry, seen_at: datetime, gone_at: datetime,
               reference_timeout_seconds: float) -> EarlyStop | None:
    """`previous` (its line at the sweep at `seen_at`) is gone at the sweep at `gone_at`: the
    hours idle shutdown saved against the reference rule, or None when it was not idle shutdown
    (pure; see the module's docstring)."""
    if previous.state != MANAGED or previous.idle_seconds is None:
        return None
    stops_at = parse_hub_time(previous.stops_at)
    if stops_at is None or stops_at > gone_at:
        return None  # stopped before its deadline: by a person, the hub or a crash
    stopped_at = max(stops_at, seen_at)
    last_active = seen_at - timedelta(seconds=previous.idle_seconds)
    early = (last_active + timedelta(seconds=reference_timeout_seconds) - stopped_at).total_seconds()
    return EarlyStop(previous.user, previous.server, stopped_at, max(0.0, early))


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def held_by(status: dict[str, Any], now: datetime) -> str:
    """What holds the server by its extension's own status ("" when nothing does)."""
    hub = status.get("hub_activity") or {}
    if isinstance(hub, dict) and hub.get("held_by"):
        return str(hub["held_by"])
    for kernel in status.get("kernels") or []:
        if kernel.get("exempt"):
            return f"kernel {kernel.get('id')} is exempt"
        if kernel.get("execution_state") == "busy" and kernel.get("shutdown_at") is None:
            return f"kernel {kernel.get('id')} is running code"
    until = parse_hub_time(status.get("keep_alive_until"))
    if until is not None and until > now:
        return f"kept alive until {until.isoformat()}"
    for resource in [*(status.get("kernels") or []), *(status.get("terminals") or [])]:
        until = parse_hub_time(resource.get("keep_alive_until"))
        if until is not None and until > now:
            return f"{resource.get('id') or resource.get('name')} kept alive until {until.isoformat()}"
    app = status.get("app") or {}
    if app.get("requests_in_flight"):
        return f"waiting for {app['requests_in_flight'][0]} to be answered"
    return ""


def judge(server: HubServer, reading: Reading, now: datetime, options: Options) -> Entry:
    """The server's line in the fleet view, and whether the service culls it (pure)."""
    inactive_since = server.last_activity or server.started
    idle = (now - inactive_since).total_seconds() if inactive_since is not None else None
    age = (now - server.started).total_seconds() if server.started is not None else None
    base: dict[str, Any] = dict(user=server.user, server=server.name, url=server.url,
                                hub_last_activity=_iso(server.last_activity), started=_iso(server.started))
    if server.pending or not server.ready:
        return Entry(**base, state=PENDING, version=None, idle_seconds=idle, stops_at=None,
                     stop_reason=f"{server.pending or 'not ready'}", held_by=None)
    status = reading.status
    holder = ""
    version: str | None
    if status is not None:
        version = str(status.get("version") or "unknown")
        holder = held_by(status, now)
        app = status.get("app") or {}
        last_check = parse_hub_time(status.get("last_check"))
        fresh = bool(status.get("running", True)) and (
            (last_check is None and status.get("count", 0) == 0)
            or (last_check is not None and (now - last_check).total_seconds() < options.stale_seconds))
        state = (HELD if holder else MANAGED) if fresh else STALE
        stops_at, stop_reason = app.get("action_at"), app.get("reason")
        if holder:
            idle = 0.0
        elif fresh:  # a stale checker's own idea of idleness is not trusted: the hub's record is
            idle = app.get("idle_seconds", idle)
        error = None if fresh else f"the checker's last pass was at {status.get('last_check')}"
    else:
        version = MISSING if reading.code == 404 else None
        state = NO_EXTENSION if reading.code == 404 else UNREACHABLE
        stops_at = stop_reason = None
        error = reading.error
    entry = Entry(**base, state=state, version=version, idle_seconds=idle, stops_at=stops_at,
                  stop_reason=stop_reason, held_by=holder or None, error=error)
    if holder:
        return entry  # never culled by the service
    allowed = options.cull_named_servers if server.name else options.cull_default_servers
    if not allowed:
        return entry
    reason = None
    if state in FALLBACK_STATES and options.timeout_seconds and idle is not None \
            and idle >= options.timeout_seconds:
        reason = (f"{state}: inactive for {idle:.0f} s by the hub's last_activity "
                  f"(timeout {options.timeout_seconds:g} s)")
    elif options.max_age_seconds and age is not None and age >= options.max_age_seconds:
        reason = f"running for {age:.0f} s (max age {options.max_age_seconds:g} s)"
    if reason is None:
        return entry
    if state in FALLBACK_STATES:
        stops_at = (inactive_since + timedelta(seconds=options.timeout_seconds)).isoformat() \
            if inactive_since is not None else None
    return replace(entry, cull_reason=reason, stops_at=stops_at or _iso(now), stop_reason=reason)


class Fleet:
    """Sweeps a hub's fleet; the latest sweep is kept for `api/fleet` and `metrics`."""

    def __init__(self, *, api_url: str, proxy_url: str, token: str, options: Options, log: logging.Logger,
                 clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
                 fetch: Callable[[HTTPRequest], Awaitable[HTTPResponse]] | None = None) -> None:
        self.api_url = api_url.rstrip("/")
        self.proxy_url = proxy_url.rstrip("/")
        self.token = token
        self.options = options
        self.log = log
        self.clock = clock
        self._fetch = fetch
        self._semaphore = asyncio.Semaphore(max(1, options.concurrency))
        self.last: Sweep | None = None
        self.culled_total: dict[str, int] = {}
        #: Idle shutdowns of the last SAVINGS_WINDOW, oldest first (appended and aged by sweeps).
        self.early_stops: deque[EarlyStop] = deque()

    async def _request(self, url: str, method: str = "GET", body: str | None = None,
                       accept: str = "application/json") -> HTTPResponse:
        request = HTTPRequest(
            url, method=method, body=body, allow_nonstandard_methods=True,
            headers={"Authorization": f"token {self.token}", "Accept": accept},
            request_timeout=self.options.request_timeout_seconds,
            connect_timeout=self.options.request_timeout_seconds, follow_redirects=False,
        )
        fetch = self._fetch or AsyncHTTPClient().fetch
        async with self._semaphore:
            return await fetch(request)

    async def list_servers(self, sweep: Sweep) -> list[tuple[dict[str, Any], HubServer]]:
        """Every server of every user with a ready server, page by page."""
        found: list[tuple[dict[str, Any], HubServer]] = []
        offset: int | None = 0
        while offset is not None:
            sweep.hub_requests += 1
            page = users_url(self.api_url, offset=offset, limit=self.options.page_size)
            response = await self._request(page, accept=PAGINATION_MEDIA_TYPE)
            users, following = read_users_page(json.loads(response.body))
            offset = following if following is not None and following > offset else None
            for user in users:
                found.extend((user, server) for server in servers_of(user))
        return found

    async def list_targets(self, sweep: Sweep) -> dict[str, str]:
        """The proxy's routing table through the hub (`GET /hub/api/proxy`, paged): path -> target."""
        targets: dict[str, str] = {}
        offset: int | None = 0
        while offset is not None:
            sweep.hub_requests += 1
            page = f"{self.api_url}/proxy?offset={offset}&limit={self.options.page_size}"
            body = json.loads((await self._request(page, accept=PAGINATION_MEDIA_TYPE)).body)
            routes = body.get("items", body) if isinstance(body, dict) else {}
            following = (body.get("_pagination") or {}).get("next") if "_pagination" in body else None
            offset = following.get("offset") if isinstance(following, dict) else None
            for routespec, route in routes.items():
                if isinstance(route, dict) and route.get("target"):
                    # A host-routed spec is "host/path/": the path is what the hub's model names.
                    path = routespec if routespec.startswith("/") else "/" + routespec.partition("/")[2]
                    targets[path] = str(route["target"])
        return targets

    def status_url(self, server: HubServer, targets: dict[str, str] | None) -> str | None:
        path = "/" + server.url.strip("/") + "/"
        if targets is None:
            return f"{self.proxy_url}{path}{STATUS_ROUTE}"
        target = targets.get(path)
        return f"{target.rstrip('/')}{path}{STATUS_ROUTE}" if target else None

    async def read_status(self, server: HubServer, sweep: Sweep,
                          targets: dict[str, str] | None = None) -> Reading:
        url = self.status_url(server, targets)
        if url is None:
            return Reading(error="no route to it in the proxy's table")
        sweep.status_requests += 1
        try:
            response = await self._request(url)
        except HTTPClientError as error:
            return Reading(code=error.code, error=f"HTTP {error.code} from {url}")
        except Exception as error:  # timeouts, refused connections: the server does not answer
            return Reading(error=f"{type(error).__name__}: {error}")
        try:
            status = json.loads(response.body)
        except ValueError:
            return Reading(code=response.code, error=f"not JSON from {url}")
        if not isinstance(status, dict):
            return Reading(code=response.code, error=f"not a status from {url}")
        return Reading(status=status, code=response.code)

    async def stop(self, server: HubServer, sweep: Sweep) -> bool:
        """Stop (or remove) a server through the hub API; True once it is stopped (204)."""
        body = json.dumps({"remove": True}) if server.name and self.options.remove_named_servers else None
        sweep.hub_requests += 1
        response = await self._request(f"{self.api_url}/{server.api_path()}", method="DELETE", body=body)
        return response.code == 204

    async def _handle(self, server: HubServer, sweep: Sweep, now: datetime,
                      targets: dict[str, str] | None) -> Entry:
        if server.pending or not server.ready:
            reading = Reading()
        else:
            reading = await self.read_status(server, sweep, targets)
        entry = judge(server, reading, now, self.options)
        if entry.cull_reason is None or self.options.dry_run:
            return entry
        self.log.info("hub-service: culling %s: %s", server.label, entry.cull_reason)
        try:
            stopped = await self.stop(server, sweep)
        except Exception as error:
            self.log.warning("hub-service: stopping %s failed: %s", server.label, error)
            return replace(entry, error=f"stopping failed: {error}")
        key = entry.state if entry.state in FALLBACK_STATES else "max-age"
        self.culled_total[key] = self.culled_total.get(key, 0) + 1
        if not stopped:
            self.log.info("hub-service: %s is slow to stop (the hub answered 202)", server.label)
        return replace(entry, culled=True)

    async def sweep(self) -> Sweep:
        """One sweep; never raises (a failure is kept in the sweep and logged)."""
        now = self.clock()
        sweep = Sweep(started_at=now)
        began = time.monotonic()
        try:
            listed = await self.list_servers(sweep)
            targets = await self.list_targets(sweep) if self.options.read_via == "direct" and listed else None
            entries = await asyncio.gather(
                *(self._handle(server, sweep, now, targets) for _, server in listed))
            sweep.entries = list(entries)
            if self.options.cull_users and not self.options.dry_run:
                await self._cull_users(listed, sweep)
        except Exception as error:
            sweep.error = f"{type(error).__name__}: {error}"
            self.log.warning("hub-service: the sweep failed: %s", sweep.error)
        sweep.duration_seconds = time.monotonic() - began
        if sweep.error is None:
            self._note_stops(sweep)
        self.last = sweep
        return sweep

    def _note_stops(self, sweep: Sweep) -> None:
        """Record the idle shutdowns between the last complete sweep and this one."""
        previous = self.last
        if previous is not None and previous.error is None:
            present = {(entry.user, entry.server) for entry in sweep.entries}
            reference = self.options.timeout_seconds or REFERENCE_TIMEOUT_SECONDS
            for entry in previous.entries:
                if (entry.user, entry.server) in present:
                    continue
                stop = early_stop(entry, previous.started_at, sweep.started_at, reference)
                if stop is not None:
                    self.early_stops.append(stop)
        while self.early_stops and self.early_stops[0].stopped_at < sweep.started_at - SAVINGS_WINDOW:
            self.early_stops.popleft()

    async def _cull_users(self, listed: list[tuple[dict[str, Any], HubServer]], sweep: Sweep) -> None:
        """Delete users all of whose servers this sweep culled (the idle-culler's --cull-users)."""
        culled = {(entry.user, entry.server) for entry in sweep.entries if entry.culled}
        by_user: dict[str, tuple[dict[str, Any], list[HubServer]]] = {}
        for user, server in listed:
            by_user.setdefault(server.user, (user, []))[1].append(server)
        for name, (user, servers) in by_user.items():
            if not all((server.user, server.name) in culled for server in servers):
                continue
            if user.get("admin") and not self.options.cull_admin_users:
                continue
            sweep.hub_requests += 1
            try:
                await self._request(f"{self.api_url}/users/{quote(name, safe='')}", method="DELETE")
            except Exception as error:  # the hub refuses while a server is still stopping
                self.log.info("hub-service: user %s not deleted (yet): %s", name, error)
                continue
            sweep.culled_users.append(name)

    def summary(self) -> dict[str, Any]:
        sweep = self.last
        if sweep is None:
            return {"sweep": None, "servers": []}
        entries = sweep.entries
        counts: dict[str, int] = {}
        for entry in entries:
            counts[entry.state] = counts.get(entry.state, 0) + 1
        now = self.clock()
        within_hour = now + timedelta(hours=1)
        stopping = sum(1 for entry in entries
                       if (moment := parse_hub_time(entry.stops_at)) is not None and moment <= within_hour)
        week = [stop for stop in self.early_stops if stop.stopped_at >= now - SAVINGS_WINDOW]
        return {
            "sweep": {
                "started_at": sweep.started_at.isoformat(),
                "duration_seconds": round(sweep.duration_seconds, 3),
                "hub_requests": sweep.hub_requests,
                "status_requests": sweep.status_requests,
                "error": sweep.error,
                "culled_users": sweep.culled_users,
            },
            "totals": {"servers": len(entries), "by_state": counts,
                       "held": counts.get(HELD, 0), "culled": sum(1 for entry in entries if entry.culled),
                       "stopping_within_hour": stopping,
                       "idle_stops_this_week": len(week),
                       "server_hours_stopped_early_this_week": round(
                           sum(stop.early_seconds for stop in week) / 3600, 2),
                       "savings_reference_timeout_seconds":
                           self.options.timeout_seconds or REFERENCE_TIMEOUT_SECONDS},
            "options": {"timeout_seconds": self.options.timeout_seconds,
                        "max_age_seconds": self.options.max_age_seconds, "dry_run": self.options.dry_run},
            "servers": [entry.to_json() for entry in entries],
        }
