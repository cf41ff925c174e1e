"""The interface every app action implements, and what it is given (see the package docstring).

Actions import these from here, and the package imports the built-in actions lazily: no module
imports one that imports it back.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

#: Where SageMaker Studio describes the app this server runs in.
SAGEMAKER_METADATA_PATH = "/opt/ml/metadata/resource-metadata.json"


@dataclass(frozen=True)
class ActionContext:
    serverapp: Any
    log: logging.Logger
    #: How long the server has been idle when the action runs.
    idle_seconds: float
    #: The idle timeout in force, in seconds.
    idle_timeout_seconds: float = 0.0


@dataclass(frozen=True)
class ActionSettings:
    """The configuration the built-in actions read (traits of `AutoShutdown`)."""

    #: argv of the `command` action.
    command: tuple[str, ...] = ()
    sagemaker_metadata_path: str = SAGEMAKER_METADATA_PATH
    #: How the `sagemaker` action reaches SageMaker: "endpoint", "boto3" or "auto".
    sagemaker_method: str = "auto"
    environ: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))


class ActionDeferred(Exception):
    """Raised by an action that has nothing to do yet; the monitor runs it again later."""

    def __init__(self, message: str, retry_after_seconds: float) -> None:
        super().__init__(message)
        self.retry_after_seconds = max(1.0, retry_after_seconds)


@runtime_checkable
class AppAction(Protocol):
    name: str

    async def run(self, context: ActionContext) -> str: ...


def own_schedule_of(action: AppAction) -> str | None:
    """What `action` follows when it keeps its own schedule, else None (see the module's doc)."""
    own_schedule = getattr(action, "own_schedule", None)
    return own_schedule() if callable(own_schedule) else None
