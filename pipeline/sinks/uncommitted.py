"""The sweep of runs that never committed (SPEC §7.2): a run killed before its manifest leaves files that no reader
follows; the next run deletes them under the lock, finding them from the run's pending marker
(``parquet_snapshot.pending_key``), never by listing the store's data files."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Final

from pipeline.sinks.parquet_snapshot import ARTIFACT_SUFFIXES, ARTIFACTS, PENDING_DIR, TABLES
from pipeline.sinks.run_manifests import MANIFEST_DIR, manifest_key
from pipeline.sinks.store import SnapshotStore, open_store
from pipeline.steps.retention_plan import is_compacted_file

__all__ = ["sweep_uncommitted"]

log = logging.getLogger(__name__)

#: Put after the one full sweep of a store written before pending markers: from then on markers suffice.
_MARKED_SINCE: Final = f"{PENDING_DIR}/_swept"


def sweep_uncommitted(root: Path | str | SnapshotStore) -> list[str]:
    """Delete leftovers of runs that never committed (tables, artifacts and ``*.tmp`` files without a manifest);
    the keys removed.

    Call only while holding the snapshot lock: a running run's files have no manifest yet either. Each run that
    writes a file first puts its pending marker (``_pending/{run_id}.json``: its day and categories) and removes it
    after its manifest, so the sweep lists only ``_pending/``: a marker whose run has a manifest is removed (killed
    right after its commit), one without has exactly that run's files deleted (its keys follow from the marker; its
    day folders are listed from its run id on, for ``*.tmp`` files). No data folder is listed otherwise. A store
    written before markers is swept once by listing everything (``_sweep_unmarked``). No manifest is read: the
    files of a run whose manifest exists but cannot be read are kept (a repaired manifest brings the run back).
    """
    store = open_store(root)
    removed: list[str] = []
    if not store.exists(_MARKED_SINCE):
        removed += _sweep_unmarked(store)
        store.put(_MARKED_SINCE, b"")
    for marker in store.list(PENDING_DIR, recursive=False):
        run_id = marker.rsplit("/", 1)[-1].removesuffix(".json")
        if marker.endswith(".tmp"):  # a marker's own put, killed (a folder)
            store.delete(marker)
        elif marker.endswith(".json") and run_id:
            if not store.exists(manifest_key(run_id)):
                removed += _sweep_run(store, marker, run_id)
            store.delete(marker)
    if removed:
        log.warning("swept uncommitted snapshot files", extra={"count": len(removed)})
    return removed


def _sweep_run(store: SnapshotStore, marker: str, run_id: str) -> list[str]:
    """Delete the files of the uncommitted run ``run_id`` its pending marker leads to; the keys removed."""
    try:
        pending = json.loads(store.get(marker, max_bytes=1024 * 1024))
        run_date, categories = str(pending["run_date"]), [str(category) for category in pending["categories"]]
    except (OSError, ValueError, KeyError, TypeError) as error:
        log.error(
            "pending marker unreadable; its run's files stay",
            extra={"marker": store.where(marker), "reason": str(error)},
        )
        return []
    folders = [f"{table}/category={category}/run_date={run_date}" for table in TABLES for category in categories]
    folders += [MANIFEST_DIR, *(f"_{name}" for name in ARTIFACTS)]
    removed = []
    for folder in folders:
        own = f"{folder}/{run_id}."  # {run_id}.parquet, .arrow, .json and their *.tmp; never another run's
        keys = [key for key in store.list_after(folder, f"{folder}/{run_id}") if key.startswith(own)]
        if folder == MANIFEST_DIR:
            keys = [key for key in keys if key.endswith(".tmp")]
        store.delete_all(keys)
        removed += keys
    return removed


def _sweep_unmarked(store: SnapshotStore) -> list[str]:
    """The sweep of a store whose runs wrote no pending markers: every data file is listed (once per store)."""
    listed = store.list(MANIFEST_DIR, recursive=False)
    kept = {key.rsplit("/", 1)[-1].removesuffix(".json") for key in listed if key.endswith(".json")}
    removed: list[str] = []
    for table in TABLES:
        for key in store.list(table):
            name = key.rsplit("/", 1)[-1]
            # Compacted day files (``compact-*``) belong to many runs: the maintenance of the store removes them.
            orphan = name.endswith(".tmp") or (
                name.endswith(".parquet") and name.removesuffix(".parquet") not in kept and not is_compacted_file(name)
            )
            if orphan and key.count("/") == 3:  # {table}/category=*/run_date=*/{file}: nothing else is ours
                store.delete(key)
                removed.append(key)
    for key in listed:
        if key.endswith(".tmp"):
            store.delete(key)
            removed.append(key)
    for name in ARTIFACTS:
        for key in store.list(f"_{name}", recursive=False):
            file_name = key.rsplit("/", 1)[-1]
            run_id = next((file_name.removesuffix(end) for end in ARTIFACT_SUFFIXES if file_name.endswith(end)), None)
            if file_name.endswith(".tmp") or run_id not in kept:
                store.delete(key)
                removed.append(key)
    return removed
