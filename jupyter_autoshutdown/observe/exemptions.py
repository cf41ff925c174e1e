"""Kernels that are never shut down: by kernel name, by notebook path, or by the user's own opt-out.

A user opts a kernel out from inside it::

    import jupyter_autoshutdown
    jupyter_autoshutdown.keep_this_kernel()        # never shut this kernel down
    jupyter_autoshutdown.keep_this_kernel(False)   # back to the usual rules

That writes a marker file named after the kernel id next to the kernel's connection file (the
server's kernel runtime directory), which the checker reads at each pass. It works for kernels
the server runs locally; remote (gateway) kernels are exempted by name or path patterns instead.
"""

from __future__ import annotations

import fnmatch
import hashlib
import hmac
import os
import posixpath
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ..core.records import KernelRecord

MARKER_DIR_NAME = "jupyter_autoshutdown-keep"
#: Kernel names whose match is remembered (a server has a handful of kernelspecs).
MAX_REMEMBERED_NAMES = 256


def marker_dir(connection_dir: str | os.PathLike) -> Path:
    return Path(connection_dir) / MARKER_DIR_NAME


def marker_proof(key: bytes, kernel_id: str) -> str:
    """What a marker holds: only the kernel itself (and the server) knows its message-signing key,
    so one kernel cannot opt another out by writing a marker with the other's id."""
    return hmac.new(key, f"{MARKER_DIR_NAME}:{kernel_id}".encode(), hashlib.sha256).hexdigest()


def keep_this_kernel(keep: bool = True) -> str:
    """From a notebook: exempt the kernel it runs in from auto-shutdown (or undo it)."""
    from ipykernel.connect import get_connection_file, get_connection_info

    connection_file = Path(get_connection_file())
    stem = connection_file.stem  # "kernel-<id>" for kernels the server starts
    kernel_id = stem[len("kernel-"):] if stem.startswith("kernel-") else stem
    marker = marker_dir(connection_file.parent) / kernel_id
    if keep:
        info: Any = get_connection_info(unpack=True)
        key = info.get("key", "")
        marker.parent.mkdir(mode=0o700, exist_ok=True)
        marker.write_text(marker_proof(key.encode() if isinstance(key, str) else key, kernel_id))
        return f"auto-shutdown will not shut down this kernel ({kernel_id})"
    marker.unlink(missing_ok=True)
    return f"auto-shutdown rules apply to this kernel again ({kernel_id})"


#: Why a kernel that opted out is shut down anyway (shown in `status`).
OPT_OUT_REFUSED = "keep_this_kernel() is not honoured on this server (allow_user_exemptions is false)"


class Exemptions:
    def __init__(
        self, name_patterns: Sequence[str], path_patterns: Sequence[str], *, honour_opt_outs: bool = True
    ) -> None:
        self.name_patterns = tuple(name_patterns)
        self.path_patterns = tuple(path_patterns)
        self.honour_opt_outs = honour_opt_outs
        #: Kernels that called keep_this_kernel() while opt-outs are not honoured (last read).
        self.refused: frozenset[str] = frozenset()
        self._by_name: dict[str, str | None] = {}

    def by_name(self, kernels: Iterable[KernelRecord]) -> dict[str, str]:
        """Kernels exempt by their kernel name, from records already read (no second reading)."""
        if not self.name_patterns:
            return {}
        exempt = {}
        for kernel_id, name, _state, _last_activity, _connections in kernels:
            reason = self.reason_for_name(name)
            if reason is not None:
                exempt[kernel_id] = reason
        return exempt

    def reason_for_name(self, name: str) -> str | None:
        """Why a kernel named `name` is exempt, or None (the first matching pattern)."""
        if name in self._by_name:  # a pure function of the name: each name is matched once
            return self._by_name[name]
        pattern = next((p for p in self.name_patterns if fnmatch.fnmatchcase(name, p)), None)
        reason = None if pattern is None else f"exempt: kernel name '{name}' matches '{pattern}'"
        if len(self._by_name) < MAX_REMEMBERED_NAMES:
            self._by_name[name] = reason
        return reason

    async def read(self, serverapp: Any) -> dict[str, str]:
        """kernel id -> why it is exempt by its notebook's path or its own opt-out. Kernel names
        are matched on each snapshot's records instead (reason_for_name): no second reading."""
        exempt: dict[str, str] = {}
        if self.path_patterns:
            for kernel_id, raw_path in (await _session_paths(serverapp)).items():
                path = normalised(raw_path)
                if path is None:
                    continue
                pattern = next((p for p in self.path_patterns if fnmatch.fnmatchcase(path, p)), None)
                if pattern is not None:
                    exempt.setdefault(kernel_id, f"exempt: notebook '{path}' matches '{pattern}'")
        connection_dir = getattr(serverapp.kernel_manager, "connection_dir", None)
        if connection_dir:
            try:
                opted_out = os.listdir(marker_dir(connection_dir))
            except OSError:
                opted_out = []  # nobody opted out yet: the directory does not exist
            if self.honour_opt_outs:
                for kernel_id in opted_out:
                    if _marker_is_its_own(serverapp.kernel_manager, connection_dir, kernel_id):
                        exempt.setdefault(kernel_id, "exempt: the user ran keep_this_kernel() in it")
            else:
                self.refused = frozenset(opted_out)
        return exempt


async def _session_paths(serverapp: Any) -> Mapping[str, str]:
    sessions = await serverapp.session_manager.list_sessions()
    return {
        session["kernel"]["id"]: session.get("path") or ""
        for session in sessions
        if session.get("kernel")
    }


def normalised(path: str) -> str | None:
    """A session path as the contents manager resolves it ('a/../b' is 'b'); None outside the root."""
    clean = posixpath.normpath(path.replace("\\", "/").lstrip("/"))
    if clean == ".." or clean.startswith("../"):
        return None
    return clean


def _marker_is_its_own(kernel_manager: Any, connection_dir: str, kernel_id: str) -> bool:
    """True when the marker was written by the kernel it names (see marker_proof)."""
    try:
        key = kernel_manager.get_kernel(kernel_id).session.key
        written = (marker_dir(connection_dir) / kernel_id).read_text(encoding="ascii").strip()
    except Exception:  # no such kernel (a stale marker), unreadable, not ours
        return False
    return hmac.compare_digest(written, marker_proof(key, kernel_id))
