"""`python -m jupyter_autoshutdown`: the `jupyter autoshutdown` command (cli/commands.py)."""

import sys

from .cli.commands import main

sys.exit(main())
