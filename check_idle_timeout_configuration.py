#!/usr/bin/env python3
"""Check that auto-shutdown is installed and its checker is running on a Jupyter server.

    python check_idle_timeout_configuration.py [--url URL] [--token TOKEN] [--json]

Prints the idle timeout (minutes and seconds), keep_terminals, how many checks have run and when
the last one ran. Without --url it finds the running server of this environment; the token comes
from --token, JUPYTER_TOKEN or the server list.

Exit codes: 0 healthy; 1 request failed; 2 bad arguments; 3 no server found; 4 the extension is
not loaded; 5 the checker is not running (no pass yet, or none recently); 7 the token was refused.
"""

import os
import sys

# Run from a checkout, this works before the package is installed (it needs only requests).
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from jupyter_autoshutdown.client import main  # the `jupyter autoshutdown` command

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:], command="check", prog=os.path.basename(sys.argv[0])))
