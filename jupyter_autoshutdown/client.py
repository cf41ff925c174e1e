"""The command line's old address, kept for what calls it by name: the console script's first
releases, `python -m jupyter_autoshutdown.client check` in lifecycle scripts already on machines,
and the original's wrappers that import `main` from here. The command itself lives in cli/."""

import sys

from .cli.commands import main

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
