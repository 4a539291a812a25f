"""``horde-analytics report``: an HTML page and PNG charts from the latest snapshot (SPEC §9)."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import polars as pl

from jobs._cli import EXIT_FAILED, EXIT_OK, EXIT_USAGE, ArgumentParser, snapshot_reader_setup
from pipeline.shell.logs import terminal_safe
from pipeline.sinks.parquet_snapshot import SnapshotReadError, manifests, run_tables
from pipeline.sinks.report_files import ReportFolderError, ReportUnavailableError, write_report
from pipeline.sinks.store import FolderStore, SnapshotStore, open_store
from pipeline.steps.report import REPORT_TABLES
from pipeline.steps.report_history import HISTORY_DAYS, POINT_COLUMNS, LineChart, daily_runs, usage_charts, usage_points
from pipeline.steps.report_sections import report_sections


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(
        prog="horde-analytics report",
        description="Write report.html (self-contained, opens without network) and one PNG per chart.",
    )
    parser.add_argument("--snapshot-dir", help="where the snapshots are (SNAPSHOT_DIR)")
    parser.add_argument(
        "--out",
        help=(
            "the report folder: absent, empty or an earlier report, replaced when done"
            " (default: SNAPSHOT_DIR/report; ./report for an s3:// store)"
        ),
    )
    return parser


def _usage_over_time(
    root: SnapshotStore, runs: list[dict[str, Any]]
) -> tuple[dict[str, tuple[LineChart, ...]], str | None]:
    """category -> usage-over-time charts from the newest committed run of each day (SPEC §9, §10), and a note
    when the history is too short to draw them."""
    days = daily_runs(runs)
    by_category: dict[str, dict[str, pl.DataFrame]] = {}
    for manifest in days:
        for (_, category), risk in run_tables(root, manifest, ["deletion_risk"], POINT_COLUMNS).items():
            by_category.setdefault(category, {})[str(manifest["run_at"])[:10]] = risk
    charts = {
        category: usage_charts(category, usage_points(risk_by_day)) for category, risk_by_day in by_category.items()
    }
    if len(days) < 2:
        return charts, (
            f"Usage over time appears once committed runs span two or more days (one point per day, the last "
            f"{HISTORY_DAYS} days); this store has runs on {len(days)} day(s)."
        )
    return charts, None


def main(argv: Sequence[str]) -> int:
    setup = snapshot_reader_setup(build_parser(), argv)
    if isinstance(setup, int):
        return setup
    args, settings = setup
    root = open_store(settings.snapshot_dir)
    runs = manifests(root)
    if not runs:
        print(
            f"horde-analytics report: no committed snapshot in {root.location}; run `horde-analytics run` first",
            file=sys.stderr,
        )
        return EXIT_FAILED
    latest = runs[-1]
    try:
        sections = report_sections(run_tables(root, latest, REPORT_TABLES), *_usage_over_time(root, runs))
    except SnapshotReadError as error:
        print(f"horde-analytics report: {terminal_safe(str(error))}", file=sys.stderr)
        return EXIT_FAILED
    except pl.exceptions.PolarsError as error:  # committed files that are Parquet but not the tables it needs
        message = f"the snapshot of run {latest['run_id']} in {root.location} is not readable as report tables"
        print(f"horde-analytics report: {message} ({terminal_safe(str(error))})", file=sys.stderr)
        return EXIT_FAILED
    # an object store is not a place to write a page into: its report goes to ./report unless --out says where
    default_out = root.root / "report" if isinstance(root, FolderStore) else Path("report")
    out_dir = Path(args.out) if args.out else default_out
    try:
        page = write_report(sections, out_dir, run_id=latest["run_id"], run_at=latest["run_at"])
    except (ReportUnavailableError, ReportFolderError) as error:
        print(f"horde-analytics report: {error}", file=sys.stderr)
        return EXIT_USAGE
    print(page)
    return EXIT_OK
