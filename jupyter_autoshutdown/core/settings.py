"""The one settings model: validated the same way for config traits, REST and the state file.

Precedence, lowest to highest:

1. the defaults below;
2. static Jupyter config (``c.AutoShutdown.idle_timeout = 30`` or ``--AutoShutdown.idle_timeout=30``);
3. runtime changes made over REST, which are written to the state file and so survive restarts.

A runtime change stops winning once the operator changes that same trait in the static config:
the state file records the configured value each change was made against, and when the
configured value differs at the next start, the newer static config applies (and is logged).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import json
import logging
import math
import os
import stat
import tempfile
import time
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone, tzinfo
from datetime import time as dt_time
from pathlib import Path
from typing import Any

from .schedule import parse_stop_time, parse_zone

#: One year. Larger timeouts are almost always a unit mistake (seconds sent as minutes).
MAX_MINUTES = 525_600.0
STATE_FILE_VERSION = 1


class SettingsError(ValueError):
    """A value that is not a valid setting; the message is safe to show to the user."""


class SettingsForbidden(SettingsError):
    """A valid value the operator does not let users set at run time (HTTP 403)."""


def parse_minutes(name: str, value: Any, *, allow_numeric_string: bool = False) -> float:
    """Validate a duration in minutes: a finite number in [0, MAX_MINUTES]."""
    if allow_numeric_string and isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            raise SettingsError(f"{name} must be a number of minutes, got {value!r}") from None
    # bool is an int subclass: `true` is not 1 minute.
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise SettingsError(
            f"{name} must be a number of minutes, got {type(value).__name__}"
        )
    try:
        minutes = float(value)
    except OverflowError:
        raise SettingsError(f"{name} is too large (maximum {MAX_MINUTES:g} minutes)") from None
    if not math.isfinite(minutes):
        raise SettingsError(f"{name} must be a finite number of minutes")
    if minutes < 0:
        raise SettingsError(f"{name} must not be negative (0 turns it off)")
    if minutes > MAX_MINUTES:
        raise SettingsError(f"{name} is too large (maximum {MAX_MINUTES:g} minutes, one year)")
    return minutes


def parse_text(name: str, value: Any) -> str:
    if not isinstance(value, str):
        raise SettingsError(f"{name} must be a string, got {type(value).__name__}")
    return value.strip()


@dataclass(frozen=True)
class DailyStop:
    time: dt_time
    zone: tzinfo
    label: str


def parse_daily_stop(stop_time: str, zone_name: str) -> DailyStop | None:
    """The daily stop from its two settings; None for no stop time; ValueError naming what is wrong.

    The zone is checked whenever it is given, with a stop time or without one."""
    stop = parse_stop_time(stop_time)
    zone = parse_zone(zone_name)
    if stop is None:
        return None
    return DailyStop(stop, zone, f"{stop_time} {zone_name or 'local time'}")


@functools.lru_cache(maxsize=16)
def daily_stop_of(stop_time: str, zone_name: str) -> DailyStop | None:
    """parse_daily_stop for values already validated (None where they are not), cached per pair."""
    try:
        return parse_daily_stop(stop_time, zone_name)
    except ValueError:
        return None


def parse_bool(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise SettingsError(f"{name} must be true or false, got {type(value).__name__}")
    return value


@dataclass(frozen=True)
class Settings:
    """What the policy needs to decide. Field names carry their units."""

    idle_timeout_minutes: float = 120.0
    keep_terminals: bool = False
    cull_busy: bool = False
    cull_connected: bool = True
    starting_timeout_minutes: float = 30.0
    #: What counts as activity: "kernels_or_terminals", "kernel_connections" or "activity".
    idle_type: str = "kernels_or_terminals"
    #: How long before a shutdown a warning event is emitted (at most half the timeout); 0: never.
    warning_minutes: float = 5.0
    #: The daily stop: a local time of day ("22:00", "" for none) and its IANA zone ("" the machine's).
    daily_stop_time: str = ""
    daily_stop_timezone: str = ""
    #: How long the app action waits for open pages' documents that cannot be saved; 0: never.
    unsaved_grace_minutes: float = 5.0

    @property
    def unsaved_grace_seconds(self) -> float:
        return self.unsaved_grace_minutes * 60.0

    @property
    def daily_stop(self) -> DailyStop | None:
        """The daily stop in force, parsed (values were validated when they were set)."""
        return daily_stop_of(self.daily_stop_time, self.daily_stop_timezone)

    @property
    def warning_seconds(self) -> float:
        return min(self.warning_minutes * 60.0, self.idle_timeout_seconds / 2)

    @property
    def idle_timeout_seconds(self) -> float:
        return self.idle_timeout_minutes * 60.0

    @property
    def starting_timeout_seconds(self) -> float:
        return self.starting_timeout_minutes * 60.0

    @property
    def enabled(self) -> bool:
        return self.idle_timeout_minutes > 0

    def with_changes(
        self, changes: Mapping[str, Any], *, allow_numeric_string: bool = False
    ) -> Settings:
        """Return a copy with `changes` applied; raise SettingsError, changing nothing, if any is bad."""
        if not isinstance(changes, Mapping):
            raise SettingsError("the request body must be a JSON object")
        unknown = sorted(str(key) for key in changes if key not in RUNTIME_FIELDS)
        if unknown:
            raise SettingsError(
                f"unknown or read-only field(s): {', '.join(unknown)}; "
                f"settable fields: {', '.join(RUNTIME_FIELDS)}"
            )
        validated: dict[str, Any] = {}
        for key, value in changes.items():
            if RUNTIME_FIELDS[key] is float:
                validated[key] = parse_minutes(
                    key, value, allow_numeric_string=allow_numeric_string
                )
            elif RUNTIME_FIELDS[key] is str:
                validated[key] = parse_text(key, value)
            else:
                validated[key] = parse_bool(key, value)
        updated = dataclasses.replace(self, **validated)
        if DAILY_STOP_FIELDS & set(changes):
            try:
                parse_daily_stop(updated.daily_stop_time, updated.daily_stop_timezone)
            except ValueError as error:
                raise SettingsError(str(error)) from None
        return updated

    def runtime_values(self) -> dict[str, Any]:
        return {key: getattr(self, key) for key in RUNTIME_FIELDS}


@dataclass(frozen=True)
class Limits:
    """The operator's bounds on what users choose at run time (minutes; 0 = no bound)."""

    min_idle_timeout_minutes: float = 0.0
    max_idle_timeout_minutes: float = 0.0
    allow_disable: bool = True
    allow_user_exemptions: bool = True
    #: Whether users may move or clear the daily stop at run time (the operator's time is the default).
    allow_user_daily_stop: bool = False

    def refusal_of_fields(self, fields: Collection[str]) -> str | None:
        """Why changing these fields at run time is not allowed on this server, or None."""
        if DAILY_STOP_FIELDS & set(fields) and not self.allow_user_daily_stop:
            return ("the daily stop time is the operator's on this server: changing it at run time "
                    "is not allowed (allow_user_daily_stop is False)")
        return None

    def allowed_range(self) -> str:
        low, high = self.min_idle_timeout_minutes, self.max_idle_timeout_minutes
        if low and high:
            span = f"from {low:g} to {high:g} minutes"
        elif low:
            span = f"at least {low:g} minutes"
        elif high:
            span = f"at most {high:g} minutes"
        else:
            span = "any number of minutes"
        return f"{span}, {'or 0 (off)' if self.allow_disable else 'not 0: turning it off is not allowed'}"

    def refusal(self, minutes: float) -> str | None:
        """Why a runtime idle timeout is not allowed on this server, or None when it is."""
        low, high = self.min_idle_timeout_minutes, self.max_idle_timeout_minutes
        if minutes == 0:
            if self.allow_disable:
                return None
            broken = "turning auto-shutdown off (0) is not allowed on this server (allow_disable)"
        elif low and minutes < low:
            broken = f"{minutes:g} minutes is below this server's minimum (min_idle_timeout)"
        elif high and minutes > high:
            broken = f"{minutes:g} minutes is above this server's maximum (max_idle_timeout)"
        else:
            return None
        return f"idle timeout: {broken}; allowed: {self.allowed_range()}"

    def clamp(self, minutes: float, fallback: float) -> tuple[float, str]:
        """A value within the bounds for `minutes`, and the bound used ('' when unchanged).

        `fallback` replaces a 0 that is not allowed (itself clamped, unless it is 0 too).
        """
        if minutes == 0 and not self.allow_disable:
            if fallback == 0:
                return 0.0, ""
            clamped, _ = self.clamp(fallback, 0.0)
            return clamped, "allow_disable"
        if minutes == 0:
            return minutes, ""
        low, high = self.min_idle_timeout_minutes, self.max_idle_timeout_minutes
        if low and minutes < low:
            return low, f"min_idle_timeout {low:g}"
        if high and minutes > high:
            return high, f"max_idle_timeout {high:g}"
        return minutes, ""

    def as_model(self) -> dict[str, Any]:
        return {
            "min_idle_timeout_minutes": self.min_idle_timeout_minutes,
            "max_idle_timeout_minutes": self.max_idle_timeout_minutes,
            "allow_disable": self.allow_disable,
            "allow_user_exemptions": self.allow_user_exemptions,
            "allow_user_daily_stop": self.allow_user_daily_stop,
        }


#: Fields a user may change at run time (REST) and that are persisted; the rest are static config.
IDLE_TYPES = ("kernels_or_terminals", "kernel_connections", "activity")

RUNTIME_FIELDS: dict[str, type] = {
    "idle_timeout_minutes": float,
    "keep_terminals": bool,
    "cull_busy": bool,
    "cull_connected": bool,
    "daily_stop_time": str,
    "daily_stop_timezone": str,
}
#: The runtime fields that only the operator may open to users (allow_user_daily_stop).
DAILY_STOP_FIELDS = frozenset({"daily_stop_time", "daily_stop_timezone"})


def default_state_path() -> Path:
    from jupyter_core.paths import jupyter_data_dir

    return Path(jupyter_data_dir()) / "jupyter_autoshutdown" / "state.json"


class StateFile:
    """Runtime settings on disk. Writes are atomic: a crash leaves the old or the new file, never half.

    Several servers of one user (same data directory) share the file: each write merges this
    server's runtime changes into what is on disk, under an advisory lock (POSIX), so one server
    never drops another's changes.
    """

    #: A state file is a few hundred bytes; anything this large is not one of ours.
    MAX_BYTES = 1024 * 1024
    #: Temporary files older than this at start were left by a write that was killed.
    STALE_TEMP_SECONDS = 60.0

    def __init__(self, path: Path, log: logging.Logger) -> None:
        self.path = path
        self.log = log

    def read(self) -> dict[str, Any]:
        """The file's content, or {} when it is missing or is not ours to use (logged, kept aside).

        Never blocks (a FIFO or device at the path is not opened for reading) and never raises.
        """
        try:
            return self._read()
        except Exception as error:  # whatever the file holds, the extension starts
            self.log.warning("auto-shutdown: cannot use state file %s (%r); ignoring it", self.path, error)
            return {}

    def _read(self) -> dict[str, Any]:
        try:
            fd = os.open(self.path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
        except FileNotFoundError:
            return {}
        except OSError as error:
            self.log.warning("auto-shutdown: cannot read state file %s (%s); ignoring it", self.path, error)
            return {}
        with os.fdopen(fd, "rb") as file:
            if not stat.S_ISREG(os.fstat(file.fileno()).st_mode):
                self.log.warning(
                    "auto-shutdown: state file %s is not a regular file; ignoring it", self.path
                )
                return {}
            raw = file.read(self.MAX_BYTES + 1)
        problem = None
        data: Any = None
        if len(raw) > self.MAX_BYTES:
            problem = f"larger than {self.MAX_BYTES} bytes"
        else:
            try:
                data = json.loads(raw.decode("utf-8"))
            except UnicodeDecodeError:
                problem = "not UTF-8 text"
            except RecursionError:
                problem = "JSON nested too deeply"
            except ValueError as error:
                problem = f"not valid JSON: {error}"
            else:
                if not isinstance(data, dict):
                    problem = "not a JSON object"
        if problem is None:
            return data
        aside = self._keep_aside()
        self.log.warning(
            "auto-shutdown: state file %s is corrupt (%s); ignoring it%s", self.path, problem,
            f"; kept as {aside}" if aside else "",
        )
        return {}

    def _keep_aside(self) -> Path | None:
        """Move a corrupt file out of the way, for the operator to look at; None if that failed."""
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        aside = self.path.with_name(f"{self.path.name}.corrupt-{stamp}")
        try:
            os.replace(self.path, aside)
        except OSError:
            return None
        return aside

    def remove_stale_temp_files(self) -> None:
        """Delete temporary files that a write killed midway left behind (not a running write's)."""
        try:
            candidates = list(self.path.parent.glob(".state-*.tmp"))
        except OSError:
            return
        cutoff = time.time() - self.STALE_TEMP_SECONDS
        for candidate in candidates:
            with contextlib.suppress(OSError):
                if candidate.lstat().st_mtime < cutoff:
                    candidate.unlink()
                    self.log.info("auto-shutdown: removed %s, left by an interrupted write", candidate)

    def merge(
        self, settings: Mapping[str, Any], config: Mapping[str, Any], dropped: Collection[str] = (),
        set_aside: Mapping[str, Any] | None = None,
    ) -> None:
        """Merge runtime `settings` (and the static `config` they were made against) into the file.

        `dropped`: saved fields to remove (the static config overruled them). `set_aside`: saved
        values this version cannot use, removed from the settings and kept under "set_aside"
        (unless a valid value replaced them), never written back as settings.
        """
        set_aside = {key: value for key, value in (set_aside or {}).items() if key not in settings}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._locked():
            on_disk = self.read()
            saved_on_disk, recorded_on_disk = on_disk.get("settings"), on_disk.get("config")
            saved = saved_on_disk if isinstance(saved_on_disk, dict) else {}
            recorded = recorded_on_disk if isinstance(recorded_on_disk, dict) else {}
            saved = {key: value for key, value in saved.items()
                     if key not in dropped and key not in set_aside}
            recorded = {key: value for key, value in recorded.items() if key not in dropped}
            aside_on_disk = on_disk.get("set_aside")
            aside = {**(aside_on_disk if isinstance(aside_on_disk, dict) else {}), **set_aside}
            data = {
                "version": STATE_FILE_VERSION,
                "updated_at": datetime.now(timezone.utc).isoformat(),
                "settings": {**saved, **settings},
                "config": {**recorded, **config},
            }
            if aside:
                data["set_aside"] = {key: value for key, value in aside.items() if key not in settings}
            self.write(data)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        try:
            import fcntl
        except ImportError:  # Windows: one server per state file
            yield
            return
        lock_path = self.path.with_name(f".{self.path.name}.lock")
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # releases the lock

    def write(self, data: Mapping[str, Any]) -> None:
        """Atomically replace the file (temp file in the same directory, fsync, rename)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        payload = json.dumps(data, indent=2, sort_keys=True) + "\n"
        fd, tmp_name = tempfile.mkstemp(prefix=".state-", suffix=".tmp", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as tmp:
                tmp.write(payload)
                tmp.flush()
                os.fsync(tmp.fileno())
            os.replace(tmp_name, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp_name)
            raise


def _load_groups(saved: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Saved runtime values in the groups validated together: each field alone, the daily stop's
    two fields as one."""
    daily_stop = {key: value for key, value in saved.items() if key in DAILY_STOP_FIELDS}
    groups = [{key: value} for key, value in saved.items() if key not in DAILY_STOP_FIELDS]
    return [*groups, daily_stop] if daily_stop else groups


class SettingsStore:
    """Holds the settings in force; applies validated runtime changes and persists them."""

    def __init__(
        self,
        configured: Settings,
        state_file: StateFile | None,
        log: logging.Logger,
        limits: Limits | None = None,
    ) -> None:
        self.limits = limits or Limits()
        self.state_file = state_file
        self.log = log
        # The static config as written: recorded in the state file, so loosening the bounds later
        # is not mistaken for a change of the static config.
        self.static = configured
        #: Fields changed at run time (this run or a saved one): the only ones written back.
        self._changed_at_runtime: set[str] = set()
        #: Saved fields the static config has overruled since: removed at the next write.
        self._superseded: set[str] = set()
        #: Saved values this version cannot use: moved under "set_aside" at the next write.
        self.set_aside: dict[str, Any] = {}
        if state_file is not None:
            state_file.remove_stale_temp_files()
        self.configured = self._clamped(configured, configured.idle_timeout_minutes, "static idle_timeout")
        self.current = self._clamped(
            self._load_overrides(self.configured), self.configured.idle_timeout_minutes,
            "saved runtime idle_timeout",
        )
        self.last_persist_error: str | None = None
        self._listeners: list[Callable[[Settings], None]] = []
        self._write_lock = asyncio.Lock()

    def _load_overrides(self, configured: Settings) -> Settings:
        if self.state_file is None:
            return configured
        data = self.state_file.read()
        saved = data.get("settings")
        if not isinstance(saved, dict):
            return configured
        recorded_on_disk = data.get("config")
        recorded_config = recorded_on_disk if isinstance(recorded_on_disk, dict) else {}
        applicable: dict[str, Any] = {}
        for key, value in saved.items():
            if key not in RUNTIME_FIELDS:
                continue
            if self.limits.refusal_of_fields([key]) is not None:
                self.log.info("auto-shutdown: ignoring the saved %s %r: users may not set it on this "
                              "server (allow_user_daily_stop)", key, value)
                self._superseded.add(key)
                continue
            configured_value = getattr(self.static, key)
            if key in recorded_config and recorded_config[key] != configured_value:
                self.log.info(
                    "auto-shutdown: static config changed %s from %r to %r since the runtime "
                    "change to %r; using the static config",
                    key, recorded_config[key], configured_value, value,
                )
                self._superseded.add(key)
                continue
            applicable[key] = value
        # One value at a time: one that this version cannot use (written by a newer one, or by
        # hand) is set aside, and never costs the others. The daily stop's two fields together.
        loaded = configured
        for group in _load_groups(applicable):
            try:
                loaded = loaded.with_changes(group)
            except SettingsError as error:
                self.log.warning(
                    "auto-shutdown: state file %s holds %s, which this version cannot use (%s); "
                    "using the configured value; the saved one is kept under 'set_aside' there",
                    self.state_file.path, group, error,
                )
                self.set_aside.update(group)
                for key in group:
                    del applicable[key]
        if applicable:
            self.log.info(
                "auto-shutdown: runtime settings from %s: %s", self.state_file.path, applicable
            )
        self._changed_at_runtime.update(applicable)
        return loaded

    def _clamped(self, settings: Settings, fallback: float, what: str) -> Settings:
        minutes = settings.idle_timeout_minutes
        clamped, bound = self.limits.clamp(minutes, fallback)
        if not bound:
            return settings
        self.log.warning(
            "auto-shutdown: %s %g minutes is outside the operator's limits; using %g minutes (%s)",
            what, minutes, clamped, bound,
        )
        return dataclasses.replace(settings, idle_timeout_minutes=clamped)

    def on_change(self, listener: Callable[[Settings], None]) -> None:
        self._listeners.append(listener)

    def apply(self, changes: Mapping[str, Any], *, allow_numeric_string: bool = False) -> Settings:
        """Validate and apply in memory (raises SettingsError, changing nothing). Call persist() next."""
        updated = self.current.with_changes(changes, allow_numeric_string=allow_numeric_string)
        forbidden = self.limits.refusal_of_fields(changes)
        if forbidden is not None:
            raise SettingsForbidden(forbidden)
        if "idle_timeout_minutes" in changes:
            refusal = self.limits.refusal(updated.idle_timeout_minutes)
            if refusal is not None:
                raise SettingsError(refusal)
        if updated != self.current:
            self.log.info("auto-shutdown: settings changed at run time: %s", dict(changes))
        self._changed_at_runtime.update(changes)
        self.current = updated
        for listener in self._listeners:
            listener(updated)
        return updated

    def reset(self, fields: Collection[str]) -> Settings:
        """Bring back the operator's values of runtime `fields` (forgotten by the next persist()).

        Raises SettingsError naming an unknown field, SettingsForbidden where users may not set it.
        """
        unknown = sorted(str(key) for key in fields if key not in RUNTIME_FIELDS)
        if unknown:
            raise SettingsError(f"unknown field(s): {', '.join(unknown)}; "
                                f"runtime fields: {', '.join(RUNTIME_FIELDS)}")
        forbidden = self.limits.refusal_of_fields(fields)
        if forbidden is not None:
            raise SettingsForbidden(forbidden)
        operator = {key: getattr(self.configured, key) for key in fields}
        updated = dataclasses.replace(self.current, **operator)
        if updated != self.current:
            self.log.info("auto-shutdown: settings reset to the operator's at run time: %s", operator)
        self._changed_at_runtime.difference_update(fields)
        self._superseded.update(fields)
        self.current = updated
        for listener in self._listeners:
            listener(updated)
        return updated

    def set_by(self, field: str) -> str:
        """"user" when `field` was changed at run time (now or saved), else "operator"."""
        return "user" if field in self._changed_at_runtime else "operator"

    async def persist(self) -> bool:
        """Write the settings in force to the state file off the event loop. False if that failed."""
        if self.state_file is None:
            return True
        state_file = self.state_file
        async with self._write_lock:
            # Read at write time under the lock, so the last write holds the newest value. Only
            # what was changed at run time is written: the rest stays the static config's (and
            # another server's changes in the same file stay).
            changed = sorted(self._changed_at_runtime)
            settings = {key: getattr(self.current, key) for key in changed}
            config = {key: getattr(self.static, key) for key in changed}
            dropped = self._superseded - self._changed_at_runtime
            try:
                await asyncio.to_thread(state_file.merge, settings, config, dropped, self.set_aside)
            except OSError as error:
                self.last_persist_error = f"cannot write {state_file.path}: {error}"
                self.log.warning(
                    "auto-shutdown: %s; the change applies until the server restarts",
                    self.last_persist_error,
                )
                return False
            self.last_persist_error = None
            return True
