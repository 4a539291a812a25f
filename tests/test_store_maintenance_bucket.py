"""Retention, compaction and the run index on a bucket (SPEC §13 on SPEC §9's object store): a real S3-compatible
server on 127.0.0.1 (moto's standalone server), the same store and checks as ``test_store_maintenance.py``, and
SIGKILL of a real process during the maintenance, which puts objects whole (no rename) in the same order."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from datetime import timedelta

import polars as pl
import pytest

from jobs.__main__ import main
from pipeline.sinks.history_store import model_timeline, newest_run_time
from pipeline.sinks.parquet_snapshot import latest_table, manifests
from pipeline.sinks.retention import maintain_store
from pipeline.sinks.run_index import INDEX_PATH, JOURNAL_DIR, load_index, read_index, runs
from pipeline.sinks.store import open_store
from pipeline.sinks.store_lock import LOCK_KEY, ObjectLock, SnapshotLockLostError
from pipeline.steps.retention_plan import RetentionPolicy
from tests.conftest import REPO
from tests.test_store_maintenance import (
    CHILD,
    NEWEST,
    Template,
    assert_consistent,
    assert_glob_sees_each_kept_run_once,
    assert_index_is_the_manifests,
    build_store,
    check_readers_list_only_the_newest_manifests,
    kept_ids,
    template,  # noqa: F401  (the fixture)
)


def test_a_run_on_a_bucket_indexes_itself_and_maintains_it(s3_location: str, template: Template) -> None:  # noqa: F811
    ids = build_store(s3_location, template)
    expected = kept_ids(runs(load_index(s3_location)))
    assert main(["run"]) == 0  # its maintenance: retention and compaction of the bucket, under its lock object
    store = open_store(s3_location)
    assert store.exists(INDEX_PATH) and store.list(JOURNAL_DIR) == []
    (new,) = {manifest["run_id"] for manifest in manifests(store)} - set(ids)
    assert_consistent(s3_location, template, expected | {new}, expected)
    assert_index_is_the_manifests(s3_location)
    index = read_index(store)
    assert index is not None
    yesterday = (NEWEST.date() - timedelta(days=1)).isoformat()
    assert index.filter(pl.col("run_date") == yesterday)["compacted"].all(), "yesterday's runs compacted"
    for days_back, files in ((1, 1), (2, 1), (10, 1), (400, 0)):
        day = (NEWEST.date() - timedelta(days=days_back)).isoformat()
        assert len(store.list(f"records/category=image_generation/run_date={day}")) == files, day
    # at rest, a plain glob over the bucket sees each kept run once and no removed run
    assert_glob_sees_each_kept_run_once(s3_location, template, expected | {new})

    # the readers agree with the index: the latest run, a model's timeline, the newest run's time
    latest = latest_table(s3_location, "deletion_risk", "image_generation")
    assert latest is not None and set(latest["run_id"]) == {new}
    newest = newest_run_time(store)
    assert newest is not None and newest == runs(load_index(store))["run_at"][-1]
    name = str(latest.filter(~pl.col("grouped"))["name"][0])
    timeline = model_timeline(s3_location, "image_generation", name)
    assert timeline is not None and timeline.collect().height == len(expected) + 1
    assert main(["query", "--category", "image_generation", "--limit", "1"]) == 0

    # compact on demand: nothing left to do, and it says so
    assert main(["compact"]) == 0
    again = maintain_store(s3_location, RetentionPolicy())
    assert (again.runs_removed, again.files_written, again.files_removed) == (0, 0, 0)


#: (step, n-th time, what finishes the work): a compacted object put, others not; some manifests switched; a
#: removed run's manifest gone; a day's index put but its old objects not all deleted.
BUCKET_KILL_POINTS = [
    ("compacted file written", 2, "compact"),
    ("manifest switched", 2, "run"),
    ("manifest removed", 1, "compact"),
    ("files removed", 12, "compact"),
]


@pytest.mark.parametrize(("step", "nth", "finisher"), BUCKET_KILL_POINTS)
def test_sigkill_during_a_buckets_maintenance_loses_nothing_and_the_next_run_finishes(
    step: str,
    nth: int,
    finisher: str,
    s3_location: str,
    template: Template,  # noqa: F811
) -> None:
    build_store(s3_location, template)
    expected = kept_ids(runs(load_index(s3_location)))
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, s3_location, step, str(nth)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert child.stdout is not None
    line = child.stdout.readline()  # the child announces the step it is held at (its marker object is put)
    assert line.startswith("STOPPED " + step), line
    child.send_signal(signal.SIGKILL)
    assert child.wait() == -signal.SIGKILL

    store = open_store(s3_location)
    committed = {manifest["run_id"] for manifest in manifests(store)}
    assert expected <= committed, "a run retention keeps was lost"
    assert_consistent(s3_location, template, committed)
    assert store.list(JOURNAL_DIR), "the day in progress is marked"

    clones = set(expected)
    if finisher == "compact":
        assert main(["compact"]) == 0
    else:
        assert main(["run"]) == 0
        expected = expected | ({manifest["run_id"] for manifest in manifests(store)} - committed)
    assert store.list(JOURNAL_DIR) == []
    assert_consistent(s3_location, template, expected, clones)
    assert_index_is_the_manifests(s3_location)
    assert_glob_sees_each_kept_run_once(s3_location, template, expected)


def test_a_maintenance_whose_lock_object_was_taken_over_stops_before_touching_manifests(
    s3_location: str,
    template: Template,  # noqa: F811
) -> None:
    """A holder paused past its lock's expiry finds the token changed before it switches manifests or deletes: it
    stops (SnapshotLockLostError) with yesterday's compacted files written but named by no manifest, every run
    stays readable, and the next maintenance does the day."""
    build_store(s3_location, template, ((0, 1), (1, 2), (400, 1)))
    store = open_store(s3_location)
    before = {manifest["run_id"]: manifest for manifest in manifests(store)}
    held = ObjectLock(store)
    held.acquire()
    try:
        store.put(LOCK_KEY, json.dumps({"token": "another-run", "expires_at": time.time() + 60}).encode())
        with pytest.raises(SnapshotLockLostError):
            maintain_store(store, RetentionPolicy(), fence=held)
    finally:
        held.release()  # not ours any more: the other run's lock object stays
    assert {manifest["run_id"]: manifest for manifest in manifests(store)} == before, "no manifest touched"
    assert store.list(JOURNAL_DIR), "the day in progress is marked"
    assert_consistent(s3_location, template, set(before))
    store.delete(LOCK_KEY)  # the other run is done
    assert main(["compact"]) == 0
    assert store.list(JOURNAL_DIR) == []
    assert_consistent(s3_location, template, set(before))
    index = read_index(store)
    assert index is not None and index.filter(pl.col("run_id").is_in(sorted(before)[1:3]))["compacted"].all()


def test_readers_on_a_bucket_list_only_the_manifests_after_the_newest_indexed_run(
    s3_location: str,
    template: Template,  # noqa: F811
) -> None:
    """The same on a bucket: the listing starts after a key (S3's ``StartAfter``), so older names are never sent."""
    check_readers_list_only_the_newest_manifests(s3_location, template)
