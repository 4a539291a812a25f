"""``horde-analytics run``: one batch; prints a summary table (or the statistics as JSON)."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from datetime import UTC, datetime

from jobs._cli import (
    EXIT_FAILED,
    EXIT_LOCKED,
    EXIT_NOT_PUBLISHED,
    EXIT_OK,
    EXIT_USAGE,
    ArgumentParser,
    add_source_arguments,
    parsed_or_exit,
    settings_or_exit,
)
from jobs.audit import format_counts_line
from pipeline.contracts.masking import masked_text, masked_url
from pipeline.contracts.settings import Settings, secret_urls
from pipeline.shell.batch import RunResult, run_once
from pipeline.shell.interrupts import RunInterrupted, StopRequest, stop_on_signals
from pipeline.shell.logs import configure_logging
from pipeline.shell.republish import NothingToRepublishError, republish
from pipeline.sinks.history_store import OutOfOrderRunError
from pipeline.sinks.lock import LockHeldError, LockLostError
from pipeline.sinks.parquet_snapshot import SnapshotLockedError
from pipeline.sinks.redis_client import RedisConfigError
from pipeline.sinks.redis_publisher import PublishError, RedisPublisher
from pipeline.steps.changes import changed_models

log = logging.getLogger("jobs.run")


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(prog="horde-analytics run", description="Run one batch.")
    add_source_arguments(parser)
    parser.add_argument("--json", action="store_true", help="print the statistics JSON instead of a table")
    parser.add_argument(
        "--republish",
        action="store_true",
        help="publish the latest committed run to Redis again, computing nothing (after an exit 4)",
    )
    parser.add_argument(
        "--as-of",
        type=run_time_argument,
        help="stamp the run with this UTC time, YYYY-MM-DDTHH:MM:SSZ (backfill from archived Horde snapshots)",
    )
    parser.add_argument(
        "--rebuild-after",
        action="store_true",
        help="accept an --as-of older than the newest committed run, then rebuild model_state from history",
    )
    return parser


def run_time_argument(text: str) -> datetime:
    """``--as-of``: a UTC time to the second, ``2026-01-31T06:00:00Z``."""
    try:
        return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a UTC time like 2026-01-31T06:00:00Z") from None


def format_summary(report: RunResult) -> str:
    """A short per-category table of a finished run."""
    header = f"{'category':<18} {'models':>7} {'grouped':>8} {'nsfw':>6} {'at risk':>8} {'critical':>9}"
    lines = [f"run {report.run_id}", header, "-" * len(header)]
    outputs = report.outputs
    for (category, grouped), stats in sorted(outputs.statistics.items()):
        if grouped:
            continue
        grouped_total = outputs.statistics[(category, True)].total_models
        risk = outputs.deletion_risk.get((category, False, False))
        summary = risk.summary() if risk else None
        at_risk = str(summary.models_at_risk) if summary else "-"
        critical = str(summary.models_critical) if summary else "-"
        counts = f"{stats.total_models:>7} {grouped_total:>8} {stats.nsfw_count:>6} {at_risk:>8} {critical:>9}"
        lines.append(f"{category:<18} {counts}")
    lines += [format_counts_line(c, found) for (table, c), found in sorted(outputs.tables.items()) if table == "audit"]
    for (table, category), frame in sorted(outputs.tables.items()):
        if table == "changes":  # SPEC §10
            lines.append(f"{category}: {changed_models(frame)} models changed state since the last run")
    problems = report.problems.height
    lines.append(f"input problems: {problems}" + (" (see the log)" if problems else ""))
    if report.published_keys:
        lines.append(f"published {len(report.published_keys)} Redis keys")
    return "\n".join(lines)


def statistics_json(report: RunResult) -> str:
    """Every CategoryStatistics of the run as one JSON document."""
    return json.dumps(
        {
            "run_id": report.run_id,
            "statistics": [stats.model_dump(mode="json") for _, stats in sorted(report.outputs.statistics.items())],
        },
        indent=1,
    )


def make_publisher(settings: Settings) -> RedisPublisher | None:
    """The Redis publisher when REDIS_URL is set, None otherwise.

    Raises RedisConfigError for a malformed URL or a server that refuses the credentials or database (exit 2,
    before any work). A Redis that is merely away gets a warning: the run commits its snapshot and exits 4.
    """
    if not settings.redis_url:
        return None
    publisher = RedisPublisher.from_settings(settings)
    reason = publisher.unreachable_reason()
    if reason is not None:
        log.warning(
            "redis unreachable: the run commits its snapshot without publishing (exit 4)",
            extra={"redis": masked_url(settings.redis_url), "error": masked_text(reason, settings.redis_url)},
        )
    return publisher


def _failed(settings: Settings, message: str, code: int) -> int:
    print(f"horde-analytics: {masked_text(message, *secret_urls(settings))}", file=sys.stderr)
    return code


def execute(
    settings: Settings,
    stop: StopRequest | None = None,
    *,
    as_of: datetime | None = None,
    rebuild_after: bool = False,
) -> RunResult | int:
    """One guarded run: the report, or an exit code (SPEC §1: 1 failed, 2 configuration or a backfill older than
    the newest committed run without ``rebuild_after``, 3 lock, 128+N signal)."""
    try:
        publisher = make_publisher(settings)
    except RedisConfigError as error:
        return _failed(settings, str(error), EXIT_USAGE)
    try:
        return run_once(settings, publisher=publisher, stop=stop, as_of=as_of, rebuild_after=rebuild_after)
    except OutOfOrderRunError as error:
        return _failed(settings, f"run: {error}", EXIT_USAGE)
    except (SnapshotLockedError, LockHeldError, LockLostError) as error:
        return _failed(settings, str(error), EXIT_LOCKED)
    except RunInterrupted as error:
        log.warning("run stopped", extra={"reason": str(error)})
        return _failed(settings, f"run {error}", error.exit_code)
    except Exception as error:  # the shell's job: any failure is a failed run, reported, nothing committed
        message = masked_text(f"{type(error).__name__}: {error}", *secret_urls(settings))
        log.error("run failed", extra={"error": message})
        return _failed(settings, f"run failed, nothing committed or published: {message}", EXIT_FAILED)


def execute_republish(settings: Settings) -> int:
    """``run --republish``: the latest committed run to Redis again; 0, or the exit code of what went wrong."""
    if not settings.redis_url:
        return _failed(settings, "run --republish needs REDIS_URL (where to publish)", EXIT_USAGE)
    try:
        publisher = make_publisher(settings)
        assert publisher is not None
        run_id, published = republish(settings, publisher)
    except RedisConfigError as error:
        return _failed(settings, str(error), EXIT_USAGE)
    except (LockHeldError, LockLostError) as error:
        return _failed(settings, str(error), EXIT_LOCKED)
    except PublishError as error:
        return _failed(settings, str(error), EXIT_NOT_PUBLISHED)
    except NothingToRepublishError as error:
        return _failed(settings, str(error), EXIT_FAILED)
    print(f"republished run {run_id}: {len(published)} Redis keys")
    return EXIT_OK


def main(argv: Sequence[str]) -> int:
    args = parsed_or_exit(build_parser(), argv)
    if isinstance(args, int):
        return args
    settings = settings_or_exit(
        model_reference_source=args.reference, horde_source=args.horde, snapshot_dir=args.snapshot_dir
    )
    if isinstance(settings, int):
        return settings
    configure_logging(secret_urls=secret_urls(settings))
    if args.republish:
        return execute_republish(settings)
    with stop_on_signals(StopRequest()) as stop:
        report = execute(settings, stop, as_of=args.as_of, rebuild_after=args.rebuild_after)
    if isinstance(report, int):
        return report
    print(statistics_json(report) if args.json else format_summary(report))
    if report.not_published is not None:
        message = f"run {report.run_id} committed but not published to Redis: {report.not_published}"
        print(f"horde-analytics: {message}; `run --republish` publishes it", file=sys.stderr)
        return EXIT_NOT_PUBLISHED
    return EXIT_OK
