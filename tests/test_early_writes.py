"""Snapshot tables written while compute runs (SPEC §12 unchanged): each table goes to the writer's thread as soon
as it is final; the manifest still goes last, and a run that fails or is stopped after such writes leaves no file
and no pending marker behind. Real runs, real files; the seams are the run's own (``load``, ``snapshot_writer``)."""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

import polars as pl
import pytest

from pipeline.contracts.rules import AnalysisRules
from pipeline.contracts.settings import Settings, load_settings
from pipeline.shell.batch import RunInputs, load_inputs, run_once
from pipeline.shell.interrupts import RunInterrupted, StopRequest
from pipeline.shell.reference_records import load_records
from pipeline.sinks.parquet_snapshot import PENDING_DIR, SnapshotWriter, manifests
from pipeline.sinks.previous_run import PreviousRecords
from pipeline.sources.horde import load_horde
from pipeline.sources.http import HttpFetcher
from pipeline.steps.history import HISTORY_TABLES, with_history
from pipeline.steps.outputs import run_outputs
from tests.conftest import SAMPLE_DATA
from tests.run_helpers import committed_ids, uncommitted_files

WAIT = 60  # seconds an event may take on a loaded machine before the test fails (never slept through)


class RecordingWriter(SnapshotWriter):
    """A real writer that notes which thread wrote which table, and says when the first file was on disk."""

    on_disk: ClassVar = threading.Event()
    #: set: writes go on; clear: the first write waits for it once its file is put
    resume: ClassVar = threading.Event()
    writes: ClassVar[list[tuple[str, str]]] = []

    def write(self, table: str, category: str, frame: pl.DataFrame) -> str:
        key = super().write(table, category, frame)
        assert self.store.exists(key)
        RecordingWriter.writes.append((table, threading.current_thread().name))
        RecordingWriter.on_disk.set()
        assert RecordingWriter.resume.wait(WAIT)
        return key


@pytest.fixture(autouse=True)
def fresh_recorder() -> Iterator[None]:
    RecordingWriter.on_disk.clear()
    RecordingWriter.resume.set()
    RecordingWriter.writes = []
    yield
    RecordingWriter.resume.set()


@contextmanager
def on_stage(stage: str, action: Any) -> Iterator[None]:
    """Call ``action()`` when the run logs that ``stage`` finished (on the run's thread, before the boundary's
    stop check)."""

    class Handler(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if record.getMessage() == "stage finished" and getattr(record, "stage", None) == stage:
                action()

    handler, stopwatch = Handler(), logging.getLogger("pipeline.shell.stopwatch")
    stopwatch.addHandler(handler)
    stopwatch.setLevel(logging.INFO)
    try:
        yield
    finally:
        stopwatch.removeHandler(handler)
        stopwatch.setLevel(logging.NOTSET)


def writer_threads() -> list[str]:
    return [thread.name for thread in threading.enumerate() if thread.name.startswith("snapshot-tables")]


def assert_nothing_left(root: Path) -> None:
    assert writer_threads() == []  # nothing still writing once the run has cleaned up
    assert committed_ids(root) == [] and uncommitted_files(root) == []
    assert not list(root.rglob("*.parquet")) and not list(root.rglob("*.tmp"))
    assert not list((root / PENDING_DIR).glob("*.json"))  # no pending marker


def test_tables_final_before_compute_ends_are_written_meanwhile(tmp_path: Path) -> None:
    written_during_compute: list[bool] = []
    # the records are final right after load: the compute boundary waits until one is on disk (it never would
    # if the tables were only handed to the writer after compute)
    with on_stage("compute", lambda: written_during_compute.append(RecordingWriter.on_disk.wait(WAIT))):
        report = run_once(load_settings(), snapshot_writer=RecordingWriter)
    assert written_during_compute == [True]
    assert writer_threads() == []
    assert {thread for _, thread in RecordingWriter.writes} == {"snapshot-tables_0"}  # the writer's own thread
    (manifest,) = manifests(tmp_path / "snapshots")
    assert manifest["run_id"] == report.run_id
    assert list(manifest["tables"]) == sorted(manifest["tables"])  # one order, whatever order the writes took
    written = {(table, category) for table, entries in manifest["tables"].items() for category in entries}
    categories = {category for _, category in report.outputs.tables}
    assert written == set(report.outputs.tables) | {("problems", category) for category in categories}


def test_a_compute_failing_after_early_writes_leaves_no_file_and_no_marker(tmp_path: Path) -> None:
    """Compute fails while a table written early is on disk, its write still in progress, and more are queued."""
    RecordingWriter.resume.clear()

    class BrokenHorde:
        """Image Horde data that turns out unusable only once the first table is on disk."""

        usage = workers = None

        @property
        def status(self) -> pl.DataFrame:
            assert RecordingWriter.on_disk.wait(WAIT)
            RecordingWriter.resume.set()  # the write in progress finishes while the run fails
            raise ValueError("image status unusable (simulated)")

    def load(settings: Settings, fetcher: HttpFetcher, previous: PreviousRecords | None) -> RunInputs:
        inputs = load_inputs(settings, fetcher, previous)
        return RunInputs(inputs.records, {**inputs.horde, "image": BrokenHorde()}, inputs.input_hashes)  # type: ignore[dict-item]

    with pytest.raises(ValueError, match="image status unusable"):
        run_once(load_settings(), load=load, snapshot_writer=RecordingWriter)
    assert RecordingWriter.writes, "no table was written before compute failed"
    assert_nothing_left(tmp_path / "snapshots")
    run_once(load_settings())  # the store's lock was released


def test_a_stop_at_the_compute_boundary_removes_the_tables_written_early(tmp_path: Path) -> None:
    stop = StopRequest()

    def stop_once_a_table_is_on_disk() -> None:
        assert RecordingWriter.on_disk.wait(WAIT)
        stop.request(signal.SIGTERM)

    with on_stage("compute", stop_once_a_table_is_on_disk), pytest.raises(RunInterrupted) as stopped:
        run_once(load_settings(), stop=stop, snapshot_writer=RecordingWriter)
    assert stopped.value.exit_code == 143
    assert RecordingWriter.writes
    assert_nothing_left(tmp_path / "snapshots")
    run_once(load_settings())


def test_every_table_is_reported_once_and_only_history_tables_change_after() -> None:
    """The contract the early writes rely on: ``run_outputs`` tells each table once, with its final frame, and
    ``with_history`` replaces none but ``HISTORY_TABLES``."""
    loaded = load_records(str(SAMPLE_DATA / "model_reference"))
    horde, _ = load_horde(str(SAMPLE_DATA / "horde"))
    told: list[tuple[tuple[str, str], pl.DataFrame]] = []
    outputs = run_outputs(
        loaded, horde, AnalysisRules(), computed_at=1, on_table=lambda key, frame: told.append((key, frame))
    )
    assert [key for key, _ in told] == list(outputs.tables)  # each once, in the order they were completed
    final = with_history(outputs, {}, datetime(2026, 2, 2, tzinfo=UTC))
    for key, frame in told:
        assert (final.tables[key] is frame) == (key[0] not in HISTORY_TABLES), key
    assert {table for table, _ in set(final.tables) - set(outputs.tables)} <= HISTORY_TABLES
