"""The index of committed runs (SPEC §13): one small Arrow table, ``_index/runs.arrow``, one row per run, table
and category with the file that holds the rows, so the latest run, a day's runs and a table's history are found
without reading every manifest.

The manifests stay the source of truth (a manifest is the commit, §7.2); the index is a projection of them,
rewritten atomically (tmp file, then a rename) after each commit and by the maintenance of the store. Readers
use it, checked against one listing of the manifests' names (never a read of every manifest): a run committed
but not yet indexed (killed between its manifest and the index update) is read from its manifest, a run whose
manifest is gone is dropped. When the index is missing they build it in memory from the manifests; the next run
(or ``compact``) rewrites it under the lock.

A run's rows are in its own file (``{run_id}.parquet``) or, once its day is compacted, in the day's compacted file
together with the other runs of that day: readers always select the rows of a run by its ``run_id`` from the one
file the index (or the manifest) names for it, so a row is read exactly once even while a compaction is half done.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import polars as pl

from pipeline.contracts.schemas import RUN_COLUMNS
from pipeline.sinks.parquet_snapshot import (
    COMPACTED_KEY,
    MANIFEST_DIR,
    SnapshotReadError,
    manifests,
    read_manifest_file,
)
from pipeline.sinks.store import FolderStore, SnapshotStore, open_store
from pipeline.steps.collect_engine import ENGINE

log = logging.getLogger(__name__)

#: Arrow IPC rather than Parquet, so a glob over the store's ``*.parquet`` files never mistakes it for a table.
INDEX_PATH: Final = "_index/runs.arrow"
#: Marker files of the days a maintenance was working on (``retention.py``); their runs are re-read on reconcile.
JOURNAL_DIR: Final = "_maintenance"
INDEX_SCHEMA: Final = pl.Schema(
    [
        *RUN_COLUMNS.items(),
        ("run_date", pl.String()),
        ("table", pl.String()),
        ("category", pl.String()),
        ("path", pl.String()),
        ("compacted", pl.Boolean()),
        ("rows", pl.Int64()),
        # the manifest file's modification time when it was read: a manifest rewritten since (by compaction, by a
        # rebuild of history) is read again by the next reconcile
        ("manifest_mtime_ns", pl.Int64()),
    ]
)
_FILE_COLUMN: Final = "__index_file"


def entry_path(entry: dict[str, Any]) -> str:
    """The store-relative file that holds one manifest entry's rows."""
    return str(entry.get(COMPACTED_KEY) or entry["path"])


def manifest_rows(manifest: dict[str, Any], mtime_ns: int | None = None) -> pl.DataFrame:
    """The index rows of one manifest (a run without tables still gets one row, so it is still a run)."""
    run_at = datetime.fromisoformat(manifest["run_at"]).astimezone(UTC)
    rows: list[dict[str, Any]] = [
        {
            "table": table,
            "category": category,
            "path": entry_path(entry),
            "compacted": COMPACTED_KEY in entry,
            "rows": entry.get("rows"),
        }
        for table, categories in sorted(manifest.get("tables", {}).items())
        for category, entry in sorted(categories.items())
    ] or [{"table": None, "category": None, "path": None, "compacted": None, "rows": None}]
    frame = pl.DataFrame(rows, schema={name: INDEX_SCHEMA[name] for name in rows[0]})
    return frame.with_columns(
        pl.lit(manifest["run_id"], dtype=INDEX_SCHEMA["run_id"]).alias("run_id"),
        pl.lit(run_at, dtype=INDEX_SCHEMA["run_at"]).alias("run_at"),
        pl.lit(run_at.date().isoformat()).alias("run_date"),
        pl.lit(mtime_ns, dtype=pl.Int64).alias("manifest_mtime_ns"),
    ).select(INDEX_SCHEMA.names())


def manifest_path(root: Path, run_id: str) -> Path:
    return root / MANIFEST_DIR / f"{run_id}.json"


def read_manifest(root: Path, run_id: str) -> dict[str, Any] | None:
    """One committed run's manifest, or None when it is gone or unusable (reported, path named)."""
    return read_manifest_file(manifest_path(root, run_id))


def manifest_names(root: Path) -> set[str]:
    """The run ids that have a manifest (one listing of ``_runs``, no reads)."""
    folder = root / MANIFEST_DIR
    return {path.stem for path in folder.glob("*.json")} if folder.is_dir() else set()


def manifest_mtime_ns(root: Path, run_id: str) -> int | None:
    try:
        return manifest_path(root, run_id).stat().st_mtime_ns
    except OSError:
        return None


def manifest_stamps(root: Path) -> dict[str, int]:
    """run id -> modification time of its manifest (one listing of ``_runs`` with the times, no reads)."""
    folder = root / MANIFEST_DIR
    if not folder.is_dir():
        return {}
    with os.scandir(folder) as entries:
        return {
            entry.name.removesuffix(".json"): entry.stat().st_mtime_ns
            for entry in entries
            if entry.name.endswith(".json")
        }


def index_from_manifests(root: Path, run_ids: set[str] | None = None) -> pl.DataFrame:
    """Index rows read from the manifests of ``run_ids`` (default: every manifest)."""
    frames = []
    for run_id in sorted(manifest_names(root) if run_ids is None else run_ids):
        mtime = manifest_mtime_ns(root, run_id)  # before the read: a rewrite after it is seen as a change
        manifest = read_manifest(root, run_id)
        if manifest is not None:
            frames.append(manifest_rows(manifest, mtime))
    return pl.concat(frames) if frames else INDEX_SCHEMA.to_frame()


def read_index(root: Path) -> pl.DataFrame | None:
    """The stored index, or None when there is none (or it cannot be read: it is rebuilt, nothing is lost)."""
    path = root / INDEX_PATH
    if not path.is_file():
        return None
    try:
        return pl.read_ipc(path).select(INDEX_SCHEMA.names()).cast(INDEX_SCHEMA)
    except (OSError, pl.exceptions.PolarsError) as error:
        log.error("unreadable run index ignored", extra={"path": str(path), "reason": str(error)})
        return None


def write_index(root: Path, index: pl.DataFrame) -> None:
    """Replace the index atomically (readers see the old one or the new one, never a part)."""
    path = root / INDEX_PATH
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    index.sort("run_at", "run_id", "table", "category", nulls_last=False).write_ipc(tmp, compression="zstd")
    os.replace(tmp, path)


def load_index(root: Path) -> pl.DataFrame:
    """The index readers use: the stored one, checked against one listing of the manifests' names (no reads):
    runs committed since it was written (a run killed between its manifest and the index update, a manifest put
    there by hand) are read and added, runs whose manifest is gone are dropped. No stored index: built from every
    manifest (and written by the next run, which holds the lock)."""
    index = read_index(root)
    names = manifest_names(root)
    if index is None:
        if names:
            log.warning("no run index; reading every manifest", extra={"path": str(root / INDEX_PATH)})
        return index_from_manifests(root, names)
    indexed = set(index["run_id"].unique())
    missing, gone = names - indexed, indexed - names
    if not missing and not gone:
        return index
    return pl.concat([index.filter(~pl.col("run_id").is_in(gone)), index_from_manifests(root, missing)])


def journaled_days(root: Path) -> list[str]:
    """The days a maintenance was working on when it stopped (oldest first)."""
    folder = root / JOURNAL_DIR
    return sorted(path.name.removeprefix("day=") for path in folder.glob("day=*")) if folder.is_dir() else []


def reconcile_index(root: Path) -> pl.DataFrame:
    """Bring the stored index in line with the manifests and return it. Call under the snapshot lock.

    One listing of ``_runs`` with modification times: runs with a manifest but no index rows, or whose manifest
    changed since it was indexed, are read and (re)indexed; index rows of runs without a manifest are dropped.
    No index yet: built from every manifest once.
    """
    index = read_index(root)
    stamps = manifest_stamps(root)
    names = set(stamps)
    if index is None:
        index = index_from_manifests(root, names)
        write_index(root, index)
        log.info("run index built", extra={"runs": len(names)})
        return index
    indexed = index.group_by("run_id").agg(pl.col("manifest_mtime_ns").first())
    gone = set(indexed["run_id"]) - names
    reread = names - set(indexed["run_id"]) | {
        run_id
        for run_id, mtime in indexed.iter_rows()
        if run_id in stamps and (mtime is None or mtime != stamps[run_id])
    }
    if not reread and not gone:
        return index
    fresh = index_from_manifests(root, reread)
    index = pl.concat([index.filter(~pl.col("run_id").is_in(reread | gone)), fresh])
    write_index(root, index)
    log.info("run index reconciled", extra={"read": len(reread), "removed": len(gone)})
    return index


def add_run(root: Path, manifest: dict[str, Any]) -> None:
    """Add a just-committed run to the index (under the lock, right after its manifest)."""
    index = read_index(root)
    if index is None:
        reconcile_index(root)
        return
    rows = manifest_rows(manifest, manifest_mtime_ns(root, manifest["run_id"]))
    write_index(root, pl.concat([index.filter(pl.col("run_id") != manifest["run_id"]), rows]))


def runs(index: pl.DataFrame) -> pl.DataFrame:
    """One row per run (``run_id``, ``run_at``, ``run_date``), oldest first."""
    return index.select("run_id", "run_at", "run_date").unique("run_id").sort("run_at", "run_id")


def manifests_newest_first(root: Path | str | SnapshotStore) -> Iterator[dict[str, Any]]:
    """The committed runs' manifests, newest first: a folder store's through its index, each read only when the
    caller asks for it; an object store's (no index) listed and read by ``manifests``."""
    store = open_store(root)
    if not isinstance(store, FolderStore):
        yield from reversed(manifests(store))
        return
    for run_id in reversed(runs(load_index(store.root))["run_id"].to_list()):
        manifest = read_manifest(store.root, run_id)
        if manifest is not None:
            yield manifest


def latest_manifest(root: Path | str | SnapshotStore) -> dict[str, Any] | None:
    """The newest committed run's manifest, or None for an empty store."""
    return next(manifests_newest_first(root), None)


def scan_indexed(root: Path, entries: pl.DataFrame, **scan_options: Any) -> pl.LazyFrame | None:
    """The rows of the index ``entries`` (one table), each run's rows from the one file named for it.
    ``scan_options`` go to ``pl.scan_parquet`` (default: hive partitioning)."""
    if entries.is_empty():
        return None
    paths = entries["path"].unique().sort().to_list()
    for path in paths:
        if not (root / path).is_file():
            raise SnapshotReadError(f"snapshot file {root / path} is missing (named by the run index of {root})")
    wanted = entries.select((pl.lit(str(root) + os.sep) + pl.col("path")).alias(_FILE_COLUMN), pl.col("run_id")).lazy()
    files = [str(root / path) for path in paths]
    scan = pl.scan_parquet(files, **({"hive_partitioning": True} | scan_options), include_file_paths=_FILE_COLUMN)
    if not entries["compacted"].any():
        return scan.drop(_FILE_COLUMN)
    # A compacted file may also hold runs that are read from elsewhere (a half-done compaction) or are no longer
    # kept (a day awaiting its rewrite): only the (file, run) pairs of the index count.
    return scan.join(wanted, on=[_FILE_COLUMN, "run_id"], how="semi").drop(_FILE_COLUMN)


def table_history(root: Path, table: str, category: str | None = None) -> pl.LazyFrame | None:
    """All committed runs of ``table`` as one lazy frame (hive columns ``category`` and ``run_date``)."""
    index = load_index(root)
    entries = index.filter(pl.col("table") == table)
    if category is not None:
        entries = entries.filter(pl.col("category") == category)
    return scan_indexed(root, entries)


def latest_table(root: Path, table: str, category: str) -> pl.DataFrame | None:
    """``table`` for ``category`` from the newest committed run that wrote it, or None."""
    entries = load_index(root).filter(pl.col("table") == table, pl.col("category") == category)
    if entries.is_empty():
        return None
    newest = entries.sort("run_at", "run_id").tail(1)
    scan = scan_indexed(root, newest)
    assert scan is not None
    try:
        return scan.filter(pl.col("run_id") == newest["run_id"][0]).collect(engine=ENGINE)
    except (pl.exceptions.PolarsError, OSError) as error:
        path = root / newest["path"][0]
        raise SnapshotReadError(f"snapshot file {path} cannot be read ({type(error).__name__}: {error})") from None
