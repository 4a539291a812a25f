"""What every command shares: argument parsing that exits 2, settings that fail with exit 2."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

from pipeline.contracts.settings import Settings, SettingsError, load_settings

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_LOCKED = 0, 1, 2, 3
#: The run was committed to the snapshot store but Redis was not updated (SPEC §1).
EXIT_NOT_PUBLISHED = 4


class UsageError(Exception):
    """Bad command-line usage (exit 2)."""


class ArgumentParser(argparse.ArgumentParser):
    """argparse that raises instead of exiting, so ``main`` returns the exit code."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message}")


def add_source_arguments(parser: argparse.ArgumentParser) -> None:
    """The options that override where a run reads and writes (each also a setting)."""
    parser.add_argument("--reference", help="model reference folder or base URL (MODEL_REFERENCE_SOURCE)")
    parser.add_argument("--horde", help="AI Horde snapshot folder or API URL (HORDE_SOURCE)")
    parser.add_argument("--snapshot-dir", help="where Parquet snapshots go (SNAPSHOT_DIR)")


def parsed_or_exit(parser: argparse.ArgumentParser, argv: Sequence[str]) -> argparse.Namespace | int:
    """The parsed arguments, or EXIT_USAGE after printing what was wrong."""
    try:
        return parser.parse_args(argv)
    except UsageError as error:
        print(error, file=sys.stderr)
        return EXIT_USAGE


def settings_or_exit(**overrides: Any) -> Settings | int:
    """Settings with CLI overrides (None values ignored), or EXIT_USAGE after printing why."""
    try:
        return load_settings(**{key: value for key, value in overrides.items() if value is not None})
    except SettingsError as error:
        print(f"horde-analytics: {error}", file=sys.stderr)
        return EXIT_USAGE


def snapshot_reader_setup(
    parser: argparse.ArgumentParser, argv: Sequence[str]
) -> tuple[argparse.Namespace, Settings] | int:
    """The arguments and settings of a command that reads the snapshot store (its ``--snapshot-dir`` wins), or
    EXIT_USAGE after printing why."""
    args = parsed_or_exit(parser, argv)
    if isinstance(args, int):
        return args
    settings = settings_or_exit(snapshot_dir=args.snapshot_dir)
    if isinstance(settings, int):
        return settings
    return args, settings
