"""Retention and compaction of the snapshot store (SPEC §13), run under the snapshot lock after each commit and by
``horde-analytics compact``.

The plan (which runs to keep, which days to compact) is ``pipeline.steps.retention_plan``; this module carries it out,
one UTC day at a time, in an order that keeps every reader exact when the process is killed at any point:

1. a marker ``_maintenance/day=D`` says the day is in progress (the next maintenance redoes it);
2. each (table, category) whose kept runs are not yet in one file gets its compacted file
   ``compact-{D}-{digest of its run ids}.parquet`` (rows unchanged, ordered by run time), put whole: in a folder
   written as ``*.tmp`` and renamed, in a bucket one PUT (there is no rename; an object is absent or complete);
3. each kept run's manifest is replaced (whole) to name the compacted file for those tables;
4. the manifests of the runs retention removes are deleted (they stop being history);
5. the run index is replaced (whole) from the above;
6. the files of the day that no index row names any more are deleted (the runs' own files, older compacted files;
   a bucket's in batches of up to 1,000 objects a request);
7. the marker is removed.

A run's rows are always read from the one file its manifest (or index row) names, filtered by its ``run_id``, so
between 2 and 6 the manifest readers (``query``, ``report``, ``history``) see each row once. A plain glob over the
store (``scan_parquet("snapshots/deletion_risk/**/*.parquet")``) sees the rows of a day twice for that window
(a second or so per day, under the lock); at rest it sees every kept row once and no removed run.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
import polars as pl

from pipeline.contracts.categories import CATEGORY_FILES
from pipeline.contracts.tables import PARQUET_COMPRESSION, PARQUET_COMPRESSION_LEVEL
from pipeline.sinks.parquet_snapshot import ARTIFACTS, TABLES, artifact_keys
from pipeline.sinks.run_index import (
    JOURNAL_DIR,
    add_run,
    journaled_days,
    manifest_names,
    manifest_versions,
    reconcile_index,
    runs,
    write_index,
)
from pipeline.sinks.run_manifests import COMPACTED_KEY, MAX_MANIFEST_BYTES, manifest_key, read_manifest, write_manifest
from pipeline.sinks.store import SnapshotStore, open_store
from pipeline.sinks.store_lock import StoreFence
from pipeline.steps.collect_engine import ENGINE
from pipeline.steps.retention_plan import (
    RetentionPolicy,
    compact_file_name,
    compacted_period,
    groups_to_compact,
    kept_runs,
)

__all__ = [
    "MaintenanceReport",
    "index_committed_run",
    "maintain_after_commit",
    "maintain_store",
]

log = logging.getLogger(__name__)

#: Called after each step of the maintenance with the step's name and fields (also logged). A seam for tests that
#: stop the process at a chosen step; the job passes nothing.
StepHook = Callable[[str, dict[str, Any]], None]


@dataclass
class MaintenanceReport:
    """What one maintenance did."""

    runs_removed: int = 0
    days_compacted: int = 0
    files_written: int = 0
    files_removed: int = 0
    days: list[str] | None = None


def _step(hook: StepHook | None, step: str, level: int = logging.INFO, **fields: Any) -> None:
    log.log(level, "store maintenance", extra={"step": step, **fields})
    if hook is not None:
        hook(step, fields)


def maintain_store(
    root: Path | str | SnapshotStore,
    policy: RetentionPolicy,
    *,
    compact: bool = True,
    on_step: StepHook | None = None,
    fence: StoreFence | None = None,
) -> MaintenanceReport:
    """Apply retention (and compaction of closed days) to the store at ``root`` (a folder or a bucket). Call under
    the snapshot lock; ``fence`` (the lock held) is verified before each day's manifests and deletions, so a holder
    that lost a bucket's lock object (paused past its expiry) stops there (SnapshotLockLostError)."""
    store = open_store(root)
    report = MaintenanceReport(days=[])
    index = reconcile_index(store)
    if index.is_empty():
        return report
    plan = kept_runs(runs(index), policy)
    todo = groups_to_compact(index, plan) if compact else groups_to_compact(index.clear(), plan.clear())
    dropped = plan.filter(~pl.col("keep"))
    days = sorted(set(dropped["run_date"]) | set(todo["run_date"]) | set(journaled_days(store)))
    for day in days:
        index = _maintain_day(
            store,
            day,
            index,
            dropped_ids=set(dropped.filter(pl.col("run_date") == day)["run_id"]),
            groups=todo.filter(pl.col("run_date") == day),
            report=report,
            hook=on_step,
            fence=fence,
        )
        assert report.days is not None
        report.days.append(day)
    if days:
        log.info(
            "store maintained",
            extra={
                "days": len(days),
                "runs_removed": report.runs_removed,
                "days_compacted": report.days_compacted,
                "files_written": report.files_written,
                "files_removed": report.files_removed,
            },
        )
    return report


def _read_rows(store: SnapshotStore, sources: pl.DataFrame) -> pl.DataFrame:
    """The rows of the (path, run_id) pairs of ``sources``, each run's rows from its one file, in run-time order."""
    # Files in the order of their runs' times (an hour's file before the next hour's runs' own files), so their
    # rows concatenate in run-time order and need no sort.
    files = (
        sources.group_by("path")
        .agg(pl.col("run_id").sort(), pl.col("run_at").min(), pl.col("compacted").first())
        .sort("run_at", "path")
    )
    scans = []
    for path, run_ids, _, compacted in files.iter_rows():
        scan = pl.scan_parquet(store.scan_target(path), storage_options=store.storage_options)
        # A run's own file holds only that run, a compacted file named for exactly these runs only them; any other
        # file (a day awaiting its rewrite, a run rebuilt to its own file since) is filtered to the runs it serves.
        if compacted and path.rsplit("/", 1)[-1] != compact_file_name(compacted_period(path), run_ids):
            scan = scan.filter(pl.col("run_id").is_in(run_ids))
        scans.append(scan)
    try:
        rows = pl.concat(scans).collect(engine=ENGINE)
    except pl.exceptions.PolarsError:
        # Files of one day written by different versions (an added column): read one by one, align by name.
        rows = pl.concat([scan.collect(engine=ENGINE) for scan in scans], how="diagonal_relaxed")
    return rows if rows["run_at"].is_sorted() else rows.sort("run_at", "run_id", maintain_order=True)


def _write_table(store: SnapshotStore, key: str, frame: pl.DataFrame) -> None:
    """Put ``frame`` at ``key`` whole (a folder: ``*.tmp`` then a rename; a bucket: one PUT)."""
    buffer = io.BytesIO()
    frame.write_parquet(buffer, compression=PARQUET_COMPRESSION, compression_level=PARQUET_COMPRESSION_LEVEL)
    store.put(key, buffer.getvalue())


def _own_manifest(store: SnapshotStore, run_id: str) -> dict[str, Any] | None:
    """A kept run's manifest as stored, to switch its entries (None when gone or unusable). Nothing it names is
    opened here, so its entries pass through unchecked: readers check them (``read_manifest``)."""
    key = manifest_key(run_id)
    try:
        manifest = msgspec.json.decode(store.get(key, max_bytes=MAX_MANIFEST_BYTES))
    except FileNotFoundError:
        return None
    except (OSError, msgspec.DecodeError) as error:
        log.warning(
            "snapshot manifest not switched: it cannot be read",
            extra={"manifest": store.where(key), "problem": str(error)},
        )
        return None
    usable = isinstance(manifest, dict) and isinstance(manifest.get("tables"), dict)
    return manifest if usable else None


def _maintain_day(
    store: SnapshotStore,
    day: str,
    index: pl.DataFrame,
    *,
    dropped_ids: set[str],
    groups: pl.DataFrame,
    report: MaintenanceReport,
    hook: StepHook | None,
    fence: StoreFence | None,
) -> pl.DataFrame:
    marker = f"{JOURNAL_DIR}/day={day}"
    store.put(marker, b"")
    _step(hook, "day started", day=day, runs_removed=len(dropped_ids), files_to_write=groups.height)

    # 2. compacted files
    moved: dict[str, dict[tuple[str, str], str]] = {}  # run_id -> (table, category) -> compacted file
    day_rows = index.filter(pl.col("run_date") == day)
    for group in groups.iter_rows(named=True):
        table, category = group["table"], group["category"]
        sources = day_rows.filter(
            pl.col("table") == table, pl.col("category") == category, pl.col("run_id").is_in(group["run_ids"])
        )
        target = f"{table}/category={category}/run_date={day}/{group['target']}"
        _write_table(store, target, _read_rows(store, sources))
        report.files_written += 1
        for run_id in group["run_ids"]:
            moved.setdefault(run_id, {})[(table, category)] = target
        _step(hook, "compacted file written", logging.DEBUG, day=day, table=table, category=category)
    if groups.height:
        report.days_compacted += 1

    # 3. kept runs' manifests name the compacted files
    if fence is not None:
        fence.verify()
    switched: list[str] = []
    for run_id, tables in sorted(moved.items()):
        manifest = _own_manifest(store, run_id)
        if manifest is None:
            continue
        for (table, category), target in tables.items():
            entry = manifest["tables"].get(table)
            entry = entry.get(category) if isinstance(entry, dict) else None
            if not isinstance(entry, dict):  # not one of ours: nothing to switch
                continue
            entry = {key: value for key, value in entry.items() if key != "path"}
            manifest["tables"][table][category] = entry | {COMPACTED_KEY: target}
        write_manifest(store, manifest)
        switched.append(run_id)
        _step(hook, "manifest switched", logging.DEBUG, day=day, run_id=run_id)
    versions = manifest_versions(store) if switched else {}  # one listing, not one request per manifest

    # 4. removed runs stop being history
    for run_id in sorted(dropped_ids):
        store.delete(manifest_key(run_id))
        store.delete_all([key for name in ARTIFACTS for key in artifact_keys(name, run_id)])
        report.runs_removed += 1
        _step(hook, "manifest removed", logging.DEBUG, day=day, run_id=run_id)

    # 5. the index follows
    moved_to = pl.DataFrame(
        [
            {"run_id": run_id, "table": table, "category": category, "target": target}
            for run_id in switched
            for (table, category), target in moved[run_id].items()
        ],
        schema={"run_id": pl.String, "table": pl.String, "category": pl.String, "target": pl.String},
    )
    rewritten = pl.DataFrame(
        {"run_id": switched, "rewritten": [versions.get(run_id) for run_id in switched]},
        schema={"run_id": pl.String, "rewritten": pl.String},
    )
    index = (
        index.filter(~pl.col("run_id").is_in(dropped_ids))
        .join(moved_to, on=["run_id", "table", "category"], how="left")
        .join(rewritten, on="run_id", how="left")
        .with_columns(
            pl.coalesce("target", "path").alias("path"),
            (pl.col("compacted") | pl.col("target").is_not_null()).alias("compacted"),
            pl.when(pl.col("run_id").is_in(switched))
            .then(pl.col("rewritten"))
            .otherwise(pl.col("manifest_version"))
            .alias("manifest_version"),
        )
        .drop("target", "rewritten")
    )
    write_index(store, index)
    _step(hook, "index written", day=day)

    # 6. files no index row names
    if fence is not None:
        fence.verify()
    referenced = set(index.filter(pl.col("run_date") == day)["path"].drop_nulls())
    unindexed = manifest_names(store) - set(index["run_id"])  # a manifest that cannot be read: its run may return
    # every category the store has (a day redone after a kill may have no index rows left to name its own)
    categories = sorted(
        set(CATEGORY_FILES) | set(index["category"].drop_nulls()) | set(day_rows["category"].drop_nulls())
    )
    for table in TABLES:
        for category in categories:
            folder = f"{table}/category={category}/run_date={day}"
            unnamed = [
                key
                for key in store.list(folder)
                if key not in referenced
                and key.endswith(".parquet")
                and key.rsplit("/", 1)[-1].removesuffix(".parquet") not in unindexed
            ]
            if unnamed:
                store.delete_all(unnamed)  # a bucket: one request per 1,000 objects
                report.files_removed += len(unnamed)
                _step(hook, "files removed", logging.DEBUG, day=day, folder=folder, files=len(unnamed))
            store.remove_empty(folder)

    store.delete(marker)
    _step(hook, "day finished", day=day)
    return index


def index_committed_run(root: Path | str | SnapshotStore, run_id: str) -> None:
    """Add the run just committed to the run index (under the lock, right after its manifest).

    The run is already history: a failure here is logged, never a failed run; the next run reconciles the index.
    """
    store = open_store(root)
    try:
        manifest = read_manifest(store, run_id)
        if manifest is not None:
            add_run(store, manifest)
    except Exception as error:  # committed already: the next run reconciles
        log.error("run index not updated", extra={"root": store.location, "reason": f"{type(error).__name__}: {error}"})


def maintain_after_commit(
    root: Path | str | SnapshotStore, policy: RetentionPolicy, fence: StoreFence | None = None
) -> MaintenanceReport | None:
    """Retention and compaction after a commit (under the lock). A failure is logged and left to the next run,
    which finishes any half-done day; the run itself is committed and stays a success."""
    store = open_store(root)
    try:
        return maintain_store(store, policy, fence=fence)
    except Exception as error:  # committed already: the next run retries
        log.error(
            "store maintenance failed", extra={"root": store.location, "reason": f"{type(error).__name__}: {error}"}
        )
        return None
