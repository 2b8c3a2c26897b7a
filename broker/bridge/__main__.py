"""``python -m broker.bridge URL``: the same as ``mcp-broker connect URL``."""

import argparse
import logging
import sys

from broker.bridge.command import configure_connect_parser


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m broker.bridge")
    commands = parser.add_subparsers(dest="command", required=True)
    configure_connect_parser(commands)
    args = parser.parse_args(["connect", *sys.argv[1:]])
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    code: int = args.run(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
