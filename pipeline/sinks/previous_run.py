"""Incremental runs: a reference file whose bytes hash as the previous committed run's is read back from that
run's snapshot instead of being decoded again (SPEC §9).

The previous run stored exactly what loading produces: the ``records`` table (the validated, canonical records)
and the ``problems`` table (what validation reported), and its manifest records each input's sha256 and entry
count. Reading two Parquet files is several times cheaper than decoding the JSON, and the outputs are the same
either way (``tests/test_incremental.py`` compares every table of a warm run with a cold one). When anything of
the previous run cannot be read, the file is decoded as usual: reuse is an optimisation, never a dependency.

The tables derived from those records alone depend on nothing else but the code that derives them and the analysis
rules: the parsed ``names`` and the ``families`` (text), the statistics tables with the counts behind each
statistics object (the manifest's ``statistics_counts``), and the ``audit`` (whose findings of the kinds the Horde
data gives the run finds again). They are read back too when the previous run's ``derived_tables_key`` (a hash of
that code and those rules) is this run's, so a new parser, another ``GROUP_BY_VARIANT`` or another top-tags limit
computes them again.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

import polars as pl

import pipeline.contracts as contracts_package
import pipeline.steps as steps_package
from pipeline.contracts import keys
from pipeline.contracts.rules import AnalysisRules
from pipeline.contracts.schemas import LoadedCategory, StoredStatistics
from pipeline.contracts.tables import table_schema
from pipeline.sinks.parquet_snapshot import SnapshotReadError, run_tables
from pipeline.sinks.run_index import latest_manifest
from pipeline.sinks.store import SnapshotStore, open_store
from pipeline.steps.statistics import STATISTICS_TABLES

log = logging.getLogger(__name__)

#: The tables that together are what ``load_records`` returns for one category.
REUSED_TABLES: Final = ("records", "problems")
#: The tables derived from the records alone (besides the statistics tables), read back when the code and the
#: rules are unchanged; ``names`` and ``families`` exist for text only.
DERIVED_TABLES: Final = ("names", "families", "audit")


def derived_tables_key(rules: AnalysisRules) -> str:
    """What the tables derived from unchanged records depend on: the source of the pure steps and the contracts
    (the parser, the families, the statistics, the audit and the shapes and policies they use) and the rules."""
    digest = hashlib.sha256(repr(rules).encode())
    for package in (steps_package, contracts_package):
        root = Path(package.__file__ or "").parent
        for source in sorted(root.rglob("*.py")):
            digest.update(str(source.relative_to(root)).encode() + b"\0" + source.read_bytes())
    return digest.hexdigest()


def statistics_counts_entry(counts: Mapping[tuple[str, bool], Mapping[str, int]]) -> dict[str, dict[str, Any]]:
    """The manifest's ``statistics_counts``: ``{category: {"grouped=false": counts, "grouped=true": counts}}``."""
    entry: dict[str, dict[str, Any]] = {}
    for (category, grouped), values in counts.items():
        entry.setdefault(category, {})[_grouped_key(grouped)] = dict(values)
    return entry


def _grouped_key(grouped: bool) -> str:
    return f"grouped={str(grouped).lower()}"


def _stored_counts(manifest: dict[str, Any], category: str) -> dict[bool, dict[str, int]] | None:
    """A category's ``statistics_counts`` in ``manifest``, None when absent or not counts."""
    entry = manifest.get("statistics_counts", {})
    found = entry.get(category) if isinstance(entry, dict) else None
    if not isinstance(found, dict):
        return None
    counts = {grouped: found.get(_grouped_key(grouped)) for grouped in (False, True)}
    if not all(
        isinstance(values, dict) and all(type(value) is int for value in values.values()) for values in counts.values()
    ):
        return None
    return counts  # type: ignore[return-value]  # checked just above


class PreviousRecords:
    """The loaded categories of the latest committed run, handed out by input hash."""

    def __init__(
        self, store: SnapshotStore, manifest: dict[str, Any] | None, derived_tables_key: str | None = None
    ) -> None:
        self.store = store
        self.manifest = manifest
        #: this run's ``derived_tables_key``; None never reads the derived tables back
        self.derived_tables_key = derived_tables_key

    @classmethod
    def latest(cls, root: Path | str | SnapshotStore, derived_tables_key: str | None = None) -> PreviousRecords:
        """The latest committed run of the store (none when the store has no committed run)."""
        store = open_store(root)
        # a folder store: through its run index (SPEC §13)
        return cls(store, latest_manifest(store), derived_tables_key)

    def input_hash(self, category: str) -> str | None:
        """The sha256 of the bytes the previous run loaded ``category`` from (None: no previous run had it)."""
        if self.manifest is None:
            return None
        found = self.manifest.get("input_hashes", {}).get(keys.records_hash_key(category))
        return found if isinstance(found, str) else None

    def __call__(self, category: str, source_file: str, input_hash: str) -> LoadedCategory | None:
        """``category`` as loading ``source_file`` would give it, when its bytes hash as the previous run's."""
        manifest = self.manifest
        if manifest is None:
            return None
        name = keys.records_hash_key(category)
        entries = manifest.get("input_entries", {}).get(name)
        if self.input_hash(category) != input_hash or not isinstance(entries, int):
            return None
        if any(category not in manifest["tables"].get(table, {}) for table in REUSED_TABLES):
            return None
        counts = self._derived_counts(category)
        tables: tuple[str, ...] = REUSED_TABLES
        if counts is not None:
            listed = (*DERIVED_TABLES, *STATISTICS_TABLES)
            tables += tuple(table for table in listed if category in manifest["tables"].get(table, {}))
        try:
            only = {**manifest, "tables": _only(manifest, category, tables)}
            schemas = {table: table_schema(table) for table in tables}
            frames = {
                table: frame for (table, _), frame in run_tables(self.store, only, tables, schemas=schemas).items()
            }
        except (SnapshotReadError, pl.exceptions.PolarsError, OSError) as error:
            log.warning(
                "previous run's records unreadable: decoding the input",
                extra={"category": category, "run_id": manifest["run_id"], "error": str(error)},
            )
            return None
        log.info(
            "input unchanged: records read from the previous run",
            extra={"category": category, "derived_tables": counts is not None},
        )
        statistics: dict[str, pl.DataFrame] = {table: frames[table] for table in STATISTICS_TABLES if table in frames}
        return LoadedCategory(
            category=category,
            source_file=source_file,
            records=frames["records"],
            problems=frames["problems"],
            input_hash=input_hash,
            entries=entries,
            names=frames.get("names"),
            families=frames.get("families"),
            statistics=StoredStatistics(statistics, counts) if counts is not None else None,
            audit=frames.get("audit"),
        )

    def _derived_counts(self, category: str) -> dict[bool, dict[str, int]] | None:
        """The statistics counts of ``category`` when the previous run's derived tables are this run's (the same
        code and rules), else None."""
        manifest = self.manifest
        assert manifest is not None
        if self.derived_tables_key is None or manifest.get("derived_tables_key") != self.derived_tables_key:
            return None
        return _stored_counts(manifest, category)


def _only(manifest: dict[str, Any], category: str, tables: tuple[str, ...]) -> dict[str, dict[str, Any]]:
    """The manifest's entries of ``tables`` for one category."""
    return {table: {category: manifest["tables"][table][category]} for table in tables}
