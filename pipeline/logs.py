"""Structured logging: one line per event, JSON when stderr is not a terminal (SPEC §9)."""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any, Final

from pipeline.settings import masked_url

_STANDARD: Final = frozenset(vars(logging.makeLogRecord({})).keys()) | {"message", "asctime"}


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    extras = {key: value for key, value in vars(record).items() if key not in _STANDARD}
    # Never log a secret: any URL-ish value is masked before it leaves the process.
    return {
        key: masked_url(value) if isinstance(value, str) and "://" in value else value for key, value in extras.items()
    }


class JsonFormatter(logging.Formatter):
    """``{"ts", "level", "logger", "event", ...extras}`` on one line."""

    def format(self, record: logging.LogRecord) -> str:
        payload = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage(),
            **_extras(record),
        }
        if record.exc_info:
            payload["error"] = self.formatException(record.exc_info)
        return json.dumps(payload, default=str)


class ConsoleFormatter(logging.Formatter):
    """``HH:MM:SS level event key=value ...`` for a person at a terminal."""

    def format(self, record: logging.LogRecord) -> str:
        extras = " ".join(f"{key}={value}" for key, value in _extras(record).items())
        stamp = time.strftime("%H:%M:%S", time.localtime(record.created))
        line = f"{stamp} {record.levelname.lower():7} {record.getMessage()} {extras}".rstrip()
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def configure_logging(level: int = logging.INFO) -> None:
    """Route the ``pipeline`` and ``jobs`` loggers to stderr in the right format."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(ConsoleFormatter() if sys.stderr.isatty() else JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
