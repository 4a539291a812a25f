"""Work on the snapshot store outside a run, under the locks a run takes (SPEC §10, §13): ``compact`` and
``history --rebuild``. A run never works beside them, and they never work beside a run."""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from pathlib import Path

from pipeline.contracts.rules import RetentionPolicy
from pipeline.sinks.history_store import Rebuilt, rebuild_states
from pipeline.sinks.parquet_snapshot import snapshot_lock
from pipeline.sinks.retention import MaintenanceReport, maintain_store
from pipeline.sinks.run_index import reconcile_index
from pipeline.sinks.store import open_store

__all__ = ["compact_store", "rebuild_history"]


def compact_store(
    location: Path | str, policy: RetentionPolicy, run_lock: AbstractContextManager[object] | None = None
) -> MaintenanceReport:
    """Retention and compaction now, under ``run_lock`` (Redis' run lock when a run would take it) and the
    store's lock. Raises the locks' errors when a run holds them; a failure mid-way is finished by the next run."""
    store = open_store(location)
    with run_lock if run_lock is not None else nullcontext(), snapshot_lock(store) as fence:
        return maintain_store(store, policy, fence=fence)


def rebuild_history(location: Path | str) -> Rebuilt:
    """``model_state`` recomputed from every committed run, under the store's lock (a run must not commit
    meanwhile)."""
    with snapshot_lock(location):
        rebuilt = rebuild_states(location)
        reconcile_index(location)  # rewritten manifests name new state files: readers go through the index
        return rebuilt
