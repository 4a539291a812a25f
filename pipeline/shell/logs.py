"""Structured logging: one line per event, JSON when stderr is not a terminal (SPEC §9).

No secret reaches a log (SPEC §9): a filter on the root handler masks every URL (passwords, tokens, signed
query parameters) in every record that reaches it, ours and third-party ones alike (httpx logs each request's
URL at INFO), in the message, its arguments, the ``extra`` fields and the exception text.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Iterable
from typing import Any, Final

from pipeline.contracts.masking import masked_text

__all__ = [
    "TERMINAL_ESCAPES",
    "ConsoleFormatter",
    "JsonFormatter",
    "SecretMaskingFilter",
    "configure_logging",
    "terminal_safe",
    "terminal_safe_json",
]

_STANDARD: Final = frozenset(vars(logging.makeLogRecord({})).keys()) | {"message", "asctime"}

#: How a character that would act on a terminal is shown instead: C0 and C1 controls (ESC starts an ANSI
#: sequence, U+009B is a one-character CSI), DEL and the bidirectional overrides that reorder what is shown.
TERMINAL_ESCAPES: Final[dict[str, str]] = {
    chr(code): f"\\x{code:02x}" for code in (*range(0x00, 0x20), *range(0x7F, 0xA0))
} | {chr(code): f"\\u{code:04x}" for code in (*range(0x202A, 0x202F), *range(0x2066, 0x206A))}
_TERMINAL_TABLE: Final = str.maketrans(TERMINAL_ESCAPES)


def terminal_safe(text: str) -> str:
    """``text`` with every control character written as an escape (``\\x1b``), so a model name cannot move the
    cursor, recolour or clear a terminal, or reorder what is shown."""
    return text.translate(_TERMINAL_TABLE)


class SecretMaskingFilter(logging.Filter):
    """Masks URLs (and the literal secrets of ``secret_urls``) in a record before any handler formats it."""

    def __init__(self, secret_urls: Iterable[str | None] = ()) -> None:
        super().__init__()
        self.secret_urls = [url for url in secret_urls if url]

    def masked(self, text: str) -> str:
        """``text`` with every URL masked and every known secret replaced."""
        return masked_text(text, *self.secret_urls)

    def _value(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.masked(value)
        if isinstance(value, bool | int | float) or value is None:
            return value
        # an exception, a URL object, a container: its text is what a formatter would print
        text = str(value)
        masked = self.masked(text)
        return masked if masked != text else value

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed log call (args that do not fit) must not raise out of a filter
            message = f"{record.msg} {record.args}"
        record.msg = self.masked(message)
        record.args = None
        for key, value in vars(record).items():
            if key not in _STANDARD:
                setattr(record, key, self._value(value))
        if record.exc_info:
            record.exc_text = self.masked(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        if record.stack_info:
            record.stack_info = self.masked(record.stack_info)
        return True


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {key: value for key, value in vars(record).items() if key not in _STANDARD}


def _exception_text(formatter: logging.Formatter, record: logging.LogRecord) -> str | None:
    if record.exc_info:
        return formatter.formatException(record.exc_info)
    return record.exc_text or None


class JsonFormatter(logging.Formatter):
    """``{"ts", "level", "logger", "event", ...extras}`` on one line (JSON escapes every control character)."""

    def format(self, record: logging.LogRecord) -> str:
        payload = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage(),
            **_extras(record),
        }
        error = _exception_text(self, record)
        if error:
            payload["error"] = error
        return json.dumps(payload, default=str)


class ConsoleFormatter(logging.Formatter):
    """``HH:MM:SS level event key=value ...`` for a person at a terminal; control characters escaped."""

    def format(self, record: logging.LogRecord) -> str:
        extras = " ".join(f"{key}={terminal_safe(str(value))}" for key, value in _extras(record).items())
        stamp = time.strftime("%H:%M:%S", time.localtime(record.created))
        line = f"{stamp} {record.levelname.lower():7} {terminal_safe(record.getMessage())} {extras}".rstrip()
        error = _exception_text(self, record)
        if error:
            line += "\n" + "\n".join(terminal_safe(part) for part in error.split("\n"))
        return line


def configure_logging(level: int = logging.INFO, *, secret_urls: Iterable[str | None] = ()) -> None:
    """Route every logger to stderr in the right format, secrets masked (also those of ``secret_urls``, e.g.
    REDIS_URL, wherever they appear)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(ConsoleFormatter() if sys.stderr.isatty() else JsonFormatter())
    handler.addFilter(SecretMaskingFilter(secret_urls))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


#: JSON text already escapes C0 controls; these would still reach the terminal raw (JSON allows them unescaped
#: inside strings, where a ``\uXXXX`` escape means the same character).
_JSON_TERMINAL_TABLE: Final = str.maketrans(
    {char: f"\\u{ord(char):04x}" for char in TERMINAL_ESCAPES if ord(char) >= 0x7F}
)


def terminal_safe_json(text: str) -> str:
    """JSON ``text`` with DEL, C1 controls and bidirectional overrides written as ``\\uXXXX`` (the same JSON)."""
    return text.translate(_JSON_TERMINAL_TABLE)
