"""Parquet snapshots: hive-partitioned tables per run, published by a manifest written last (SPEC §7.2).

Layout: ``{root}/{table}/category={category}/run_date=YYYY-MM-DD/{run_id}.parquet`` and
``{root}/_runs/{run_id}.json``, where ``root`` is a folder or an ``s3://bucket/prefix`` (``pipeline.sinks.store``).
A run without a manifest is not part of history: readers that follow the manifests (``history``, ``latest_table``)
never see it, and the next run sweeps its files away. Before its first file a run puts ``_pending/{run_id}.json``
(its day and categories) and removes it after its manifest: the sweep finds a killed run's files from its marker.
"""

from __future__ import annotations

import io
import json
import logging
import threading
from collections.abc import Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Final

import msgspec
import polars as pl

from pipeline.contracts.schemas import RUN_COLUMNS
from pipeline.contracts.tables import PARQUET_COMPRESSION, PARQUET_COMPRESSION_LEVEL, SNAPSHOT_TABLES
from pipeline.sinks.run_index import latest_table as indexed_latest_table
from pipeline.sinks.run_index import table_history
from pipeline.sinks.run_manifests import (
    COMPACTED_KEY,
    MANIFEST_DIR,
    SnapshotReadError,
    entry_path,
    manifest_key,
    manifests,
    read_manifest,
    write_manifest,
)
from pipeline.sinks.store import SnapshotStore, open_store
from pipeline.sinks.store_lock import SnapshotLockedError, SnapshotLockLostError, StoreFence
from pipeline.sinks.store_lock import snapshot_lock as store_snapshot_lock
from pipeline.steps.collect_engine import ENGINE

__all__ = [
    "ARTIFACTS",
    "ARTIFACT_SUFFIXES",
    "COMPACTED_KEY",
    "MANIFEST_DIR",
    "PENDING_DIR",
    "TABLES",
    "SnapshotLockLostError",
    "SnapshotLockedError",
    "SnapshotReadError",
    "SnapshotWriter",
    "artifact_keys",
    "entry_scan",
    "history",
    "latest_table",
    "manifest_key",
    "manifests",
    "pending_key",
    "read_artifact",
    "read_manifest",
    "run_tables",
    "snapshot_lock",
    "table_key",
    "table_path",
]

log = logging.getLogger(__name__)

#: The tables a run writes (SPEC §7.2), from the one registry (`pipeline.contracts.tables`, each with its schema).
TABLES: Final = tuple(SNAPSHOT_TABLES)
#: Files a run writes besides its tables, one per run: ``_{name}/{run_id}.json`` (the ``redis`` values a run
#: publishes, so that ``run --republish`` sends exactly what the run computed; SPEC §12).
ARTIFACTS: Final = ("redis",)
#: An artifact is a frame in a zstd-compressed Arrow IPC file (JSON compresses ~30x: 300 MB of Redis values at
#: 100x are ~9 MB, in about the CPU time writing them plain takes); runs before it wrote a JSON document.
ARTIFACT_SUFFIXES: Final = (".arrow", ".json")


#: One marker per run being written, ``{PENDING_DIR}/{run_id}.json``: what the sweep deletes if it never commits.
PENDING_DIR: Final = "_pending"


def pending_key(run_id: str) -> str:
    """The key of the marker of a run that has files but may not have its manifest yet."""
    return f"{PENDING_DIR}/{run_id}.json"


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
    #: the categories the pending marker names (None: no marker yet); tables and the artifact are put on two threads
    _marked: set[str] | None = field(default=None, init=False, repr=False)
    _marker_lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def __post_init__(self) -> None:
        self.store = open_store(self.root)

    def _mark_pending(self, category: str | None) -> None:
        """Put (or widen) this run's pending marker before a file of ``category`` (None: the artifact) is put."""
        with self._marker_lock:
            if self._marked is not None and (category is None or category in self._marked):
                return
            marked = (self._marked or set()) | ({category} if category is not None else set())
            marker = {"run_id": self.run_id, "run_date": self.run_date, "categories": sorted(marked)}
            self.store.put(pending_key(self.run_id), json.dumps(marker).encode())
            self._marked = marked

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
        # Recorded before the put: a put that fails half-way (a full disk) still leaves abort() a key to remove.
        self.written.setdefault(table, {})[category] = {"path": key, "rows": stamped.height}
        self._mark_pending(category)
        # Polars writes the file itself: into a Python buffer it would call back, taking the GIL, for every chunk
        self.store.put_written(
            key,
            lambda path: stamped.write_parquet(
                path, compression=PARQUET_COMPRESSION, compression_level=PARQUET_COMPRESSION_LEVEL
            ),
        )
        return key

    def write_artifact(self, name: str, frame: pl.DataFrame) -> str:
        """Write ``frame`` as this run's artifact ``name`` (listed in the manifest at commit); the key."""
        if name not in ARTIFACTS:
            raise ValueError(f"unknown snapshot artifact {name!r}; valid: {', '.join(ARTIFACTS)}")
        key = artifact_keys(name, self.run_id)[0]
        # Recorded before the put, as for a table: abort() removes a half-written artifact too.
        self.artifacts[name] = key
        self._mark_pending(None)
        self.store.put_written(key, lambda path: frame.write_ipc(path, compression="zstd"))
        return key

    def commit(
        self,
        *,
        input_hashes: dict[str, str],
        counts: dict[str, int],
        input_entries: dict[str, int] | None = None,
        derived_tables_key: str | None = None,
        statistics_counts: dict[str, dict[str, Any]] | None = None,
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
        if derived_tables_key is not None:  # the code and rules its tables derived from records came from (SPEC §9)
            manifest["derived_tables_key"] = derived_tables_key
        if statistics_counts is not None:  # what its statistics objects hold beyond its tables (SPEC §9)
            manifest["statistics_counts"] = statistics_counts
        if self.artifacts:
            manifest["artifacts"] = self.artifacts
        key = write_manifest(self.store, manifest)
        self.store.delete(pending_key(self.run_id))  # committed: nothing of it is swept (a kill here: see the sweep)
        return key

    def abort(self) -> None:
        """Remove every file this run wrote (a failed run leaves nothing behind)."""
        for categories in self.written.values():
            for entry in categories.values():
                self.store.delete(entry["path"])
        for key in self.artifacts.values():
            self.store.delete(key)
        self.store.delete(pending_key(self.run_id))
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


def _entry_key(entry: dict[str, Any]) -> str:
    """``entry_path``, for an entry of a checked manifest (which always names its file)."""
    key = entry_path(entry)
    if key is None:
        raise SnapshotReadError(f"manifest entry {entry!r} names no file")
    return key


def _missing(store: SnapshotStore, key: str) -> SnapshotReadError:
    return SnapshotReadError(f"snapshot file {store.where(key)} is missing (named by a committed manifest)")


def history(root: Path | str | SnapshotStore, table: str, category: str | None = None) -> pl.LazyFrame | None:
    """All committed runs of ``table`` as one lazy frame (hive columns ``category`` and ``run_date``), read through
    the store's run index (SPEC §13): each run's rows once, wherever compaction put them."""
    return table_history(root, table, category)


def latest_table(root: Path | str | SnapshotStore, table: str, category: str) -> pl.DataFrame | None:
    """``table`` for ``category`` from the newest committed run that wrote it, or None (through the run index,
    SPEC §13)."""
    return indexed_latest_table(root, table, category)


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


def run_tables(
    root: Path | str | SnapshotStore,
    manifest: dict[str, Any],
    tables: Iterable[str],
    columns: Sequence[str] | None = None,
    *,
    schemas: Mapping[str, pl.Schema] | None = None,
) -> dict[tuple[str, str], pl.DataFrame]:
    """``(table, category) -> frame`` for each of ``tables`` the committed run of ``manifest`` wrote (its own file
    or, after compaction, its rows of the day's file), with the hive columns ``category`` and ``run_date``; only
    ``columns`` of each when given, or each table as ``schemas[table]`` (its columns, in order, cast): read from
    the files, not read then dropped. SnapshotReadError names a file that cannot be read."""
    store = open_store(root)
    run_id = manifest["run_id"]
    entries = {
        (table, category): entry for table in tables for category, entry in manifest["tables"].get(table, {}).items()
    }
    scans = {key: entry_scan(store, run_id, entry) for key, entry in entries.items()}
    if schemas is not None:
        scans = {key: scan.select(schemas[key[0]].names()).cast(schemas[key[0]]) for key, scan in scans.items()}
    elif columns is not None:
        scans = {key: scan.select(columns) for key, scan in scans.items()}
    try:
        # one query for every file: Polars reads them side by side, not one after the other
        return dict(zip(scans, pl.collect_all(list(scans.values()), engine=ENGINE), strict=True))
    except (pl.exceptions.PolarsError, OSError):
        pass
    for key, scan in scans.items():  # which file: read them one by one, so that the error names it
        try:
            scan.collect(engine=ENGINE)
        except (pl.exceptions.PolarsError, OSError) as error:
            where = store.where(_entry_key(entries[key]))
            raise SnapshotReadError(f"snapshot file {where} cannot be read ({type(error).__name__}: {error})") from None
    raise SnapshotReadError(f"the tables of run {run_id} cannot be read together: {sorted(scans)}")


def snapshot_lock(
    root: Path | str | SnapshotStore,
) -> AbstractContextManager[StoreFence]:
    """An exclusive, non-blocking lock on the snapshot store (``pipeline.sinks.store_lock``)."""
    return store_snapshot_lock(open_store(root))
