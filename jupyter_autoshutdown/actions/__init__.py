"""App-level actions: what runs once no kernels or terminals are left and the server is idle.

An action is any object with a ``name`` and an ``async run(context) -> str`` that returns a short
description of what it did. Built-in actions are chosen by name; any other by import path
(``package.module:ClassName`` or ``package.module.ClassName``), instantiated with no arguments.
Actions stop or deactivate what costs money; they never delete user files.
"""

from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable


@dataclass(frozen=True)
class ActionContext:
    serverapp: Any
    log: logging.Logger
    #: How long the server has been idle when the action runs.
    idle_seconds: float


@runtime_checkable
class AppAction(Protocol):
    name: str

    async def run(self, context: ActionContext) -> str: ...


class NoAction:
    """Only kernels and terminals are shut down; the server keeps running."""

    name = "none"

    async def run(self, context: ActionContext) -> str:
        return "nothing to do"


class StopServer:
    """Stop this Jupyter server cleanly, as ``ServerApp.shutdown_no_activity_timeout`` does.

    Right for a container or a single-user pod whose exit ends the billing.
    """

    name = "server"

    async def run(self, context: ActionContext) -> str:
        context.serverapp.stop()
        return "stopping the Jupyter server"


BUILTIN_ACTIONS: dict[str, type] = {cls.name: cls for cls in (NoAction, StopServer)}


def load_action(spec: str) -> AppAction:
    """The action named `spec`, or the class at import path `spec`; ValueError when neither."""
    if spec in BUILTIN_ACTIONS:
        return BUILTIN_ACTIONS[spec]()
    module_name, sep, attribute = spec.partition(":")
    if not sep:
        module_name, _, attribute = spec.rpartition(".")
    if not module_name or not attribute:
        raise ValueError(
            f"unknown app action {spec!r}: use one of {', '.join(BUILTIN_ACTIONS)} "
            "or an import path such as 'mypackage.actions:StopVM'"
        )
    try:
        factory = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as error:
        raise ValueError(f"cannot load app action {spec!r}: {error}") from error
    action = factory()
    if not isinstance(action, AppAction):
        raise ValueError(f"app action {spec!r} has no 'name' and async 'run(context)'")
    return action
