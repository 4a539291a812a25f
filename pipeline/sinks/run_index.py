"""The index of committed runs (SPEC §13): one small Arrow table, ``_index/runs.arrow``, one row per run, table
and category with the file that holds the rows, so the latest run, a day's runs and a table's history are found
without reading every manifest. The same on a folder and on a bucket (``pipeline.sinks.store``).

The manifests stay the source of truth (a manifest is the commit, §7.2); the index is a projection of them,
replaced whole (a folder: tmp file, then a rename; a bucket: one put) after each commit and by the maintenance of
the store. Readers use it, checked against a listing of only the manifest names newer than its newest run (never a
read, nor a listing, of every manifest): a run committed but not yet indexed (killed between its manifest and the
index update) is read from its manifest; while a maintenance is marked, every name is listed and a run whose
manifest is gone is dropped. When the index is missing they build it in memory from the manifests; the next run
(or ``compact``) writes it under the lock.

A run's rows are in its own file (``{run_id}.parquet``) or, once its day is compacted, in the day's compacted file
together with the other runs of that day: readers always select the rows of a run by its ``run_id`` from the one
file the index (or the manifest) names for it, so a row is read exactly once even while a compaction is half done.
"""

from __future__ import annotations

import io
import logging
import re
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import polars as pl

from pipeline.contracts.schemas import RUN_COLUMNS
from pipeline.sinks.run_manifests import (
    COMPACTED_KEY,
    MANIFEST_DIR,
    SnapshotReadError,
    entry_path,
    manifest_key,
    read_manifest,
)
from pipeline.sinks.store import SnapshotStore, open_store
from pipeline.steps.collect_engine import ENGINE

log = logging.getLogger(__name__)

#: Arrow IPC rather than Parquet, so a glob over the store's ``*.parquet`` files never mistakes it for a table.
INDEX_PATH: Final = "_index/runs.arrow"
#: Marker objects of the days a maintenance was working on (``retention.py``); their runs are re-read on reconcile.
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
        # the manifest's version (``SnapshotStore.versions``: a file's identity and time, an object's ETag) when it
        # was read: a manifest rewritten since (by compaction, by a rebuild of history) is read again on reconcile
        ("manifest_version", pl.String()),
    ]
)
_FILE_COLUMN: Final = "__index_file"
#: The start of a run id a run makes (``shell/batch.py``): its run time to the second, so ids sort by time.
_RUN_TIME: Final = re.compile(r"\d{8}T\d{6}Z")
#: Up to this many files are checked one request each before a scan; more, by one listing per table and category.
_CHECKED_ONE_BY_ONE: Final = 8

Root = Path | str | SnapshotStore


def manifest_rows(manifest: dict[str, Any], version: str | None = None) -> pl.DataFrame:
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
        pl.lit(version, dtype=pl.String).alias("manifest_version"),
    ).select(INDEX_SCHEMA.names())


def manifest_versions(root: Root) -> dict[str, str]:
    """run id -> version of its manifest (one listing of ``_runs``, no reads)."""
    listed = open_store(root).versions(MANIFEST_DIR)
    return {
        key.rsplit("/", 1)[-1].removesuffix(".json"): version
        for key, version in listed.items()
        if key.endswith(".json")
    }


def manifest_names(root: Root) -> set[str]:
    """The run ids that have a manifest (one listing of ``_runs``, no reads)."""
    return {_run_id(key) for key in open_store(root).list(MANIFEST_DIR, recursive=False) if key.endswith(".json")}


def _run_id(manifest: str) -> str:
    return manifest.rsplit("/", 1)[-1].removesuffix(".json")


def index_from_manifests(
    root: Root, run_ids: Iterable[str] | None = None, versions: dict[str, str] | None = None
) -> pl.DataFrame:
    """Index rows read from the manifests of ``run_ids`` (default: every manifest). ``versions``: a listing taken
    before the reads (default: taken now), so a manifest rewritten after it is seen as changed next time."""
    store = open_store(root)
    versions = manifest_versions(store) if versions is None else versions
    frames = []
    for run_id in sorted(versions if run_ids is None else run_ids):
        manifest = read_manifest(store, run_id)
        if manifest is not None:
            frames.append(manifest_rows(manifest, versions.get(run_id)))
    return pl.concat(frames) if frames else INDEX_SCHEMA.to_frame()


def read_index(root: Root) -> pl.DataFrame | None:
    """The stored index, or None when there is none (or it cannot be read: it is rebuilt, nothing is lost)."""
    store = open_store(root)
    try:
        data = store.get(INDEX_PATH)
    except FileNotFoundError:
        return None
    except OSError as error:
        log.error("unreadable run index ignored", extra={"path": store.where(INDEX_PATH), "reason": str(error)})
        return None
    try:
        index = pl.read_ipc(io.BytesIO(data))
        if "manifest_version" not in index.columns:  # written before bucket support: every manifest is re-read once
            index = index.with_columns(pl.lit(None, dtype=pl.String).alias("manifest_version"))
        return index.select(INDEX_SCHEMA.names()).cast(INDEX_SCHEMA)
    except (OSError, pl.exceptions.PolarsError) as error:
        log.error("unreadable run index ignored", extra={"path": store.where(INDEX_PATH), "reason": str(error)})
        return None


def write_index(root: Root, index: pl.DataFrame) -> None:
    """Replace the index whole (readers see the old one or the new one, never a part)."""
    buffer = io.BytesIO()
    index.sort("run_at", "run_id", "table", "category", nulls_last=False).write_ipc(buffer, compression="zstd")
    open_store(root).put(INDEX_PATH, buffer.getvalue())


def load_index(root: Root) -> pl.DataFrame:
    """The index readers use, checked against the manifests' names (no reads): runs committed since it was written
    are read and added; only the names from the newest indexed run's second on are listed (run ids begin with
    their time; ``list_after`` is S3's ``StartAfter``). Runs whose manifest is gone exist only while a maintenance
    is marked in ``_maintenance/``: then every name is listed and they are dropped. No stored index: built from
    every manifest. Left to the next run's reconcile: a ``--rebuild-after`` backfill (older than the newest run)
    killed before its index update, and a manifest removed by hand."""
    store = open_store(root)
    index = read_index(store)
    if index is None:
        names = manifest_names(store)
        if names:
            log.warning("no run index; reading every manifest", extra={"path": store.where(INDEX_PATH)})
        return index_from_manifests(store, names, {})
    indexed = set(index["run_id"].unique())
    start = _newer_than(index)
    if start is None or journaled_days(store):
        names = manifest_names(store)
        gone = indexed - names
    else:
        names = {_run_id(key) for key in store.list_after(MANIFEST_DIR, start) if key.endswith(".json")}
        gone = set()
    missing = names - indexed
    if not missing and not gone:
        return index
    return pl.concat([index.filter(~pl.col("run_id").is_in(gone)), index_from_manifests(store, missing, {})])


def _newer_than(index: pl.DataFrame) -> str | None:
    """The key after which unindexed manifests sort: the second of the newest run id (a run of the same second is
    still listed); None when run ids do not begin with a time (then every name is listed)."""
    newest = index["run_id"].max()
    if not isinstance(newest, str) or not _RUN_TIME.match(newest):
        return None
    return f"{MANIFEST_DIR}/{newest[:16]}"


def journaled_days(root: Root) -> list[str]:
    """The days a maintenance was working on when it stopped (oldest first)."""
    keys = open_store(root).list(JOURNAL_DIR, recursive=False)
    return sorted(key.rsplit("/", 1)[-1].removeprefix("day=") for key in keys if "/day=" in key)


def reconcile_index(root: Root) -> pl.DataFrame:
    """Bring the stored index in line with the manifests and return it. Call under the snapshot lock.

    One listing of ``_runs`` with versions: runs with a manifest but no index rows, or whose manifest changed
    since it was indexed, are read and (re)indexed; index rows of runs without a manifest are dropped.
    No index yet: built from every manifest once.
    """
    store = open_store(root)
    index = read_index(store)
    versions = manifest_versions(store)
    if index is None:
        index = index_from_manifests(store, versions, versions)
        write_index(store, index)
        log.info("run index built", extra={"runs": len(versions)})
        return index
    indexed = index.group_by("run_id").agg(pl.col("manifest_version").first())
    gone = set(indexed["run_id"]) - set(versions)
    reread = set(versions) - set(indexed["run_id"]) | {
        run_id
        for run_id, version in indexed.iter_rows()
        if run_id in versions and (version is None or version != versions[run_id])
    }
    if not reread and not gone:
        return index
    fresh = index_from_manifests(store, reread, versions)
    index = pl.concat([index.filter(~pl.col("run_id").is_in(reread | gone)), fresh])
    write_index(store, index)
    log.info("run index reconciled", extra={"read": len(reread), "removed": len(gone)})
    return index


def add_run(root: Root, manifest: dict[str, Any]) -> None:
    """Add a just-committed run to the index (under the lock, right after its manifest)."""
    store = open_store(root)
    index = read_index(store)
    if index is None:
        reconcile_index(store)
        return
    rows = manifest_rows(manifest, store.version(manifest_key(manifest["run_id"])))
    write_index(store, pl.concat([index.filter(pl.col("run_id") != manifest["run_id"]), rows]))


def runs(index: pl.DataFrame) -> pl.DataFrame:
    """One row per run (``run_id``, ``run_at``, ``run_date``), oldest first."""
    return index.select("run_id", "run_at", "run_date").unique("run_id").sort("run_at", "run_id")


def manifests_newest_first(root: Root) -> Iterator[dict[str, Any]]:
    """The committed runs' manifests, newest first, found through the run index; each read only when the caller
    asks for it."""
    store = open_store(root)
    for run_id in reversed(runs(load_index(store))["run_id"].to_list()):
        manifest = read_manifest(store, run_id)
        if manifest is not None:
            yield manifest


def latest_manifest(root: Root) -> dict[str, Any] | None:
    """The newest committed run's manifest, or None for an empty store."""
    return next(manifests_newest_first(root), None)


def check_present(store: SnapshotStore, paths: list[str]) -> None:
    """SnapshotReadError naming the first of ``paths`` the store does not hold (a few: one request each; more: one
    listing per table and category, never one request per file of a year)."""
    if len(paths) <= _CHECKED_ONE_BY_ONE:
        present = {path for path in paths if store.exists(path)}
    else:
        folders = sorted({"/".join(path.split("/")[:2]) for path in paths})
        present = {key for folder in folders for key in store.list(folder)}
    for path in paths:
        if path not in present and not store.exists(path):  # (a path outside the usual layout is not listed)
            raise SnapshotReadError(
                f"snapshot file {store.where(path)} is missing (named by the run index of {store.location})"
            )


def scan_indexed(root: Root, entries: pl.DataFrame, **scan_options: Any) -> pl.LazyFrame | None:
    """The rows of the index ``entries`` (one table), each run's rows from the one file named for it.
    ``scan_options`` go to ``pl.scan_parquet`` (default: hive partitioning)."""
    if entries.is_empty():
        return None
    store = open_store(root)
    paths = entries["path"].unique().sort().to_list()
    check_present(store, paths)
    targets = pl.DataFrame(
        {"path": paths, _FILE_COLUMN: [store.scan_target(path) for path in paths]},
        schema={"path": pl.String, _FILE_COLUMN: pl.String},
    )
    options = {"hive_partitioning": True, "storage_options": store.storage_options} | scan_options
    scan = pl.scan_parquet(targets[_FILE_COLUMN].to_list(), **options, include_file_paths=_FILE_COLUMN)
    if not entries["compacted"].any():
        return scan.drop(_FILE_COLUMN)
    # A compacted file may also hold runs that are read from elsewhere (a half-done compaction) or are no longer
    # kept (a day awaiting its rewrite): only the (file, run) pairs of the index count.
    wanted = entries.join(targets, on="path").select(_FILE_COLUMN, "run_id").lazy()
    return scan.join(wanted, on=[_FILE_COLUMN, "run_id"], how="semi").drop(_FILE_COLUMN)


def table_history(root: Root, table: str, category: str | None = None) -> pl.LazyFrame | None:
    """All committed runs of ``table`` as one lazy frame (hive columns ``category`` and ``run_date``)."""
    index = load_index(root)
    entries = index.filter(pl.col("table") == table)
    if category is not None:
        entries = entries.filter(pl.col("category") == category)
    return scan_indexed(root, entries)


def latest_table(root: Root, table: str, category: str) -> pl.DataFrame | None:
    """``table`` for ``category`` from the newest committed run that wrote it, or None."""
    store = open_store(root)
    entries = load_index(store).filter(pl.col("table") == table, pl.col("category") == category)
    if entries.is_empty():
        return None
    newest = entries.sort("run_at", "run_id").tail(1)
    scan = scan_indexed(store, newest)
    assert scan is not None
    try:
        return scan.filter(pl.col("run_id") == newest["run_id"][0]).collect(engine=ENGINE)
    except (pl.exceptions.PolarsError, OSError) as error:
        where = store.where(newest["path"][0])
        raise SnapshotReadError(f"snapshot file {where} cannot be read ({type(error).__name__}: {error})") from None
