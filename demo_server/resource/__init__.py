"""placeholder: being built."""

import argparse


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.set_defaults(run=lambda args: 0)
