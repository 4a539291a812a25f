"""Retention, compaction and the run index on real files (SPEC §13), and SIGKILL at each step of the maintenance.

The store: runs cloned from one real run (the sample data) at chosen times, committed as a run commits them
(tables, manifest, index). Every clone of a (table, category) has the template's rows, so "each kept run's rows
exactly once" is checkable by row counts per run and by frame equality.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import polars as pl
import pytest

from jobs.__main__ import main
from pipeline.contracts.settings import load_settings
from pipeline.shell.batch import run_once
from pipeline.shell.store_upkeep import rebuild_history
from pipeline.sinks.history_store import model_timeline
from pipeline.sinks.parquet_snapshot import (
    SnapshotWriter,
    history,
    latest_table,
    manifests,
    run_tables,
    snapshot_lock,
)
from pipeline.sinks.retention import index_committed_run, maintain_store
from pipeline.sinks.run_index import (
    INDEX_PATH,
    JOURNAL_DIR,
    index_from_manifests,
    latest_manifest,
    load_index,
    read_index,
    reconcile_index,
    runs,
)
from pipeline.sinks.store import SnapshotStore, open_store
from pipeline.sinks.uncommitted import sweep_uncommitted
from pipeline.steps.retention_plan import RetentionPolicy, kept_runs
from tests.conftest import REPO

TABLES = ("deletion_risk", "records", "horde_usage")
#: A moment ago: the runs of "today" are the newest, and a real run made by a test is newer still.
NEWEST = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=1)
#: (days before the newest run's day, runs that day): today (open), two closed days inside the first period, one
#: past it (only its last run stays), one past the year (removed)
LAYOUT = ((0, 2), (1, 3), (2, 3), (10, 3), (400, 2))

Template = dict[tuple[str, str], pl.DataFrame]


@pytest.fixture
def template(tmp_path: Path) -> Template:
    """The tables of one real run (sample data), without their run columns."""
    source = tmp_path / "template"
    run_once(load_settings(snapshot_dir=str(source)))
    (manifest,) = manifests(source)
    return {
        key: frame.drop("run_id", "run_at", "category", "run_date")
        for key, frame in run_tables(source, manifest, TABLES).items()
    }


def commit_clone(root: Path | str, template: Template, run_at: datetime, run_id: str) -> None:
    writer = SnapshotWriter(root=root, run_id=run_id, run_at=run_at)
    for (table, category), frame in sorted(template.items()):
        writer.write(table, category, frame)
    writer.commit(input_hashes={}, counts={})
    index_committed_run(root, run_id)


def build_store(root: Path | str, template: Template, layout: tuple[tuple[int, int], ...] = LAYOUT) -> list[str]:
    """Commit the runs of ``layout`` (newest last) and return their ids."""
    ids = []
    for days_back, count in sorted(layout, reverse=True):
        day = datetime.combine(NEWEST.date() - timedelta(days=days_back), datetime.min.time(), UTC)
        for number in range(count):
            # today's runs minutes apart, never before the day's start (a test run just after midnight)
            today = max(day, NEWEST - timedelta(minutes=4 * (count - 1 - number)))
            run_at = today if days_back == 0 else day + timedelta(hours=number)
            run_id = run_at.strftime("%Y%m%dT%H%M%SZ") + f"-{days_back:03d}{number:05d}"
            commit_clone(root, template, run_at, run_id)
            ids.append(run_id)
    return ids


def kept_ids(ids_and_times: pl.DataFrame) -> set[str]:
    return set(kept_runs(ids_and_times, RetentionPolicy()).filter("keep")["run_id"])


def assert_consistent(
    root: Path | str, template: Template, expected_runs: set[str], clones: set[str] | None = None
) -> None:
    """Every run of ``expected_runs`` readable with exactly its rows (checked for the ``clones`` of the template,
    default all), by the index readers and by its manifest; the readers' index is the manifests' and the latest
    run is the newest."""
    clones = expected_runs if clones is None else clones
    index = load_index(root)
    assert set(index["run_id"]) == {manifest["run_id"] for manifest in manifests(root)} == expected_runs
    newest = latest_manifest(root)
    assert newest is not None and newest["run_id"] == max(expected_runs, key=lambda run_id: run_id[:16])
    for (table, category), frame in template.items():
        followed = history(root, table, category)
        assert followed is not None
        counts = followed.group_by("run_id").len().collect()
        assert set(counts["run_id"]) == expected_runs
        cloned = counts.filter(pl.col("run_id").is_in(clones))
        assert (cloned["len"] == frame.height).all(), f"{table}/{category}: a run's rows read twice or lost"
    for manifest in manifests(root):
        if manifest["run_id"] not in clones:
            continue
        for (table, category), frame in run_tables(root, manifest, TABLES).items():
            assert frame.drop("run_id", "run_at", "category", "run_date").equals(template[(table, category)])


def assert_index_is_the_manifests(root: Path | str) -> None:
    stored = read_index(root)
    assert stored is not None
    order = ("run_id", "table", "category")
    assert stored.sort(order).equals(index_from_manifests(root).sort(order))


def glob_counts(root: Path | str, table: str) -> pl.DataFrame:
    """What a plain Polars glob over the store (a folder or a bucket) sees (the README's way), rows per run."""
    store = open_store(root)
    return (
        pl.scan_parquet(
            f"{store.location}/{table}/**/*.parquet", hive_partitioning=True, storage_options=store.storage_options
        )
        .group_by("run_id")
        .len()
        .collect()
    )


def assert_glob_sees_each_kept_run_once(root: Path | str, template: Template, expected: set[str]) -> None:
    """A plain glob over the store (the README's way) sees every kept run, each with exactly its rows, and no
    removed run (a run's rows twice, or a removed run's, would show here)."""
    for table in TABLES:
        seen = glob_counts(root, table)
        rows = sum(frame.height for (name, _), frame in template.items() if name == table)
        assert set(seen["run_id"]) == expected, table
        assert set(seen["len"]) == {rows}, table


def test_retention_and_compaction_keep_each_kept_row_once_and_drop_the_rest(tmp_path: Path, template: Template) -> None:
    root = tmp_path / "snapshots"
    ids = build_store(root, template)
    before = runs(load_index(root))
    expected = kept_ids(before)
    assert len(expected) == len(ids) - 2 - 2  # two runs of day -10 and both runs of day -400 go

    report = maintain_store(root, RetentionPolicy())
    assert report.runs_removed == 4 and report.days_compacted == 2
    assert_consistent(root, template, expected)
    # at rest a plain glob sees each kept run's rows once and nothing of a removed run
    assert_glob_sees_each_kept_run_once(root, template, expected)
    # one file per table, category and closed day; the open day keeps its runs' own files
    for days_back, files in ((1, 1), (2, 1), (10, 1), (0, 2)):
        day = (NEWEST.date() - timedelta(days=days_back)).isoformat()
        folder = root / "records" / "category=image_generation" / f"run_date={day}"
        assert len(list(folder.glob("*.parquet"))) == files, day
    assert not (
        root / "records" / "category=image_generation" / f"run_date={(NEWEST.date() - timedelta(days=400))}"
    ).exists()
    # the stored index is the manifests' projection; a second maintenance has nothing to do
    stored = read_index(root)
    assert stored is not None
    assert stored.sort("run_id", "table", "category").equals(
        index_from_manifests(root).sort("run_id", "table", "category")
    )
    again = maintain_store(root, RetentionPolicy())
    assert (again.runs_removed, again.files_written, again.files_removed) == (0, 0, 0)

    # a week later day -2 leaves the first period: its compacted file is rewritten to its last run only
    later = NEWEST + timedelta(days=7)
    commit_clone(root, template, later, later.strftime("%Y%m%dT%H%M%SZ") + "-later")
    maintain_store(root, RetentionPolicy())
    expected = kept_ids(runs(load_index(root)))
    assert_consistent(root, template, expected)
    assert_glob_sees_each_kept_run_once(root, template, expected)


def test_readers_work_without_the_index_and_the_next_maintenance_writes_it(tmp_path: Path, template: Template) -> None:
    root = tmp_path / "snapshots"
    ids = build_store(root, template, ((0, 2), (1, 2)))
    maintain_store(root, RetentionPolicy())
    (root / INDEX_PATH).unlink()
    assert_consistent(root, template, set(ids))
    # a manifest committed behind the index's back is seen by readers at once (one listing, no full read)
    late = NEWEST + timedelta(minutes=1)
    writer = SnapshotWriter(root=root, run_id=late.strftime("%Y%m%dT%H%M%SZ") + "-late", run_at=late)
    for (table, category), frame in sorted(template.items()):
        writer.write(table, category, frame)
    writer.commit(input_hashes={}, counts={})
    assert main(["compact", "--snapshot-dir", str(root)]) == 0
    assert (root / INDEX_PATH).is_file()
    assert_consistent(root, template, {*ids, writer.run_id})


def test_a_run_indexes_itself_and_maintains_the_store(tmp_path: Path, template: Template) -> None:
    """The job: after its commit a run adds itself to the index and applies retention and compaction."""
    root = tmp_path / "snapshots"
    ids = build_store(root, template, ((1, 3), (10, 1), (400, 1)))
    assert main(["run"]) == 0
    index = read_index(root)
    assert index is not None
    newest = latest_manifest(root)
    assert newest is not None and newest["run_id"] not in ids
    assert set(index["run_id"]) == {*ids[1:], newest["run_id"]}, "the run is indexed, the year-old run removed"
    assert index.filter(pl.col("run_id").is_in(ids[2:]))["compacted"].all(), "yesterday's runs compacted"
    assert main(["query", "--category", "image_generation", "--limit", "1"]) == 0


#: The child: the maintenance a run does, stopped for good at the n-th time it reaches ``step``.
CHILD = textwrap.dedent(
    """
    import sys, threading
    from pipeline.steps.retention_plan import RetentionPolicy
    from pipeline.sinks.retention import maintain_store

    root, step, nth = sys.argv[1], sys.argv[2], int(sys.argv[3])  # a folder or an s3:// location
    seen = 0

    def hook(name, fields):
        global seen
        if name == step:
            seen += 1
            if seen == nth:
                print("STOPPED", name, fields, flush=True)
                threading.Event().wait()  # held here until the test kills the process

    maintain_store(root, RetentionPolicy(), on_step=hook)
    print("FINISHED", flush=True)
    """
)

KILL_POINTS = [
    ("day started", 2),  # retention of day -400 done, day -10 begun
    ("compacted file written", 2),  # one compacted file of a day written, the others not
    ("manifest switched", 2),  # some kept runs name the compacted file, others their own file
    ("manifest removed", 1),  # retention: one removed run's manifest gone, the index still names it
    ("index written", 3),  # a day done but for deleting its old files
    ("files removed", 5),  # the old files of half a day's folders deleted
]


@pytest.mark.parametrize(("step", "nth"), KILL_POINTS)
@pytest.mark.parametrize("finisher", ["compact", "run"])
def test_sigkill_during_maintenance_loses_nothing_and_the_next_run_finishes(
    step: str, nth: int, finisher: str, tmp_path: Path, template: Template
) -> None:
    root = tmp_path / "snapshots"
    build_store(root, template)
    expected = kept_ids(runs(load_index(root)))
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(root), step, str(nth)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert child.stdout is not None
    line = child.stdout.readline()  # the child announces the step it is held at
    assert line.startswith("STOPPED " + step), line
    child.send_signal(signal.SIGKILL)
    assert child.wait() == -signal.SIGKILL

    # killed: every run that still has a manifest reads with its rows exactly once, readers agree with the index
    committed = {manifest["run_id"] for manifest in manifests(root)}
    assert expected <= committed, "a run retention keeps was lost"
    assert_consistent(root, template, committed)
    assert list((root / JOURNAL_DIR).glob("day=*")), "the day in progress is marked"

    # the next run (or compact) finishes the work: the same store as a maintenance that was never killed
    clones = set(expected)
    if finisher == "compact":
        assert main(["compact", "--snapshot-dir", str(root)]) == 0
    else:
        assert main(["run"]) == 0
        expected = expected | ({manifest["run_id"] for manifest in manifests(root)} - committed)
    assert not list((root / JOURNAL_DIR).glob("day=*"))
    assert_consistent(root, template, expected, clones)
    assert_glob_sees_each_kept_run_once(root, template, expected)
    for table in TABLES:
        files = [path.name for path in (root / table).glob("category=image_generation/run_date=*/*")]
        assert not [name for name in files if not name.endswith(".parquet")], "no .tmp left"
    stored = read_index(root)
    assert stored is not None
    assert stored.sort("run_id", "table", "category").equals(
        index_from_manifests(root).sort("run_id", "table", "category")
    )


def test_readers_find_the_latest_run_and_a_history_without_reading_every_manifest(
    tmp_path: Path, template: Template, caplog: pytest.LogCaptureFixture
) -> None:
    """Through the index: an old manifest made unreadable is never opened by ``latest_table`` or ``history``."""
    root = tmp_path / "snapshots"
    ids = build_store(root, template, ((0, 3), (1, 2)))
    (root / "_runs" / f"{ids[0]}.json").write_text("{ not read by readers")
    caplog.clear()
    latest = latest_table(root, "deletion_risk", "image_generation")
    assert latest is not None and set(latest["run_id"]) == {ids[-1]}
    followed = history(root, "deletion_risk", "image_generation")
    assert followed is not None and set(followed.collect()["run_id"]) == set(ids)
    assert "manifest" not in caplog.text, "no manifest was read"
    # the index says which runs a day has
    day = (NEWEST.date() - timedelta(days=1)).isoformat()
    assert set(load_index(root).filter(pl.col("run_date") == day)["run_id"]) == set(ids[:2])


def test_a_manifest_rewritten_behind_the_index_is_reindexed_and_its_day_compacted_again(
    tmp_path: Path, template: Template
) -> None:
    """E.g. ``history --rebuild`` rewriting a compacted run's table to its own file: the manifest wins."""
    root = tmp_path / "snapshots"
    ids = build_store(root, template, ((0, 1), (1, 2)))
    maintain_store(root, RetentionPolicy())
    run_id = ids[0]
    manifest = next(m for m in manifests(root) if m["run_id"] == run_id)
    run_at = datetime.fromisoformat(manifest["run_at"])
    writer = SnapshotWriter(root=root, run_id=run_id, run_at=run_at)
    writer.write("records", "image_generation", template[("records", "image_generation")])
    manifest["tables"]["records"]["image_generation"] = writer.written["records"]["image_generation"]
    (root / "_runs" / f"{run_id}.json").write_text(json.dumps(manifest))

    index = reconcile_index(root)
    row = index.filter(
        pl.col("run_id") == run_id, pl.col("table") == "records", pl.col("category") == "image_generation"
    )
    assert row["path"].to_list() == [writer.written["records"]["image_generation"]["path"]]
    assert_consistent(root, template, set(ids))
    report = maintain_store(root, RetentionPolicy())
    assert report.files_written == 1, "that table of that day is compacted again, nothing else"
    assert_consistent(root, template, set(ids))
    assert_index_is_the_manifests(root)


def test_the_closed_hours_of_the_open_day_are_merged_hour_by_hour(tmp_path: Path, template: Template) -> None:
    root = tmp_path / "snapshots"
    newest = datetime(2027, 5, 5, 14, 30, tzinfo=UTC)
    times = [datetime(2027, 5, 5, 13, minute, tzinfo=UTC) for minute in (0, 4, 8)] + [newest]
    ids = [run_at.strftime("%Y%m%dT%H%M%SZ") + "-hour" for run_at in times]
    for run_at, run_id in zip(times, ids, strict=True):
        commit_clone(root, template, run_at, run_id)
    report = maintain_store(root, RetentionPolicy())
    assert report.files_written == len(template), "one file per table and category for hour 13"
    assert_consistent(root, template, set(ids))
    assert_index_is_the_manifests(root)
    folder = root / "records" / "category=image_generation" / "run_date=2027-05-05"
    names = sorted(path.name for path in folder.glob("*.parquet"))
    assert len(names) == 2 and names[0] == f"{ids[-1]}.parquet" and names[1].startswith("compact-2027-05-05T13-")


def test_compact_waits_for_no_one_and_exits_3_while_a_run_holds_the_store(
    tmp_path: Path, template: Template, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "snapshots"
    build_store(root, template, ((0, 1), (1, 2)))
    with snapshot_lock(root):
        assert main(["compact"]) == 3
    assert "another run holds" in capsys.readouterr().err
    assert not read_index(root).filter(pl.col("compacted")).height
    assert main(["compact", "--json"]) == 0
    done = json.loads(capsys.readouterr().out)
    assert done["days_compacted"] == 1 and done["files_written"] == len(template)


def test_a_models_timeline_reads_each_kept_run_once_after_compaction(tmp_path: Path, template: Template) -> None:
    """The ``history`` command's reader (SPEC §10) over a compacted store, found through the index."""
    root = tmp_path / "snapshots"
    build_store(root, template)
    maintain_store(root, RetentionPolicy())
    risk = template[("deletion_risk", "image_generation")].filter(~pl.col("grouped"))
    name = risk["name"][0]
    timeline = model_timeline(root, "image_generation", name)
    assert timeline is not None
    rows = timeline.collect()
    kept = {manifest["run_id"] for manifest in manifests(root)}
    assert rows.height == len(kept) and rows["run_at"].n_unique() == len(kept)
    assert rows["run_at"].is_sorted()
    assert main(["history", "--category", "image_generation", name]) == 0


def test_the_sweep_and_republish_find_runs_without_reading_every_manifest(
    tmp_path: Path, template: Template, caplog: pytest.LogCaptureFixture
) -> None:
    """``sweep_uncommitted`` keeps what ``_runs/`` lists (one listing, no reads); ``run --republish`` finds the
    latest run through the index (``latest_manifest``): an old manifest made unreadable is never opened."""
    root = tmp_path / "snapshots"
    ids = build_store(root, template, ((0, 3),))
    (root / "_runs" / f"{ids[0]}.json").write_text("{ not read by the sweep")
    orphan = SnapshotWriter(root=root, run_id="20200101T000000Z-orphan", run_at=NEWEST - timedelta(hours=1))
    orphan_keys = [orphan.write(table, category, frame) for (table, category), frame in sorted(template.items())]
    caplog.clear()
    removed = sweep_uncommitted(root)
    latest = latest_manifest(root)
    assert "manifest" not in caplog.text, "no manifest was read"
    assert sorted(removed) == sorted(orphan_keys), "only the uncommitted run's files go"
    assert latest is not None and latest["run_id"] == ids[-1]
    kept = root / "records" / "category=image_generation" / f"run_date={NEWEST.date()}" / f"{ids[0]}.parquet"
    assert kept.is_file(), "a run whose manifest cannot be read keeps its files"


def test_an_index_written_before_manifest_versions_is_brought_up_to_date(tmp_path: Path, template: Template) -> None:
    """An index of an earlier release (a file time instead of ``manifest_version``) is read, and the next reconcile
    re-reads every manifest once and writes the current one."""
    root = tmp_path / "snapshots"
    build_store(root, template, ((0, 2), (1, 2)))
    stored = read_index(root)
    assert stored is not None
    stored.drop("manifest_version").with_columns(pl.lit(1, dtype=pl.Int64).alias("manifest_mtime_ns")).write_ipc(
        root / INDEX_PATH
    )
    old = read_index(root)
    assert old is not None and old["manifest_version"].is_null().all()
    reconcile_index(root)
    assert_index_is_the_manifests(root)
    assert_consistent(root, template, set(stored["run_id"]))


def test_a_rebuild_of_history_leaves_the_index_naming_the_rewritten_states(tmp_path: Path, template: Template) -> None:
    # `history --rebuild` rewrites states of compacted runs into their own files: readers go through the index, so
    # the rebuild brings the index in line before it lets go of the lock
    root = tmp_path / "snapshots"
    build_store(root, template, ((0, 1), (1, 2)))
    maintain_store(root, RetentionPolicy())
    assert rebuild_history(root).rewritten
    assert_index_is_the_manifests(root)


class CountingStore:
    """A store that records every key its listings return (a seam: readers accept any ``SnapshotStore``)."""

    def __init__(self, inner: SnapshotStore) -> None:
        self.inner = inner
        self.listed: list[str] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def list_after(self, prefix: str, start_after: str) -> list[str]:
        keys = self.inner.list_after(prefix, start_after)
        self.listed += keys
        return keys

    def list(self, prefix: str, *, recursive: bool = True) -> list[str]:
        keys = self.inner.list(prefix, recursive=recursive)
        self.listed += keys
        return keys

    def versions(self, prefix: str) -> dict[str, str]:
        found = self.inner.versions(prefix)
        self.listed += list(found)
        return found


def counting(root: Path | str) -> tuple[CountingStore, SnapshotStore]:
    store = CountingStore(open_store(root))
    return store, cast(SnapshotStore, store)


def check_readers_list_only_the_newest_manifests(root: Path | str, template: Template) -> None:
    """A run committed but not indexed (killed between its manifest and the index update) is found by listing only
    the manifest names from the newest indexed run's second on; a run whose manifest a maintenance removed (its
    marker in ``_maintenance/``) is dropped by the full check that the marker calls for."""
    ids = build_store(root, template, ((1, 3), (0, 3)))
    unindexed = (NEWEST + timedelta(seconds=1)).strftime("%Y%m%dT%H%M%SZ") + "-unindexed"
    writer = SnapshotWriter(root=root, run_id=unindexed, run_at=NEWEST + timedelta(seconds=1))
    for (table, category), frame in sorted(template.items()):
        writer.write(table, category, frame)
    writer.commit(input_hashes={}, counts={})  # and killed before index_committed_run

    counted, store = counting(root)
    index = load_index(store)
    assert set(index["run_id"]) == {*ids, unindexed}
    latest = latest_manifest(store)
    assert latest is not None and latest["run_id"] == unindexed
    listed = {key for key in counted.listed if key.startswith("_runs/")}
    assert listed <= {f"_runs/{ids[-1]}.json", f"_runs/{unindexed}.json"}, "older manifests are never listed"
    assert f"_runs/{unindexed}.json" in listed

    # a maintenance killed after removing a manifest, before the index follows: its marker calls for the full check
    reconcile_index(root)
    raw = open_store(root)
    raw.put(f"{JOURNAL_DIR}/day={NEWEST.date() - timedelta(days=1)}", b"")
    raw.delete(f"_runs/{ids[0]}.json")
    assert set(load_index(root)["run_id"]) == {*ids[1:], unindexed}
    followed = history(root, "deletion_risk", "image_generation")
    assert followed is not None and set(followed.collect()["run_id"]) == {*ids[1:], unindexed}


def test_readers_list_only_the_manifests_after_the_newest_indexed_run(tmp_path: Path, template: Template) -> None:
    check_readers_list_only_the_newest_manifests(tmp_path / "snapshots", template)


def test_the_sweep_lists_no_data_folder_and_removes_exactly_a_killed_runs_files(
    tmp_path: Path, template: Template
) -> None:
    """Runs put a pending marker before their first file and remove it after their manifest: the sweep lists only
    the markers, and a killed run's files (and its ``*.tmp``) are found from its marker, other runs' never listed."""
    root = tmp_path / "snapshots"
    ids = build_store(root, template, ((1, 2), (0, 2)))
    sweep_uncommitted(root)  # the one full sweep of a store (its runs could predate markers)
    counted, store = counting(root)
    assert sweep_uncommitted(store) == []
    assert [key for key in counted.listed if not key.startswith("_pending/")] == [], "only the markers are listed"

    killed = SnapshotWriter(root=root, run_id=NEWEST.strftime("%Y%m%dT%H%M%SZ") + "-killed", run_at=NEWEST)
    killed_keys = [killed.write(table, category, frame) for (table, category), frame in sorted(template.items())]
    half_put = root / f"{killed_keys[0]}.0badf00d.tmp"  # a put stopped by SIGKILL in a folder
    half_put.write_bytes(b"half")
    counted, store = counting(root)
    removed = sweep_uncommitted(store)
    assert sorted(removed) == sorted([*killed_keys, half_put.relative_to(root).as_posix()])
    assert not (root / "_pending").exists() or not any((root / "_pending").glob("*.json"))
    listed_data = {key for key in counted.listed if not key.startswith(("_pending/", "_runs/", "_redis/"))}
    older = {key for key in listed_data if key.rsplit("/", 1)[-1] < killed.run_id}
    assert older == set(), "another run's files are never listed"
    assert_consistent(root, template, set(ids))
