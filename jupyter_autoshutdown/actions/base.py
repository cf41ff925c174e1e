"""The interface every app action implements, and what it is given (see the package docstring).

Actions import these from here, and the package imports the built-in actions lazily: no module
imports one that imports it back.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

#: Where SageMaker (Studio apps and notebook instances alike) describes what this server runs in.
SAGEMAKER_METADATA_PATH = "/opt/ml/metadata/resource-metadata.json"

#: What a SageMaker metadata file describes (see `sagemaker_kind`).
STUDIO_CLASSIC = "studio-classic"
STUDIO_SPACE = "studio-space"
NOTEBOOK_INSTANCE = "notebook-instance"


def read_sagemaker_metadata(path: str) -> dict[str, Any] | None:
    """The metadata file's contents, or None when it is missing or not a JSON object."""
    try:
        metadata = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    return metadata if isinstance(metadata, dict) else None


def sagemaker_kind(metadata: Mapping[str, Any] | None) -> str | None:
    """Which SageMaker runtime `metadata` describes: Studio Classic's JupyterServer app, a Studio
    app in a space (JupyterLab, Code Editor), a notebook instance; None when none of them.

    Notebook instances write the same file with an ARN ``...:notebook-instance/<name>`` and no
    DomainId; Studio apps have a DomainId, and an AppType other than JupyterServer in a space.
    """
    if not metadata:
        return None
    if ":notebook-instance/" in str(metadata.get("ResourceArn", "")):
        return NOTEBOOK_INSTANCE
    if not metadata.get("DomainId"):
        return None
    if metadata.get("AppType", "JupyterServer") == "JupyterServer":
        return STUDIO_CLASSIC
    return STUDIO_SPACE


def region_of(metadata: Mapping[str, Any]) -> str | None:
    """The AWS region in the metadata's ResourceArn (arn:aws:sagemaker:<region>:<account>:...)."""
    parts = str(metadata.get("ResourceArn", "")).split(":")
    return parts[3] or None if len(parts) >= 6 else None


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


def description_of(action: AppAction) -> str | None:
    """What `action` stops, as the rest of a sentence, when it says (a ``describe()`` method)."""
    describe = getattr(action, "describe", None)
    return str(describe()) if callable(describe) else None
