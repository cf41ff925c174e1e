"""The command line's entry point (the console script, `python -m jupyter_autoshutdown`), and its old
address, kept for what calls it by name: the console script's first releases, `python -m
jupyter_autoshutdown.client check` in lifecycle scripts already on machines, and the original's
wrappers that import `main` from here. The commands live in cli/; `hub-service` in hub/, which
runs in the hub's environment, so it is dispatched here, above both stages."""

import sys

from .cli.commands import HUB_SERVICE
from .cli.commands import main as _cli_main

__all__ = ["main"]


def main(argv: list[str] | None = None, *, command: str | None = None, prog: str | None = None) -> int:
    """The command line; with `command`, that one command as a script named `prog`."""
    arguments = sys.argv[1:] if argv is None else argv
    if command is None and arguments[:1] == [HUB_SERVICE]:
        from .hub.service import main as hub_service

        return hub_service(arguments[1:])
    return _cli_main(argv, command=command, prog=prog)


if __name__ == "__main__":
    sys.exit(main())
