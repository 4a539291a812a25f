"""Parquet snapshots: hive-partitioned tables per run, published by a manifest written last (SPEC §7.2).

Layout: ``{root}/{table}/category={category}/run_date=YYYY-MM-DD/{run_id}.parquet`` and
``{root}/_runs/{run_id}.json``, where ``root`` is a folder or an ``s3://bucket/prefix`` (``pipeline.sinks.store``).
A run without a manifest is not part of history: readers that follow the
manifests (``history``, ``latest_table``) never see it, and the next run sweeps its files away.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Final

import msgspec
import polars as pl

from pipeline.contracts.schemas import RUN_COLUMNS
from pipeline.sinks.store import FolderStore, SnapshotStore, open_store
from pipeline.sinks.store_lock import SnapshotLockedError, SnapshotLockLostError, StoreFence
from pipeline.sinks.store_lock import snapshot_lock as store_snapshot_lock
from pipeline.steps.collect_engine import ENGINE
from pipeline.steps.retention_plan import is_compacted_file

__all__ = [
    "ARTIFACTS",
    "ARTIFACT_SUFFIXES",
    "COMPACTED_KEY",
    "MANIFEST_DIR",
    "TABLES",
    "SnapshotLockLostError",
    "SnapshotLockedError",
    "SnapshotReadError",
    "SnapshotWriter",
    "artifact_keys",
    "entry_scan",
    "history",
    "latest_table",
    "manifests",
    "read_artifact",
    "read_manifest_file",
    "run_tables",
    "snapshot_lock",
    "sweep_uncommitted",
    "table_key",
    "table_path",
]
from pipeline.contracts.tables import SNAPSHOT_TABLES

log = logging.getLogger(__name__)

MANIFEST_DIR: Final = "_runs"
#: The tables a run writes (SPEC §7.2), from the one registry (`pipeline.contracts.tables`, each with its schema).
TABLES: Final = tuple(SNAPSHOT_TABLES)
#: Files a run writes besides its tables, one per run: ``_{name}/{run_id}.arrow`` (the ``redis`` values a run
#: publishes, so that ``run --republish`` sends exactly what the run computed; SPEC §12).
ARTIFACTS: Final = ("redis",)
#: An artifact is a frame in a zstd-compressed Arrow IPC file (JSON compresses ~30x: 300 MB of Redis values at
#: 100x are ~9 MB, in about the CPU time writing them plain takes); runs before it wrote a JSON document.
ARTIFACT_SUFFIXES: Final = (".arrow", ".json")
#: A manifest entry whose rows were compacted into the day's file (SPEC §13) names that file under this key instead
#: of ``path``: the file holds other runs' rows too, so a reader must select this run's rows by ``run_id``.
COMPACTED_KEY: Final = "compacted_path"
_COMPRESSION: Final = "zstd"
_COMPRESSION_LEVEL: Final = 3


def table_key(table: str, category: str, run_date: str, run_id: str) -> str:
    """The store key of one table of one category of one run."""
    return f"{table}/category={category}/run_date={run_date}/{run_id}.parquet"


def table_path(root: Path, table: str, category: str, run_date: str, run_id: str) -> Path:
    """Where one table of one category of one run lives in a folder store."""
    return root / table_key(table, category, run_date, run_id)


@dataclass
class SnapshotWriter:
    """Writes one run's tables; nothing is history until ``commit`` writes the manifest.

    ``root`` is a folder, an ``s3://bucket/prefix`` URL or a ``SnapshotStore``. Every object is put whole (a
    folder store writes a ``.tmp`` and renames it), so a reader never sees half a file.
    """

    root: Path | str | SnapshotStore
    run_id: str
    run_at: datetime
    written: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    artifacts: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.store = open_store(self.root)

    @property
    def run_date(self) -> str:
        return self.run_at.date().isoformat()

    def write(self, table: str, category: str, frame: pl.DataFrame) -> str:
        """Write ``frame`` as ``table`` for ``category``; the key it was written at."""
        if table not in TABLES:
            raise ValueError(f"unknown snapshot table {table!r}; valid: {', '.join(TABLES)}")
        key = table_key(table, category, self.run_date, self.run_id)
        stamped = frame.drop("category", "run_date", strict=False).with_columns(
            pl.lit(self.run_id, dtype=RUN_COLUMNS["run_id"]).alias("run_id"),
            pl.lit(self.run_at, dtype=RUN_COLUMNS["run_at"]).alias("run_at"),
        )
        buffer = io.BytesIO()
        stamped.write_parquet(buffer, compression=_COMPRESSION, compression_level=_COMPRESSION_LEVEL)
        # Recorded before the put: a put that fails half-way (a full disk) still leaves abort() a key to remove.
        self.written.setdefault(table, {})[category] = {"path": key, "rows": stamped.height}
        self.store.put(key, buffer.getbuffer().tobytes())
        return key

    def write_artifact(self, name: str, frame: pl.DataFrame) -> str:
        """Write ``frame`` as this run's artifact ``name`` (listed in the manifest at commit); the key."""
        if name not in ARTIFACTS:
            raise ValueError(f"unknown snapshot artifact {name!r}; valid: {', '.join(ARTIFACTS)}")
        key = artifact_keys(name, self.run_id)[0]
        buffer = io.BytesIO()
        frame.write_ipc(buffer, compression="zstd")
        # Recorded before the put, as for a table: abort() removes a half-written artifact too.
        self.artifacts[name] = key
        self.store.put(key, buffer.getbuffer().tobytes())
        return key

    def commit(
        self, *, input_hashes: dict[str, str], counts: dict[str, int], input_entries: dict[str, int] | None = None
    ) -> str:
        """Write the manifest last: from now on this run is part of history."""
        manifest: dict[str, Any] = {
            "run_id": self.run_id,
            "run_at": self.run_at.isoformat(),
            "tables": self.written,
            "input_hashes": input_hashes,
            "counts": counts,
        }
        if input_entries is not None:  # entries per reference input, for incremental runs (SPEC §9)
            manifest["input_entries"] = input_entries
        if self.artifacts:
            manifest["artifacts"] = self.artifacts
        key = f"{MANIFEST_DIR}/{self.run_id}.json"
        self.store.put(key, json.dumps(manifest, indent=1, sort_keys=True).encode())
        return key

    def abort(self) -> None:
        """Remove every file this run wrote (a failed run leaves nothing behind)."""
        for categories in self.written.values():
            for entry in categories.values():
                self.store.delete(entry["path"])
        for key in self.artifacts.values():
            self.store.delete(key)
        self.written.clear()
        self.artifacts.clear()


def artifact_keys(name: str, run_id: str) -> tuple[str, ...]:
    """The keys the artifact ``name`` of run ``run_id`` may have: the one a run writes first, then older ones."""
    return tuple(f"_{name}/{run_id}{suffix}" for suffix in ARTIFACT_SUFFIXES)


def read_artifact(root: Path | str | SnapshotStore, manifest: dict[str, Any], name: str) -> pl.DataFrame | Any | None:
    """The artifact ``name`` of the committed run of ``manifest``: a frame (or, written by runs before frames, the
    decoded JSON document); None when the run wrote none.

    The manifest only names a file of this store (``_{name}/{run_id}.arrow`` or ``.json``); any other path is
    refused.
    """
    relative = manifest.get("artifacts", {}).get(name)
    if relative is None:
        return None
    expected = artifact_keys(name, manifest["run_id"])
    if relative not in expected:
        raise ValueError(
            f"manifest of run {manifest['run_id']} names {relative!r} for {name}; expected one of {list(expected)}"
        )
    data = open_store(root).get(relative)
    if relative.endswith(".json"):
        return msgspec.json.decode(data)
    return pl.read_ipc(io.BytesIO(data))


class SnapshotReadError(RuntimeError):
    """A committed snapshot file cannot be read (missing, truncated, not Parquet); the message names it."""


#: A manifest names a few dozen files; anything bigger is not one of ours (and is not read into memory).
_MAX_MANIFEST_BYTES: Final = 16 * 1024 * 1024


def _manifest_problem(store: SnapshotStore, key: str) -> tuple[dict[str, Any] | None, str | None]:
    """The manifest at ``key`` (its unsafe table entries dropped, each with a warning), or why it is unusable."""
    try:
        # the store refuses a folder, FIFO or device named *.json (opening a FIFO would block the run) and a
        # symlink that leads out of the store
        manifest = json.loads(store.get(key, max_bytes=_MAX_MANIFEST_BYTES))
    except (OSError, ValueError, RecursionError) as error:  # ValueError covers JSON and UTF-8 decoding errors
        return None, f"{type(error).__name__}: {error}"
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
    where = (entry.get(COMPACTED_KEY) or entry.get("path")) if isinstance(entry, dict) else None
    safe = isinstance(where, str) and store.contains(where)
    if not safe:
        log.warning(
            "snapshot manifest entry ignored: its path leads outside the store",
            extra={"manifest": store.where(manifest_key), "table": table, "category": category, "path": str(where)},
        )
    return safe


def _scanned_manifests(store: SnapshotStore) -> tuple[list[dict[str, Any]], set[str]]:
    """The usable manifests, oldest first, and the run ids (file names) of those that cannot be read."""
    found: list[dict[str, Any]] = []
    unreadable: set[str] = set()
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
            unreadable.add(key.rsplit("/", 1)[-1].removesuffix(".json"))
        else:
            found.append(manifest)
    return sorted(found, key=lambda manifest: (manifest["run_at"], manifest["run_id"])), unreadable


def manifests(root: Path | str | SnapshotStore) -> list[dict[str, Any]]:
    """Every committed run's manifest, oldest first; an unreadable one is reported (a warning) and skipped."""
    return _scanned_manifests(open_store(root))[0]


def read_manifest_file(path: Path) -> dict[str, Any] | None:
    """One manifest of a folder store (``{root}/_runs/{run_id}.json``), checked like ``manifests`` checks each
    (unsafe entries dropped), or None when it is gone (silently) or unusable (reported with its path)."""
    if not path.exists():
        return None
    store = FolderStore(path.parent.parent)
    key = f"{MANIFEST_DIR}/{path.name}"
    manifest, problem = _manifest_problem(store, key)
    if manifest is None:
        log.warning("snapshot manifest ignored: it cannot be read", extra={"manifest": str(path), "problem": problem})
    return manifest


def _entry_key(entry: dict[str, Any]) -> str:
    """The store key of the file that holds one manifest entry's rows: its own, or after compaction the day's."""
    return str(entry.get(COMPACTED_KEY) or entry["path"])


def _missing(store: SnapshotStore, key: str) -> SnapshotReadError:
    return SnapshotReadError(f"snapshot file {store.where(key)} is missing (named by a committed manifest)")


def history(root: Path | str | SnapshotStore, table: str, category: str | None = None) -> pl.LazyFrame | None:
    """All committed runs of ``table`` as one lazy frame (hive columns ``category`` and ``run_date``). A folder
    store is read through its run index (SPEC §13), each run's rows once wherever compaction put them; an object
    store through its manifests."""
    store = open_store(root)
    if isinstance(store, FolderStore):
        from pipeline.sinks.run_index import table_history

        return table_history(store.root, table, category)
    keys = [
        str(entry["path"])
        for manifest in manifests(store)
        for cat, entry in manifest["tables"].get(table, {}).items()
        if category is None or cat == category
    ]
    if not keys:
        return None
    present = set(store.list(table))  # one listing, not one request per file
    for key in keys:
        if key not in present:
            raise _missing(store, key)
    return pl.scan_parquet(
        [store.scan_target(key) for key in keys], hive_partitioning=True, storage_options=store.storage_options
    )


def latest_table(root: Path | str | SnapshotStore, table: str, category: str) -> pl.DataFrame | None:
    """``table`` for ``category`` from the newest committed run that wrote it, or None (a folder store: through
    its run index, SPEC §13)."""
    store = open_store(root)
    if isinstance(store, FolderStore):
        from pipeline.sinks.run_index import latest_table as indexed_latest_table

        return indexed_latest_table(store.root, table, category)
    for manifest in reversed(manifests(store)):
        entry = manifest["tables"].get(table, {}).get(category)
        if entry is not None:
            return _read_entry(store, manifest["run_id"], entry)
    return None


def entry_scan(
    root: Path | str | SnapshotStore, run_id: str, entry: dict[str, Any], *, hive_partitioning: bool = True
) -> pl.LazyFrame:
    """The rows of run ``run_id`` that one manifest entry names (with the hive columns ``category``, ``run_date``
    unless ``hive_partitioning`` is False): its own file, or after compaction (SPEC §13) its rows of the day's
    file. SnapshotReadError when the committed file is gone."""
    store = open_store(root)
    key = _entry_key(entry)
    if not store.exists(key):
        raise _missing(store, key)
    scan = pl.scan_parquet(
        store.scan_target(key), hive_partitioning=hive_partitioning, storage_options=store.storage_options
    )
    return scan.filter(pl.col("run_id") == run_id) if COMPACTED_KEY in entry else scan


def _read_entry(
    store: SnapshotStore, run_id: str, entry: dict[str, Any], columns: Sequence[str] | None = None
) -> pl.DataFrame:
    """One manifest entry's table, with its hive columns (``category``, ``run_date``) as history reads them;
    only ``columns`` when given (read from the file, not read then dropped)."""
    scan = entry_scan(store, run_id, entry)
    try:
        return (scan if columns is None else scan.select(columns)).collect(engine=ENGINE)
    except (pl.exceptions.PolarsError, OSError) as error:
        raise SnapshotReadError(
            f"snapshot file {store.where(_entry_key(entry))} cannot be read ({type(error).__name__}: {error})"
        ) from None


def run_tables(
    root: Path | str | SnapshotStore,
    manifest: dict[str, Any],
    tables: Iterable[str],
    columns: Sequence[str] | None = None,
) -> dict[tuple[str, str], pl.DataFrame]:
    """``(table, category) -> frame`` for each of ``tables`` the committed run of ``manifest`` wrote (its own file
    or, after compaction, its rows of the day's file; only ``columns`` of each when given)."""
    store = open_store(root)
    return {
        (table, category): _read_entry(store, manifest["run_id"], entry, columns)
        for table in tables
        for category, entry in manifest["tables"].get(table, {}).items()
    }


def sweep_uncommitted(root: Path | str | SnapshotStore) -> list[str]:
    """Delete leftovers of runs that never committed (``*.tmp`` files, tables and artifacts without a manifest);
    the keys removed.

    Call only while holding the snapshot lock: a running run's files have no manifest yet either. The files of a
    run whose manifest exists but cannot be read are kept (a repaired manifest brings the run back), and nothing
    is deleted through a symlink that leads out of the store (the store never lists or deletes through one).
    """
    store = open_store(root)
    found, unreadable = _scanned_manifests(store)
    kept = {manifest["run_id"] for manifest in found} | unreadable
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
    for key in store.list(MANIFEST_DIR, recursive=False):
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
    if removed:
        log.warning("swept uncommitted snapshot files", extra={"count": len(removed)})
    return removed


def snapshot_lock(
    root: Path | str | SnapshotStore,
) -> AbstractContextManager[StoreFence]:
    """An exclusive, non-blocking lock on the snapshot store (``pipeline.sinks.store_lock``)."""
    return store_snapshot_lock(open_store(root))
