"""Limits on decoded JSON that the checked decoders enforce (SPEC §2.2): nesting depth and valid Unicode text.

A hostile file may nest 100k levels (the decoders then raise RecursionError) or carry text that Polars cannot
hold: a byte that is not UTF-8 (decoded with ``surrogateescape``, it becomes a lone surrogate) or a ``\\ud800``
escape. Such an entry is bad input, named with its file and entry, never an unhandled exception.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from json.decoder import scanstring  # type: ignore[attr-defined]
from typing import Any, Final

#: Deeper nesting than any real payload holds (a record is 4 levels deep): anything beyond is bad input.
MAX_NESTING: Final = 64
TOO_DEEP: Final = f"nested deeper than {MAX_NESTING} levels"
NOT_UNICODE: Final = "holds text that is not valid UTF-8 or a lone surrogate (\\ud800-\\udfff)"

#: A lone surrogate in decoded text (from ``surrogateescape`` or an unpaired ``\uXXXX`` escape).
_SURROGATE: Final = re.compile("[\ud800-\udfff]")
#: In JSON text: a raw surrogate, or an escape that may decode to one (a valid pair also matches: then the decoded
#: value is looked at).
_SURROGATE_HINT: Final = re.compile("[\ud800-\udfff]|\\\\u[dD][89a-fA-F]")
_STRUCTURE: Final = re.compile(r'["\[\]{}]')


@dataclass(frozen=True, slots=True)
class Unusable:
    """An entry that was read but must not be used; ``reason`` says why."""

    reason: str


def surrogates_escaped(text: str) -> str:
    """``text`` with any lone surrogate written as a ``\\udcXX`` escape, so that it can be logged and stored."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8") if _SURROGATE.search(text) else text


def _too_deep(value: Any) -> bool:
    """Whether containers nest deeper than MAX_NESTING (walked without recursion)."""
    if type(value) not in (dict, list):
        return False
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_NESTING:
            return True
        children = item.values() if type(item) is dict else item
        stack.extend((child, depth + 1) for child in children if type(child) in (dict, list))
    return False


def _holds_surrogate(value: Any) -> bool:
    stack = [value]
    while stack:
        item = stack.pop()
        if type(item) is str:
            if _SURROGATE.search(item):
                return True
        elif type(item) is dict:
            stack.extend(item)
            stack.extend(item.values())
        elif type(item) is list:
            stack.extend(item)
    return False


def value_problem(value: Any) -> str | None:
    """Why a decoded value must not be used (too deep, or text that is not valid Unicode), or None."""
    if _too_deep(value):
        return TOO_DEEP
    return NOT_UNICODE if _holds_surrogate(value) else None


def entry_problem(value: Any, text: str, start: int, end: int) -> str | None:
    """``value_problem`` of the value decoded from ``text[start:end]``. The text is looked at first (C speed), so
    that only a value that might break a limit is walked."""
    if type(value) not in (dict, list, str):
        return None
    if text.count("[", start, end) + text.count("{", start, end) > MAX_NESTING and _too_deep(value):
        return TOO_DEEP
    if _SURROGATE_HINT.search(text, start, end) and _holds_surrogate(value):
        return NOT_UNICODE
    return None


def value_end(text: str, start: int) -> int:
    """The position after the array or object starting at ``start``, found without recursion (for a value too
    deeply nested to decode). Raises ``json.JSONDecodeError`` when it does not end."""
    depth = 0
    position = start
    while match := _STRUCTURE.search(text, position):
        position = match.end()
        token = match.group()
        if token == '"':
            position = scanstring(text, position)[1]
        elif token in "[{":
            depth += 1
        else:
            depth -= 1
            if depth == 0:
                return position
    raise json.JSONDecodeError("Unterminated array or object", text, start)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def checked_text(raw: bytes) -> str:
    """``raw`` as text; bytes that are not UTF-8 become lone surrogates, so the entry holding them is named."""
    return raw.decode("utf-8", "surrogateescape")


def checked_loads(text: str, **hooks: Any) -> Any:
    """``json.loads`` that refuses NaN and Infinity (not JSON, and no count) and raises ``ValueError`` instead of
    ``RecursionError`` on nesting too deep to decode."""
    try:
        return json.loads(text, parse_constant=_no_constant, **hooks)
    except RecursionError:
        raise ValueError(TOO_DEEP) from None
