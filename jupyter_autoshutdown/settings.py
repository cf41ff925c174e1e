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
import json
import logging
import math
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

#: One year. Larger timeouts are almost always a unit mistake (seconds sent as minutes).
MAX_MINUTES = 525_600.0
STATE_FILE_VERSION = 1


class SettingsError(ValueError):
    """A value that is not a valid setting; the message is safe to show to the user."""


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
            else:
                validated[key] = parse_bool(key, value)
        return dataclasses.replace(self, **validated)

    def runtime_values(self) -> dict[str, Any]:
        return {key: getattr(self, key) for key in RUNTIME_FIELDS}


@dataclass(frozen=True)
class Limits:
    """The operator's bounds on what users choose at run time (minutes; 0 = no bound)."""

    min_idle_timeout_minutes: float = 0.0
    max_idle_timeout_minutes: float = 0.0
    allow_disable: bool = True
    allow_user_exemptions: bool = True

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
        }


#: Fields a user may change at run time (REST) and that are persisted; the rest are static config.
IDLE_TYPES = ("kernels_or_terminals", "kernel_connections", "activity")

RUNTIME_FIELDS: dict[str, type] = {
    "idle_timeout_minutes": float,
    "keep_terminals": bool,
    "cull_busy": bool,
    "cull_connected": bool,
}


def default_state_path() -> Path:
    from jupyter_core.paths import jupyter_data_dir

    return Path(jupyter_data_dir()) / "jupyter_autoshutdown" / "state.json"


class StateFile:
    """Runtime settings on disk. Writes are atomic: a crash leaves the old or the new file, never half."""

    def __init__(self, path: Path, log: logging.Logger) -> None:
        self.path = path
        self.log = log

    def read(self) -> dict[str, Any]:
        """The file's content, or {} when it is missing, unreadable or corrupt (logged)."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {}
        except OSError as error:
            self.log.warning("auto-shutdown: cannot read state file %s (%s); ignoring it", self.path, error)
            return {}
        try:
            data = json.loads(text)
        except ValueError as error:
            self.log.warning("auto-shutdown: state file %s is corrupt (%s); ignoring it", self.path, error)
            return {}
        if not isinstance(data, dict):
            self.log.warning("auto-shutdown: state file %s is not a JSON object; ignoring it", self.path)
            return {}
        return data

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
        self.configured = self._clamped(configured, configured.idle_timeout_minutes, "static idle_timeout")
        self.current = self._clamped(
            self._load_overrides(self.configured), self.configured.idle_timeout_minutes,
            "saved runtime idle_timeout",
        )
        self.last_persist_error: str | None = None
        self._listeners: list[Callable[[Settings], None]] = []
        self._write_lock: asyncio.Lock | None = None  # made in the running loop (Python 3.9)

    def _load_overrides(self, configured: Settings) -> Settings:
        if self.state_file is None:
            return configured
        data = self.state_file.read()
        saved = data.get("settings")
        if not isinstance(saved, dict):
            return configured
        recorded_config = data.get("config") if isinstance(data.get("config"), dict) else {}
        applicable: dict[str, Any] = {}
        for key, value in saved.items():
            if key not in RUNTIME_FIELDS:
                continue
            configured_value = getattr(self.static, key)
            if key in recorded_config and recorded_config[key] != configured_value:
                self.log.info(
                    "auto-shutdown: static config changed %s from %r to %r since the runtime "
                    "change to %r; using the static config",
                    key, recorded_config[key], configured_value, value,
                )
                continue
            applicable[key] = value
        try:
            loaded = configured.with_changes(applicable)
        except SettingsError as error:
            self.log.warning(
                "auto-shutdown: state file %s holds an invalid value (%s); ignoring it",
                self.state_file.path, error,
            )
            return configured
        if applicable:
            self.log.info(
                "auto-shutdown: runtime settings from %s: %s", self.state_file.path, applicable
            )
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
        if "idle_timeout_minutes" in changes:
            refusal = self.limits.refusal(updated.idle_timeout_minutes)
            if refusal is not None:
                raise SettingsError(refusal)
        if updated != self.current:
            self.log.info("auto-shutdown: settings changed at run time: %s", dict(changes))
        self.current = updated
        for listener in self._listeners:
            listener(updated)
        return updated

    async def persist(self) -> bool:
        """Write the settings in force to the state file off the event loop. False if that failed."""
        if self.state_file is None:
            return True
        state_file = self.state_file
        if self._write_lock is None:
            self._write_lock = asyncio.Lock()
        async with self._write_lock:
            # Written under the lock and read at write time, so the last write holds the newest value.
            data = {
                "version": STATE_FILE_VERSION,
                "updated_at": datetime.now(timezone.utc).isoformat(),
                "settings": self.current.runtime_values(),
                "config": self.static.runtime_values(),
            }
            try:
                await asyncio.to_thread(state_file.write, data)
            except OSError as error:
                self.last_persist_error = f"cannot write {state_file.path}: {error}"
                self.log.warning(
                    "auto-shutdown: %s; the change applies until the server restarts",
                    self.last_persist_error,
                )
                return False
            self.last_persist_error = None
            return True
