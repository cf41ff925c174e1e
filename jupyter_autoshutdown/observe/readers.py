"""Read the server's managers into plain records. Read only: nothing here changes a kernel or terminal.

Each reader catches failures per resource, so one broken kernel or terminal never hides the rest;
the failures come back as strings for `status`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from tornado.web import HTTPError
from traitlets import TraitError

from ..core.records import (
    LATEST_PLAUSIBLE,
    NOT_RUNNING_STATES,
    TERMINAL_PREFIX,
    UTC,
    KernelRecord,
    TerminalRecord,
    as_utc,
)
from .activity import (
    SOURCE_ANY_REQUEST,
    SOURCE_KERNEL,
    SOURCE_START,
    SOURCE_TERMINAL,
    PeopleActivity,
)

#: Supplies an activity time for a resource that reports none (key: kernel id or "t:<name>").
MissingActivity = Callable[[str], datetime | None]


def _no_fallback(_key: str) -> datetime | None:
    return None


class BusyView(Protocol):
    """What per-request busy tracking knows (execution.RunningRequests): read only here."""

    @property
    def busy(self) -> Collection[str]: ...

    @property
    def probed(self) -> Mapping[str, Any]: ...

    @property
    def unconfirmed(self) -> Collection[str]: ...

    def settled(self, kernel_id: str, last_activity: Any) -> bool: ...

    def activity_before_probe(self, kernel_id: str, last_activity: Any) -> Any: ...


def _kernel_record(
    kernel_id: str,
    kernel: Any,
    connections: dict,
    missing: MissingActivity = _no_fallback,
    tracking: BusyView | None = None,
) -> KernelRecord:
    last_activity = activity_of(kernel)
    state = getattr(kernel, "execution_state", None) or "unknown"
    if tracking is not None:
        if kernel_id in tracking.busy or (
            kernel_id in tracking.unconfirmed and state not in NOT_RUNNING_STATES
        ):
            # A kernel running a request is busy whatever the last status jupyter_server copied,
            # and so is one whose state we have not seen for ourselves yet (execution.py).
            state = "busy"
        elif tracking.probed and kernel_id in tracking.probed:
            # A probe answered at once: jupyter_server's busy is a lost idle, and the probe's own
            # status messages are not activity.
            if state == "busy" and tracking.settled(kernel_id, last_activity):
                state = "idle"
            last_activity = tracking.activity_before_probe(kernel_id, last_activity)
    if last_activity.__class__ is not datetime or last_activity.tzinfo is not UTC:
        last_activity = as_utc(last_activity) or missing(kernel_id)
    if last_activity is not None and last_activity > LATEST_PLAUSIBLE:
        # A deadline this far out overflows datetime arithmetic: the value is not a time at all.
        last_activity = missing(kernel_id)
    connection_count = connections.get(kernel_id, 0)
    return (
        kernel_id,
        getattr(kernel, "kernel_name", None) or "",
        state,
        last_activity,
        connection_count if connection_count.__class__ is int else 0,
    )


def activity_of(kernel: Any) -> Any:
    """A kernel's `last_activity`, or None while it has none: jupyter_server sets it once the
    kernel has started, and reading the trait before then raises TraitError."""
    try:
        return getattr(kernel, "last_activity", None)
    except TraitError:
        return None


def kernel_table(kernel_manager: Any) -> tuple[dict, dict]:
    # jupyter_server's managers keep kernels in `_kernels`; fall back to get_kernel() without it.
    kernels = getattr(kernel_manager, "_kernels", None)
    connections = getattr(kernel_manager, "_kernel_connections", None)
    return (kernels if isinstance(kernels, dict) else {},
            connections if isinstance(connections, dict) else {})


def read_kernel(
    kernel_manager: Any,
    kernel_id: str,
    missing: MissingActivity = _no_fallback,
    tracking: BusyView | None = None,
) -> KernelRecord | None:
    """One kernel's record, or None when it no longer exists."""
    kernels, connections = kernel_table(kernel_manager)
    kernel = kernels.get(kernel_id)
    if kernel is None:
        try:
            kernel = kernel_manager.get_kernel(kernel_id)
        except KeyError:
            return None
        except HTTPError as error:  # jupyter_server's get_kernel answers 404 for an unknown id
            if error.status_code == 404:
                return None
            raise
    return _kernel_record(kernel_id, kernel, connections, missing, tracking)


def read_kernels(
    kernel_manager: Any, missing: MissingActivity = _no_fallback, tracking: BusyView | None = None
) -> tuple[list[KernelRecord], list[str]]:
    """Every kernel's record; `tracking`: what per-request busy tracking knows (execution.py)."""
    kernels: list[KernelRecord] = []
    errors: list[str] = []
    try:
        kernel_ids = list(kernel_manager.list_kernel_ids())
        table, connections = kernel_table(kernel_manager)
    except Exception as error:  # the manager itself failing must not stop the pass
        return kernels, [f"reading the kernel list failed: {error!r}"]
    append = kernels.append
    for kernel_id in kernel_ids:
        try:
            kernel = table.get(kernel_id)
            if kernel is None:
                kernel = kernel_manager.get_kernel(kernel_id)
            append(_kernel_record(kernel_id, kernel, connections, missing, tracking))
        except KeyError:
            continue  # shut down while we were reading
        except Exception as error:
            errors.append(f"reading kernel {kernel_id} failed: {error!r}")
    return kernels, errors


def _terminal_record(name: str, terminal: Any, missing: MissingActivity) -> TerminalRecord:
    last_activity = getattr(terminal, "last_activity", None)
    if last_activity.__class__ is not datetime or last_activity.tzinfo is not UTC:
        last_activity = as_utc(last_activity) or missing(TERMINAL_PREFIX + name)
    if last_activity is not None and last_activity > LATEST_PLAUSIBLE:
        last_activity = missing(TERMINAL_PREFIX + name)
    return (name, last_activity)


def read_terminal(
    terminal_manager: Any, name: str, missing: MissingActivity = _no_fallback
) -> TerminalRecord | None:
    terminal = terminal_manager.terminals.get(name)
    if terminal is None:
        return None
    return _terminal_record(name, terminal, missing)


def read_terminals(
    terminal_manager: Any | None, missing: MissingActivity = _no_fallback
) -> tuple[list[TerminalRecord], list[str]]:
    if terminal_manager is None:
        return [], []
    terminals: list[TerminalRecord] = []
    errors: list[str] = []
    try:
        table = terminal_manager.terminals
        names = list(table)
    except Exception as error:
        return terminals, [f"reading the terminal list failed: {error!r}"]
    for name in names:
        try:
            terminal = table.get(name)
            if terminal is not None:
                terminals.append(_terminal_record(name, terminal, missing))
        except Exception as error:
            errors.append(f"reading terminal {name} failed: {error!r}")
    return terminals, errors


def is_remote(kernel_manager: Any) -> bool:
    """True for a kernel manager whose kernels live on a Kernel or Enterprise Gateway."""
    from jupyter_server.gateway.managers import GatewayMappingKernelManager

    return isinstance(kernel_manager, GatewayMappingKernelManager)


#: A remote kernel as the gateway described it: (name, execution_state, last_activity, connections).
RemoteModel = tuple[str, str, datetime | None, int]


@dataclass(frozen=True)
class RemoteKernels:
    """One reading of a gateway's kernels, held by the observer instead of the manager's records.

    `models`: the gateway's model of each of the manager's kernels that it has. `listed`: the
    manager's kernels when the gateway was read (id -> the manager's kernel object): one listed
    and without a model is gone on the gateway; one not listed (or listed as another object) was
    started since, and the manager's own record of it is read.
    """

    models: Mapping[str, RemoteModel] = field(default_factory=dict)
    listed: Mapping[str, Any] = field(default_factory=dict)

    def gone(self, kernel_id: str, kernel: Any) -> bool:
        """Was the manager's `kernel` gone on the gateway at this reading?"""
        return (kernel is not None and kernel_id not in self.models
                and self.listed.get(kernel_id) is kernel)

    def with_kernel(self, kernel_id: str, kernel: Any, model: RemoteModel | None) -> RemoteKernels:
        """This reading with one kernel read again (`model` None: the gateway no longer has it)."""
        models = {kid: value for kid, value in self.models.items() if kid != kernel_id}
        if model is not None:
            models[kernel_id] = model
        return RemoteKernels(models, {**self.listed, kernel_id: kernel})


def _remote_model(model: Any, kernel: Any) -> RemoteModel:
    connections = model.get("connections")
    return (
        str(model.get("name") or getattr(kernel, "kernel_name", None) or ""),
        str(model.get("execution_state") or "unknown"),
        as_utc(model.get("last_activity")),
        connections if connections.__class__ is int else 0,
    )


async def _gateway_get(url: str) -> Any:
    """GET `url` from the gateway, decoded, as jupyter_server's own requests go (its connection
    arguments: auth header, token renewal, timeouts, TLS, cookies held; its retries), but not
    through its `gateway_request`: that announces each request as a `gateway_client` event in the
    user's event stream and stores the answer's cookies. Observing changes nothing."""
    from jupyter_server.gateway.gateway_client import GatewayClient, RetryableHTTPClient

    kwargs = GatewayClient.instance().load_connection_args(method="GET")
    response = await RetryableHTTPClient().fetch(url, **kwargs)
    return json.loads(response.body)


def _kernel_url(kernel_manager: Any, kernel_id: str) -> str:
    from jupyter_server.utils import url_escape, url_path_join

    return url_path_join(kernel_manager.kernels_url, url_escape(kernel_id))


async def read_remote_kernel_model(kernel_manager: Any, kernel_id: str) -> RemoteModel | None:
    """One remote kernel's model from the gateway; None when the gateway no longer has it."""
    from tornado.httpclient import HTTPClientError

    try:
        model = await _gateway_get(_kernel_url(kernel_manager, kernel_id))
    except HTTPClientError as error:
        if error.code == 404:
            return None
        raise
    if not isinstance(model, dict):
        raise ValueError(f"the gateway described kernel {kernel_id} as {model!r}")
    return _remote_model(model, kernel_table(kernel_manager)[0].get(kernel_id))


async def read_remote_kernels(
    kernel_manager: Any, previous: RemoteKernels | None = None
) -> RemoteKernels:
    """The gateway's models of the manager's kernels. Raises when the gateway does not answer.

    jupyter_server's own listing (`list_kernels`) writes each model into the manager's records,
    removes the kernels the gateway no longer has from its table and emits an event per request;
    this reads the same models with the same requests and changes nothing. As there, a kernel
    missing from the list is asked for directly (a list can be incomplete behind a proxy), once:
    one that `previous` found gone stays gone (the manager keeps listing it until its own next
    listing, and a kernel id is never reused).
    """
    models = await _gateway_get(kernel_manager.kernels_url)
    if not isinstance(models, list):
        raise ValueError(f"the gateway's kernel list is {type(models).__name__}, not a list")
    table = dict(kernel_table(kernel_manager)[0])
    found: dict[str, RemoteModel] = {}
    for model in models:
        kernel_id = model.get("id") if isinstance(model, dict) else None
        if isinstance(kernel_id, str) and kernel_id in table:  # the gateway's other kernels: not ours
            found[kernel_id] = _remote_model(model, table[kernel_id])
    for kernel_id in table.keys() - found.keys():
        if previous is not None and previous.gone(kernel_id, table[kernel_id]):
            continue
        model_or_none = await read_remote_kernel_model(kernel_manager, kernel_id)
        if model_or_none is not None:
            found[kernel_id] = model_or_none
    return RemoteKernels(found, table)


def _remote_record(
    kernel_id: str, kernel: Any, reading: RemoteKernels, connections: dict, missing: MissingActivity
) -> KernelRecord | None:
    model = reading.models.get(kernel_id)
    if model is None:
        if reading.gone(kernel_id, kernel):
            return None  # gone on the gateway; the manager's table is left as it is
        # Started since the reading: the manager's record, from the gateway's answer to the start.
        return _kernel_record(kernel_id, kernel, connections, missing)
    name, state, last_activity, connection_count = model
    if last_activity is None or last_activity > LATEST_PLAUSIBLE:
        last_activity = missing(kernel_id)
    return (kernel_id, name, state, last_activity, connection_count)


def read_gateway_kernels(
    kernel_manager: Any, reading: RemoteKernels | None, missing: MissingActivity = _no_fallback
) -> tuple[list[KernelRecord], list[str]]:
    """Every remote kernel's record: the manager's kernels as `reading` describes them; the ones
    the gateway no longer had are left out (the manager keeps them: nothing here removes them)."""
    if reading is None:
        return read_kernels(kernel_manager, missing)
    kernels: list[KernelRecord] = []
    errors: list[str] = []
    try:
        kernel_ids = list(kernel_manager.list_kernel_ids())
        table, connections = kernel_table(kernel_manager)
    except Exception as error:
        return kernels, [f"reading the kernel list failed: {error!r}"]
    for kernel_id in kernel_ids:
        kernel = table.get(kernel_id)
        if kernel is None:
            continue  # shut down while we were reading
        try:
            record = _remote_record(kernel_id, kernel, reading, connections, missing)
        except Exception as error:
            errors.append(f"reading kernel {kernel_id} failed: {error!r}")
        else:
            if record is not None:
                kernels.append(record)
    return kernels, errors


def read_gateway_kernel(
    kernel_manager: Any, reading: RemoteKernels | None, kernel_id: str,
    missing: MissingActivity = _no_fallback,
) -> KernelRecord | None:
    """One remote kernel's record, or None when it no longer exists (here or on the gateway)."""
    if reading is None:
        return read_kernel(kernel_manager, kernel_id, missing)
    kernels, connections = kernel_table(kernel_manager)
    kernel = kernels.get(kernel_id)  # the gateway manager's table, always there
    if kernel is None:
        return None
    return _remote_record(kernel_id, kernel, reading, connections, missing)


def read_server_last_activity(
    web_app: Any, tracker: PeopleActivity | None, mode: str, fallback: datetime
) -> tuple[datetime, str, list[str]]:
    """The server's last activity by `mode`, its source in words, and errors.

    "people": server start, kernel and terminal activity, and what `tracker` saw people do.
    "any_request": jupyter_server's own ``last_activity()`` (every API request, which the polls
    of an open browser tab keep fresh; what ``shutdown_no_activity_timeout`` uses), and `tracker`.
    """
    try:
        settings = web_app.settings
        if mode == "any_request":
            latest, source = as_utc(web_app.last_activity()) or fallback, SOURCE_ANY_REQUEST
        else:
            latest, source = as_utc(settings.get("started")) or fallback, SOURCE_START
            kernel_manager = settings.get("kernel_manager")
            kernel_time = as_utc(getattr(kernel_manager, "last_kernel_activity", None))
            if kernel_time is not None and kernel_time > latest:
                latest, source = kernel_time, SOURCE_KERNEL
            terminal_time = as_utc(settings.get("terminal_last_activity"))
            if terminal_time is not None and terminal_time > latest:
                latest, source = terminal_time, SOURCE_TERMINAL
    except Exception as error:
        latest, source = fallback, SOURCE_START
        errors = [f"reading the server's last activity failed: {error!r}"]
    else:
        errors = []
    if tracker is not None and tracker.last_activity is not None and tracker.last_activity > latest:
        latest, source = tracker.last_activity, tracker.last_source
    return latest, source, errors
