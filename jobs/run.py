"""``horde-analytics run``: one batch; prints a summary table (or the statistics as JSON)."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Sequence

from jobs._cli import (
    EXIT_FAILED,
    EXIT_LOCKED,
    EXIT_OK,
    ArgumentParser,
    add_source_arguments,
    parsed_or_exit,
    settings_or_exit,
)
from jobs.audit import format_counts_line
from pipeline.batch import RunReport, run_once
from pipeline.logs import configure_logging
from pipeline.settings import Settings, masked_text, masked_url
from pipeline.sinks.lock import LockHeldError
from pipeline.sinks.parquet_snapshot import SnapshotLockedError
from pipeline.sinks.redis_cache import RedisPublisher, run_guard

log = logging.getLogger("jobs.run")


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(prog="horde-analytics run", description="Run one batch.")
    add_source_arguments(parser)
    parser.add_argument("--json", action="store_true", help="print the statistics JSON instead of a table")
    return parser


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
    lines += [format_counts_line(c, found) for (table, c), found in sorted(outputs.tables.items()) if table == "audit"]
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


def execute(settings: Settings) -> RunReport | int:
    """One guarded run: the report, or an exit code (3 when another run holds a lock, 1 when it failed)."""
    try:
        publisher = make_publisher(settings)
        with run_guard(publisher):
            return run_once(settings, publisher=publisher)
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
    report = execute(settings)
    if isinstance(report, int):
        return report
    print(statistics_json(report) if args.json else format_summary(report))
    return EXIT_OK
