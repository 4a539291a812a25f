"""History in the snapshot store (SPEC §10): the previous committed state, a model's timeline, the state rebuilt
from every committed run. Only committed runs (those with a manifest) are read: a killed or failed run never
contributes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

import polars as pl

from pipeline.contracts.categories import CATEGORY_FILES
from pipeline.contracts.schemas import MODEL_STATE_SCHEMA, RISK_SCHEMA, RUN_COLUMNS
from pipeline.sinks.parquet_snapshot import SnapshotWriter, entry_scan, manifests, pending_key
from pipeline.sinks.run_index import load_index, manifests_newest_first, runs, scan_indexed
from pipeline.sinks.run_manifests import write_manifest
from pipeline.sinks.store import SnapshotStore, open_store
from pipeline.steps.deletion_risk import FLAGS
from pipeline.steps.history import model_state

__all__ = [
    "TIMELINE_COLUMNS",
    "OutOfOrderRunError",
    "Rebuilt",
    "check_run_order",
    "model_timeline",
    "newest_run_time",
    "previous_states",
    "rebuild_states",
    "run_time",
]

#: What ``history`` prints per committed run (SPEC §10), in this order.
TIMELINE_COLUMNS: Final = (
    "run_at",
    "worker_count",
    "usage_day",
    "usage_month",
    "at_risk",
    "risk_score",
    "flags",
    "days_without_workers",
    "at_risk_since",
)
# The columns of a risk file the timeline reads (the hive ``category`` is in the path). Naming only these keeps the
# scan to them (a schema of every risk column made it 3x slower at 100x); files of older runs lack the newer
# columns, which read as null, and columns added later are ignored.
_TIMELINE_SOURCE: Final = pl.Schema(
    {
        name: {**RISK_SCHEMA, **RUN_COLUMNS}[name]
        for name in ("name", "grouped", *TIMELINE_COLUMNS, *FLAGS)
        if name != "flags"
    }
)


def run_time(manifest: dict[str, Any]) -> datetime:
    """When a committed run ran (its ``--as-of`` time for a backfill)."""
    return datetime.fromisoformat(manifest["run_at"])


def newest_run_time(root: Path | str | SnapshotStore) -> datetime | None:
    """The time of the newest committed run, or None for an empty store (through its run index, SPEC §13)."""
    indexed = runs(load_index(root))
    return indexed["run_at"][-1] if indexed.height else None


class OutOfOrderRunError(ValueError):
    """A run (a backfill) not newer than the newest committed run, without ``--rebuild-after``."""


#: How far past the clock a run's time may be (clocks of two machines differ a little). Retention counts back from
#: the newest run's time (SPEC §13), so a run stamped years ahead by a typo would have the next maintenance remove
#: nearly all history: such a run is refused.
MAX_RUN_TIME_AHEAD: Final = timedelta(minutes=5)


def check_run_order(
    root: Path | str | SnapshotStore, run_at: datetime, *, rebuild_after: bool, now: datetime | None = None
) -> bool:
    """True when ``run_at`` is newer than every committed run; False for an accepted backfill (``rebuild_after``);
    raises OutOfOrderRunError otherwise (runs are ordered by their time, SPEC §10), and for a time more than
    ``MAX_RUN_TIME_AHEAD`` past ``now`` (the clock)."""
    now = now or datetime.now(UTC)
    if run_at > now + MAX_RUN_TIME_AHEAD:
        raise OutOfOrderRunError(
            f"run time {run_at.isoformat()} is in the future (the clock says {now.isoformat(timespec='seconds')}); "
            "retention counts back from the newest run, so a future run would remove the history before it"
        )
    newest = newest_run_time(root)
    if newest is None or run_at > newest:
        return True
    if rebuild_after:
        return False
    raise OutOfOrderRunError(
        f"run time {run_at.isoformat()} is not after the newest committed run ({newest.isoformat()}) in "
        f"{open_store(root).location}; "
        "pass --rebuild-after to backfill it and rebuild model_state from history, e.g. "
        "`horde-analytics run --as-of 2026-01-01T00:00:00Z --rebuild-after`"
    )


def _state(store: SnapshotStore, run_id: str, entry: dict[str, Any]) -> pl.DataFrame:
    # its own file, or its rows of a compacted file (SPEC §13)
    scan = entry_scan(store, run_id, entry, hive_partitioning=False)
    return scan.select(MODEL_STATE_SCHEMA.names()).collect()


def previous_states(root: Path | str | SnapshotStore, run_at: datetime) -> dict[str, pl.DataFrame]:
    """category -> ``model_state`` of the newest committed run before ``run_at`` that has one (manifests read
    newest first, only as far back as needed)."""
    found: dict[str, pl.DataFrame] = {}
    store = open_store(root)
    for manifest in manifests_newest_first(store):
        if run_time(manifest) >= run_at:
            continue
        for category, entry in manifest["tables"].get("model_state", {}).items():
            if category not in found:
                found[category] = _state(store, manifest["run_id"], entry)
        if set(found) >= set(CATEGORY_FILES):
            break  # every category found: older manifests are not read
    return found


def model_timeline(
    root: Path | str | SnapshotStore, category: str, name: str, *, grouped: bool = False
) -> pl.LazyFrame | None:
    """One model's (or family's) row in every committed run, oldest first, lazily over the store."""
    store = open_store(root)
    entries = load_index(store).filter(pl.col("table") == "deletion_risk", pl.col("category") == category)
    indexed = scan_indexed(  # through the run index; each run's rows once, wherever compaction put them (§13)
        store,
        entries,
        schema=pl.Schema({**_TIMELINE_SOURCE, "run_id": RUN_COLUMNS["run_id"]}),  # run_id: a run's rows by id
        missing_columns="insert",
        extra_columns="ignore",
        hive_partitioning=False,
    )
    return None if indexed is None else _timeline(indexed, name, grouped)


def _timeline(risk: pl.LazyFrame, name: str, grouped: bool) -> pl.LazyFrame:
    flags = pl.concat_list([pl.when(pl.col(flag)).then(pl.lit(flag)) for flag in FLAGS]).list.drop_nulls()
    return (
        risk.filter(pl.col("name") == name, pl.col("grouped") == grouped)
        .with_columns(flags.alias("flags"))
        .select(TIMELINE_COLUMNS)
        .sort("run_at")  # runs are ordered by their time (SPEC §10); a string run_id column would double the scan
    )


@dataclass(frozen=True)
class Rebuilt:
    """What ``rebuild_states`` did: states compared, and those written because they differed or were missing."""

    runs: int
    states: int
    rewritten: list[str]


def _carries_removed_runs(state: pl.DataFrame, run_at: datetime) -> bool:
    """True when ``state`` remembers runs before ``run_at`` (a model first seen earlier): the oldest kept run's
    state after retention removed the runs before it."""
    first_seen = state["first_seen"].min()
    return isinstance(first_seen, datetime) and first_seen < run_at


def rebuild_states(root: Path | str | SnapshotStore) -> Rebuilt:
    """Recompute ``model_state`` from every committed run in run order, writing each one that differs from the
    stored state (or is missing). The oldest kept run's state is the start when it remembers runs that retention
    has removed (SPEC §13); otherwise the rebuild starts from nothing. Call under the snapshot lock."""
    states: dict[str, pl.DataFrame] = {}
    compared = 0
    rewritten: list[str] = []
    store = open_store(root)
    found = manifests(store)
    for manifest in found:
        run_at = run_time(manifest)
        changed = False
        for category, entry in sorted(manifest["tables"].get("deletion_risk", {}).items()):
            stored_entry = manifest["tables"].get("model_state", {}).get(category)
            compared += 1
            stored = None if stored_entry is None else _state(store, manifest["run_id"], stored_entry)
            if category not in states and stored is not None and _carries_removed_runs(stored, run_at):
                # SPEC §13: retention removed the runs before this one; their history lives on only in this
                # run's stored state, so the rebuild starts from it instead of from nothing
                states[category] = stored
                continue
            risk = entry_scan(store, manifest["run_id"], entry, hive_partitioning=False).collect()
            state = model_state(states.get(category), risk, run_at)
            if stored is None or not stored.equals(state, null_equal=True):
                writer = SnapshotWriter(root=store, run_id=manifest["run_id"], run_at=run_at)
                writer.write("model_state", category, state)
                manifest["tables"].setdefault("model_state", {})[category] = writer.written["model_state"][category]
                rewritten.append(f"{manifest['run_id']}/{category}")
                changed = True
            states[category] = state
        if changed:
            write_manifest(store, manifest)
            store.delete(pending_key(manifest["run_id"]))  # its writer's marker: the run is committed
    return Rebuilt(runs=len(found), states=compared, rewritten=rewritten)
