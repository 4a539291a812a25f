"""``horde-analytics parse``: parsed text model names, one JSON object per line (SPEC §3)."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence

from jobs._cli import EXIT_OK, ArgumentParser, parsed_or_exit
from pipeline.names import ENGINES, parsed_name_frame
from pipeline.schemas import PARSED_NAME_SCHEMA


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(
        prog="horde-analytics parse",
        description="Print the §3.1 fields of each NAME (stdin, one per line, when none) as JSON lines, in order.",
    )
    parser.add_argument("--engine", choices=ENGINES, default="polars", help="vectorized (default) or fallback")
    parser.add_argument("names", nargs="*", metavar="NAME")
    return parser


def format_parsed(names: Sequence[str], engine: str) -> list[str]:
    """One compact JSON line per name with exactly the §3.1 keys."""
    frame = parsed_name_frame(names, engine)  # type: ignore[arg-type]
    fields = PARSED_NAME_SCHEMA.names()
    return [json.dumps({field: row[field] for field in fields}) for row in frame.iter_rows(named=True)]


def main(argv: Sequence[str]) -> int:
    args = parsed_or_exit(build_parser(), argv)
    if isinstance(args, int):
        return args
    names = args.names or [line.rstrip("\r\n") for line in sys.stdin]
    for line in format_parsed(names, args.engine):
        print(line)
    return EXIT_OK
