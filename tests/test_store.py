"""The snapshot store seam: one behaviour for a folder and for a real S3-compatible server (both through one
fixture), the lock object's conditional puts, and key confinement."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import polars as pl
import pytest

from pipeline.sinks.store import FolderStore, SnapshotStore, UnsafeKeyError, checked_key, open_store
from pipeline.sinks.store_lock import (
    CLOCK_SKEW_SECONDS,
    LOCK_KEY,
    ObjectLock,
    SnapshotLockedError,
    SnapshotLockLostError,
)


@pytest.fixture(params=["folder", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> SnapshotStore:
    """Every store test runs on both implementations."""
    if request.param == "folder":
        return open_store(tmp_path / "store")
    return open_store(request.getfixturevalue("s3_location"))


def test_open_store_picks_the_implementation_from_the_location(tmp_path: Path) -> None:
    assert isinstance(open_store(tmp_path), FolderStore)
    assert isinstance(open_store(str(tmp_path)), FolderStore)
    assert type(open_store("s3://bucket/some/prefix")).__name__ == "ObjectStore"
    assert open_store("s3://bucket/some/prefix/").location == "s3://bucket/some/prefix"
    with pytest.raises(ValueError, match="names no bucket"):
        open_store("s3://")


def test_put_get_list_delete(store: SnapshotStore) -> None:
    store.put("t/category=a/run_date=2026-01-01/r1.parquet", b"one")
    store.put("t/category=b/run_date=2026-01-01/r1.parquet", b"two")
    store.put("_runs/r1.json", b"{}")
    store.put("_runs/r1.json", b'{"x": 1}')  # replaced whole
    assert store.get("_runs/r1.json") == b'{"x": 1}'
    assert store.list("t") == [
        "t/category=a/run_date=2026-01-01/r1.parquet",
        "t/category=b/run_date=2026-01-01/r1.parquet",
    ]
    assert store.list("_runs") == ["_runs/r1.json"]
    assert store.list("nothing_here") == []
    store.delete("t/category=a/run_date=2026-01-01/r1.parquet")
    store.delete("t/category=a/run_date=2026-01-01/r1.parquet")  # already gone: no error
    assert store.list("t") == ["t/category=b/run_date=2026-01-01/r1.parquet"]
    with pytest.raises(FileNotFoundError):
        store.get("_runs/absent.json")


def test_get_refuses_values_over_a_size_limit(store: SnapshotStore) -> None:
    store.put("_runs/big.json", b"x" * 100)
    with pytest.raises(OSError, match="larger than 10 bytes"):
        store.get("_runs/big.json", max_bytes=10)


def test_conditional_puts(store: SnapshotStore) -> None:
    first = store.put_if_absent(LOCK_KEY, b"first")
    assert first is not None
    assert store.put_if_absent(LOCK_KEY, b"second") is None
    assert store.get(LOCK_KEY) == b"first"
    data, version = store.get_versioned(LOCK_KEY)
    assert data == b"first"
    newer = store.replace_if_unchanged(LOCK_KEY, b"third", version)
    assert newer is not None
    assert store.replace_if_unchanged(LOCK_KEY, b"fourth", version) is None  # stale version: refused
    assert store.get(LOCK_KEY) == b"third"


def test_polars_scans_what_the_store_holds(store: SnapshotStore) -> None:
    buffer = io.BytesIO()
    pl.DataFrame({"x": [1, 2]}).write_parquet(buffer)
    key = "t/category=a/run_date=2026-01-01/r1.parquet"
    store.put(key, buffer.getvalue())
    frame = pl.scan_parquet(
        [store.scan_target(key)], hive_partitioning=True, storage_options=store.storage_options
    ).collect()
    assert frame["x"].to_list() == [1, 2]
    assert frame["category"].to_list() == ["a", "a"]


def test_put_written_stores_what_polars_wrote_or_nothing(store: SnapshotStore, tmp_path: Path) -> None:
    key = "t/category=a/run_date=2026-01-01/r1.parquet"
    frame = pl.DataFrame({"x": [1, 2]})
    store.put_written(key, lambda path: frame.write_parquet(path))
    assert pl.read_parquet(io.BytesIO(store.get(key))).equals(frame)

    def half_then_fail(path: str) -> None:
        Path(path).write_bytes(b"PAR1 half a file")
        raise OSError("disk full (simulated)")

    with pytest.raises(OSError, match="disk full"):
        store.put_written("t/category=a/run_date=2026-01-01/r2.parquet", half_then_fail)
    assert store.list("t") == [key]  # nothing half-written, no .tmp left beside it
    assert not store.exists("t/category=a/run_date=2026-01-01/r2.parquet")


@pytest.mark.parametrize("key", ["", "/etc/passwd", "../outside", "a/../../b", "a//b", "a/./b", "a\\b", "a/"])
def test_keys_never_leave_the_store(store: SnapshotStore, key: str) -> None:
    with pytest.raises(UnsafeKeyError):
        checked_key(key)
    with pytest.raises(UnsafeKeyError):
        store.get(key)
    with pytest.raises(UnsafeKeyError):
        store.put(key, b"x")


def test_a_folder_symlink_out_of_the_store_is_neither_read_nor_listed(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.json").write_text("{}")
    store = FolderStore(tmp_path / "store")
    (tmp_path / "store" / "_runs").mkdir(parents=True)
    (tmp_path / "store" / "_runs" / "link").symlink_to(outside)
    (tmp_path / "store" / "_runs" / "file.json").symlink_to(outside / "secret.json")
    with pytest.raises(UnsafeKeyError, match="through a symlink"):
        store.get("_runs/file.json")
    with pytest.raises(UnsafeKeyError):
        store.get("_runs/link/secret.json")
    assert "_runs/link/secret.json" not in store.list("_runs")
    store.delete("_runs/file.json")  # removes the link, never its target
    assert (outside / "secret.json").exists()
    assert not (tmp_path / "store" / "_runs" / "file.json").is_symlink()


def test_folder_put_leaves_no_tmp_file(tmp_path: Path) -> None:
    store = FolderStore(tmp_path)
    store.put("a/b.json", b"1")
    assert store.put_if_absent("a/c.json", b"1") is not None
    assert store.put_if_absent("a/c.json", b"2") is None
    assert sorted(os.listdir(tmp_path / "a")) == ["b.json", "c.json"]


class _Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_lock_object_one_holder_then_the_next(s3_location: str) -> None:
    store = open_store(s3_location)
    first = ObjectLock(store)
    first.acquire()
    held = json.loads(store.get(LOCK_KEY))
    assert held["token"] == first.token
    with pytest.raises(SnapshotLockedError, match="holds the lock"):
        ObjectLock(store).acquire()
    first.verify()
    first.release()
    assert LOCK_KEY not in store.list("")
    second = ObjectLock(store)
    second.acquire()
    second.release()


def test_a_stale_lock_is_taken_over_by_exactly_one_run_and_its_holder_loses(s3_location: str) -> None:
    store = open_store(s3_location)
    clock = _Clock(1_000_000.0)
    dead = ObjectLock(store, ttl_seconds=30, clock=clock)
    dead.acquire()
    dead.stop_renewing()  # a paused holder: it renews no more
    clock.now += 30 + CLOCK_SKEW_SECONDS - 1  # expired, but within the clock-skew margin: still held
    with pytest.raises(SnapshotLockedError):
        ObjectLock(store, clock=clock).acquire()
    clock.now += 2
    # Two runs see the same stale lock; the one whose conditional replace lands first wins.
    _, stale_version = store.get_versioned(LOCK_KEY)
    winner = ObjectLock(store, ttl_seconds=30, clock=clock)
    winner.acquire()
    # the other run's replace, conditional on the stale version, finds the winner's object instead
    assert store.replace_if_unchanged(LOCK_KEY, b'{"token": "loser"}', stale_version) is None
    assert json.loads(store.get(LOCK_KEY))["token"] == winner.token
    with pytest.raises(SnapshotLockLostError, match="nothing committed"):
        dead.verify()
    dead.release()  # not ours any more: the winner's lock stays
    assert json.loads(store.get(LOCK_KEY))["token"] == winner.token
    winner.release()


def test_an_unreadable_lock_object_is_never_taken_over(s3_location: str) -> None:
    store = open_store(s3_location)
    store.put(LOCK_KEY, b"not json")
    with pytest.raises(SnapshotLockedError, match="cannot be read; if no run is going, delete it"):
        ObjectLock(store).acquire()
