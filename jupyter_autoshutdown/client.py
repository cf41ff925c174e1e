"""The command line's old address, kept for what calls it by name: the console script's first
releases, `python -m jupyter_autoshutdown.client check` in lifecycle scripts already on machines,
and the original's wrappers that import `main` from here. The command itself lives in cli/."""

import sys

from .cli.commands import main as _cli_main

__all__ = ["main"]


def main(argv: list[str] | None = None, **kwargs: object) -> int:
    """The command line; `hub-service` runs the hub service (hub/, the hub's environment)."""
    arguments = sys.argv[1:] if argv is None else argv
    if arguments[:1] == ["hub-service"]:
        from .hub.service import main as hub_service

        return hub_service(arguments[1:])
    return _cli_main(argv, **kwargs)  # type: ignore[arg-type]

if __name__ == "__main__":
    sys.exit(main())
