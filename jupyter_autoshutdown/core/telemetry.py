"""Prometheus metrics (on the server's own `/metrics`) and structured events (`event_logger`)."""

from __future__ import annotations

import collections
import logging
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from prometheus_client import Counter, Gauge

EVENT_SCHEMA_ID = "https://events.jupyter.org/jupyter_autoshutdown/v1"
EVENT_SCHEMA_PATH = Path(__file__).parent.parent / "event_schemas" / "autoshutdown-v1.yaml"

# Created at import, as jupyter_server's own metrics are: they join the default registry that the
# server's /metrics handler serves.
SHUTDOWNS = Counter(
    "jupyter_autoshutdown_shutdowns_total",
    "Kernels and terminals shut down and app actions run, by kind and cause",
    ["kind", "cause"],
)
PASSES = Counter("jupyter_autoshutdown_check_passes_total", "Check passes completed")
FAILURES = Counter(
    "jupyter_autoshutdown_failures_total", "Shutdowns and app actions that failed, by kind", ["kind"]
)
WARNINGS = Counter(
    "jupyter_autoshutdown_warnings_total", "Warnings emitted before a shutdown, by kind", ["kind"]
)
SECONDS_UNTIL_NEXT = Gauge(
    "jupyter_autoshutdown_seconds_until_next_shutdown",
    "Seconds until the next scheduled shutdown or app action (-1: none scheduled)",
)
LAST_CHECK = Gauge(
    "jupyter_autoshutdown_last_check_timestamp_seconds", "Unix time of the last completed check pass"
)


class Events:
    """Emits to the server's event logger; never raises into the checker."""

    def __init__(self, serverapp: Any, log: logging.Logger) -> None:
        self.log = log
        self.event_logger = getattr(serverapp, "event_logger", None)
        if self.event_logger is not None:
            try:
                self.event_logger.register_event_schema(EVENT_SCHEMA_PATH)
            except Exception as error:
                log.warning("auto-shutdown: cannot register the event schema: %s", error)
                self.event_logger = None

    def emit(self, event: str, kind: str, target: str, message: str, **fields: Any) -> None:
        if self.event_logger is None:
            return
        data = {"event": event, "kind": kind, "target": target, "message": message}
        for key, value in fields.items():
            if value is not None:
                data[key] = value.isoformat() if isinstance(value, datetime) else value
        try:
            self.event_logger.emit(schema_id=EVENT_SCHEMA_ID, data=data)
        except Exception as error:
            self.log.warning("auto-shutdown: emitting a %s event failed: %s", event, error)


#: Errors kept for `status`.
KEPT_ERRORS = 50


class ErrorLog(collections.deque[dict[str, str]]):
    """The last failures, each with its time, for `status` (the observer, jobs and loop add).

    A deque of {"time", "message"} entries, so it compares, iterates and tests empty as one."""

    def __init__(self, clock: Callable[[], datetime] | None = None, kept: int = KEPT_ERRORS) -> None:
        super().__init__(maxlen=kept)
        self.clock = clock or (lambda: datetime.now(timezone.utc))

    def record(self, message: str) -> None:
        self.append({"time": self.clock().isoformat(), "message": message})
