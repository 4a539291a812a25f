"""The report of the latest committed run (SPEC §9): its tables and usage over time read from the store, the page
and charts written."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from pipeline.sinks.parquet_snapshot import run_tables
from pipeline.sinks.report_files import write_report
from pipeline.sinks.run_index import latest_manifest, load_index, runs
from pipeline.sinks.run_manifests import read_manifest
from pipeline.sinks.store import FolderStore, SnapshotStore, open_store
from pipeline.steps.report import REPORT_TABLES
from pipeline.steps.report_history import HISTORY_DAYS, POINT_COLUMNS, LineChart, daily_runs, usage_charts, usage_points
from pipeline.steps.report_sections import report_sections

__all__ = ["NoCommittedRunError", "ReportTablesError", "report_folder", "write_latest_report"]


class NoCommittedRunError(LookupError):
    """The store holds no committed run to report on."""


class ReportTablesError(ValueError):
    """The latest run's committed files are Parquet but not the tables the report needs."""


def _usage_over_time(store: SnapshotStore) -> tuple[dict[str, tuple[LineChart, ...]], str | None]:
    """category -> usage-over-time charts from the newest committed run of each day (SPEC §9, §10), and a note
    when the history is too short to draw them. The days' runs are found through the run index (SPEC §13): only
    their manifests are read, never every manifest."""
    indexed = runs(load_index(store)).select("run_id", "run_at").to_dicts()
    found = (read_manifest(store, run["run_id"]) for run in daily_runs(indexed))
    days = [manifest for manifest in found if manifest is not None]
    by_category: dict[str, dict[str, pl.DataFrame]] = {}
    for manifest in days:
        for (_, category), risk in run_tables(store, manifest, ["deletion_risk"], POINT_COLUMNS).items():
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


def report_folder(store: SnapshotStore, out: str | None) -> Path:
    """Where the report goes: ``out`` when given, else the store's ``report`` folder; an object store is not a
    place to write a page into, so its report goes to ``./report``."""
    if out:
        return Path(out)
    return store.root / "report" if isinstance(store, FolderStore) else Path("report")


def write_latest_report(snapshot_dir: str | Path, out: str | None = None) -> Path:
    """Write the report of the latest committed run in ``snapshot_dir`` to ``report_folder``; the page's path.

    Raises NoCommittedRunError, SnapshotReadError (a committed file that cannot be read), ReportTablesError, and
    the report's own ReportUnavailableError and ReportFolderError.
    """
    store = open_store(snapshot_dir)
    latest = latest_manifest(store)
    if latest is None:
        raise NoCommittedRunError(f"no committed snapshot in {store.location}; run `horde-analytics run` first")
    try:
        sections = report_sections(run_tables(store, latest, REPORT_TABLES), *_usage_over_time(store))
    except pl.exceptions.PolarsError as error:
        message = f"the snapshot of run {latest['run_id']} in {store.location} is not readable as report tables"
        raise ReportTablesError(f"{message} ({error})") from error
    return write_report(sections, report_folder(store, out), run_id=latest["run_id"], run_at=latest["run_at"])
