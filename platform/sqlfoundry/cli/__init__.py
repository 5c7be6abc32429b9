"""`sqlfoundry`: fine-tune text-to-SQL models, evaluate, serve them over HTTP, manage adapters and data.

Each subcommand has its own --help. Configuration errors exit with status 2 and name the key to fix.
"""

from __future__ import annotations

import argparse
import logging
import sys

from sqlfoundry import __version__


def build_parser() -> argparse.ArgumentParser:
    from sqlfoundry.cli import answer, examples, manage, train, ui

    parser = argparse.ArgumentParser(
        prog="sqlfoundry",
        description="Fine-tune code LLMs for text-to-SQL (QLoRA+, NEFTune) and generate SQL with them.",
    )
    parser.add_argument("--version", action="version", version=f"sqlfoundry {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="debug logging; train and serve also show library logs and Ray's worker output "
                             "on the console instead of only in their log file")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in (train, answer, manage, examples, ui):
        module.register(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    from sqlfoundry.config.loader import ConfigError
    from sqlfoundry.data.sources import DataError
    from sqlfoundry.storage.backends import StorageError
    from sqlfoundry.storage.registry import RegistryError

    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        return args.func(args)
    except (ConfigError, DataError, StorageError, RegistryError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2

