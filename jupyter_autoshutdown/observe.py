"""Read the server's managers into plain records. Read only: nothing here changes a kernel or terminal.

Each reader catches failures per resource, so one broken kernel or terminal never hides the rest;
the failures come back as strings for `status`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

#: Timestamps from managers are UTC by Jupyter's convention; a naive one is read as UTC.
UTC = timezone.utc


def as_utc(value: Any) -> datetime | None:
    """A timezone-aware UTC datetime from a datetime or ISO 8601 string; None if it is neither."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
    if not isinstance(value, datetime):
        return None
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


@dataclass(frozen=True)
class KernelInfo:
    id: str
    name: str
    execution_state: str
    last_activity: datetime | None
    connections: int


@dataclass(frozen=True)
class TerminalInfo:
    name: str
    last_activity: datetime | None


@dataclass(frozen=True)
class Snapshot:
    """Everything the policy looks at, taken at one moment."""

    kernels: tuple[KernelInfo, ...]
    terminals: tuple[TerminalInfo, ...]
    #: The latest activity the server knows of (user HTTP requests, kernel and terminal traffic).
    server_last_activity: datetime
    errors: tuple[str, ...] = ()


def read_kernel(kernel_manager: Any, kernel_id: str) -> KernelInfo | None:
    """One kernel's record, or None when it no longer exists."""
    kernels = getattr(kernel_manager, "_kernels", None)
    kernel = kernels.get(kernel_id) if isinstance(kernels, dict) else None
    if kernel is None:
        try:
            kernel = kernel_manager.get_kernel(kernel_id)
        except KeyError:
            return None
    connections = getattr(kernel_manager, "_kernel_connections", None) or {}
    return KernelInfo(
        id=kernel_id,
        name=str(getattr(kernel, "kernel_name", "") or ""),
        execution_state=str(getattr(kernel, "execution_state", "unknown") or "unknown"),
        last_activity=as_utc(getattr(kernel, "last_activity", None)),
        connections=int(connections.get(kernel_id, 0) or 0),
    )


def read_kernels(kernel_manager: Any) -> tuple[list[KernelInfo], list[str]]:
    kernels: list[KernelInfo] = []
    errors: list[str] = []
    try:
        kernel_ids = list(kernel_manager.list_kernel_ids())
    except Exception as error:  # the manager itself failing must not stop the pass
        return kernels, [f"reading the kernel list failed: {error!r}"]
    for kernel_id in kernel_ids:
        try:
            info = read_kernel(kernel_manager, kernel_id)
        except Exception as error:
            errors.append(f"reading kernel {kernel_id} failed: {error!r}")
            continue
        if info is not None:
            kernels.append(info)
    return kernels, errors


def read_terminal(terminal_manager: Any, name: str) -> TerminalInfo | None:
    terminal = terminal_manager.terminals.get(name)
    if terminal is None:
        return None
    return TerminalInfo(name=name, last_activity=as_utc(getattr(terminal, "last_activity", None)))


def read_terminals(terminal_manager: Any | None) -> tuple[list[TerminalInfo], list[str]]:
    if terminal_manager is None:
        return [], []
    terminals: list[TerminalInfo] = []
    errors: list[str] = []
    try:
        names = list(terminal_manager.terminals)
    except Exception as error:
        return terminals, [f"reading the terminal list failed: {error!r}"]
    for name in names:
        try:
            info = read_terminal(terminal_manager, name)
        except Exception as error:
            errors.append(f"reading terminal {name} failed: {error!r}")
            continue
        if info is not None:
            terminals.append(info)
    return terminals, errors


def read_server_last_activity(web_app: Any, fallback: datetime) -> tuple[datetime, list[str]]:
    """jupyter_server's own notion of the last activity (the one `shutdown_no_activity` uses)."""
    try:
        value = as_utc(web_app.last_activity())
    except Exception as error:
        return fallback, [f"reading the server's last activity failed: {error!r}"]
    return (value or fallback), []
