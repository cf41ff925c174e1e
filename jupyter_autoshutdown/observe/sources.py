"""Activity sources: what people do on the machine besides Jupyter's own APIs.

The app action stops what costs money once nobody has used the server for the timeout. People use
more than Jupyter's APIs on the same machine: apps behind jupyter-server-proxy (code-server,
RStudio, Streamlit, Dash), an SSH shell, tools of other packages. An *activity source* says when a
person last did something there, and what; the latest of all sources counts for the app like any
other activity (decide/policy.py: latest wins), and its label is what `status`, the CLI and the app
action's log line name ("jupyter-server-proxy", "ssh session of alice on pts/1").

The interface (`ActivitySource`) is small on purpose:

- ``name``: how operators name the source (``AutoShutdown.ignored_activity_sources``);
- ``latest()``: the latest activity it knows of, or None; past activity too (a session that
  ended, a request answered a minute ago): the timeout counts from it. It is called on every pass and every
  `status` GET, on the event loop: it must be cheap and never block (no file or /proc scans
  there: read them in ``refresh``, at most every few seconds, and cache the result);
- optionally ``async refresh()``: called by the check pass before it reads (observe/observer.py),
  for at most `REFRESH_TIMEOUT_SECONDS`; blocking reads go to a thread (``asyncio.to_thread``).

A source that fails is logged once and skipped until it works again: it never stops a pass.

Built in:

- `ServerActivityHook`: jupyter_server's documented activity hook,
  ``web_app.settings["last_activity_times"]`` (name -> UTC time), which jupyter-server-proxy updates
  on every proxied request and websocket message (key ``"jupyter-server-proxy"``; its own per-app
  ``update_last_activity`` and exclusions keep working, as they decide what it records) and other
  extensions may too. jupyter_server itself puts nothing there: its own API traffic goes to
  ``settings["api_last_activity"]``, which the polls of an open tab keep fresh, and which
  ``server_activity = "people"`` deliberately does not count (observe/activity.py); terminal
  traffic (``terminal_last_activity``) and kernels are read as they are already. So every entry
  counts, except this extension's own (`OWN_HOOK_NAME`) and those named in
  ``ignored_activity_sources`` (a proxied dashboard that polls by itself).
- `LoginSessions`: people logged in on the machine (SSH, a console, a tmux attached there), found
  where they really are: the terminals of the processes whose parent is sshd or login, in /proc.
  Containers and VMs without systemd often keep no utmp, so utmp is not read. A session counts by
  the access time of its terminal device (st_atime: set when its shell reads input, the idle time
  `w` shows; Linux keeps it to 8-second windows, so the end of the recorded window counts), so an
  open session that nobody types into does not hold the machine. A session that ended keeps its
  last input (the timeout counts from there, as after any activity). The server's own terminals
  (children of the server, not of sshd) are not login sessions; they count as terminal activity
  already. SSH without a terminal (scp, sftp, a remote editor's server, port forwards) has no
  input time to read and does not count.
- Sources of other packages, through the entry point group `ENTRY_POINT_GROUP`: each entry point
  loads a callable ``factory(serverapp, log) -> ActivitySource`` (a class taking those two
  arguments will do).
"""

from __future__ import annotations

import asyncio
import logging
import os
import pwd
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timezone
from typing import Any, NamedTuple, Protocol, runtime_checkable

from ..core.records import as_utc
from ..core.timeouts import within

#: Entry point group through which other packages add activity sources.
ENTRY_POINT_GROUP = "jupyter_autoshutdown.activity_sources"
#: The name under which this extension would record in jupyter_server's activity hook: never
#: counted (our own doing is not a person's).
OWN_HOOK_NAME = "jupyter_autoshutdown"
#: The built-in sources' names (for ignored_activity_sources).
HOOK_SOURCE_NAME = "last_activity_times"
LOGIN_SOURCE_NAME = "login_sessions"
#: How often the login sessions are looked up in /proc, at most (a scan takes milliseconds, in a
#: thread; a pass judges the app's deadline on a reading at most this old).
LOGIN_SCAN_SECONDS = 2.0
#: Linux records a terminal's access time in whole seconds, and only when it leaves the 8-second
#: window of the recorded one (drivers/tty/tty_io.c, tty_update_time: finer would leak typing
#: rhythm), so input may have come until the end of that window.
TTY_TIME_GRANULARITY = 8
#: The longest a source's refresh may take before the pass goes on without it (a source of
#: another package that waits for a network must not stall the checker).
REFRESH_TIMEOUT_SECONDS = 10.0
#: Parents whose children on a terminal are a person's login: sshd (OpenSSH before 9.8 forks the
#: session as "sshd", later ones as "sshd-session"), mosh's server, and login (a console).
LOGIN_PARENTS = {"sshd": "ssh session", "sshd-session": "ssh session", "mosh-server": "mosh session",
                 "login": "login"}


class SourceActivity(NamedTuple):
    """When a person last did something that a source sees, and what, in words."""

    when: datetime  # timezone-aware UTC
    label: str


@runtime_checkable
class ActivitySource(Protocol):
    """A source of a person's activity (see the module's docstring)."""

    name: str

    def latest(self) -> SourceActivity | None:
        """The latest activity known; cheap, no I/O (called on the event loop)."""
        ...


class ActivitySources:
    """All sources of a server: the latest activity among them, failures logged once and skipped."""

    def __init__(self, sources: Sequence[ActivitySource], log: logging.Logger,
                 clock: Callable[[], datetime] | None = None) -> None:
        self.sources = tuple(sources)
        self.log = log
        self.clock = clock or (lambda: datetime.now(timezone.utc))
        #: Source name -> its failure in words, while it fails (logged once).
        self.failing: dict[str, str] = {}
        self._start_task: asyncio.Task[None] | None = None

    def start_soon(self) -> None:
        """Start the sources in a task of their own (the server's start does not wait)."""
        if self._start_task is None and self.sources:
            self._start_task = asyncio.create_task(self.start(), name="jupyter_autoshutdown.observe.sources")

    def stop(self) -> None:
        task, self._start_task = self._start_task, None
        if task is not None and not task.done():
            task.cancel()

    def _failed(self, source: ActivitySource, what: str, error: BaseException) -> None:
        name = getattr(source, "name", repr(source))
        if name not in self.failing:
            self.log.warning("auto-shutdown: activity source %r failed to %s (skipped until it "
                             "works): %r", name, what, error)
        self.failing[name] = f"{what}: {error!r}"

    def _recovered(self, source: ActivitySource, what: str) -> None:
        """`what` works again: a later failure is logged again (a failing refresh stays failing
        while reading its last result works)."""
        name = getattr(source, "name", repr(source))
        if self.failing.get(name, "").startswith(what + ":"):
            del self.failing[name]

    async def start(self) -> None:
        """Start the sources that have a start (the login sessions say what they can see)."""
        self.log.info("auto-shutdown: activity sources besides Jupyter's APIs (they keep the app): %s",
                      ", ".join(source.name for source in self.sources))
        for source in self.sources:
            start = getattr(source, "start", None)
            if start is None:
                continue
            try:
                await start()
            except asyncio.CancelledError:
                raise
            except Exception as error:
                self._failed(source, "start", error)

    async def refresh(self) -> None:
        for source in self.sources:
            refresh = getattr(source, "refresh", None)
            if refresh is None:
                continue
            try:
                await within(refresh(), REFRESH_TIMEOUT_SECONDS)
            except asyncio.CancelledError:
                raise
            except Exception as error:  # asyncio.TimeoutError included: its last reading stays
                self._failed(source, "refresh", error)
            else:
                self._recovered(source, "refresh")

    def each(self) -> list[tuple[str, SourceActivity | None]]:
        """Every source's name and latest activity (None: none, or it failed)."""
        now = self.clock()
        readings: list[tuple[str, SourceActivity | None]] = []
        for source in self.sources:
            try:
                activity = source.latest()
                if activity is not None:
                    when = as_utc(activity.when)
                    if when is None:
                        raise ValueError(f"not a time: {activity.when!r}")
                    # A clock ahead of ours must not hold the app for ever.
                    activity = SourceActivity(min(when, now), str(activity.label))
            except Exception as error:
                self._failed(source, "read", error)
                activity = None
            else:
                self._recovered(source, "read")
            readings.append((source.name, activity))
        return readings

    def latest(self) -> SourceActivity | None:
        """The latest activity among all sources (latest wins), or None."""
        best: SourceActivity | None = None
        for _name, activity in self.each():
            if activity is not None and (best is None or activity.when > best.when):
                best = activity
        return best


class ServerActivityHook:
    """jupyter_server's activity hook, ``settings["last_activity_times"]`` (see the module)."""

    name = HOOK_SOURCE_NAME

    def __init__(self, settings: Any, ignored: Iterable[str] = ()) -> None:
        self.settings = settings
        self.ignored = frozenset(ignored) | {OWN_HOOK_NAME}

    def latest(self) -> SourceActivity | None:
        times = self.settings.get("last_activity_times") or {}
        best: SourceActivity | None = None
        for key, value in list(times.items()):
            if key in self.ignored:
                continue
            when = as_utc(value)
            if when is not None and (best is None or when > best.when):
                best = SourceActivity(when, str(key))
        return best


class LoginSession(NamedTuple):
    """A person's login: its terminal device, whose it is, what it is ("ssh session", "login")."""

    tty: str  # e.g. "pts/1", "tty1"
    user: str
    kind: str


def tty_name(tty_nr: int) -> str | None:
    """/proc/<pid>/stat's tty_nr as a device under /dev ("pts/3", "tty1"), None for others."""
    major = (tty_nr >> 8) & 0xFFF
    minor = (tty_nr & 0xFF) | ((tty_nr >> 12) & 0xFFF00)
    if 136 <= major <= 143:  # Unix98 pseudo-terminals
        return f"pts/{(major - 136) * 256 + minor}"
    if major == 4 and minor < 64:  # virtual consoles
        return f"tty{minor}"
    return None


def _read_stat(proc: str, pid: str) -> tuple[str, int, int] | None:
    """(comm, ppid, tty_nr) of a process, None when it is gone."""
    try:
        with open(f"{proc}/{pid}/stat", "rb") as stat_file:
            data = stat_file.read().decode("utf-8", "replace")
    except OSError:
        return None
    # comm is in parentheses and may contain anything: split at the last ')'.
    start, end = data.find("("), data.rfind(")")
    fields = data[end + 2:].split()
    return data[start + 1:end], int(fields[1]), int(fields[4])


def _user_of(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def find_login_sessions(proc: str = "/proc") -> list[LoginSession]:
    """The terminals of processes whose parent is sshd or login: people's logins. Blocking."""
    stats: dict[int, tuple[str, int, int]] = {}
    for entry in os.listdir(proc):
        if entry.isdigit():
            stat = _read_stat(proc, entry)
            if stat is not None:
                stats[int(entry)] = stat
    sessions: dict[str, LoginSession] = {}
    for pid, (_comm, ppid, tty_nr) in stats.items():
        parent = stats.get(ppid)
        if tty_nr == 0 or parent is None or parent[0] not in LOGIN_PARENTS:
            continue
        tty = tty_name(tty_nr)
        if tty is None or tty in sessions:
            continue
        try:
            uid = os.stat(f"{proc}/{pid}").st_uid
        except OSError:
            continue
        sessions[tty] = LoginSession(tty, _user_of(uid), LOGIN_PARENTS[parent[0]])
    return sorted(sessions.values())


def read_login_activity(proc: str = "/proc", dev: str = "/dev") -> list[SourceActivity]:
    """Each login session's last input (its terminal's access time), blocking."""
    readings = []
    for session in find_login_sessions(proc):
        try:
            accessed = os.stat(f"{dev}/{session.tty}").st_atime
        except OSError:
            continue  # logged out meanwhile
        # The recorded time is the first input of an 8-second window; more may have come until
        # its end (ActivitySources clamps a time after now to now).
        last_input = (int(accessed) | (TTY_TIME_GRANULARITY - 1)) + 1
        readings.append(SourceActivity(datetime.fromtimestamp(last_input, timezone.utc),
                                       f"{session.kind} of {session.user} on {session.tty}"))
    return readings


class LoginSessions:
    """People logged in on the machine (see the module): /proc read off the loop, at most every
    `interval` seconds; `latest()` gives the last reading."""

    name = LOGIN_SOURCE_NAME

    def __init__(self, log: logging.Logger, interval: float = LOGIN_SCAN_SECONDS,
                 proc: str = "/proc", dev: str = "/dev") -> None:
        self.log = log
        self.interval = interval
        self.proc, self.dev = proc, dev
        #: The sessions open at the last reading, each with its last input.
        self.sessions: list[SourceActivity] = []
        #: The latest input of any session seen, kept after it ended.
        self.last: SourceActivity | None = None
        self._read_at: float | None = None

    def latest(self) -> SourceActivity | None:
        return self.last

    async def refresh(self) -> None:
        if self._read_at is not None and time.monotonic() - self._read_at < self.interval:
            return
        self._read_at = time.monotonic()
        self.sessions = await asyncio.to_thread(read_login_activity, self.proc, self.dev)
        newest = max(self.sessions, default=None, key=lambda session: session.when)
        if newest is not None and (self.last is None or newest.when >= self.last.when):
            self.last = newest

    async def start(self) -> None:
        """Read once and say what can be seen (logged at the server's start; a failure is
        logged by ActivitySources)."""
        await self.refresh()
        seen = ", ".join(session.label for session in self.sessions) or "none now"
        self.log.info("auto-shutdown: login sessions (SSH, consoles) count as activity, by their "
                      "terminal's last input; seen in %s: %s", self.proc, seen)


class EntryPointLike(Protocol):
    """What the loader needs of an entry point (importlib.metadata's, or a test's own)."""

    @property
    def name(self) -> str: ...

    def load(self) -> Any: ...


def installed_entry_points() -> list[EntryPointLike]:
    from importlib.metadata import entry_points

    return list(entry_points(group=ENTRY_POINT_GROUP))


def load_sources(
    entry_points: Iterable[EntryPointLike], serverapp: Any, log: logging.Logger,
    ignored: Iterable[str] = (),
) -> list[ActivitySource]:
    """The sources other packages register: each entry point's factory(serverapp, log). One that
    fails to load is logged and left out; one named in `ignored` is not loaded."""
    ignored = set(ignored)
    sources: list[ActivitySource] = []
    for entry_point in entry_points:
        if entry_point.name in ignored:
            continue
        try:
            source = entry_point.load()(serverapp, log)
            if not isinstance(source, ActivitySource):
                raise TypeError(f"{source!r} has no name and latest()")
        except Exception as error:
            log.warning("auto-shutdown: activity source %r (entry point group %s) left out: %r",
                        entry_point.name, ENTRY_POINT_GROUP, error)
            continue
        log.info("auto-shutdown: activity source %r added (entry point group %s)",
                 source.name, ENTRY_POINT_GROUP)
        sources.append(source)
    return sources


def build_sources(serverapp: Any, log: logging.Logger, *, login_sessions: bool = True,
                  ignored: Sequence[str] = (),
                  entry_points: Iterable[EntryPointLike] | None = None) -> list[ActivitySource]:
    """The built-in sources (unless ignored or off) and those of other packages."""
    sources: list[ActivitySource] = []
    settings = getattr(getattr(serverapp, "web_app", None), "settings", None)
    if HOOK_SOURCE_NAME not in ignored and settings is not None:
        sources.append(ServerActivityHook(settings, ignored))
    if login_sessions and LOGIN_SOURCE_NAME not in ignored and os.path.isdir("/proc"):
        sources.append(LoginSessions(log))
    try:
        found = installed_entry_points() if entry_points is None else entry_points
    except Exception as error:
        log.warning("auto-shutdown: listing entry points %s failed: %r", ENTRY_POINT_GROUP, error)
        found = []
    sources.extend(load_sources(found, serverapp, log, ignored))
    return sources
