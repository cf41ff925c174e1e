"""``jupyter autoshutdown``: the command line for a running server (status, set, check,
keepalive, fleet, version) and for a stopped one (reset: the runtime settings saved for its next
start). Installed by pip as ``jupyter-autoshutdown`` (which ``jupyter autoshutdown`` runs) and as
``python -m jupyter_autoshutdown``; ``python -m jupyter_autoshutdown.cli.commands`` and the original's
scripts (set-time-interval.sh, check_idle_timeout_configuration.py) run it too.

It talks to the server's REST API with the server's token, or, against a token-less server
(Studio Classic), with its own matching XSRF cookie and header (core/auth.py; never a scraped cookie). Without
``--url`` it finds the server itself from ``jupyter server list --json`` of this environment
(honouring ``JUPYTER_RUNTIME_DIR``). The token comes from ``--token``, then ``JUPYTER_TOKEN``,
then the server list.

Exit codes (the same for every command):

==  =====================================================================
0   done / healthy
1   the request failed (network error, timeout, unexpected reply)
2   bad arguments (a --url that is not an http(s) URL, a --timeout not above 0, ...), or a
    timeout under CONFIRM_BELOW_MINUTES not confirmed; nothing was changed
3   no server found (none running, several without --url, or unreachable)
4   the server answers but jupyter_autoshutdown is not loaded in it
5   the checker is not running (no completed pass, or none recently)
6   the server rejected the value (its message is shown)
7   the server refused the token
==  =====================================================================
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import math
import os
import re
import subprocess
import sys
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests

from ..core.auth import request_headers
from ..core.hub_api import DEFAULT_PAGE_SIZE, PAGINATION_MEDIA_TYPE, read_users_page, servers_of, users_url
from ..core.routes import KEEPALIVE_ROUTE, SAGEMAKER_ROUTE, SETTINGS_ROUTE, STATUS_ROUTE
from ..core.settings import MAX_MINUTES

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_NO_SERVER = 3
EXIT_NOT_LOADED = 4
EXIT_NOT_RUNNING = 5
EXIT_REJECTED = 6
EXIT_AUTH = 7

SESSIONS = "api/sessions"
#: `set` asks before a timeout under this many minutes (0, off, is not asked about): with an app
#: action, such a timeout stops the server within moments of its being idle.
CONFIRM_BELOW_MINUTES = 5.0
#: A last check older than this many check intervals (plus slack) means the checker is stuck.
STALE_INTERVALS = 2
STALE_SLACK_SECONDS = 10.0


class ClientError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Server:
    url: str  # base URL, ending in "/"
    token: str
    #: A logged-in session (SageMaker Studio's presigned URL sets its cookies); None: plain requests.
    session: Any = None
    #: What the server is to the operator ("domain/profile"); empty: its URL says it.
    label: str = ""

    def route(self, path: str) -> str:
        return self.url + path


def parse_minutes_argument(text: str) -> float:
    try:
        minutes = float(text)
    except ValueError:
        raise ClientError(EXIT_USAGE, f"minutes must be a number, got {text!r}") from None
    if not math.isfinite(minutes) or minutes < 0 or minutes > MAX_MINUTES:
        raise ClientError(
            EXIT_USAGE, f"minutes must be between 0 (off) and {MAX_MINUTES:g}, got {text!r}"
        )
    return minutes


def running_servers() -> list[dict[str, Any]]:
    """The servers `jupyter server list --json` would show for this environment."""
    try:
        from jupyter_server.serverapp import list_running_servers
    except ImportError:
        result = subprocess.run(
            ["jupyter", "server", "list", "--json"], capture_output=True, text=True, timeout=30
        )
        return [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    return list(list_running_servers())


def _with_slash(url: str) -> str:
    return url if url.endswith("/") else url + "/"


def resolve_server(url: str | None, token: str | None) -> Server:
    token = token if token is not None else os.environ.get("JUPYTER_TOKEN")
    if url:
        if token is None:
            # A server from the list at this URL may know its own token.
            wanted = _with_slash(url)
            for info in _safe_running_servers():
                if _with_slash(info.get("url", "")) == wanted:
                    token = info.get("token", "")
        return Server(_with_slash(url), token or "")
    servers = _safe_running_servers()
    if not servers:
        runtime = os.environ.get("JUPYTER_RUNTIME_DIR", "the default runtime directory")
        raise ClientError(
            EXIT_NO_SERVER,
            f"no running Jupyter server found (looked in {runtime}); start one, or pass --url",
        )
    if len(servers) > 1:
        urls = ", ".join(str(info.get("url")) for info in servers)
        raise ClientError(EXIT_NO_SERVER, f"several Jupyter servers are running ({urls}); pass --url")
    info = servers[0]
    return Server(_with_slash(info["url"]), token if token is not None else info.get("token", ""))


def _safe_running_servers() -> list[dict[str, Any]]:
    try:
        return running_servers()
    except (OSError, ValueError, subprocess.SubprocessError):
        return []


def on_loopback(url: str) -> bool:
    """A server on this machine (its own self-signed certificate is then expected: SageMaker
    notebook instances serve Jupyter over HTTPS on localhost:8443)."""
    return (urlsplit(url).hostname or "") in ("localhost", "127.0.0.1", "::1")


def call(server: Server, method: str, path: str, *, body: Any = None, timeout: float = 10.0,
         missing_ok: bool = False) -> requests.Response:
    """One authenticated request; raises ClientError with the right exit code on failure."""
    loopback = on_loopback(server.url)
    try:
        # Only around a loopback request: catch_warnings swaps process-wide state, and the fleet
        # check calls from many threads (to servers elsewhere, certificates checked).
        with warnings.catch_warnings() if loopback else contextlib.nullcontext():
            if loopback:  # urllib3's InsecureRequestWarning: this machine's own certificate
                warnings.simplefilter("ignore")
            response = (server.session or requests).request(
                method, server.route(path), json=body, headers=request_headers(server.token),
                timeout=timeout, verify=not loopback,
            )
    except (requests.exceptions.InvalidURL, requests.exceptions.MissingSchema,
            requests.exceptions.InvalidSchema) as error:
        raise ClientError(EXIT_USAGE, f"not a server URL: {server.url} ({error})") from None
    except requests.ConnectionError as error:
        raise ClientError(EXIT_NO_SERVER, f"no server answers at {server.url} ({error})") from None
    except requests.RequestException as error:
        raise ClientError(EXIT_FAILED, f"request to {server.url}{path} failed: {error}") from None
    if response.status_code in (401, 403):
        raise ClientError(
            EXIT_AUTH,
            f"the server at {server.url} refused the request ({response.status_code}); "
            "pass --token or set JUPYTER_TOKEN",
        )
    if response.status_code == 404 and not missing_ok:
        raise ClientError(
            EXIT_NOT_LOADED,
            f"jupyter_autoshutdown is not loaded in the server at {server.url}: install it "
            "(pip install jupyter_autoshutdown) and restart the server",
        )
    return response


def _json(response: requests.Response) -> dict[str, Any]:
    try:
        data = response.json()
    except ValueError:
        raise ClientError(
            EXIT_FAILED, f"unexpected reply ({response.status_code}): {response.text[:200]!r}"
        ) from None
    if not isinstance(data, dict):
        raise ClientError(EXIT_FAILED, f"unexpected reply: {data!r}"[:300])
    return data


def _yes_no(value: Any) -> str:
    return "yes" if value else "no"


# ---- set-time-interval ------------------------------------------------------------------------


def set_time_interval(server: Server, minutes: float, keep_terminals: bool | None,
                      timeout: float = 10.0) -> dict[str, Any]:
    body: dict[str, Any] = {"idle_time": minutes}
    if keep_terminals is not None:
        body["keep_terminals"] = keep_terminals
    response = call(server, "POST", SAGEMAKER_ROUTE, body=body, timeout=timeout)
    if response.status_code == 400:
        message = _json(response).get("message", response.text)
        raise ClientError(EXIT_REJECTED, f"the server rejected the value: {message}")
    if response.status_code != 200:
        raise ClientError(EXIT_FAILED, f"unexpected reply ({response.status_code}): {response.text[:200]}")
    return _json(response)


def plural(count: float, unit: str) -> str:
    """"1 minute", "0.5 minutes", "45 minutes"."""
    return f"{count:g} {unit}" + ("" if count == 1 else "s")


def describe_settings(data: dict[str, Any]) -> str:
    minutes = data.get("idle_timeout_minutes", data.get("idle_time", 0) / 60)
    seconds = data.get("idle_time", data.get("idle_timeout_seconds"))
    timeout = ("off (0)" if not minutes else plural(minutes, "minute")
               + (f" ({plural(seconds, 'second')})" if isinstance(seconds, (int, float)) else ""))
    lines = [f"  idle timeout:   {timeout}", f"  keep terminals: {_yes_no(data.get('keep_terminals'))}"]
    if data.get("persisted") is False:
        lines.append("  warning: the server could not save this; it applies until the server restarts")
    return "\n".join(lines)


# ---- health check -----------------------------------------------------------------------------


@dataclass
class Health:
    code: int
    message: str
    data: dict[str, Any]


def check_health(server: Server, timeout: float = 10.0) -> Health:
    try:
        compat = _json(call(server, "GET", SAGEMAKER_ROUTE, timeout=timeout))
        status_response = call(server, "GET", STATUS_ROUTE, timeout=timeout, missing_ok=True)
        status = _json(status_response) if status_response.status_code == 200 else None
    except ClientError as error:
        return Health(error.code, error.message, {"server": server.label or server.url})
    data = {"server": server.label or server.url, "idle_checker": compat, "status": status}
    count = int(compat.get("count") or 0)
    if compat.get("message") and not compat.get("running"):
        return Health(EXIT_NOT_RUNNING, str(compat["message"]), data)  # e.g. jupyter_server too old
    if status is None:
        # An older extension with only the SageMaker route: all it tells is the count.
        if count < 1:
            return Health(EXIT_NOT_RUNNING, "the checker has not completed a pass", data)
        return Health(EXIT_OK, "healthy (SageMaker-compatible route only)", data)
    if not status.get("running"):
        return Health(EXIT_NOT_RUNNING, "the checker is not running", data)
    if count < 1:
        return Health(EXIT_NOT_RUNNING, "the checker has not completed a pass yet", data)
    interval = float(status.get("settings", {}).get("max_check_interval_seconds") or 60)
    age = status.get("last_check_seconds_ago")
    limit = STALE_INTERVALS * interval + STALE_SLACK_SECONDS
    if age is None or age > limit:
        return Health(EXIT_NOT_RUNNING, f"the last check was {age} s ago (more than {limit:g} s)", data)
    return Health(EXIT_OK, "healthy", data)


def describe_health(health: Health) -> str:
    compat = health.data.get("idle_checker") or {}
    status = health.data.get("status") or {}
    verdict = "Auto-shutdown is active" if health.code == EXIT_OK else "Auto-shutdown is NOT healthy"
    lines = [f"{verdict} on {health.data.get('server')}: {health.message}"]
    if compat:
        lines.append(describe_settings(compat))
        last = status.get("last_check") or compat.get("last_check")
        age = status.get("last_check_seconds_ago")
        when = f", the last {age:.0f} s ago ({last})" if age is not None else ""
        lines.append(f"  checks run:     {compat.get('count')}{when}")
    if status:
        lines.append(f"  app action:     {status.get('settings', {}).get('app_action')}")
        lines.append(f"  kernels:        {len(status.get('kernels', []))}, "
                     f"terminals: {len(status.get('terminals', []))}")
        for error in status.get("errors", [])[-3:]:
            lines.append(f"  recent error:   {error.get('time')}: {error.get('message')}")
    return "\n".join(lines)


# ---- fleet ------------------------------------------------------------------------------------


def hub_servers(hub_url: str, token: str, public_url: str | None, timeout: float,
                page_size: int = DEFAULT_PAGE_SIZE) -> list[Server]:
    """Every ready single-user server (named ones too) of a JupyterHub, paging through its users
    (core/hub_api.py: JupyterHub 2+ answers one page unless asked for the next)."""
    hub = _with_slash(hub_url)
    headers = {"Authorization": f"token {token}", "Accept": PAGINATION_MEDIA_TYPE}
    base = _with_slash(public_url or hub_url)
    servers = []
    offset: int | None = 0
    while offset is not None:
        try:
            response = requests.get(users_url(hub + "hub/api", offset=offset, limit=page_size),
                                    headers=headers, timeout=timeout)
        except requests.RequestException as error:
            raise ClientError(EXIT_NO_SERVER, f"cannot reach the hub at {hub}: {error}") from None
        if response.status_code in (401, 403):
            raise ClientError(EXIT_AUTH, f"the hub refused the token ({response.status_code}); "
                                         "set JUPYTERHUB_API_TOKEN or pass --hub-token")
        if response.status_code != 200:
            raise ClientError(EXIT_FAILED, f"the hub answered {response.status_code}: {response.text[:200]}")
        try:
            users, following = read_users_page(response.json())
        except ValueError as error:
            raise ClientError(EXIT_FAILED, str(error)) from None
        offset = following if following is None or following > offset else None  # never loop
        for user in users:
            for server in servers_of(user):
                if server.ready and server.url:
                    servers.append(Server(base + server.url.lstrip("/"), token))
    return servers


def read_server_list(path: str) -> list[Server]:
    """A file of servers: a JSON list of {"url", "token"}, or lines of 'URL [TOKEN]'."""
    with open(path, encoding="utf-8") as handle:
        text = handle.read()
    if text.lstrip().startswith("["):
        return [Server(_with_slash(item["url"]), item.get("token", "")) for item in json.loads(text)]
    servers = []
    for line in text.splitlines():
        parts = line.split()
        if parts and not parts[0].startswith("#"):
            servers.append(Server(_with_slash(parts[0]), parts[1] if len(parts) > 1 else ""))
    return servers


def check_fleet(servers: list[Server], timeout: float, workers: int = 16) -> list[Health]:
    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(servers) or 1))) as pool:
        return list(pool.map(lambda server: check_health(server, timeout), servers))


# ---- SageMaker Studio domains (what the original's extension-checker did) ------------------------

STUDIO_URL = "https://{domain}.studio.{region}.sagemaker.aws/jupyter/default/"
#: How each SageMaker profile is reported, by the health check's exit code.
STUDIO_STATES = {EXIT_OK: "OK", EXIT_NOT_LOADED: "missing", EXIT_NOT_RUNNING: "stale checker",
                 EXIT_NO_SERVER: "unreachable"}


@dataclass(frozen=True)
class StudioProfile:
    domain: str
    profile: str


def _pages(call_api: Any, key: str, **kwargs: Any) -> list[dict[str, Any]]:
    """Every item of a paginated SageMaker list call."""
    items: list[dict[str, Any]] = []
    while True:
        page = call_api(**kwargs)
        items.extend(page.get(key, []))
        token = page.get("NextToken")
        if not token:
            return items
        kwargs["NextToken"] = token


def studio_profiles(sagemaker: Any, domains: list[str]) -> list[StudioProfile]:
    """The user profiles of `domains` (every domain of the client's region when empty)."""
    if not domains:
        domains = [d["DomainId"] for d in _pages(sagemaker.list_domains, "Domains")]
    return [
        StudioProfile(domain, item["UserProfileName"])
        for domain in domains
        for item in _pages(sagemaker.list_user_profiles, "UserProfiles", DomainIdEquals=domain)
    ]


def check_studio_profile(sagemaker: Any, profile: StudioProfile, region: str, timeout: float,
                         studio_url: str = STUDIO_URL) -> Health:
    """Log in to the profile's Studio with a presigned URL (one session), then check its server."""
    label = f"{profile.domain}/{profile.profile}"
    try:
        authorized = sagemaker.create_presigned_domain_url(
            DomainId=profile.domain, UserProfileName=profile.profile, ExpiresInSeconds=60,
        )["AuthorizedUrl"]
        session = requests.Session()
        session.get(authorized, timeout=timeout).raise_for_status()
    except Exception as error:  # boto3's errors, the login failing: the profile is unreachable
        return Health(EXIT_NO_SERVER, f"cannot log in ({error})", {"server": label})
    url = studio_url.format(domain=profile.domain, region=region)
    return check_health(Server(_with_slash(url), "", session=session, label=label), timeout)


def check_studio(sagemaker: Any, domains: list[str], region: str, timeout: float,
                 studio_url: str = STUDIO_URL, workers: int = 16) -> list[Health]:
    profiles = studio_profiles(sagemaker, domains)
    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(profiles) or 1))) as pool:
        return list(pool.map(
            lambda profile: check_studio_profile(sagemaker, profile, region, timeout, studio_url),
            profiles,
        ))


# ---- SageMaker Studio spaces (today's Studio: a JupyterLab app per space) ---------------------

#: Where a space's JupyterLab answers once a presigned URL has opened it in a browser session.
SPACE_URL = "https://{domain}.studio.{region}.sagemaker.aws/jupyterlab/default/"
#: A space without an InService JupyterLab app bills nothing: reported OK, as "stopped".
STOPPED = "stopped"


@dataclass(frozen=True)
class StudioSpace:
    domain: str
    space: str
    owner: str | None
    #: The space's JupyterLab app as ListApps shows it (None: it has none).
    app: dict[str, Any] | None


def studio_spaces(sagemaker: Any, domains: list[str]) -> list[StudioSpace]:
    """Every space of `domains` (every domain of the region when empty) with its JupyterLab app."""
    if not domains:
        domains = [d["DomainId"] for d in _pages(sagemaker.list_domains, "Domains")]
    spaces = []
    for domain in domains:
        apps = {app.get("SpaceName"): app
                for app in _pages(sagemaker.list_apps, "Apps", DomainIdEquals=domain)
                if app.get("AppType") == "JupyterLab" and app.get("Status") not in ("Deleted", "Failed")}
        for item in _pages(sagemaker.list_spaces, "Spaces", DomainIdEquals=domain):
            name = item["SpaceName"]
            owner = (item.get("OwnershipSettingsSummary") or {}).get("OwnerUserProfileName")
            spaces.append(StudioSpace(domain, name, owner, apps.get(name)))
    return spaces


def check_studio_space(sagemaker: Any, space: StudioSpace, region: str, timeout: float,
                       space_url: str = SPACE_URL) -> Health:
    """A space with a running JupyterLab app: opened with a presigned URL, then checked; what the
    API shows when its server cannot be reached from outside."""
    label = f"{space.domain}/{space.space}"
    app = space.app
    if app is None or app.get("Status") != "InService":
        state = app.get("Status") if app else "no JupyterLab app"
        return Health(EXIT_OK, f"{STOPPED}: {state} (nothing runs, nothing bills)",
                      {"server": label, "state": STOPPED})
    shown = f"JupyterLab app '{app.get('AppName')}' InService since {app.get('CreationTime')}"
    if not space.owner:
        return Health(EXIT_NO_SERVER, f"{shown}; a shared space has no owner profile to open it "
                      "with a presigned URL, so its server cannot be checked from outside: run "
                      "`jupyter autoshutdown check` in the space", {"server": label})
    try:
        authorized = sagemaker.create_presigned_domain_url(
            DomainId=space.domain, UserProfileName=space.owner, SpaceName=space.space,
            LandingUri="app:JupyterLab:", ExpiresInSeconds=60,
        )["AuthorizedUrl"]
        session = requests.Session()
        session.get(authorized, timeout=timeout).raise_for_status()
    except Exception as error:
        return Health(EXIT_NO_SERVER, f"{shown}; cannot open it from outside ({error})", {"server": label})
    url = space_url.format(domain=space.domain, region=region)
    health = check_health(Server(_with_slash(url), "", session=session, label=label), timeout)
    if health.code != EXIT_OK:
        return Health(health.code, f"{shown}; {health.message}", health.data)
    return health


def check_studio_spaces(sagemaker: Any, domains: list[str], region: str, timeout: float,
                        space_url: str = SPACE_URL, workers: int = 16) -> list[Health]:
    spaces = studio_spaces(sagemaker, domains)
    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(spaces) or 1))) as pool:
        return list(pool.map(
            lambda space: check_studio_space(sagemaker, space, region, timeout, space_url), spaces))


def _sagemaker_client(region: str | None) -> Any:
    try:
        import boto3
    except ImportError:
        raise ClientError(EXIT_USAGE, "--sagemaker-domain needs boto3: "
                                      "pip install 'jupyter_autoshutdown[sagemaker]'") from None
    return boto3.client("sagemaker", region_name=region)


# ---- status and keep-alive --------------------------------------------------------------------


def _last_activity(app: dict[str, Any], now: Any) -> str:
    """"jupyter-server-proxy, 12 s ago": what people did last, and when."""
    try:
        ago = (datetime.fromisoformat(now) - datetime.fromisoformat(app["last_activity"])).total_seconds()
    except (TypeError, ValueError, KeyError):
        return str(app["last_activity_source"])
    return f"{app['last_activity_source']}, {_seconds(ago)} ago"


def _seconds(value: Any) -> str:
    """A duration for a person: "45 s", "12 min", "2 h 5 min"; "-" for none."""
    if value is None:
        return "-"
    total = max(0, math.ceil(float(value)))
    if total < 60:
        return f"{total} s"
    minutes = math.ceil(total / 60)
    if minutes < 60:
        return f"{minutes} min"
    hours, rest = divmod(minutes, 60)
    return f"{hours} h {rest} min" if rest else f"{hours} h"


def _clock(iso: Any) -> str:
    """A UTC timestamp as this machine's local time of day (with the date when not today)."""
    if not iso:
        return "-"
    from datetime import datetime

    text = str(iso)
    if text.endswith(("Z", "z")):  # Python 3.10's fromisoformat does not read "Z"
        text = text[:-1] + "+00:00"
    moment = datetime.fromisoformat(text).astimezone()
    today = datetime.now().astimezone().date()
    return moment.strftime("%H:%M:%S" if moment.date() == today else "%Y-%m-%d %H:%M:%S")


#: A timezone-aware ISO 8601 time, as the server writes times into its reasons.
_ISO_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:[+-]\d{2}:\d{2}|Z)")


def _local_times(text: Any) -> str:
    """A reason from the server with each time in it shown as STOPS AT shows times (local)."""

    def local(match: re.Match[str]) -> str:
        try:
            return _clock(match.group(0))
        except ValueError:
            return match.group(0)

    return _ISO_TIME.sub(local, str(text or ""))


def _idle_for(kernel: dict[str, Any]) -> str:
    """A kernel's IDLE FOR: "-" while it runs something (busy is not idle; STATE says busy)."""
    if kernel.get("execution_state") == "busy":
        return "-"
    return _seconds(kernel.get("idle_seconds"))


def read_status(server: Server, timeout: float = 10.0) -> dict[str, Any]:
    """The server's status, each kernel with the path of its notebook or console where known."""
    status = _json(call(server, "GET", STATUS_ROUTE, timeout=timeout))
    sessions_response = call(server, "GET", SESSIONS, timeout=timeout, missing_ok=True)
    paths: dict[str, str] = {}
    if sessions_response.status_code == 200:
        with contextlib.suppress(ValueError):
            for session in sessions_response.json():
                kernel = (session or {}).get("kernel") or {}
                if kernel.get("id"):
                    paths[kernel["id"]] = session.get("path") or session.get("name") or ""
    for kernel in status.get("kernels", []):
        kernel["path"] = paths.get(kernel.get("id", ""))
    return status


def _table(rows: list[list[str]]) -> list[str]:
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    return ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
            for row in rows]


def describe_status(status: dict[str, Any], url: str) -> str:
    """The status as a person reads it: kernels by notebook, terminals, the app action."""
    settings = status.get("settings") or {}
    minutes = settings.get("idle_timeout_minutes")
    lines = [f"Auto-shutdown on {url}: timeout "
             + ("off" if not minutes else f"{minutes:g} min")
             + f", keep terminals {_yes_no(settings.get('keep_terminals'))}, "
             f"{status.get('count', 0)} checks, last {_clock(status.get('last_check'))}"]
    if status.get("keep_alive_until"):
        lines.append(f"Everything is kept alive until {_clock(status['keep_alive_until'])}.")
    kernels = status.get("kernels") or []
    lines.append("")
    if kernels:
        rows = [["KERNEL", "STATE", "IDLE FOR", "STOPS AT", "WHY"]]
        for kernel in kernels:
            rows.append([kernel.get("path") or f"{kernel.get('name')} {str(kernel.get('id'))[:8]}",
                         str(kernel.get("execution_state") or "?"), _idle_for(kernel),
                         _clock(kernel.get("shutdown_at")), _local_times(kernel.get("reason"))])
        lines += _table(rows)
    else:
        lines.append("No kernels are running.")
    terminals = status.get("terminals") or []
    lines.append("")
    if terminals:
        rows = [["TERMINAL", "IDLE FOR", "STOPS AT", "WHY"]]
        rows += [[f"terminal {t.get('name')}", _seconds(t.get("idle_seconds")), _clock(t.get("shutdown_at")),
                  _local_times(t.get("reason"))] for t in terminals]
        lines += _table(rows)
    else:
        lines.append("No terminals are open.")
    app = status.get("app") or {}
    lines.append("")
    when = (f"at {_clock(app.get('action_at'))} (in {_seconds(app.get('seconds_until_action'))})"
            if app.get("action_at") else "not scheduled")
    lines.append(f"App action '{app.get('action')}': {when}; {_local_times(app.get('reason'))}".rstrip("; "))
    if app.get("last_activity_source"):
        lines.append(f"  last activity: {_last_activity(app, status.get('now'))}")
    if app.get("last_run_at"):
        lines.append(f"  last run at {_clock(app['last_run_at'])}: {app.get('last_result')}")
    if app.get("last_error"):
        lines.append(f"  last attempt failed: {app['last_error']}")
    if status.get("errors"):
        latest = status["errors"][-1].get("message")
        lines.append(f"{len(status['errors'])} recent error(s); the latest: {latest}")
    return "\n".join(lines)


def keep_alive(server: Server, minutes: float | None, kernel: str | None, terminal: str | None,
               timeout: float = 10.0) -> dict[str, Any]:
    """Keep everything (or one kernel or terminal) alive for `minutes`; None cancels."""
    target = {"kernel_id": kernel} if kernel else {"terminal": terminal} if terminal else {}
    if minutes is None:
        query = "&".join(f"{key}={value}" for key, value in target.items())
        response = call(server, "DELETE", KEEPALIVE_ROUTE + (f"?{query}" if query else ""), timeout=timeout)
    else:
        response = call(server, "POST", KEEPALIVE_ROUTE, body={"minutes": minutes, **target}, timeout=timeout)
    if response.status_code == 400:
        raise ClientError(EXIT_REJECTED, f"the server rejected it: {_json(response).get('message')}")
    if response.status_code != 200:
        raise ClientError(EXIT_FAILED, f"unexpected reply ({response.status_code}): {response.text[:200]}")
    return _json(response)


def describe_keep_alive(data: dict[str, Any]) -> str:
    lines = []
    if data.get("keep_alive_until"):
        lines.append(f"Everything is kept alive until {_clock(data['keep_alive_until'])}.")
    for kernel, until in (data.get("kernels") or {}).items():
        lines.append(f"Kernel {kernel} is kept alive until {_clock(until)}.")
    for terminal, until in (data.get("terminals") or {}).items():
        lines.append(f"Terminal {terminal} is kept alive until {_clock(until)}.")
    return "\n".join(lines) or "No keep-alive is in force."


# ---- command line -----------------------------------------------------------------------------


EXIT_CODES = ("Exit codes: 0 done/healthy, 1 request failed, 2 bad arguments (nothing changed), "
              "3 no server found, 4 extension not loaded, 5 checker not running, 6 value rejected, "
              "7 token refused.")


def _url_argument(text: str) -> str:
    """--url and the like: an http(s) URL with a host (anything else is a bad argument, exit 2)."""
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 (a port that is not a number raises here)
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"not a URL: {text!r} ({error})") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise argparse.ArgumentTypeError(
            f"not an http(s) URL: {text!r} (for example http://127.0.0.1:8888/)")
    return text


def _seconds_argument(text: str) -> float:
    """--timeout: a positive, finite number of seconds."""
    try:
        seconds = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number of seconds, got {text!r}") from None
    if not math.isfinite(seconds) or seconds <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, got {text!r}")
    return seconds


def _add_timeout_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--timeout", type=_seconds_argument, default=10.0,
                        help="seconds per request, more than 0 (default 10)")


def _add_server_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", type=_url_argument,
                        help="the server's base URL (default: find the running server)")
    parser.add_argument("--token", help="the server's token (default: JUPYTER_TOKEN, then the server list)")
    _add_timeout_option(parser)


def _status_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true",
                        help="print GET autoshutdown/api/status, each kernel with its 'path'")
    _add_server_options(parser)


def _set_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("minutes", nargs="?",
                        help="idle timeout in minutes, 0 to turn auto-shutdown off "
                             "(default: TIMEOUT_IN_MINS)")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--keep-terminals", dest="keep_terminals", action="store_true", default=None,
                       help="never shut down terminals (open terminals then also keep the app "
                            "action from running)")
    group.add_argument("--no-keep-terminals", dest="keep_terminals", action="store_false",
                       help="shut down idle terminals once no kernels remain (the default)")
    parser.add_argument("-y", "--yes", action="store_true",
                        help=f"set a timeout under {CONFIRM_BELOW_MINUTES:g} minutes without asking; "
                             "scripts need it (without a terminal such a timeout is refused)")
    parser.add_argument("--quiet", action="store_true", help="print only errors")
    _add_server_options(parser)


def _check_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true",
                        help="print JSON: the idle_checker route's fields (idle_time, "
                             "keep_terminals, count, ...) at the top level, with healthy, "
                             "exit_code, message, server, and the native status under 'status'")
    _add_server_options(parser)


def _keepalive_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("minutes", nargs="?", help="for how many minutes (default 60)")
    parser.add_argument("--cancel", action="store_true", help="end the keep-alive now")
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--kernel", metavar="ID", help="only this kernel")
    which.add_argument("--terminal", metavar="NAME", help="only this terminal")
    parser.add_argument("--json", action="store_true", help="print the keep-alives as JSON")
    _add_server_options(parser)


def _reset_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--state-file", metavar="PATH",
                        help="the state file to clear, where the server sets c.AutoShutdown.state_file "
                             "(default: <jupyter data dir>/jupyter_autoshutdown/state.json)")
    parser.add_argument("--url", type=_url_argument,
                        help="a running server to reset as well (default: the one running server "
                             "found, if any; none is needed)")
    parser.add_argument("--token", help="its token (default: JUPYTER_TOKEN, then the server list)")
    _add_timeout_option(parser)


def _version_arguments(parser: argparse.ArgumentParser) -> None:
    pass


def _fleet_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--server", action="append", default=[], metavar="URL[,TOKEN]",
                        help="a server to check (repeatable)")
    parser.add_argument("--servers", metavar="FILE",
                        help="a file of servers: lines 'URL [TOKEN]' or a JSON list")
    parser.add_argument("--hub-url", type=_url_argument, help="check every running server of this JupyterHub")
    parser.add_argument("--hub-public-url", type=_url_argument,
                        help="where user servers are reached (default: --hub-url)")
    parser.add_argument("--hub-token", help="hub API token (default: JUPYTERHUB_API_TOKEN)")
    parser.add_argument("--sagemaker-domain", action="append", default=None, metavar="DOMAIN_ID",
                        nargs="?", const="",
                        help="check every user profile of this SageMaker Studio (Classic) domain; "
                             "without an id, every domain of the region (needs boto3)")
    parser.add_argument("--sagemaker-spaces", action="append", default=None, metavar="DOMAIN_ID",
                        nargs="?", const="",
                        help="check every space of this SageMaker Studio domain (its JupyterLab "
                             "app); without an id, every domain of the region (needs boto3)")
    parser.add_argument("--region", help="AWS region of --sagemaker-domain/--sagemaker-spaces "
                                         "(default: boto3's)")
    parser.add_argument("--studio-url", default=STUDIO_URL, help=argparse.SUPPRESS)
    parser.add_argument("--space-url", default=SPACE_URL, help=argparse.SUPPRESS)
    _add_timeout_option(parser)
    parser.add_argument("--json", action="store_true", help="print the results as JSON")


HUB_SERVICE = "hub-service"

#: Each command: its help line and what adds its arguments.
COMMANDS = {
    "status": ("what stops when: kernels, terminals, the app action", _status_arguments),
    "set": ("set the idle timeout of the running server", _set_arguments),
    "check": ("print the settings and whether the checker is healthy", _check_arguments),
    "keepalive": ("keep everything, or one kernel or terminal, alive", _keepalive_arguments),
    "reset": ("clear the runtime settings saved for the next start (no running server needed), "
              "and reset a running server's", _reset_arguments),
    "version": ("print the installed version", _version_arguments),
    "fleet": ("check many servers at once", _fleet_arguments),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="jupyter autoshutdown",
        description="Auto-shutdown of idle kernels, terminals and servers: see and change it on a "
                    "running server, check one or many.",
        epilog=EXIT_CODES,
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (help_text, add_arguments) in COMMANDS.items():
        add_arguments(commands.add_parser(name, help=help_text, description=help_text, epilog=EXIT_CODES))
    # Listed for --help only: `jupyter autoshutdown hub-service` is dispatched before this parser
    # (client.main), since it runs in the hub's environment and this stage imports only core.
    commands.add_parser(HUB_SERVICE, add_help=False,
                        help="run the JupyterHub service over the fleet, in the hub's environment "
                             "(docs/jupyterhub.md; `hub-service --help`)")
    return parser


def build_command_parser(command: str, prog: str) -> argparse.ArgumentParser:
    """One command as a script of its own (the original's set-time-interval.sh, the checker):
    its --help and its errors name `prog`."""
    help_text, add_arguments = COMMANDS[command]
    parser = argparse.ArgumentParser(prog=prog, description=f"{help_text[:1].upper()}{help_text[1:]} "
                                     f"(as `jupyter autoshutdown {command}`).", epilog=EXIT_CODES)
    add_arguments(parser)
    parser.set_defaults(command=command)
    return parser


def short_timeout_warning(minutes: float) -> str:
    soon = "seconds" if minutes < 1 else plural(minutes, "minute")
    return (f"A {minutes:g}-minute timeout stops idle kernels and, with an app action, the server "
            f"itself within {soon} of being idle.")


def _stdin_is_a_terminal() -> bool:
    try:
        return sys.stdin is not None and sys.stdin.isatty()
    except (ValueError, OSError):  # closed
        return False


def _confirm(question: str) -> bool:
    """Ask on the terminal (the question on stderr, so that stdout stays the command's output)."""
    print(question, end="", file=sys.stderr, flush=True)
    answer = sys.stdin.readline()
    if not answer.endswith("\n"):
        print(file=sys.stderr)  # end of input: leave the prompt's line
    return answer.strip().lower() in ("y", "yes")


def _run_set(args: argparse.Namespace) -> int:
    text = args.minutes if args.minutes is not None else os.environ.get("TIMEOUT_IN_MINS")
    if text is None:
        raise ClientError(EXIT_USAGE, "give the timeout in minutes (or set TIMEOUT_IN_MINS)")
    minutes = parse_minutes_argument(text)
    ask = 0 < minutes < CONFIRM_BELOW_MINUTES and not args.yes
    if ask and not _stdin_is_a_terminal():
        raise ClientError(EXIT_USAGE, f"{short_timeout_warning(minutes)} Nothing was changed: there "
                                      "is no terminal to ask on; pass --yes to set it anyway.")
    server = resolve_server(args.url, args.token)
    if ask and not _confirm(f"{short_timeout_warning(minutes)} Set it on {server.url}? [y/N] "):
        raise ClientError(EXIT_USAGE, "not confirmed; nothing was changed")
    data = set_time_interval(server, minutes, args.keep_terminals, args.timeout)
    if not args.quiet:
        print(f"Auto-shutdown settings now in force on {server.url}:")
        print(describe_settings(data))
    return EXIT_OK


# ---- reset: the saved runtime settings, without a running server -------------------------------

#: What a state file holds for the runtime settings: the settings, the static config they were
#: made against, and saved values a server could not use ("set_aside"); whatever else a later
#: version keeps there stays.
STATE_SETTINGS_KEYS = ("settings", "config", "set_aside")
STATE_META_KEYS = ("version", "updated_at")


class _Notes(logging.Handler):
    """What StateFile logs (a corrupt file kept aside, ...), to be shown to the person."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage().removeprefix("auto-shutdown: "))


def clear_state_file(path: Path) -> tuple[bool, str, list[str]]:
    """Remove the runtime settings from a state file, under the lock a running server writes it
    with. Returns (whether anything was removed, what to tell, notes)."""
    from ..core.settings import StateFile

    if not os.path.lexists(path):
        return False, f"Nothing to clear: {path} does not exist (no runtime settings are saved).", []
    notes = _Notes()
    log = logging.Logger("jupyter_autoshutdown.reset")
    log.addHandler(notes)
    state = StateFile(path, log)
    try:
        with state._locked():  # the lock StateFile.merge takes: never between a server's read and write
            data = state.read()
            saved = {key: value for part in ("settings", "set_aside")
                     if isinstance(data.get(part), dict) for key, value in data[part].items()}
            if not saved:
                return False, f"Nothing to clear: {path} holds no runtime settings.", notes.messages
            rest = {key: value for key, value in data.items()
                    if key not in STATE_SETTINGS_KEYS + STATE_META_KEYS}
            if rest:
                from datetime import datetime, timezone

                state.write({**rest, "version": data.get("version"),
                             "updated_at": datetime.now(timezone.utc).isoformat()})
            else:
                path.unlink()
    except OSError as error:
        raise ClientError(EXIT_FAILED, f"cannot change {path}: {error}") from None
    held = ", ".join(f"{key} {value:g}" if isinstance(value, float) else f"{key} {json.dumps(value)}"
                     for key, value in sorted(saved.items()))
    return True, f"Removed runtime settings from {path}: {held}", notes.messages


def reset_server(server: Server, timeout: float = 10.0) -> dict[str, Any]:
    """Bring a running server back to its operator's settings (DELETE autoshutdown/api/settings)."""
    from ..core.settings import DAILY_STOP_FIELDS, RUNTIME_FIELDS

    current = _json(call(server, "GET", SETTINGS_ROUTE, timeout=timeout))
    fields = [key for key in RUNTIME_FIELDS if key in current and key not in DAILY_STOP_FIELDS]
    if current.get("allow_user_daily_stop"):
        fields.append("daily_stop")
    query = "&".join(f"field={field}" for field in fields)
    response = call(server, "DELETE", f"{SETTINGS_ROUTE}?{query}", timeout=timeout)
    if response.status_code != 200:
        raise ClientError(EXIT_FAILED, f"unexpected reply ({response.status_code}): {response.text[:200]}")
    return _json(response)


def _run_reset(args: argparse.Namespace) -> int:
    from ..core.settings import default_state_path

    path = Path(args.state_file).expanduser() if args.state_file else default_state_path()
    _, message, notes = clear_state_file(path)
    print(message)
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    if not args.url:
        running = _safe_running_servers()
        if not running:
            print("No running server found: the next start uses the operator's settings.")
            return EXIT_OK
        if len(running) > 1:
            urls = ", ".join(str(info.get("url")) for info in running)
            print(f"Several servers are running ({urls}): none was reset; reset one with --url URL "
                  "(a server keeps the settings in force until it restarts).")
            return EXIT_OK
    server = resolve_server(args.url, args.token)
    try:
        data = reset_server(server, args.timeout)
    except ClientError as error:
        if args.url:
            raise
        print(f"note: the running server at {server.url} was not reset: {error.message}",
              file=sys.stderr)
        return EXIT_OK
    print(f"The running server at {server.url} is back on the operator's settings "
          f"(its state file: {data.get('state_file')}):")
    print(describe_settings(data))
    return EXIT_OK


def _run_status(args: argparse.Namespace) -> int:
    server = resolve_server(args.url, args.token)
    status = read_status(server, args.timeout)
    print(json.dumps(status, indent=2) if args.json else describe_status(status, server.url))
    return EXIT_OK


def _run_keepalive(args: argparse.Namespace) -> int:
    if args.cancel and args.minutes is not None:
        raise ClientError(EXIT_USAGE, "give either minutes or --cancel")
    minutes = None if args.cancel else parse_minutes_argument(args.minutes or "60")
    server = resolve_server(args.url, args.token)
    data = keep_alive(server, minutes, args.kernel, args.terminal, args.timeout)
    print(json.dumps(data, indent=2) if args.json else describe_keep_alive(data))
    return EXIT_OK


def _run_version(args: argparse.Namespace) -> int:
    from .._version import __version__

    print(f"jupyter_autoshutdown {__version__}")
    return EXIT_OK


def _run_check(args: argparse.Namespace) -> int:
    try:
        server = resolve_server(args.url, args.token)
    except ClientError as error:
        health = Health(error.code, error.message, {"server": args.url})
    else:
        health = check_health(server, args.timeout)
    if args.json:
        # The compat GET's own fields at the top level (`... --json | jq .count` works as with
        # the original's route), then the verdict, then the native status under "status".
        data = dict(health.data)
        compat = data.pop("idle_checker", None) or {}
        print(json.dumps({**compat, "healthy": health.code == EXIT_OK, "exit_code": health.code,
                          "message": health.message, **data}, indent=2))
    elif health.data.get("idle_checker") is None:
        print(f"error: {health.message}", file=sys.stderr)
    else:
        print(describe_health(health))
    return health.code


def _run_fleet(args: argparse.Namespace) -> int:
    servers: list[Server] = []
    for item in args.server:
        url, _, token = item.partition(",")
        servers.append(Server(_with_slash(url), token))
    if args.servers:
        try:
            servers.extend(read_server_list(args.servers))
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise ClientError(EXIT_USAGE, f"cannot read {args.servers}: {error}") from None
    if args.hub_url:
        token = args.hub_token or os.environ.get("JUPYTERHUB_API_TOKEN")
        if not token:
            raise ClientError(EXIT_USAGE, "--hub-url needs --hub-token or JUPYTERHUB_API_TOKEN")
        servers.extend(hub_servers(args.hub_url, token, args.hub_public_url, args.timeout))
    studio_domains = [d for d in args.sagemaker_domain or [] if d]
    if not servers and args.sagemaker_domain is None and args.sagemaker_spaces is None:
        raise ClientError(EXIT_USAGE, "no servers to check: use --server, --servers, --hub-url, "
                                      "--sagemaker-domain or --sagemaker-spaces")
    results = check_fleet(servers, args.timeout) if servers else []
    if args.sagemaker_domain is not None or args.sagemaker_spaces is not None:
        sagemaker = _sagemaker_client(args.region)
        region = args.region or sagemaker.meta.region_name
        if args.sagemaker_domain is not None:
            results += check_studio(sagemaker, studio_domains, region, args.timeout, args.studio_url)
        if args.sagemaker_spaces is not None:
            results += check_studio_spaces(sagemaker, [d for d in args.sagemaker_spaces if d], region,
                                           args.timeout, args.space_url)
    failing = [health for health in results if health.code != EXIT_OK]
    if args.json:
        print(json.dumps([{"server": h.data.get("server"), "healthy": h.code == EXIT_OK,
                           "state": h.data.get("state") or STUDIO_STATES.get(h.code, "failed"),
                           "exit_code": h.code, "message": h.message} for h in results], indent=2))
    else:
        for health in results:
            if health.code == EXIT_OK:
                print(f"OK   {health.data.get('server')}: {health.message}")
            else:
                state = STUDIO_STATES.get(health.code, "failed")
                print(f"FAIL {health.data.get('server')}: {state}: {health.message}")
        print(f"{len(results) - len(failing)} of {len(results)} servers healthy")
    return EXIT_FAILED if failing else EXIT_OK


def main(argv: list[str] | None = None, *, command: str | None = None, prog: str | None = None) -> int:
    """The command line; with `command`, that one command as a script named `prog`."""
    parser = build_parser() if command is None else build_command_parser(command, prog or command)
    args = parser.parse_args(argv)
    if args.command == HUB_SERVICE:
        print("error: run it as `jupyter autoshutdown hub-service` or `python -m jupyter_autoshutdown "
              "hub-service`", file=sys.stderr)
        return EXIT_USAGE
    runner = {"status": _run_status, "set": _run_set, "check": _run_check, "keepalive": _run_keepalive,
              "reset": _run_reset, "fleet": _run_fleet, "version": _run_version}[args.command]
    try:
        return runner(args)
    except ClientError as error:
        print(f"error: {error.message}", file=sys.stderr)
        return error.code


if __name__ == "__main__":
    sys.exit(main())
