"""The version: package.json's, the one source (the wheel's metadata takes it from there through
hatch-nodejs-version; a checkout that is not installed reads the file itself)."""

from __future__ import annotations

import json
from pathlib import Path


def _read_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("jupyter_autoshutdown")
    except PackageNotFoundError:
        package_json = Path(__file__).resolve().parent.parent / "package.json"
        return str(json.loads(package_json.read_text(encoding="utf-8"))["version"])


__version__ = _read_version()
