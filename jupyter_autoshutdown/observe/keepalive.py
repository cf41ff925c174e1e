"""Keep-alives: "I am away for 3 hours, keep my state" (everything), or one kernel or terminal.

A keep-alive moves deadlines, nothing else: the policy reads the ones in force from the snapshot.
The operator's bound (`max_keep_alive`, minutes; 0 turns keep-alives off) is enforced here, so
every caller (REST, the command line, the front end) gets the same refusal. Reading never
changes anything: expired keep-alives are dropped by the check pass (`expire`), and those of
resources that are gone only after a complete reading (`forget`).

Targets are the keys the policy uses for single resources: a kernel's id, or "t:<terminal name>".
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection
from datetime import datetime, timedelta
from typing import Any

from ..core.records import TERMINAL_PREFIX, ResourceKey, terminal_key

__all__ = ["KeepAliveRefused", "KeepAlives", "ResourceKey", "describe", "terminal_key"]

class KeepAliveRefused(ValueError):
    """A keep-alive the operator's bound does not allow; the message says why."""


def describe(target: str | None) -> str:
    if target is None:
        return "everything"
    if target.startswith(TERMINAL_PREFIX):
        return f"terminal {target[len(TERMINAL_PREFIX):]}"
    return f"kernel {target}"


class KeepAlives:
    def __init__(
        self,
        *,
        clock: Callable[[], datetime],
        log: logging.Logger,
        max_minutes: float,
        on_change: Callable[[], None] = lambda: None,
        events: Any = None,
        action_name: str = "",
    ) -> None:
        self.clock = clock
        self.log = log
        self.max_minutes = max_minutes
        self.on_change = on_change
        self.events = events
        self.action_name = action_name
        #: Everything is kept until then.
        self.until: datetime | None = None
        #: One kernel (its id) or terminal ("t:<name>") kept until then.
        self.targets: dict[str, datetime] = {}

    # ---- changes (REST, through the service) ------------------------------------------------

    def check(self, minutes: float) -> None:
        """Raise KeepAliveRefused unless `minutes` (> 0) is within the operator's bound."""
        if self.max_minutes <= 0:
            raise KeepAliveRefused("keep-alive is turned off on this server (max_keep_alive is 0)")
        if minutes > self.max_minutes:
            raise KeepAliveRefused(f"minutes must be at most {self.max_minutes:g} (max_keep_alive)")

    def keep(self, minutes: float, target: str | None = None) -> datetime | None:
        """Keep `target` (None: everything) for `minutes` from now; 0 cancels. Bounded (check)."""
        if self.max_minutes <= 0:
            self.check(minutes)  # refused, even a cancel: there is nothing to cancel
        if minutes == 0:
            self.cancel(target)
            return None
        self.check(minutes)
        until = self.clock() + timedelta(minutes=minutes)
        if target is None:
            self.until = until
        else:
            self.targets[target] = until
        self.log.info("auto-shutdown: %s kept alive until %s", describe(target), until.isoformat())
        self._emit(target, f"kept alive until {until.isoformat()}", shutdown_at=until)
        self.on_change()
        return until

    def cancel(self, target: str | None = None) -> None:
        if target is None:
            if self.until is not None:
                self.log.info("auto-shutdown: keep-alive cancelled")
                self._emit(None, "keep-alive cancelled")
            self.until = None
        elif self.targets.pop(target, None) is not None:
            self.log.info("auto-shutdown: keep-alive of %s cancelled", describe(target))
            self._emit(target, "keep-alive cancelled")
        self.on_change()

    # ---- reading (changes nothing) ---------------------------------------------------------

    def global_until(self, now: datetime) -> datetime | None:
        """The keep-alive of everything still in force at `now`, or None."""
        return self.until if self.until is not None and self.until > now else None

    def in_force(self, now: datetime) -> dict[str, datetime]:
        """The single-resource keep-alives still in force at `now`."""
        return {key: until for key, until in self.targets.items() if until > now}

    # ---- the check pass's bookkeeping ---------------------------------------------------------

    def expire(self, now: datetime) -> None:
        if self.until is not None and self.until <= now:
            self.until = None
        for target in [key for key, until in self.targets.items() if until <= now]:
            del self.targets[target]

    def forget(self, live: Collection[str]) -> None:
        """Drop the keep-alives of resources a complete reading no longer shows."""
        for gone in self.targets.keys() - set(live):
            del self.targets[gone]

    def _emit(self, target: str | None, message: str, **fields: Any) -> None:
        """Front ends show a keep-alive at once (another tab's, or the panel's)."""
        if self.events is None:
            return
        if target is None:
            self.events.emit("keep_alive", "app", self.action_name, f"everything {message}", **fields)
        elif target.startswith(TERMINAL_PREFIX):
            self.events.emit("keep_alive", "terminal", target[len(TERMINAL_PREFIX):],
                             f"terminal {message}", **fields)
        else:
            self.events.emit("keep_alive", "kernel", target, f"kernel {message}", **fields)
