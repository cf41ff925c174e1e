"""`python -m jupyter_autoshutdown`: the `jupyter autoshutdown` command (client.py)."""

import sys

from .client import main

sys.exit(main())
