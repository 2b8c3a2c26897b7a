import sys

from demo_server.cli import main

sys.exit(main())
