"""Sphinx configuration: MyST Markdown pages, the pydata theme, and two generated references
(every configuration trait from its help text, every REST route from openapi.json)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from generate import write_references  # noqa: E402

from jupyter_autoshutdown import __version__  # noqa: E402

project = "jupyter-autoshutdown"
author = "the jupyter-autoshutdown developers"
copyright = "the jupyter-autoshutdown developers"
release = version = __version__

extensions = ["myst_parser"]
myst_heading_anchors = 3
myst_enable_extensions = ["colon_fence"]
source_suffix = {".md": "markdown"}
exclude_patterns = ["_build"]
html_theme = "pydata_sphinx_theme"
html_title = f"jupyter-autoshutdown {release}"
html_theme_options = {"navigation_with_keys": False, "show_toc_level": 2}

write_references(HERE / "reference", json.loads(
    (HERE.parent / "jupyter_autoshutdown" / "openapi.json").read_text(encoding="utf-8")))
