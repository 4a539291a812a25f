"""``horde-analytics`` / ``python -m jobs``: one console script, one module per command."""

from __future__ import annotations

import gc
import importlib
import sys
from collections.abc import Sequence
from types import ModuleType

COMMANDS = {
    "run": ("jobs.run", "run one batch: load, analyse, snapshot, publish"),
    "hydrate": ("jobs.hydrate", "run batches on a schedule (the cache hydrator)"),
    "parse": ("jobs.parse", "parse text model names, print JSON lines"),
    "query": ("jobs.query", "filter the latest deletion-risk snapshot by preset"),
    "report": ("jobs.report", "an HTML page and PNG charts from the latest snapshot"),
    "audit": ("jobs.audit", "what is wrong in the reference (latest snapshot), filtered"),
    "compact": ("jobs.compact", "retention and compaction of the snapshot store (runs do it after each commit)"),
    "history": ("jobs.history", "one model's timeline over the committed runs; --rebuild the state"),
}
USAGE = (
    "usage: horde-analytics {"
    + ",".join(COMMANDS)
    + "} [options]\n\n"
    + "\n".join(f"  {name:8} {help_text}" for name, (_, help_text) in COMMANDS.items())
)


def command_module(name: str) -> ModuleType:
    """The module of command ``name``, imported with Python's cyclic garbage collector paused.

    Importing a command loads Polars, Pydantic, redis and the package: tens of thousands of objects that live as
    long as the process, which the collector would otherwise walk ~150 times meanwhile, finding next to nothing
    to free.
    """
    collecting = gc.isenabled()
    gc.disable()
    try:
        return importlib.import_module(COMMANDS[name][0])
    finally:
        if collecting:
            gc.enable()


def main(argv: Sequence[str] | None = None) -> int:
    """Dispatch to a command's ``main``; exit codes per SPEC §1 (0 ok, 1 failed, 2 usage, 3 locked, 4 not published)."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in {"-h", "--help"}:
        print(USAGE)
        return 0 if args else 2
    if args[0] not in COMMANDS:
        print(f"horde-analytics: unknown command {args[0]!r}\n{USAGE}", file=sys.stderr)
        return 2
    result: int = command_module(args[0]).main(args[1:])
    return result


if __name__ == "__main__":
    sys.exit(main())
