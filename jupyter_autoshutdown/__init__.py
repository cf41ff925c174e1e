"""jupyter_autoshutdown: shut down idle Jupyter kernels and terminals, then what costs money."""

from __future__ import annotations

from typing import Any

from ._version import __version__

__all__ = ["__version__", "keep_this_kernel"]


def keep_this_kernel(keep: bool = True) -> str:
    """Run in a notebook: auto-shutdown never shuts this kernel down (False: undo)."""
    from .observe.exemptions import keep_this_kernel as keep_kernel

    return keep_kernel(keep)


def _jupyter_server_extension_points() -> list[dict[str, Any]]:
    from .app import AutoShutdown

    return [{"module": "jupyter_autoshutdown.app", "app": AutoShutdown}]
