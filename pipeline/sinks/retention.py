"""Retention and compaction of the snapshot store (SPEC §13), run under the snapshot lock after each commit and by
``horde-analytics compact``.

The plan (which runs to keep, which days to compact) is ``pipeline.steps.retention_plan``; this module carries it out,
one UTC day at a time, in an order that keeps every reader exact when the process is killed at any point:

1. a marker ``_maintenance/day=D`` says the day is in progress (the next maintenance redoes it);
2. each (table, category) whose kept runs are not yet in one file gets its compacted file, written as ``*.tmp``
   and renamed to ``compact-{D}-{digest of its run ids}.parquet`` (rows unchanged, ordered by run time);
3. each kept run's manifest is rewritten (atomically) to name the compacted file for those tables;
4. the manifests of the runs retention removes are deleted (they stop being history);
5. the run index is rewritten (atomically) from the above;
6. the files of the day that no index row names any more are deleted (the runs' own files, older compacted files);
7. the marker is removed.

A run's rows are always read from the one file its manifest (or index row) names, filtered by its ``run_id``, so
between 2 and 6 the manifest readers (``query``, ``report``, ``history``) see each row once. A plain glob over the
store (``scan_parquet("snapshots/deletion_risk/**/*.parquet")``) sees the rows of a day twice for that window
(a second or so per day, under the lock); at rest it sees every kept row once and no removed run.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import polars as pl

from pipeline.sinks.parquet_snapshot import ARTIFACTS, COMPACTED_KEY, TABLES, artifact_keys
from pipeline.sinks.run_index import (
    JOURNAL_DIR,
    add_run,
    journaled_days,
    manifest_mtime_ns,
    manifest_names,
    manifest_path,
    read_manifest,
    reconcile_index,
    runs,
    write_index,
)
from pipeline.steps.collect_engine import ENGINE
from pipeline.steps.retention_plan import RetentionPolicy, groups_to_compact, kept_runs

log = logging.getLogger(__name__)

#: Called after each step of the maintenance with the step's name and fields (also logged). A seam for tests that
#: stop the process at a chosen step; the job passes nothing.
StepHook = Callable[[str, dict[str, Any]], None]
_COMPRESSION: Final = "zstd"
_COMPRESSION_LEVEL: Final = 3
_FILE_COLUMN: Final = "__source_file"


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
    root: Path, policy: RetentionPolicy, *, compact: bool = True, on_step: StepHook | None = None
) -> MaintenanceReport:
    """Apply retention (and compaction of closed days) to the store at ``root``. Call under the snapshot lock."""
    report = MaintenanceReport(days=[])
    index = reconcile_index(root)
    if index.is_empty():
        return report
    plan = kept_runs(runs(index), policy)
    todo = groups_to_compact(index, plan) if compact else groups_to_compact(index.clear(), plan.clear())
    dropped = plan.filter(~pl.col("keep"))
    days = sorted(set(dropped["run_date"]) | set(todo["run_date"]) | set(journaled_days(root)))
    for day in days:
        index = _maintain_day(
            root,
            day,
            index,
            dropped_ids=set(dropped.filter(pl.col("run_date") == day)["run_id"]),
            groups=todo.filter(pl.col("run_date") == day),
            report=report,
            hook=on_step,
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


def _read_rows(root: Path, sources: pl.DataFrame) -> pl.DataFrame:
    """The rows of the (path, run_id) pairs of ``sources``, each run's rows from its one file."""
    paths = sources["path"].unique().sort().to_list()
    wanted = sources.select((pl.lit(str(root) + os.sep) + pl.col("path")).alias(_FILE_COLUMN), "run_id").lazy()
    try:
        scan = pl.scan_parquet([str(root / path) for path in paths], include_file_paths=_FILE_COLUMN)
        rows = scan.join(wanted, on=[_FILE_COLUMN, "run_id"], how="semi").drop(_FILE_COLUMN).collect(engine=ENGINE)
    except pl.exceptions.PolarsError:
        # Files of one day written by different versions (an added column): read one by one, align by name.
        frames = [
            pl.read_parquet(root / path).join(
                sources.filter(pl.col("path") == path).select("run_id"), on="run_id", how="semi"
            )
            for path in paths
        ]
        rows = pl.concat(frames, how="diagonal_relaxed")
    # The files are read in run-id order, which is run-time order for runs the job wrote: sort only when not.
    return rows if rows["run_at"].is_sorted() else rows.sort("run_at", "run_id", maintain_order=True)


def _write_atomically(frame: pl.DataFrame, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    frame.write_parquet(tmp, compression=_COMPRESSION, compression_level=_COMPRESSION_LEVEL)
    os.replace(tmp, path)


def _write_manifest(root: Path, manifest: dict[str, Any]) -> None:
    path = manifest_path(root, manifest["run_id"])
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(manifest, indent=1, sort_keys=True))
    os.replace(tmp, path)


def _maintain_day(
    root: Path,
    day: str,
    index: pl.DataFrame,
    *,
    dropped_ids: set[str],
    groups: pl.DataFrame,
    report: MaintenanceReport,
    hook: StepHook | None,
) -> pl.DataFrame:
    marker = root / JOURNAL_DIR / f"day={day}"
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.touch()
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
        _write_atomically(_read_rows(root, sources), root / target)
        report.files_written += 1
        for run_id in group["run_ids"]:
            moved.setdefault(run_id, {})[(table, category)] = target
        _step(hook, "compacted file written", logging.DEBUG, day=day, table=table, category=category)
    if groups.height:
        report.days_compacted += 1

    # 3. kept runs' manifests name the compacted files
    switched_at: dict[str, int | None] = {}
    for run_id, tables in sorted(moved.items()):
        manifest = read_manifest(root, run_id)
        if manifest is None:
            continue
        for (table, category), target in tables.items():
            entry = manifest["tables"].get(table, {}).get(category)
            if entry is None:  # dropped by the reader's path checks: nothing of ours to switch
                continue
            entry = {key: value for key, value in entry.items() if key != "path"}
            manifest["tables"][table][category] = entry | {COMPACTED_KEY: target}
        _write_manifest(root, manifest)
        switched_at[run_id] = manifest_mtime_ns(root, run_id)
        _step(hook, "manifest switched", logging.DEBUG, day=day, run_id=run_id)

    # 4. removed runs stop being history
    for run_id in sorted(dropped_ids):
        manifest_path(root, run_id).unlink(missing_ok=True)
        for name in ARTIFACTS:
            for key in artifact_keys(name, run_id):
                (root / key).unlink(missing_ok=True)
        report.runs_removed += 1
        _step(hook, "manifest removed", logging.DEBUG, day=day, run_id=run_id)

    # 5. the index follows
    switched = pl.DataFrame(
        [
            {"run_id": run_id, "table": table, "category": category, "target": target}
            for run_id, tables in moved.items()
            for (table, category), target in tables.items()
            if run_id in switched_at
        ],
        schema={"run_id": pl.String, "table": pl.String, "category": pl.String, "target": pl.String},
    )
    rewritten = pl.DataFrame(
        {"run_id": list(switched_at), "rewritten_ns": list(switched_at.values())},
        schema={"run_id": pl.String, "rewritten_ns": pl.Int64},
    )
    index = (
        index.filter(~pl.col("run_id").is_in(dropped_ids))
        .join(switched, on=["run_id", "table", "category"], how="left")
        .join(rewritten, on="run_id", how="left")
        .with_columns(
            pl.coalesce("target", "path").alias("path"),
            (pl.col("compacted") | pl.col("target").is_not_null()).alias("compacted"),
            pl.coalesce("rewritten_ns", "manifest_mtime_ns").alias("manifest_mtime_ns"),
        )
        .drop("target", "rewritten_ns")
    )
    write_index(root, index)
    _step(hook, "index written", day=day)

    # 6. files no index row names
    referenced = set(index.filter(pl.col("run_date") == day)["path"].drop_nulls())
    unindexed = manifest_names(root) - set(index["run_id"])  # a manifest that cannot be read: its run may return
    for table in TABLES:
        for path in sorted((root / table).glob(f"category=*/run_date={day}/*.parquet")):
            relative = path.relative_to(root).as_posix()
            if relative in referenced or path.stem in unindexed:
                continue
            path.unlink(missing_ok=True)
            report.files_removed += 1
            _step(hook, "file removed", logging.DEBUG, day=day, path=relative)
        for folder in (root / table).glob(f"category=*/run_date={day}"):
            if not any(folder.iterdir()):
                folder.rmdir()

    marker.unlink(missing_ok=True)
    _step(hook, "day finished", day=day)
    return index


def index_committed_run(root: Path, run_id: str) -> None:
    """Add the run just committed to the run index (under the lock, right after its manifest).

    The run is already history: a failure here is logged, never a failed run; the next run reconciles the index.
    """
    try:
        manifest = read_manifest(root, run_id)
        if manifest is not None:
            add_run(root, manifest)
    except Exception as error:  # committed already: the next run reconciles
        log.error("run index not updated", extra={"root": str(root), "reason": f"{type(error).__name__}: {error}"})


def maintain_after_commit(root: Path, policy: RetentionPolicy) -> MaintenanceReport | None:
    """Retention and compaction after a commit (under the lock). A failure is logged and left to the next run,
    which finishes any half-done day; the run itself is committed and stays a success."""
    try:
        return maintain_store(root, policy)
    except Exception as error:  # committed already: the next run retries
        log.error("store maintenance failed", extra={"root": str(root), "reason": f"{type(error).__name__}: {error}"})
        return None
