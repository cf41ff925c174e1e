"""What people do on the server: the activity that keeps the app (server, hub server, Studio app, VM).

jupyter_server's own notion of activity (``web_app.last_activity()``, used by its
``shutdown_no_activity_timeout``) moves with every authenticated API request. An open JupyterLab tab
polls kernels, sessions, terminals and contents every few seconds while it is visible, so by that
measure a tab that nobody looks at keeps a server, and its bill, running for ever. This module
counts what people do instead (``server_activity = "people"``, the default):

Counts
  - kernel activity (any kernel message, a kernel's shutdown) and terminal input and output, as
    jupyter_server and jupyter_server_terminals record them;
  - writes through jupyter_server's own APIs: POST, PUT, PATCH and DELETE on the paths of
    ``activity_paths`` (by default ``api/contents``, ``api/kernels``, ``api/sessions``,
    ``api/terminals``: saving, creating, renaming, deleting, starting and stopping), counted when
    it is answered with success (2xx or 3xx): only then is it known to be a user's, authenticated
    and authorized. From its start until its answer it is "in flight" (the app action waits for
    it, since a kernel or terminal may be starting), which is not activity;
  - a person's interaction reported by this project's front end (``POST autoshutdown/api/activity``).

Never counts
  - GET, HEAD and OPTIONS requests (the polls of an open tab), websocket connections and pings;
  - other extensions' requests (jupyterlab-git POSTs its status every 3 s), this extension's own
    routes, and requests carrying ``no_track_activity``;
  - requests answered with an error: refused (401, 403), a cross-site request jupyter_server
    answers 404, bad input, or a failure. Anyone who can reach the port can send those, so they
    must not keep a server or a kernel alive;
  - saves that a page announced it makes on auto-shutdown's behalf before the app action
    (``excuse_saves``; see act/documents.py): writes to ``api/contents/<that path>`` and its
    checkpoints for a minute.

Requests are observed through tornado's public output-transform hook (``Application.add_transform``):
a transform is made for every request when its handler starts, and sees its last chunk when it is
answered. No handler class is patched.
"""

from __future__ import annotations

import logging
import re
import weakref
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import unquote

from tornado.web import OutputTransform

from ..core.records import utcnow

#: Paths (regular expressions matched against the whole path after the server's base URL) whose
#: writes are a person's doing: jupyter_server's own contents, kernels, sessions and terminals APIs.
DEFAULT_ACTIVITY_PATHS = (
    r"api/contents(/.*)?",
    r"api/kernels(/.*)?",
    r"api/sessions(/.*)?",
    r"api/terminals(/.*)?",
)
#: A save of a contents path, or a checkpoint of it (what JupyterLab's Save does).
_CONTENTS_WRITE = re.compile(r"api/contents/(?P<path>.+?)(?:/checkpoints(?:/[^/]*)?)?/?")
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
#: Answers at or above this say the request did nothing a user can be known for (refused,
#: unauthenticated, cross-site, bad input, failed): not activity.
FIRST_ERROR_STATUS = 400
#: A request in flight longer than this is forgotten (a handler that never answers must not keep a
#: server running for ever); kernel starts on a remote gateway take up to about a minute.
MAX_IN_FLIGHT_SECONDS = 600.0
#: How long a save announced on auto-shutdown's behalf is not counted (a save takes a second).
ON_BEHALF_SECONDS = 60.0
#: The most a front end may say its person's last interaction lies in the past.
MAX_REPORTED_IDLE_SECONDS = 300.0

SERVER_ACTIVITY_MODES = ("people", "any_request")

#: Sources of the server's last activity, as `status` names them.
SOURCE_START = "server start"
SOURCE_KERNEL = "kernel activity"
SOURCE_TERMINAL = "terminal activity"
SOURCE_REQUEST = "API request"
SOURCE_FRONT_END = "front end interaction"
SOURCE_ANY_REQUEST = "any request (server_activity 'any_request')"



def compile_paths(patterns: Sequence[str]) -> re.Pattern[str]:
    """One regular expression for all path patterns; ValueError naming a bad one."""
    for pattern in patterns:
        try:
            re.compile(pattern)
        except re.error as error:
            raise ValueError(f"activity_paths: {pattern!r} is not a regular expression: {error}") from None
    if not patterns:
        return re.compile(r"(?!)")  # matches nothing
    return re.compile("|".join(f"(?:{pattern})" for pattern in patterns))


class PeopleActivity:
    """The latest thing a person did on this server, and the writes still in flight."""

    def __init__(
        self,
        base_url: str,
        paths: Sequence[str] = DEFAULT_ACTIVITY_PATHS,
        clock: Callable[[], datetime] = utcnow,
        log: logging.Logger | None = None,
    ) -> None:
        self.base_url = "/" + base_url.strip("/") + "/" if base_url.strip("/") else "/"
        self.paths = tuple(paths)
        self._pattern = compile_paths(self.paths)
        self.clock = clock
        self.log = log or logging.getLogger(__name__)
        #: The latest counted request (answered or started) or front-end report, and what it was.
        self.last_activity: datetime | None = None
        self.last_source = ""
        self.last_detail = ""
        # Keyed by the request object: a request that is never answered and dropped by tornado
        # disappears with it.
        self._in_flight: weakref.WeakKeyDictionary[Any, tuple[datetime, str]] = weakref.WeakKeyDictionary()
        self._listeners: list[Callable[[], None]] = []
        #: Contents paths a page saves on auto-shutdown's behalf -> until when that is excused.
        self._excused: dict[str, datetime] = {}

    def on_change(self, listener: Callable[[], None]) -> None:
        """Call `listener` when a counted request is answered (a deadline it held may now be due)."""
        self._listeners.append(listener)

    # ---- what counts -----------------------------------------------------------------------

    def counts(self, method: str, path: str, query: str = "") -> bool:
        """Whether a request is a person's write through jupyter_server's APIs."""
        if method not in WRITE_METHODS or "no_track_activity" in query:
            return False
        if not path.startswith(self.base_url):
            return False
        relative = unquote(path[len(self.base_url):])
        if self._excused and method in ("PUT", "POST") and self._is_excused(relative):
            return False
        return self._pattern.fullmatch(relative) is not None

    def excuse_saves(self, paths: Sequence[str]) -> None:
        """Writes to these contents paths are a page's saves on our behalf for a while: not counted."""
        now = self.clock()
        self._excused = {path: until for path, until in self._excused.items() if until > now}
        until = now + timedelta(seconds=ON_BEHALF_SECONDS)
        for path in paths:
            self._excused[path.strip("/")] = until

    def _is_excused(self, relative: str) -> bool:
        match = _CONTENTS_WRITE.fullmatch(relative)
        if match is None:
            return False
        until = self._excused.get(match.group("path"))
        return until is not None and self.clock() < until

    # ---- the hook --------------------------------------------------------------------------

    def request_started(self, request: Any) -> bool:
        """Note a request when its handler starts; True when it may count (and is now in flight).

        Not activity yet: before its answer nobody knows it is a user's (authentication runs in
        the handler)."""
        if not self.counts(request.method or "", request.path or "", request.query or ""):
            return False
        description = f"{request.method} {request.path[len(self.base_url):]}"
        self._in_flight[request] = (self.clock(), description)
        return True

    def request_finished(self, request: Any, status_code: int) -> None:
        entry = self._in_flight.pop(request, None)
        if entry is None:
            return
        if status_code < FIRST_ERROR_STATUS:
            self._record(self.clock(), SOURCE_REQUEST, entry[1])
        for listener in self._listeners:
            listener()

    def report_interaction(self, seconds_ago: float = 0.0) -> datetime:
        """A person used the page `seconds_ago` seconds ago (the front end's report)."""
        seconds_ago = min(max(0.0, seconds_ago), MAX_REPORTED_IDLE_SECONDS)
        when = self.clock() - timedelta(seconds=seconds_ago)
        self._record(when, SOURCE_FRONT_END, "keyboard, pointer, scroll or focus in a page")
        return when

    def _record(self, when: datetime, source: str, detail: str) -> None:
        if self.last_activity is None or when >= self.last_activity:
            self.last_activity, self.last_source, self.last_detail = when, source, detail

    def in_flight(self, now: datetime) -> tuple[str, ...]:
        """Descriptions of the counted requests not answered yet, oldest first."""
        if not self._in_flight:
            return ()
        oldest_allowed = now - timedelta(seconds=MAX_IN_FLIGHT_SECONDS)
        live = []
        for request, (started, description) in list(self._in_flight.items()):
            if started < oldest_allowed:
                self.log.warning("auto-shutdown: %s unanswered for over %g s; no longer waiting for it",
                                 description, MAX_IN_FLIGHT_SECONDS)
                self._in_flight.pop(request, None)
            else:
                live.append((started, description))
        return tuple(description for _, description in sorted(live, key=lambda item: item[0]))

    def transform(self) -> type[OutputTransform]:
        """An output transform class for ``web_app.add_transform`` that feeds this tracker."""
        tracker = self

        class ActivityTransform(OutputTransform):
            """Sees each request start (made per request) and end (its last chunk); changes nothing."""

            def __init__(self, request: Any) -> None:
                self._request = request
                self._status = 200
                try:
                    self._counted = tracker.request_started(request)
                except Exception:  # observing must never break a request
                    tracker.log.exception("auto-shutdown: noting a request failed")
                    self._counted = False

            def transform_first_chunk(
                self, status_code: int, headers: Any, chunk: bytes, finishing: bool
            ) -> tuple[int, Any, bytes]:
                self._status = status_code
                if finishing:
                    self._finish()
                return status_code, headers, chunk

            def transform_chunk(self, chunk: bytes, finishing: bool) -> bytes:
                if finishing:
                    self._finish()
                return chunk

            def _finish(self) -> None:
                if self._counted:
                    self._counted = False
                    try:
                        tracker.request_finished(self._request, self._status)
                    except Exception:
                        tracker.log.exception("auto-shutdown: noting a request's end failed")

        return ActivityTransform
