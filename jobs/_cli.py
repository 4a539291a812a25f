"""What every command shares: argument parsing that exits 2, settings that fail with exit 2."""

from __future__ import annotations

import argparse
import sys
from typing import Any, NoReturn

from pipeline.settings import Settings, SettingsError, load_settings

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_LOCKED = 0, 1, 2, 3


class UsageError(Exception):
    """Bad command-line usage (exit 2)."""


class ArgumentParser(argparse.ArgumentParser):
    """argparse that raises instead of exiting, so ``main`` returns the exit code."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message}")


def settings_or_exit(**overrides: Any) -> Settings | int:
    """Settings with CLI overrides (None values ignored), or EXIT_USAGE after printing why."""
    try:
        return load_settings(**{key: value for key, value in overrides.items() if value is not None})
    except SettingsError as error:
        print(f"horde-analytics: {error}", file=sys.stderr)
        return EXIT_USAGE
