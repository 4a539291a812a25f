"""The commit records of a snapshot store: one manifest per committed run, ``_runs/{run_id}.json`` (SPEC §7.2, §12).

A manifest is the commit: a run without one is not history. Every reader goes through ``manifests`` or
``read_manifest``, which report an unusable manifest with its key and ignore it, and drop any entry whose path would
lead outside the store.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime
from pathlib import Path
from typing import Any, Final

import msgspec

from pipeline.sinks.store import SnapshotStore, open_store

log = logging.getLogger(__name__)


class SnapshotReadError(RuntimeError):
    """A committed snapshot file cannot be read (missing, truncated, not Parquet); the message names it."""


MANIFEST_DIR: Final = "_runs"
#: A manifest entry whose rows were compacted into the day's file (SPEC §13) names that file under this key instead
#: of ``path``: the file holds other runs' rows too, so a reader must select this run's rows by ``run_id``.
COMPACTED_KEY: Final = "compacted_path"

#: A manifest names a few dozen files; anything bigger is not one of ours (and is not read into memory).
MAX_MANIFEST_BYTES: Final = 16 * 1024 * 1024


def _manifest_problem(store: SnapshotStore, key: str) -> tuple[dict[str, Any] | None, str | None]:
    """The manifest at ``key`` (its unsafe table entries dropped, each with a warning), or why it is unusable."""
    try:
        return _checked_manifest(store, key)
    except (OSError, ValueError, RecursionError) as error:  # ValueError covers JSON and UTF-8 decoding errors
        return None, f"{type(error).__name__}: {error}"


def _checked_manifest(store: SnapshotStore, key: str) -> tuple[dict[str, Any] | None, str | None]:
    """``_manifest_problem``, but FileNotFoundError (and any other read error) is raised."""
    # the store refuses a folder, FIFO or device named *.json (opening a FIFO would block the run) and a
    # symlink that leads out of the store
    manifest = json.loads(store.get(key, max_bytes=MAX_MANIFEST_BYTES))
    run_id = key.rsplit("/", 1)[-1].removesuffix(".json")
    if not isinstance(manifest, dict):
        return None, "not a JSON object"
    if manifest.get("run_id") != run_id:
        return None, f"run_id {manifest.get('run_id')!r} is not the file's name"
    try:
        datetime.fromisoformat(manifest["run_at"])
    except (KeyError, TypeError, ValueError):
        return None, f"run_at {manifest.get('run_at')!r} is not an ISO timestamp"
    tables = manifest.get("tables")
    if not isinstance(tables, dict) or not all(isinstance(entries, dict) for entries in tables.values()):
        return None, "tables is not an object of objects"
    safe = {
        table: {
            category: entry for category, entry in entries.items() if _safe_entry(store, key, table, category, entry)
        }
        for table, entries in tables.items()
    }
    return {**manifest, "tables": safe}, None


def _safe_entry(store: SnapshotStore, manifest_key: str, table: str, category: str, entry: Any) -> bool:
    """True when ``entry`` names a file inside the store; a manifest never makes a reader open anything else
    (an absolute path, ``..``, a symlink that leads out of the store: ``SnapshotStore.contains``)."""
    # after compaction (SPEC §13) an entry names the day's file under ``compacted_path`` instead of ``path``
    where = entry_path(entry) if isinstance(entry, dict) else None
    safe = isinstance(where, str) and store.contains(where)
    if not safe:
        log.warning(
            "snapshot manifest entry ignored: its path leads outside the store",
            extra={"manifest": store.where(manifest_key), "table": table, "category": category, "path": str(where)},
        )
    return safe


def manifests(root: Path | str | SnapshotStore) -> list[dict[str, Any]]:
    """Every committed run's manifest, oldest first; an unreadable one is reported (a warning) and skipped."""
    store = open_store(root)
    found: list[dict[str, Any]] = []
    for key in store.list(MANIFEST_DIR, recursive=False):
        if not key.endswith(".json"):
            continue
        manifest, problem = _manifest_problem(store, key)
        if manifest is None:
            # SPEC §12: reported with its path and ignored; one bad file must not block every later run
            log.warning(
                "snapshot manifest ignored: it cannot be read",
                extra={"manifest": store.where(key), "problem": problem},
            )
        else:
            found.append(manifest)
    return sorted(found, key=lambda manifest: (manifest["run_at"], manifest["run_id"]))


def manifest_key(run_id: str) -> str:
    """The store key of a run's manifest."""
    return f"{MANIFEST_DIR}/{run_id}.json"


def read_manifest(root: Path | str | SnapshotStore, run_id: str) -> dict[str, Any] | None:
    """One committed run's manifest, checked like ``manifests`` checks each (unsafe entries dropped), or None when
    it is gone (silently) or unusable (reported with its key)."""
    store = open_store(root)
    key = manifest_key(run_id)
    try:
        manifest, problem = _checked_manifest(store, key)
    except FileNotFoundError:
        return None
    except (OSError, ValueError, RecursionError) as error:
        manifest, problem = None, f"{type(error).__name__}: {error}"
    if manifest is None:
        log.warning(
            "snapshot manifest ignored: it cannot be read", extra={"manifest": store.where(key), "problem": problem}
        )
    return manifest


def entry_path(entry: dict[str, Any]) -> str | None:
    """The store key of the file that holds one manifest entry's rows: its own, or after compaction (SPEC §13) the
    day's, which the entry names under ``compacted_path`` instead of ``path``."""
    where = entry.get(COMPACTED_KEY) or entry.get("path")
    return where if isinstance(where, str) else None


def write_manifest(store: SnapshotStore, manifest: dict[str, Any]) -> str:
    """Put a run's manifest whole (a run's commit, a compaction's switch, a rebuild's new state); its key."""
    key = manifest_key(manifest["run_id"])
    store.put(key, msgspec.json.encode(manifest, order="sorted"))
    return key
