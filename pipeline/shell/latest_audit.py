"""The reference audit of the latest committed run that has one (SPEC §11), read from the store."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from pipeline.sinks.parquet_snapshot import run_tables
from pipeline.sinks.run_index import manifests_newest_first
from pipeline.sinks.store import SnapshotStore

__all__ = ["latest_findings"]


def latest_findings(snapshot_dir: Path | str | SnapshotStore) -> pl.DataFrame | None:
    """Every category's findings of the newest committed run that has an audit (categories in the order the run
    wrote them, each in its table's order), or None when no committed run has one."""
    for manifest in manifests_newest_first(snapshot_dir):  # through the run index: read one by one, newest first
        if manifest["tables"].get("audit"):
            frames = run_tables(snapshot_dir, manifest, ["audit"]).values()
            return pl.concat(frames, how="diagonal_relaxed")
    return None
