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
    EXIT_OK,
    EXIT_USAGE,
    ArgumentParser,
    add_source_arguments,
    parsed_or_exit,
    settings_or_exit,
)
from pipeline.batch import RunReport, run_once
from pipeline.history import changed_models
from pipeline.logs import configure_logging
from pipeline.settings import Settings, masked_text, masked_url
from pipeline.sinks.history_store import OutOfOrderRunError
from pipeline.sinks.lock import LockHeldError
from pipeline.sinks.parquet_snapshot import SnapshotLockedError
from pipeline.sinks.redis_cache import RedisPublisher, run_guard

log = logging.getLogger("jobs.run")


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(prog="horde-analytics run", description="Run one batch.")
    add_source_arguments(parser)
    parser.add_argument("--json", action="store_true", help="print the statistics JSON instead of a table")
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


def format_summary(report: RunReport) -> str:
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
    for (table, category), frame in sorted(outputs.tables.items()):
        if table == "changes":  # SPEC §10
            lines.append(f"{category}: {changed_models(frame)} models changed state since the last run")
    problems = report.problems.height
    lines.append(f"input problems: {problems}" + (" (see the log)" if problems else ""))
    if report.published_keys:
        lines.append(f"published {len(report.published_keys)} Redis keys")
    return "\n".join(lines)


def statistics_json(report: RunReport) -> str:
    """Every CategoryStatistics of the run as one JSON document."""
    return json.dumps(
        {
            "run_id": report.run_id,
            "statistics": [stats.model_dump(mode="json") for _, stats in sorted(report.outputs.statistics.items())],
        },
        indent=1,
    )


def make_publisher(settings: Settings) -> RedisPublisher | None:
    """The Redis publisher when REDIS_URL is set and Redis answers; None (with a warning) otherwise."""
    if not settings.redis_url:
        return None
    publisher = RedisPublisher.from_settings(settings)
    if not publisher.reachable():
        log.warning("redis unreachable: writing Parquet only", extra={"redis": masked_url(settings.redis_url)})
        return None
    return publisher


def execute(settings: Settings, *, as_of: datetime | None = None, rebuild_after: bool = False) -> RunReport | int:
    """One guarded run: the report, or an exit code (3 when another run holds a lock, 1 when it failed, 2 for a
    backfill older than the newest committed run without ``rebuild_after``)."""
    try:
        publisher = make_publisher(settings)
        with run_guard(publisher):
            return run_once(settings, publisher=publisher, as_of=as_of, rebuild_after=rebuild_after)
    except OutOfOrderRunError as error:
        print(f"horde-analytics run: {error}", file=sys.stderr)
        return EXIT_USAGE
    except (SnapshotLockedError, LockHeldError) as error:
        print(f"horde-analytics: {error}", file=sys.stderr)
        return EXIT_LOCKED
    except Exception as error:  # the shell's job: any failure is a failed run, reported, nothing published
        message = masked_text(f"{type(error).__name__}: {error}", settings.redis_url)
        log.error("run failed", extra={"error": message})
        print(f"horde-analytics: run failed, nothing published: {message}", file=sys.stderr)
        return EXIT_FAILED


def main(argv: Sequence[str]) -> int:
    args = parsed_or_exit(build_parser(), argv)
    if isinstance(args, int):
        return args
    settings = settings_or_exit(
        model_reference_source=args.reference, horde_source=args.horde, snapshot_dir=args.snapshot_dir
    )
    if isinstance(settings, int):
        return settings
    configure_logging()
    report = execute(settings, as_of=args.as_of, rebuild_after=args.rebuild_after)
    if isinstance(report, int):
        return report
    print(statistics_json(report) if args.json else format_summary(report))
    return EXIT_OK
