"""Run the local authorization server and the demo MCP server, wired to each other."""

import argparse


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.set_defaults(run=lambda args: 0)
