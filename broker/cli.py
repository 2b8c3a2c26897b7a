"""``mcp-broker`` command line (being built)."""

import sys


def main() -> int:
    print("mcp-broker: not yet implemented", file=sys.stderr)
    return 2
