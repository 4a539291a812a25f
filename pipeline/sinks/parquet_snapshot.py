"""Parquet snapshots: hive-partitioned tables per run, published by a manifest written last (SPEC §7.2).

Layout: ``{root}/{table}/category={category}/run_date=YYYY-MM-DD/{run_id}.parquet`` and
``{root}/_runs/{run_id}.json``. A run without a manifest is not part of history: readers that follow the
manifests (``history``, ``latest_table``) never see it, and the next run sweeps its files away.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Final

import polars as pl

from pipeline.engine import ENGINE
from pipeline.schemas import RUN_COLUMNS

log = logging.getLogger(__name__)

MANIFEST_DIR: Final = "_runs"
#: The tables a run writes (SPEC §7.2); new columns are additive only.
TABLES: Final = (
    "records",
    "names",
    "families",
    "horde_status",
    "horde_usage",
    "merged",
    "baselines",
    "buckets",
    "tags",
    "styles",
    "hosts",
    "deletion_risk",
    "unmatched",
    "model_state",
    "changes",
)
_COMPRESSION: Final = "zstd"
_COMPRESSION_LEVEL: Final = 3


class SnapshotLockedError(RuntimeError):
    """Another run holds the snapshot store."""


def table_path(root: Path, table: str, category: str, run_date: str, run_id: str) -> Path:
    """Where one table of one category of one run lives."""
    return root / table / f"category={category}" / f"run_date={run_date}" / f"{run_id}.parquet"


@dataclass
class SnapshotWriter:
    """Writes one run's tables; nothing is history until ``commit`` writes the manifest."""

    root: Path
    run_id: str
    run_at: datetime
    written: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)

    @property
    def run_date(self) -> str:
        return self.run_at.date().isoformat()

    def write(self, table: str, category: str, frame: pl.DataFrame) -> Path:
        """Write ``frame`` as ``table`` for ``category`` (tmp file, then an atomic rename)."""
        if table not in TABLES:
            raise ValueError(f"unknown snapshot table {table!r}; valid: {', '.join(TABLES)}")
        path = table_path(self.root, table, category, self.run_date, self.run_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        stamped = frame.drop("category", "run_date", strict=False).with_columns(
            pl.lit(self.run_id, dtype=RUN_COLUMNS["run_id"]).alias("run_id"),
            pl.lit(self.run_at, dtype=RUN_COLUMNS["run_at"]).alias("run_at"),
        )
        tmp = path.with_name(path.name + ".tmp")
        stamped.write_parquet(tmp, compression=_COMPRESSION, compression_level=_COMPRESSION_LEVEL)
        os.replace(tmp, path)
        self.written.setdefault(table, {})[category] = {
            "path": str(path.relative_to(self.root)),
            "rows": stamped.height,
        }
        return path

    def commit(self, *, input_hashes: dict[str, str], counts: dict[str, int]) -> Path:
        """Write the manifest last: from now on this run is part of history."""
        manifest = {
            "run_id": self.run_id,
            "run_at": self.run_at.isoformat(),
            "tables": self.written,
            "input_hashes": input_hashes,
            "counts": counts,
        }
        path = self.root / MANIFEST_DIR / f"{self.run_id}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(manifest, indent=1, sort_keys=True))
        os.replace(tmp, path)
        return path

    def abort(self) -> None:
        """Remove every file this run wrote (a failed run leaves nothing behind)."""
        for categories in self.written.values():
            for entry in categories.values():
                (self.root / entry["path"]).unlink(missing_ok=True)
        self.written.clear()


def manifests(root: Path) -> list[dict[str, Any]]:
    """Every committed run's manifest, oldest first."""
    folder = root / MANIFEST_DIR
    if not folder.is_dir():
        return []
    found = [json.loads(path.read_text()) for path in folder.glob("*.json")]
    return sorted(found, key=lambda manifest: (manifest["run_at"], manifest["run_id"]))


def history(root: Path, table: str, category: str | None = None) -> pl.LazyFrame | None:
    """All committed runs of ``table`` as one lazy frame (hive columns ``category`` and ``run_date``)."""
    paths = [
        str(root / entry["path"])
        for manifest in manifests(root)
        for cat, entry in manifest["tables"].get(table, {}).items()
        if category is None or cat == category
    ]
    if not paths:
        return None
    return pl.scan_parquet(paths, hive_partitioning=True)


def latest_table(root: Path, table: str, category: str) -> pl.DataFrame | None:
    """``table`` for ``category`` from the newest committed run that wrote it, or None."""
    for manifest in reversed(manifests(root)):
        entry = manifest["tables"].get(table, {}).get(category)
        if entry is not None:
            return _read_entry(root, entry)
    return None


def _read_entry(root: Path, entry: dict[str, Any]) -> pl.DataFrame:
    """One manifest entry's table, with its hive columns (``category``, ``run_date``) as history reads them."""
    return pl.scan_parquet(str(root / entry["path"]), hive_partitioning=True).collect(engine=ENGINE)


def run_tables(root: Path, manifest: dict[str, Any], tables: Iterable[str]) -> dict[tuple[str, str], pl.DataFrame]:
    """``(table, category) -> frame`` for each of ``tables`` the committed run of ``manifest`` wrote."""
    return {
        (table, category): _read_entry(root, entry)
        for table in tables
        for category, entry in manifest["tables"].get(table, {}).items()
    }


def sweep_uncommitted(root: Path) -> list[Path]:
    """Delete leftovers of runs that never committed (``*.tmp`` files, parquet files without a manifest).

    Call only while holding the snapshot lock: a running run's files have no manifest yet either.
    """
    if not root.is_dir():
        return []
    committed = {manifest["run_id"] for manifest in manifests(root)}
    removed: list[Path] = []
    for table in TABLES:
        for path in (root / table).glob("category=*/run_date=*/*"):
            orphan = path.name.endswith(".tmp") or (path.suffix == ".parquet" and path.stem not in committed)
            if orphan:
                path.unlink(missing_ok=True)
                removed.append(path)
    for tmp in (root / MANIFEST_DIR).glob("*.tmp") if (root / MANIFEST_DIR).is_dir() else []:
        tmp.unlink(missing_ok=True)
        removed.append(tmp)
    if removed:
        log.warning("swept uncommitted snapshot files", extra={"count": len(removed)})
    return removed


@contextmanager
def snapshot_lock(root: Path) -> Iterator[None]:
    """An exclusive, non-blocking lock on the snapshot store (released when the process dies)."""
    import fcntl

    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".lock", "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise SnapshotLockedError(f"another run holds {root / '.lock'}") from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
