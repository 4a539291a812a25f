"""``horde-analytics compact``: retention and compaction of the snapshot store on demand (SPEC §13).

Every run already does this after its commit; the command is for a store that no job has run on for a while, for
changed retention settings, or to finish the work of a maintenance that was killed. It takes the same locks as a
run (the store's, and Redis' run lock when ``REDIS_URL`` is set), so it never works beside a run.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from dataclasses import asdict

from jobs._cli import EXIT_FAILED, EXIT_LOCKED, EXIT_OK, EXIT_USAGE, ArgumentParser, parsed_or_exit, settings_or_exit
from jobs.run import make_publisher
from pipeline.contracts.masking import masked_text
from pipeline.contracts.rules import retention_policy
from pipeline.contracts.settings import secret_urls
from pipeline.shell.logs import configure_logging
from pipeline.shell.store_upkeep import compact_store
from pipeline.sinks.lock import LockHeldError, LockLostError
from pipeline.sinks.parquet_snapshot import SnapshotLockedError
from pipeline.sinks.redis_client import RedisConfigError


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(
        prog="horde-analytics compact",
        description="Apply retention (SNAPSHOT_KEEP_ALL_DAYS, SNAPSHOT_KEEP_DAILY_DAYS) and compact closed days.",
    )
    parser.add_argument("--snapshot-dir", help="the snapshot store (SNAPSHOT_DIR)")
    parser.add_argument("--json", action="store_true", help="print what was done as one JSON object")
    return parser


def main(argv: Sequence[str]) -> int:
    args = parsed_or_exit(build_parser(), argv)
    if isinstance(args, int):
        return args
    settings = settings_or_exit(snapshot_dir=args.snapshot_dir)
    if isinstance(settings, int):
        return settings
    configure_logging(secret_urls=secret_urls(settings))
    policy = retention_policy(settings)

    def failed(message: str, code: int) -> int:
        print(f"horde-analytics compact: {masked_text(message, *secret_urls(settings))}", file=sys.stderr)
        return code

    try:
        publisher = make_publisher(settings)
    except RedisConfigError as error:
        return failed(str(error), EXIT_USAGE)
    try:
        report = compact_store(settings.snapshot_dir, policy, publisher.run_lock() if publisher is not None else None)
    except (SnapshotLockedError, LockHeldError, LockLostError) as error:
        return failed(str(error), EXIT_LOCKED)
    except Exception as error:  # a failure is reported; the next run or compact finishes the work
        return failed(f"compaction stopped ({type(error).__name__}: {error}); run it again to finish", EXIT_FAILED)
    if args.json:
        print(json.dumps(asdict(report)))
    else:
        print(
            f"{len(report.days or [])} days maintained: {report.runs_removed} runs removed, "
            f"{report.days_compacted} days compacted, {report.files_written} files written, "
            f"{report.files_removed} files removed"
        )
    return EXIT_OK
