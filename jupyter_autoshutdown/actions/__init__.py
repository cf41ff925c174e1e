"""App-level actions: what runs once no kernels or terminals are left and the server is idle.

An action is any object with a ``name`` and an ``async run(context) -> str`` that returns a short
description of what it did. Built-in actions are chosen by name (``auto`` picks one from the
environment); any other by import path (``package.module:ClassName`` or
``package.module.ClassName``), instantiated with no arguments. Actions stop or deactivate what costs
money; they never delete user files.

An action signals failure by raising (the monitor retries with backoff) and "not yet" by raising
`ActionDeferred` (the monitor runs it again at the time it names, without counting a failure).

An action may keep its own schedule: a method ``own_schedule() -> str | None`` that returns, in
words, what it follows instead of the server's idleness (None: the default rule). Such an action
runs at the first check, whenever the kernels or terminals change, at the time its `ActionDeferred`
names, and otherwise once per timeout; it decides itself what is idle. Studio Classic's
KernelGateway apps are stopped this way: each follows its own kernels, not the free JupyterServer
app this server is.

Part of stage 3 (act), kept at the top because custom actions import their interface from
`jupyter_autoshutdown.actions`. Imports: `core` and `decide` only.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

from .base import (
    NOTEBOOK_INSTANCE,
    SAGEMAKER_METADATA_PATH,
    STUDIO_CLASSIC,
    STUDIO_SPACE,
    ActionContext,
    ActionDeferred,
    ActionSettings,
    AppAction,
    description_of,
    own_schedule_of,
    read_sagemaker_metadata,
    sagemaker_kind,
)

__all__ = [
    "BUILTIN_ACTION_NAMES", "SAGEMAKER_METADATA_PATH", "ActionContext", "ActionDeferred", "ActionSettings",
    "AppAction", "NoAction", "StopServer", "choose_automatically", "description_of", "load_action",
    "own_schedule_of",
]


class NoAction:
    """Only kernels and terminals are shut down; the server keeps running."""

    name = "none"

    def __init__(self, settings: ActionSettings | None = None) -> None:
        pass

    async def run(self, context: ActionContext) -> str:
        return "nothing to do"


class StopServer:
    """Stop this Jupyter server cleanly, as ``ServerApp.shutdown_no_activity_timeout`` does.

    Right for a container or a single-user pod whose exit ends the billing.
    """

    name = "server"

    def __init__(self, settings: ActionSettings | None = None) -> None:
        pass

    async def run(self, context: ActionContext) -> str:
        context.serverapp.stop()
        return "stopping the Jupyter server"


def _builtin_actions() -> dict[str, Callable[[ActionSettings], AppAction]]:
    # Imported here: each module is small, but sagemaker's may import boto3 lazily on use.
    from .command import RunCommand
    from .jupyterhub import StopHubServer
    from .sagemaker import StopStudioApps

    return {cls.name: cls for cls in (NoAction, StopServer, StopHubServer, StopStudioApps, RunCommand)}


BUILTIN_ACTION_NAMES = ("auto", "none", "server", "jupyterhub", "sagemaker", "command")


_WHAT_IT_STOPS = {
    STUDIO_CLASSIC: "SageMaker Studio Classic metadata found at {path}",
    STUDIO_SPACE: "SageMaker Studio space metadata found at {path}",
    NOTEBOOK_INSTANCE: "SageMaker notebook instance metadata found at {path}",
}


def choose_automatically(settings: ActionSettings) -> tuple[str, str]:
    """The action `auto` stands for here, and why: SageMaker (a Studio app or a notebook
    instance), then JupyterHub, else none."""
    kind = sagemaker_kind(read_sagemaker_metadata(settings.sagemaker_metadata_path))
    if kind is not None:
        return "sagemaker", _WHAT_IT_STOPS[kind].format(path=settings.sagemaker_metadata_path)
    if settings.environ.get("JUPYTERHUB_API_URL") and (
        settings.environ.get("JUPYTERHUB_API_TOKEN") or settings.environ.get("JPY_API_TOKEN")
    ):
        return "jupyterhub", "running as a JupyterHub single-user server (JUPYTERHUB_API_URL is set)"
    return "none", "neither SageMaker metadata nor a JupyterHub environment found"


def load_action(spec: str, settings: ActionSettings | None = None) -> AppAction:
    """The action named `spec`, or the class at import path `spec`; ValueError when neither.

    Built-in actions that cannot work with `settings` (a `command` without a command, `jupyterhub`
    outside a hub) raise ValueError too, with what is missing.
    """
    settings = settings or ActionSettings()
    if spec == "auto":
        spec, _ = choose_automatically(settings)
    builtins = _builtin_actions()
    if spec in builtins:
        return builtins[spec](settings)
    module_name, sep, attribute = spec.partition(":")
    if not sep:
        module_name, _, attribute = spec.rpartition(".")
    if not module_name or not attribute:
        raise ValueError(
            f"unknown app action {spec!r}: use one of {', '.join(BUILTIN_ACTION_NAMES)} "
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
