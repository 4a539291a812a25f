"""Parquet snapshots: hive-partitioned tables per run, published by a manifest written last (SPEC §7.2).

Layout: ``{root}/{table}/category={category}/run_date=YYYY-MM-DD/{run_id}.parquet`` and
``{root}/_runs/{run_id}.json``. A run without a manifest is not part of history: readers that follow the
manifests (``history``, ``latest_table``) never see it, and the next run sweeps its files away.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable, Iterator, Sequence
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
    "audit",
    "model_state",
    "changes",
)
#: Files a run writes besides its tables, one per run: ``_{name}/{run_id}.json`` (the ``redis`` values a run
#: publishes, so that ``run --republish`` sends exactly what the run computed; SPEC §12).
ARTIFACTS: Final = ("redis",)
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
    artifacts: dict[str, str] = field(default_factory=dict)

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
        with _replaced_atomically(path) as tmp:
            stamped.write_parquet(tmp, compression=_COMPRESSION, compression_level=_COMPRESSION_LEVEL)
        self.written.setdefault(table, {})[category] = {
            "path": str(path.relative_to(self.root)),
            "rows": stamped.height,
        }
        return path

    def write_artifact(self, name: str, document: Any) -> Path:
        """Write ``document`` as this run's artifact ``name`` (JSON; listed in the manifest at commit)."""
        if name not in ARTIFACTS:
            raise ValueError(f"unknown snapshot artifact {name!r}; valid: {', '.join(ARTIFACTS)}")
        path = self.root / f"_{name}" / f"{self.run_id}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        with _replaced_atomically(path) as tmp:
            tmp.write_text(json.dumps(document, ensure_ascii=False, separators=(",", ":")), encoding="utf-8")
        self.artifacts[name] = str(path.relative_to(self.root))
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
        if self.artifacts:
            manifest["artifacts"] = self.artifacts
        path = self.root / MANIFEST_DIR / f"{self.run_id}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        with _replaced_atomically(path) as tmp:
            tmp.write_text(json.dumps(manifest, indent=1, sort_keys=True))
        return path

    def abort(self) -> None:
        """Remove every file this run wrote (a failed run leaves nothing behind)."""
        for categories in self.written.values():
            for entry in categories.values():
                (self.root / entry["path"]).unlink(missing_ok=True)
        for relative in self.artifacts.values():
            (self.root / relative).unlink(missing_ok=True)
        self.written.clear()
        self.artifacts.clear()


@contextmanager
def _replaced_atomically(path: Path) -> Iterator[Path]:
    """A ``.tmp`` beside ``path`` to write into, renamed over ``path`` on success and removed on any failure
    (a full disk, a signal), so no ``.tmp`` outlives a failed write."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def read_artifact(root: Path, manifest: dict[str, Any], name: str) -> Any | None:
    """The artifact ``name`` of the committed run of ``manifest``, or None when the run wrote none.

    The manifest only names a file of this store (``_{name}/{run_id}.json``); any other path is refused.
    """
    relative = manifest.get("artifacts", {}).get(name)
    if relative is None:
        return None
    expected = f"_{name}/{manifest['run_id']}.json"
    if relative != expected:
        raise ValueError(f"manifest of run {manifest['run_id']} names {relative!r} for {name}; expected {expected!r}")
    return json.loads((root / expected).read_text(encoding="utf-8"))


class SnapshotReadError(RuntimeError):
    """A committed snapshot file cannot be read (missing, truncated, not Parquet); the message names it."""


#: A manifest names a few dozen files; anything bigger is not one of ours (and is not read into memory).
_MAX_MANIFEST_BYTES: Final = 16 * 1024 * 1024


def _manifest_problem(path: Path, inside: dict[Path, bool]) -> tuple[dict[str, Any] | None, str | None]:
    """The manifest at ``path`` (its unsafe table entries dropped, each with a warning), or why it is unusable."""
    try:
        if not path.is_file():  # a folder, FIFO or device named *.json: opening a FIFO would block the run
            return None, "not a regular file"
        if not path.resolve().is_relative_to(path.parent.resolve()):
            return None, "a symlink that leads out of the store"
        if path.stat().st_size > _MAX_MANIFEST_BYTES:
            return None, f"larger than {_MAX_MANIFEST_BYTES} bytes"
        manifest = json.loads(path.read_bytes())
    except (OSError, ValueError, RecursionError) as error:  # ValueError covers JSON and UTF-8 decoding errors
        return None, f"{type(error).__name__}: {error}"
    if not isinstance(manifest, dict):
        return None, "not a JSON object"
    if manifest.get("run_id") != path.stem:
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
            category: entry for category, entry in entries.items() if _safe_entry(path, table, category, entry, inside)
        }
        for table, entries in tables.items()
    }
    return {**manifest, "tables": safe}, None


def _safe_entry(manifest_path: Path, table: str, category: str, entry: Any, inside: dict[Path, bool]) -> bool:
    """True when ``entry`` names a file inside the store; a manifest never makes a reader open anything else
    (an absolute path, ``..``, a symlink that leads out of the store). ``inside`` caches the answer per folder:
    thousands of entries share a few folders."""
    root = manifest_path.parent.parent
    where = entry.get("path") if isinstance(entry, dict) else None
    safe = isinstance(where, str) and not Path(where).is_absolute() and ".." not in Path(where).parts
    if safe:
        path = root / str(where)
        if path.parent not in inside:
            inside[path.parent] = path.parent.resolve().is_relative_to(root.resolve())
        safe = inside[path.parent] and (not path.is_symlink() or path.resolve().is_relative_to(root.resolve()))
    if not safe:
        log.warning(
            "snapshot manifest entry ignored: its path leads outside the store",
            extra={"manifest": str(manifest_path), "table": table, "category": category, "path": str(where)},
        )
    return safe


def _scanned_manifests(root: Path) -> tuple[list[dict[str, Any]], set[str]]:
    """The usable manifests, oldest first, and the run ids (file names) of those that cannot be read."""
    folder = root / MANIFEST_DIR
    if not folder.is_dir():
        return [], set()
    found: list[dict[str, Any]] = []
    unreadable: set[str] = set()
    inside: dict[Path, bool] = {}
    for path in sorted(folder.glob("*.json")):
        manifest, problem = _manifest_problem(path, inside)
        if manifest is None:
            # SPEC §12: reported with its path and ignored; one bad file must not block every later run
            log.warning(
                "snapshot manifest ignored: it cannot be read", extra={"manifest": str(path), "problem": problem}
            )
            unreadable.add(path.stem)
        else:
            found.append(manifest)
    return sorted(found, key=lambda manifest: (manifest["run_at"], manifest["run_id"])), unreadable


def manifests(root: Path) -> list[dict[str, Any]]:
    """Every committed run's manifest, oldest first; an unreadable one is reported (a warning) and skipped."""
    return _scanned_manifests(root)[0]


def _entry_path(root: Path, entry: dict[str, Any]) -> Path:
    """The file of a manifest entry; SnapshotReadError when the committed file is gone."""
    path = root / str(entry["path"])
    if not path.is_file():
        raise SnapshotReadError(f"snapshot file {path} is missing (named by a committed manifest)")
    return path


def history(root: Path, table: str, category: str | None = None) -> pl.LazyFrame | None:
    """All committed runs of ``table`` as one lazy frame (hive columns ``category`` and ``run_date``)."""
    paths = [
        str(_entry_path(root, entry))
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


def _read_entry(root: Path, entry: dict[str, Any], columns: Sequence[str] | None = None) -> pl.DataFrame:
    """One manifest entry's table, with its hive columns (``category``, ``run_date``) as history reads them;
    only ``columns`` when given (read from the file, not read then dropped)."""
    path = _entry_path(root, entry)
    try:
        scan = pl.scan_parquet(str(path), hive_partitioning=True)
        return (scan if columns is None else scan.select(columns)).collect(engine=ENGINE)
    except (pl.exceptions.PolarsError, OSError) as error:
        raise SnapshotReadError(f"snapshot file {path} cannot be read ({type(error).__name__}: {error})") from None


def run_tables(
    root: Path, manifest: dict[str, Any], tables: Iterable[str], columns: Sequence[str] | None = None
) -> dict[tuple[str, str], pl.DataFrame]:
    """``(table, category) -> frame`` for each of ``tables`` the committed run of ``manifest`` wrote (only
    ``columns`` of each when given)."""
    return {
        (table, category): _read_entry(root, entry, columns)
        for table in tables
        for category, entry in manifest["tables"].get(table, {}).items()
    }


def sweep_uncommitted(root: Path) -> list[Path]:
    """Delete leftovers of runs that never committed (``*.tmp`` files, parquet files without a manifest).

    Call only while holding the snapshot lock: a running run's files have no manifest yet either. The files of a
    run whose manifest exists but cannot be read are kept (a repaired manifest brings the run back), and nothing
    is deleted through a symlink that leads out of the store.
    """
    if not root.is_dir():
        return []
    found, unreadable = _scanned_manifests(root)
    kept = {manifest["run_id"] for manifest in found} | unreadable
    inside = root.resolve()
    removed: list[Path] = []
    for table in TABLES:
        for path in (root / table).glob("category=*/run_date=*/*"):
            orphan = path.name.endswith(".tmp") or (path.suffix == ".parquet" and path.stem not in kept)
            if orphan and path.parent.resolve().is_relative_to(inside) and not path.is_dir():
                path.unlink(missing_ok=True)
                removed.append(path)
    for tmp in (root / MANIFEST_DIR).glob("*.tmp") if (root / MANIFEST_DIR).is_dir() else []:
        tmp.unlink(missing_ok=True)
        removed.append(tmp)
    for name in ARTIFACTS:
        for path in (root / f"_{name}").glob("*") if (root / f"_{name}").is_dir() else []:
            orphan = path.name.endswith(".tmp") or path.name.removesuffix(".json") not in kept
            if orphan and path.parent.resolve().is_relative_to(inside) and not path.is_dir():
                path.unlink(missing_ok=True)
                removed.append(path)
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
