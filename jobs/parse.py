"""``horde-analytics parse``: parsed text model names, one JSON object per line (SPEC §3)."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence

from jobs._cli import EXIT_OK, ArgumentParser, parsed_or_exit
from pipeline.contracts.schemas import PARSED_NAME_SCHEMA
from pipeline.steps.names import ENGINES, parsed_name_frame


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(
        prog="horde-analytics parse",
        description="Print the §3.1 fields of each NAME (stdin, one per line, when none) as JSON lines, in order.",
        epilog="Input that is not UTF-8 is parsed with U+FFFD in place of each bad byte and reported on stderr; "
        "every line still gets its output line and the exit code stays 0.",
    )
    parser.add_argument("--engine", choices=ENGINES, default="polars", help="vectorized (default) or fallback")
    parser.add_argument("names", nargs="*", metavar="NAME")
    return parser


def format_parsed(names: Sequence[str], engine: str) -> list[str]:
    """One compact JSON line per name with exactly the §3.1 keys."""
    frame = parsed_name_frame(names, engine)  # type: ignore[arg-type]
    fields = PARSED_NAME_SCHEMA.names()
    return [json.dumps({field: row[field] for field in fields}) for row in frame.iter_rows(named=True)]


def _text(raw: bytes, where: str) -> str:
    """``raw`` as UTF-8; a byte that is not UTF-8 becomes U+FFFD and is reported on stderr (the name is still
    parsed, so every input line keeps its output line, as ``jq`` does)."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as error:
        print(
            f"horde-analytics parse: {where}: not UTF-8 (byte 0x{raw[error.start]:02x} at offset {error.start}); "
            "parsed with U+FFFD in its place",
            file=sys.stderr,
        )
        return raw.decode("utf-8", "replace")


def input_names(arguments: Sequence[str]) -> list[str]:
    """The names to parse: the arguments, else the lines of stdin, as valid text."""
    if arguments:  # the OS hands undecodable argument bytes over as lone surrogates
        return [_text(os.fsencode(name), f"argument {number}") for number, name in enumerate(arguments, start=1)]
    binary = getattr(sys.stdin, "buffer", None)
    if binary is None:  # a text stream handed in (already decoded)
        return [line.rstrip("\r\n") for line in sys.stdin]
    return [_text(line.rstrip(b"\r\n"), f"line {number}") for number, line in enumerate(binary, start=1)]


def main(argv: Sequence[str]) -> int:
    args = parsed_or_exit(build_parser(), argv)
    if isinstance(args, int):
        return args
    names = input_names(args.names)
    for line in format_parsed(names, args.engine):
        print(line)
    return EXIT_OK
