"""One batch run, the imperative shell: sources -> pure steps -> sinks (SPEC §1, §7, §12).

Order: take the lock -> load -> compute -> write the snapshot tables (and the run's Redis values) -> write the
manifest, **the commit** -> publish the committed run to Redis in one transaction -> release the lock. Redis is
a projection of the latest committed run: a run that fails before the manifest leaves nothing anywhere, and a
run that commits but cannot publish leaves Redis on the previous run (exit 4) until the next run or
``run --republish``.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import polars as pl

from pipeline.contracts import keys
from pipeline.contracts.models import LastRun
from pipeline.contracts.rules import analysis_rules, retention_policy
from pipeline.contracts.schemas import HordeFrames, LoadedCategory
from pipeline.contracts.settings import Settings, settings_log_events
from pipeline.shell.interrupts import StopRequest
from pipeline.shell.reference_records import load_records
from pipeline.shell.stopwatch import Stopwatch
from pipeline.sinks.history_store import check_run_order, previous_states, rebuild_states
from pipeline.sinks.lock import RedisLock
from pipeline.sinks.parquet_snapshot import (
    SnapshotWriter,
    snapshot_lock,
)
from pipeline.sinks.previous_run import PreviousRecords, derived_tables_key, statistics_counts_entry
from pipeline.sinks.redis_publisher import PublishError
from pipeline.sinks.redis_values import RedisValues
from pipeline.sinks.retention import index_committed_run, maintain_after_commit
from pipeline.sinks.run_index import reconcile_index
from pipeline.sinks.store import FolderStore, open_store
from pipeline.sinks.uncommitted import sweep_uncommitted
from pipeline.sources.gc_pause import collector_paused
from pipeline.sources.horde import load_horde
from pipeline.sources.http import HttpFetcher
from pipeline.steps.history import with_history
from pipeline.steps.outputs import RunOutputs, run_outputs

__all__ = [
    "Publisher",
    "RunInputs",
    "RunResult",
    "last_run",
    "load_inputs",
    "run_once",
]

log = logging.getLogger(__name__)


@dataclass
class RunResult:
    """What a finished run did."""

    run_id: str
    started_at: float
    finished_at: float
    outputs: RunOutputs
    problems: pl.DataFrame
    input_hashes: dict[str, str]
    counts: dict[str, int]
    published_keys: list[str] = field(default_factory=list)
    #: why a committed run was not published to Redis (exit 4), None when it was or no Redis is configured
    not_published: str | None = None
    #: seconds per stage: load, compute, snapshot, commit, publish, maintain (the index, retention, compaction and
    #: a rebuild, after the publish); and history, the part of compute SPEC §10 adds
    timings: dict[str, float] = field(default_factory=dict)
    #: CPU seconds of this process per stage (same names as ``timings``)
    cpu_timings: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class RunInputs:
    """Everything a run reads, loaded and validated."""

    records: dict[str, LoadedCategory]
    horde: dict[str, HordeFrames]
    input_hashes: dict[str, str]


def load_inputs(settings: Settings, fetcher: HttpFetcher, previous: PreviousRecords | None = None) -> RunInputs:
    """Read and validate records and Horde data (raises on unusable input); a reference file whose bytes are
    the ``previous`` run's is read back from its snapshot (SPEC §9)."""
    # The Horde payloads load on a second thread while the records load here: each side's Polars work (and file
    # reads and hashes) lets go of the GIL, so the other side's decoding runs meanwhile. One pause of the cyclic
    # collector spans both (a pause of each would end while the other still decodes). A Horde error wins, as when
    # the two loaded one after the other.
    with collector_paused(), ThreadPoolExecutor(max_workers=1, thread_name_prefix="horde-load") as pool:
        horde_loaded = pool.submit(
            load_horde, settings.horde_source, fetcher, max_bad_record_fraction=settings.max_bad_record_fraction
        )
        try:
            records = load_records(
                settings.model_reference_source,
                max_bad_record_fraction=settings.max_bad_record_fraction,
                fetcher=fetcher,
                reuse=previous,
            )
        except BaseException:
            horde_loaded.result()  # its error first, if it has one
            raise
        horde, horde_hashes = horde_loaded.result()
    hashes = {keys.records_hash_key(category): item.input_hash for category, item in records.items()} | horde_hashes
    return RunInputs(records=records, horde=horde, input_hashes=hashes)


def _log_problems(problems: pl.DataFrame) -> None:
    for row in problems.iter_rows(named=True):
        level = logging.ERROR if row["severity"] == "error" else logging.WARNING
        log.log(
            level,
            "input problem",
            extra={"category": row["category"], "model": row["name"], "reason": row["reason"]},
        )


class Publisher(Protocol):
    """The Redis sink as a run sees it (``RedisPublisher``)."""

    #: Why Redis could not be used (set when ``run_lock`` gives None).
    down: str | None

    def run_lock(self) -> AbstractContextManager[RedisLock | None]:
        """Hold the run lock (None when Redis cannot give it: the run then commits without publishing)."""
        ...

    def run_values(self, outputs: RunOutputs, last_run: LastRun) -> RedisValues: ...

    def stored(self, values: RedisValues) -> pl.DataFrame: ...

    def restored(self, stored: pl.DataFrame | dict[str, Any]) -> RedisValues: ...

    def publish(self, values: RedisValues, fence: RedisLock) -> list[str]: ...


def last_run(report: RunResult) -> LastRun:
    """What Redis says about a finished run (``last_run``)."""
    return LastRun(
        run_id=report.run_id,
        started_at=report.started_at,
        finished_at=report.finished_at,
        input_hashes=report.input_hashes,
        counts=report.counts,
    )


def run_once(
    settings: Settings,
    *,
    publisher: Publisher | None = None,
    stop: StopRequest | None = None,
    load: Callable[[Settings, HttpFetcher, PreviousRecords | None], RunInputs] = load_inputs,
    snapshot_writer: type[SnapshotWriter] = SnapshotWriter,
    as_of: datetime | None = None,
    rebuild_after: bool = False,
    reuse_inputs: bool = True,
) -> RunResult:
    """Load, compute, snapshot, commit and publish one run (order: SPEC §12).

    ``load`` and ``snapshot_writer`` are seams: the source and the sink a run uses (a test passes one that fails).

    Raises (committing nothing: this run's files are removed) when any step before the manifest fails, when
    the lock was lost (LockLostError) or a stop was requested (RunInterrupted). Once committed, a failed
    publish does not raise: ``report.not_published`` says why.

    ``as_of`` stamps the run with another time (a backfill, SPEC §10); one not after the newest committed run is
    refused unless ``rebuild_after``: then it is committed but not published (Redis shows the newest run), and
    ``model_state`` is rebuilt from history afterwards.
    """
    started = time.time()
    run_at = as_of or datetime.fromtimestamp(started, tz=UTC)
    run_id = run_at.strftime("%Y%m%dT%H%M%SZ") + "-" + uuid.uuid4().hex[:8]
    store = open_store(settings.snapshot_dir)
    rules = analysis_rules(settings)
    derived_key = derived_tables_key(rules)  # what the tables derived from the records alone depend on (SPEC §9)
    clock = Stopwatch(stop)
    log.info("run started", extra={"run_id": run_id, "stages": "load, compute, snapshot, commit, publish, maintain"})
    for level, event, fields in settings_log_events(settings):  # SPEC §8: effective settings, masked
        log.log(level, event, extra=fields)
    with (
        publisher.run_lock() if publisher is not None else nullcontext() as fence,
        # the store's own lock (flock, or the lock object of a bucket) is taken whether Redis fences the run or
        # not, as `history --rebuild` and runs without Redis take only that one (SPEC §9)
        snapshot_lock(store) as store_fence,
    ):
        reconcile_index(store)  # before the sweep: the index must not name files the sweep removes (SPEC §13)
        sweep_uncommitted(store)
        if not check_run_order(store, run_at, rebuild_after=rebuild_after, now=datetime.fromtimestamp(started, UTC)):
            publisher = None  # Redis is a projection of the newest committed run, not of a backfill
        with HttpFetcher(
            timeout=settings.horde_api_timeout,
            attempts=settings.horde_api_retries,
            max_bytes=settings.horde_api_max_bytes,
            # the HTTP cache is a local convenience: an object store (a pod without lasting disk) gets none
            cache_dir=Path(store.location) / "_http_cache" if isinstance(store, FolderStore) else None,
        ) as fetcher:
            # SPEC §9: unchanged reference files are read back from the previous run (reuse_inputs=False decodes all)
            previous = PreviousRecords.latest(store, derived_key) if reuse_inputs else None
            inputs = load(settings, fetcher, previous)
        clock.lap("load")
        problems = pl.concat([item.problems for item in inputs.records.values()])
        _log_problems(problems)
        outputs = run_outputs(inputs.records, inputs.horde, rules, computed_at=int(started), run_id=run_id)
        history_started = time.perf_counter()
        outputs = with_history(outputs, previous_states(store, run_at), run_at)
        clock.lap("compute")
        clock.laps["history"] = round(time.perf_counter() - history_started, 4)  # part of compute (SPEC §10)
        counts = {f"{table}:{category}": frame.height for (table, category), frame in outputs.tables.items()}
        report = RunResult(
            run_id=run_id,
            started_at=started,
            finished_at=started,
            outputs=outputs,
            problems=problems,
            input_hashes=inputs.input_hashes,
            counts=counts,
            timings=clock.laps,
            cpu_timings=clock.cpu_laps,
        )
        writer = snapshot_writer(root=store, run_id=run_id, run_at=run_at)
        try:
            report.finished_at = time.time()  # the outputs are complete; last_run says so
            redis_values: RedisValues | None = None
            # The Redis values are built and stored (so `run --republish` sends exactly these) on a second thread
            # while the tables are written: both are mostly Polars, which lets go of the GIL. Leaving the pool
            # waits for it, so an abort below never races the artifact's put.
            with ThreadPoolExecutor(max_workers=1, thread_name_prefix="redis-values") as pool:
                stored = None if publisher is None else pool.submit(_stored_values, publisher, writer, report)
                for (table, category), frame in sorted(outputs.tables.items()):
                    writer.write(table, category, frame)
                for category, item in sorted(inputs.records.items()):
                    writer.write("problems", category, item.problems)
                redis_values = None if stored is None else stored.result()
            clock.lap("snapshot")
            if fence is not None:
                fence.verify()  # the fence: a run that lost its lock must not commit (SPEC §12)
            store_fence.verify()  # the lock object of an object store, likewise
            entries = {keys.records_hash_key(category): item.entries for category, item in inputs.records.items()}
            writer.commit(
                input_hashes=inputs.input_hashes,
                counts=counts,
                input_entries=entries,
                derived_tables_key=derived_key,
                statistics_counts=statistics_counts_entry(outputs.statistics_counts),
            )
        except BaseException:
            writer.abort()
            raise
        index_committed_run(store, run_id)  # readers find runs through the index (SPEC §13)
        clock.lap("commit", stoppable=False)  # committed: a stop request now waits for the publish
        if publisher is not None and redis_values is not None:
            report.published_keys, report.not_published = _published(publisher, redis_values, fence)
            clock.lap("publish", stoppable=False)
        if rebuild_after:
            rebuild_states(store)
        maintain_after_commit(store, retention_policy(settings), store_fence)  # still under the lock (SPEC §13)
        clock.lap("maintain", stoppable=False)
    log.info("run finished", extra={"run_id": run_id, "seconds": round(time.time() - started, 3)})
    return report


def _stored_values(publisher: Publisher, writer: SnapshotWriter, report: RunResult) -> RedisValues:
    """Every Redis value of the run, written into its snapshot (before the commit: SPEC §12)."""
    values = publisher.run_values(report.outputs, last_run(report))
    writer.write_artifact("redis", publisher.stored(values))
    return values


def _published(publisher: Publisher, values: RedisValues, fence: RedisLock | None) -> tuple[list[str], str | None]:
    """The keys published, or why nothing was (a committed run whose Redis update failed: exit 4)."""
    if fence is None:
        reason = f"redis was unusable when the run started ({publisher.down})"
    else:
        try:
            return publisher.publish(values, fence), None
        except PublishError as error:
            reason = str(error)
    log.error("run committed but not published: redis still serves the previous run", extra={"error": reason})
    return [], reason
