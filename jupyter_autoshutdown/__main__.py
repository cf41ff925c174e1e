"""`python -m jupyter_autoshutdown`: the `jupyter autoshutdown` command (cli/commands.py;
`hub-service`: hub/service.py)."""

import sys

from .client import main

sys.exit(main())
