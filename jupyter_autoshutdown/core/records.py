"""The shared records every stage passes along: kernels, terminals and the snapshot the policy
reads, the one key type that names a resource, and the UTC timestamp reading they all use.

Plain data only: nothing here reads a manager or decides anything.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, NamedTuple

#: Timestamps from managers are UTC by Jupyter's convention; a naive one is read as UTC.
UTC = timezone.utc
#: jupyter_server's states in which a kernel runs no cell (observe/running_requests.py).
NOT_RUNNING_STATES = frozenset({"starting", "restarting", "autorestarting", "dead"})
#: Later activity times are ignored (as missing): any timeout added to them would overflow.
LATEST_PLAUSIBLE = datetime(9000, 1, 1, tzinfo=UTC)


def utcnow() -> datetime:
    """The one clock every part is given by default (tests and benchmarks give their own)."""
    return datetime.now(UTC)


def as_utc(value: Any) -> datetime | None:
    """A timezone-aware UTC datetime from a datetime or ISO 8601 string; None if it is neither."""
    if value.__class__ is datetime and value.tzinfo is UTC:
        return value  # the common case: jupyter_server's own utcnow()
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
    if not isinstance(value, datetime):
        return None
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    try:
        return value.astimezone(UTC)
    except (OverflowError, ValueError):  # e.g. year 9999 with a negative offset
        return None


#: One name for one resource everywhere (per-resource tables, keep-alives, the executor's jobs and
#: failures, warnings): a kernel's id, "t:<terminal name>", or APP_KEY for the app action.
ResourceKey = str
TERMINAL_PREFIX = "t:"
APP_KEY = "app:"


def terminal_key(name: str) -> ResourceKey:
    return TERMINAL_PREFIX + name


def key_of(kind: str, ident: str) -> ResourceKey:
    """The key of ("kernel", id), ("terminal", name) or ("app", anything)."""
    if kind == "app":
        return APP_KEY
    return terminal_key(ident) if kind == "terminal" else ident


def kind_of(key: ResourceKey) -> str:
    if key == APP_KEY:
        return "app"
    return "terminal" if key.startswith(TERMINAL_PREFIX) else "kernel"


def ident_of(key: ResourceKey) -> str:
    """The kernel id or terminal name of `key` ("" for the app)."""
    if key == APP_KEY:
        return ""
    return key[len(TERMINAL_PREFIX):] if key.startswith(TERMINAL_PREFIX) else key


#: A kernel as readers give it and the policy reads it, unpacked where it is used:
#: ``kernel_id, name, execution_state, last_activity, connections = kernel``.
#: A plain tuple on purpose: a pass holds thousands of records, and CPython stops tracking a plain
#: tuple of atomic values in the garbage collector, which it never does for a tuple subclass such
#: as a NamedTuple. Measured (benchmarks/README.md, "A house you can see"): NamedTuple records made
#: the pass 1.4 times as costly and the longest loop block 4 times as long (full collections).
KernelRecord = tuple[str, str, str, datetime | None, int]
#: A terminal: ``name, last_activity = terminal`` (a plain tuple, as KernelRecord).
TerminalRecord = tuple[str, datetime | None]


class KernelInfo(NamedTuple):
    """A kernel record with its fields named, where speed does not matter (status, tests): it is
    a KernelRecord too, and ``KernelInfo._make(record)`` names a plain one."""

    id: str
    name: str
    execution_state: str
    last_activity: datetime | None
    connections: int


class TerminalInfo(NamedTuple):
    """A terminal record with its fields named (see KernelInfo)."""

    name: str
    last_activity: datetime | None


@dataclass(frozen=True)
class Snapshot:
    """Everything the policy looks at, taken at one moment."""

    kernels: tuple[KernelRecord, ...]
    terminals: tuple[TerminalRecord, ...]
    #: The latest activity the server knows of (see observe/activity.py: by default what people do, kernel
    #: and terminal traffic, server start).
    server_last_activity: datetime
    errors: tuple[str, ...] = ()
    #: Last time a resource's processes used CPU or GPU above the threshold (key: kernel id or
    #: "t:<terminal name>"); empty unless utilization-aware idleness is on.
    active_at: Mapping[str, datetime] = field(default_factory=dict)
    #: Kernels that are never shut down, with the reason in words.
    exempt: Mapping[str, str] = field(default_factory=dict)
    #: The latest daily stop time at or before now, and the next one; None without a daily stop.
    stop_last: datetime | None = None
    stop_next: datetime | None = None
    #: The daily stop time in words, e.g. "22:00 Europe/Berlin".
    stop_label: str = ""
    #: A user's keep-alive: nothing is shut down before this time.
    keep_alive_until: datetime | None = None
    #: Keep-alives of single resources (key: kernel id or "t:<terminal name>"): each is kept until then.
    kept_until: Mapping[str, datetime] = field(default_factory=dict)
    #: What `server_last_activity` was, in words ("front end interaction", "kernel activity", ...).
    server_activity_source: str = ""
    #: Writes that count as activity and are not answered yet ("POST api/kernels"): a kernel,
    #: session or terminal may be starting, so the app action waits for them.
    requests_in_flight: tuple[str, ...] = ()
    #: What people did last (writes, front-end interaction), or the server's start: not kernel
    #: or terminal traffic, nor the emptying of the server. The daily stop stops the app unless
    #: people came back after it (policy.app_verdict). None: the same as server_last_activity.
    people_last_activity: datetime | None = None
    #: The latest activity of the activity sources (observe/sources.py: apps behind
    #: jupyter-server-proxy, login sessions, other packages' sources) and what it was, in words
    #: ("jupyter-server-proxy", "ssh session of alice on pts/1"); None when none reported any.
    #: It counts for the app (decide/policy.py), not for single kernels or terminals.
    source_activity: datetime | None = None
    source_activity_label: str = ""

    def last_activity(self) -> tuple[datetime, str]:
        """The latest activity that counts for the app, and its source in words (latest wins)."""
        if self.source_activity is not None and self.source_activity > self.server_last_activity:
            return self.source_activity, self.source_activity_label
        return self.server_last_activity, self.server_activity_source
