"""``python -m broker.cli``: the command line written into client configs and autostart entries."""

import sys

from broker.cli import main

sys.exit(main())
