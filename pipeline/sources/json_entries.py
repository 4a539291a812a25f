"""The checked path's JSON reader: the ``(name, record)`` entries of one ``{name: record}`` file, one at a time.

Why hand-written, beside msgspec (the typed path, ``record_fields.typed_entries``, which decodes clean files 3-5x
faster than ``json``): no library decoder we know of gives what the checked path exists for. msgspec and
``json.loads`` build the whole object (a repeated name silently replaces the first, SPEC §2.1 wants the first kept
and the repeat reported), and fail the whole file at the first bad value without saying which record holds it; an
``object_pairs_hook`` sees repeats but runs on every nested object and still holds every record at once. This reader
walks the top-level object with the standard library's C scanner (``scanstring``, ``raw_decode`` per record):
entries in file order with repeats, a too-deep or non-text record reported as ``Unusable`` while the others load,
malformed JSON named by file, line and column, and one record in memory at a time beyond the chunk being built.

Compared with ijson 3.6 (yajl2_c backend, ``kvitems(file, "")``: streaming entries, repeats included) and
``json.loads``, each in its own process (``bench/json_decoders.py``, 3 rounds interleaved, load average ~4-5 on 2
cores; CPU seconds, peak RSS above the process after its imports):

    text_generation.json, 1.1 MiB:    this 0.020 s, +2 MiB;    ijson 0.008 s, +0.3 MiB;  json 0.008 s, +4 MiB
    the same x100 (82 MiB, 215,700):  this 1.57 s, +164 MiB;   ijson 0.65 s, +0.5 MiB;   json 1.13 s, +352 MiB

ijson is faster and streams, but not what this path is for: a byte that is not UTF-8 fails the whole file
(``IncompleteJSONError`` at the first bad record; here that record is reported and the rest load), a ``\\ud800``
escape silently becomes ``?`` (here: reported), and a record nested 100,000 levels deep (200 KB) exhausts memory
(MemoryError under a 3 GB limit, the process killed without one; here: skipped without recursion and reported); its
errors quote a context snippet, not line and column. This path runs only on a file the typed path refuses, so its
speed matters less than naming every bad record, and the file's bytes are held anyway (the input hash reads them).
Kept hand-written, for those reasons, not for speed.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from json.decoder import scanstring  # type: ignore[attr-defined]
from typing import Any, Final

from pipeline.sources.untrusted_json import (
    NOT_UNICODE,
    TOO_DEEP,
    Unusable,
    entry_problem,
    surrogates_escaped,
    value_end,
)


class ReferenceInputError(ValueError):
    """An input that cannot be used at all (malformed JSON, a missing required file, too many bad records)."""


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


_DECODER: Final = json.JSONDecoder(parse_constant=_no_constant)
_WHITESPACE: Final = re.compile(r"[ \t\n\r]*")
_WHITESPACE_CHARS: Final = frozenset(" \t\n\r")


def _skip(text: str, position: int) -> int:
    """The position after any JSON whitespace at ``position``."""
    if text[position : position + 1] not in _WHITESPACE_CHARS:  # compact JSON: no regex call
        return position
    match = _WHITESPACE.match(text, position)
    assert match is not None  # the pattern matches the empty string
    return match.end()


def _malformed(source_file: str, text: str, position: int, message: str) -> ReferenceInputError:
    line = text.count("\n", 0, position) + 1
    column = position - text.rfind("\n", 0, position)
    return ReferenceInputError(
        f"{source_file}: malformed JSON at line {line} column {column} (char {position}): {message}"
    )


def top_level_entries(text: str, source_file: str) -> Iterator[tuple[str, Any]]:
    """The ``(name, record)`` pairs of a JSON object, in file order, duplicates included.

    Decodes one entry at a time with the standard library's C scanner (no hook on nested objects, no dict of
    every record at once); malformed JSON raises with the file name, line and column. A record nested deeper
    than MAX_NESTING or holding text that is not valid Unicode comes as ``Unusable`` (reported, never used).
    """
    position = _skip(text, 0)
    if text[position : position + 1] != "{":
        if text[position : position + 1] in ("[", '"') or text[position : position + 1].isdigit():
            try:
                kind = type(_DECODER.raw_decode(text, position)[0]).__name__
            except RecursionError:
                kind = "list"
            except ValueError:
                kind = "something else"
            raise ReferenceInputError(f"{source_file}: expected a JSON object {{name: record}}, got {kind}")
        raise _malformed(source_file, text, position, "Expecting '{'")
    position = _skip(text, position + 1)
    if text[position : position + 1] == "}":
        position += 1
    else:
        while True:
            if text[position : position + 1] != '"':
                raise _malformed(source_file, text, position, "Expecting property name enclosed in double quotes")
            try:
                key, position = scanstring(text, position + 1)
                position = _skip(text, position)
                if text[position : position + 1] != ":":
                    raise _malformed(source_file, text, position, "Expecting ':' delimiter")
                start = _skip(text, position + 1)
                try:
                    value, position = _DECODER.raw_decode(text, start)
                except RecursionError:  # 100k levels: skipped without recursion, the record reported
                    value, position = Unusable(TOO_DEEP), value_end(text, start)
                except json.JSONDecodeError:
                    raise
                except ValueError as error:  # NaN or Infinity
                    raise _malformed(source_file, text, start, str(error)) from None
                else:
                    problem = entry_problem(value, text, start, position)
                    value = Unusable(problem) if problem else value
            except json.JSONDecodeError as error:
                raise _malformed(source_file, text, error.pos, error.msg) from None
            if surrogates_escaped(key) != key:  # a name that is not valid text: reported by its escaped spelling
                key, value = surrogates_escaped(key), Unusable(f"name {NOT_UNICODE}")
            yield key, value
            position = _skip(text, position)
            delimiter = text[position : position + 1]
            if delimiter == "}":
                position += 1
                break
            if delimiter != ",":
                raise _malformed(source_file, text, position, "Expecting ',' delimiter")
            position = _skip(text, position + 1)
    if _skip(text, position) != len(text):
        raise _malformed(source_file, text, _skip(text, position), "Extra data")
