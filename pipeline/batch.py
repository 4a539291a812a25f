"""One batch run, the imperative shell: sources -> pure steps -> sinks (SPEC §1, §7).

Nothing is published until everything is computed; the snapshot manifest and the Redis transaction are the
two commit points, so a failed run leaves the last good results in place.
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

import polars as pl

from pipeline.deletion_risk import RiskRules
from pipeline.history import with_history
from pipeline.outputs import AnalysisRules, RunOutputs, run_outputs
from pipeline.schemas import HordeFrames, LoadedCategory
from pipeline.settings import Settings
from pipeline.sinks.history_store import check_run_order, previous_states, rebuild_states
from pipeline.sinks.parquet_snapshot import SnapshotWriter, snapshot_lock, sweep_uncommitted
from pipeline.sources.horde import load_horde
from pipeline.sources.http import HttpFetcher
from pipeline.sources.records import load_records

log = logging.getLogger(__name__)


def analysis_rules(settings: Settings) -> AnalysisRules:
    """The rule values of a run, from settings."""
    return AnalysisRules(
        top_tags_limit=settings.top_tags_limit,
        group_by_variant=settings.group_by_variant,
        risk=RiskRules(
            low_usage_threshold_percentage=settings.low_usage_threshold_percentage,
            text_low_usage_threshold_percentage=settings.text_low_usage_threshold_percentage,
            high_usage_threshold_percentage=settings.high_usage_threshold_percentage,
            text_critical_usage_threshold=settings.text_critical_usage_threshold,
            text_critical_worker_threshold=settings.text_critical_worker_threshold,
            preferred_file_hosts=settings.preferred_file_hosts,
            text_ignore_download_hosts=settings.text_ignore_download_hosts,
            stale_worker_days=settings.stale_worker_days,
        ),
    )


class Stopwatch:
    """Seconds spent per named stage, measured between successive ``lap`` calls; each lap is logged, so a long
    run shows its progress stage by stage (on a terminal as readable lines, elsewhere as JSON events)."""

    def __init__(self) -> None:
        self.laps: dict[str, float] = {}
        self._last = time.perf_counter()

    def lap(self, stage: str) -> None:
        now = time.perf_counter()
        self.laps[stage] = round(now - self._last, 4)
        self._last = now
        log.info("stage finished", extra={"stage": stage, "seconds": round(self.laps[stage], 2)})


@dataclass
class RunReport:
    """What a finished run did."""

    run_id: str
    started_at: float
    finished_at: float
    outputs: RunOutputs
    problems: pl.DataFrame
    input_hashes: dict[str, str]
    counts: dict[str, int]
    published_keys: list[str] = field(default_factory=list)
    #: seconds per stage: load, compute, snapshot, publish; and history, the part of compute SPEC §10 adds
    timings: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class RunInputs:
    """Everything a run reads, loaded and validated."""

    records: dict[str, LoadedCategory]
    horde: dict[str, HordeFrames]
    input_hashes: dict[str, str]


def load_inputs(settings: Settings, fetcher: HttpFetcher) -> RunInputs:
    """Read and validate records and Horde data (raises on unusable input)."""
    # Horde first: its decoding peak then lands on a fresh heap, not on the memory the records decoding leaves
    # with the allocators (measured at 1000x scale).
    horde, horde_hashes = load_horde(settings.horde_source, fetcher)
    records = load_records(
        settings.model_reference_source,
        max_bad_record_fraction=settings.max_bad_record_fraction,
        fetcher=fetcher,
    )
    hashes = {f"records:{category}": item.input_hash for category, item in records.items()} | horde_hashes
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
    """Publishes a finished run's objects (the Redis sink); raises when nothing could be published."""

    def publish_run(self, report: RunReport) -> list[str]: ...


def run_once(
    settings: Settings,
    *,
    publisher: Publisher | None = None,
    as_of: datetime | None = None,
    rebuild_after: bool = False,
) -> RunReport:
    """Load, compute, snapshot and publish one run; raises (publishing nothing) when any step fails.

    Order of commit points: snapshot tables, then the Redis transaction, then the snapshot manifest. A failure
    before the manifest removes this run's tables, so a failed run appears nowhere.

    ``as_of`` stamps the run with another time (a backfill, SPEC §10); one not after the newest committed run is
    refused unless ``rebuild_after``: then it is committed but not published (Redis shows the newest run), and
    ``model_state`` is rebuilt from history afterwards.
    """
    started = time.time()
    run_at = as_of or datetime.fromtimestamp(started, tz=UTC)
    run_id = run_at.strftime("%Y%m%dT%H%M%SZ") + "-" + uuid.uuid4().hex[:8]
    root = Path(settings.snapshot_dir)
    clock = Stopwatch()
    log.info("run started", extra={"run_id": run_id, "stages": "load, compute, snapshot, publish"})
    with snapshot_lock(root):
        sweep_uncommitted(root)
        if not check_run_order(root, run_at, rebuild_after=rebuild_after):
            publisher = None  # Redis is a projection of the newest committed run, not of a backfill
        with HttpFetcher(
            timeout=settings.horde_api_timeout,
            attempts=settings.horde_api_retries,
            cache_dir=root / "_http_cache",
        ) as fetcher:
            inputs = load_inputs(settings, fetcher)
        clock.lap("load")
        problems = pl.concat([item.problems for item in inputs.records.values()])
        _log_problems(problems)
        outputs = run_outputs(
            inputs.records, inputs.horde, analysis_rules(settings), computed_at=int(started), run_id=run_id
        )
        history_started = time.perf_counter()
        outputs = with_history(outputs, previous_states(root, run_at), run_at)
        clock.lap("compute")
        clock.laps["history"] = round(time.perf_counter() - history_started, 4)  # part of compute (SPEC §10)
        counts = {f"{table}:{category}": frame.height for (table, category), frame in outputs.tables.items()}
        report = RunReport(
            run_id=run_id,
            started_at=started,
            finished_at=started,
            outputs=outputs,
            problems=problems,
            input_hashes=inputs.input_hashes,
            counts=counts,
            timings=clock.laps,
        )
        writer = SnapshotWriter(root=root, run_id=run_id, run_at=run_at)
        try:
            for (table, category), frame in sorted(outputs.tables.items()):
                writer.write(table, category, frame)
            clock.lap("snapshot")
            report.finished_at = time.time()
            if publisher is not None:
                report.published_keys = publisher.publish_run(report)
                clock.lap("publish")
            writer.commit(input_hashes=inputs.input_hashes, counts=counts)
        except BaseException:
            writer.abort()
            raise
        if rebuild_after:
            rebuild_states(root)
    log.info("run finished", extra={"run_id": run_id, "seconds": round(report.finished_at - started, 3)})
    return report
