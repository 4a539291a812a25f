"""``horde-analytics report``: an HTML page and PNG charts from the latest snapshot (SPEC §9)."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from jobs._cli import EXIT_FAILED, EXIT_OK, EXIT_USAGE, ArgumentParser, snapshot_reader_setup
from pipeline.shell.latest_report import NoCommittedRunError, ReportTablesError, write_latest_report
from pipeline.shell.logs import terminal_safe
from pipeline.sinks.parquet_snapshot import SnapshotReadError
from pipeline.sinks.report_files import ReportFolderError, ReportUnavailableError


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


def main(argv: Sequence[str]) -> int:
    setup = snapshot_reader_setup(build_parser(), argv)
    if isinstance(setup, int):
        return setup
    args, settings = setup
    try:
        page = write_latest_report(settings.snapshot_dir, args.out)
    except (NoCommittedRunError, SnapshotReadError, ReportTablesError) as error:
        print(f"horde-analytics report: {terminal_safe(str(error))}", file=sys.stderr)
        return EXIT_FAILED
    except (ReportUnavailableError, ReportFolderError) as error:
        print(f"horde-analytics report: {error}", file=sys.stderr)
        return EXIT_USAGE
    print(page)
    return EXIT_OK
