"""Incremental runs: a reference file whose bytes hash as the previous committed run's is read back from that
run's snapshot instead of being decoded again (SPEC §9).

The previous run stored exactly what loading produces: the ``records`` table (the validated, canonical records)
and the ``problems`` table (what validation reported), and its manifest records each input's sha256 and entry
count. Reading two Parquet files is several times cheaper than decoding the JSON, and the outputs are the same
either way (``tests/test_incremental.py`` compares every table of a warm run with a cold one). When anything of
the previous run cannot be read, the file is decoded as usual: reuse is an optimisation, never a dependency.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Final

import polars as pl

from pipeline.contracts import keys
from pipeline.contracts.schemas import PROBLEM_SCHEMA, RECORD_SCHEMA, LoadedCategory
from pipeline.sinks.parquet_snapshot import SnapshotReadError, run_tables
from pipeline.sinks.run_index import latest_manifest
from pipeline.sinks.store import SnapshotStore, open_store

log = logging.getLogger(__name__)

#: The tables that together are what ``load_records`` returns for one category.
REUSED_TABLES: Final = ("records", "problems")


class PreviousRecords:
    """The loaded categories of the latest committed run, handed out by input hash."""

    def __init__(self, store: SnapshotStore, manifest: dict[str, Any] | None) -> None:
        self.store = store
        self.manifest = manifest

    @classmethod
    def latest(cls, root: Path | str | SnapshotStore) -> PreviousRecords:
        """The latest committed run of the store (none when the store has no committed run)."""
        store = open_store(root)
        return cls(store, latest_manifest(store))  # a folder store: through its run index (SPEC §13)

    def __call__(self, category: str, source_file: str, input_hash: str) -> LoadedCategory | None:
        """``category`` as loading ``source_file`` would give it, when its bytes hash as the previous run's."""
        manifest = self.manifest
        if manifest is None:
            return None
        name = keys.records_hash_key(category)
        entries = manifest.get("input_entries", {}).get(name)
        if manifest.get("input_hashes", {}).get(name) != input_hash or not isinstance(entries, int):
            return None
        if any(category not in manifest["tables"].get(table, {}) for table in REUSED_TABLES):
            return None
        try:
            frames = run_tables(self.store, {**manifest, "tables": _only(manifest, category)}, REUSED_TABLES)
            records = frames[("records", category)].select(RECORD_SCHEMA.names()).cast(RECORD_SCHEMA)
            problems = frames[("problems", category)].select(PROBLEM_SCHEMA.names()).cast(PROBLEM_SCHEMA)
        except (SnapshotReadError, pl.exceptions.PolarsError, OSError) as error:
            log.warning(
                "previous run's records unreadable: decoding the input",
                extra={"category": category, "run_id": manifest["run_id"], "error": str(error)},
            )
            return None
        log.info("input unchanged: records read from the previous run", extra={"category": category})
        return LoadedCategory(
            category=category,
            source_file=source_file,
            records=records,
            problems=problems,
            input_hash=input_hash,
            entries=entries,
        )


def _only(manifest: dict[str, Any], category: str) -> dict[str, dict[str, Any]]:
    """The manifest's entries of the reused tables for one category."""
    return {table: {category: manifest["tables"][table][category]} for table in REUSED_TABLES}
