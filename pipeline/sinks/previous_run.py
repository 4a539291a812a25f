"""Incremental runs: a reference file whose bytes hash as the previous committed run's is read back from that
run's snapshot instead of being decoded again (SPEC §9).

The previous run stored exactly what loading produces: the ``records`` table (the validated, canonical records)
and the ``problems`` table (what validation reported), and its manifest records each input's sha256 and entry
count. Reading two Parquet files is several times cheaper than decoding the JSON, and the outputs are the same
either way (``tests/test_incremental.py`` compares every table of a warm run with a cold one). When anything of
the previous run cannot be read, the file is decoded as usual: reuse is an optimisation, never a dependency.

The parsed tables of those records, ``names`` and ``families``, depend on nothing else but the parser's code and
the grouping rule: they are read back too when the previous run's ``parsed_tables_key`` (a hash of both) is this
run's, so a new parser or another ``GROUP_BY_VARIANT`` parses again.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Any, Final

import polars as pl

from pipeline.contracts import keys
from pipeline.contracts.schemas import (
    FAMILY_SCHEMA,
    NAMES_TABLE_SCHEMA,
    PROBLEM_SCHEMA,
    RECORD_SCHEMA,
    LoadedCategory,
)
from pipeline.sinks.parquet_snapshot import SnapshotReadError, run_tables
from pipeline.sinks.run_index import latest_manifest
from pipeline.sinks.store import SnapshotStore, open_store
from pipeline.steps import names as names_package

log = logging.getLogger(__name__)

#: The tables that together are what ``load_records`` returns for one category.
REUSED_TABLES: Final = ("records", "problems")
#: The tables computed from the records alone, read back when the parser and the grouping are unchanged.
PARSED_TABLES: Final = ("names", "families")
#: Each table read back, as loading gives it.
_SCHEMAS: Final = {
    "records": RECORD_SCHEMA,
    "problems": PROBLEM_SCHEMA,
    "names": NAMES_TABLE_SCHEMA,
    "families": FAMILY_SCHEMA,
}


def parsed_tables_key(group_by_variant: bool) -> str:
    """What the ``names`` and ``families`` tables of unchanged records depend on: the source of the name parser
    and the families (``pipeline/steps/names/``), and the grouping rule."""
    digest = hashlib.sha256(f"group_by_variant={group_by_variant}".encode())
    for source in sorted(Path(names_package.__file__).parent.glob("*.py")):
        digest.update(source.name.encode() + b"\0" + source.read_bytes())
    return digest.hexdigest()


class PreviousRecords:
    """The loaded categories of the latest committed run, handed out by input hash."""

    def __init__(
        self, store: SnapshotStore, manifest: dict[str, Any] | None, parsed_tables_key: str | None = None
    ) -> None:
        self.store = store
        self.manifest = manifest
        #: this run's ``parsed_tables_key``; None never reads the parsed tables back
        self.parsed_tables_key = parsed_tables_key

    @classmethod
    def latest(cls, root: Path | str | SnapshotStore, parsed_tables_key: str | None = None) -> PreviousRecords:
        """The latest committed run of the store (none when the store has no committed run)."""
        store = open_store(root)
        # a folder store: through its run index (SPEC §13)
        return cls(store, latest_manifest(store), parsed_tables_key)

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
        tables: tuple[str, ...] = REUSED_TABLES
        if self._parsed_tables_apply(category):
            tables += PARSED_TABLES
        try:
            only = {**manifest, "tables": _only(manifest, category, tables)}
            frames = run_tables(self.store, only, tables, schemas=_SCHEMAS)
            records, problems, names, families = (frames.get((table, category)) for table in _SCHEMAS)
        except (SnapshotReadError, pl.exceptions.PolarsError, OSError) as error:
            log.warning(
                "previous run's records unreadable: decoding the input",
                extra={"category": category, "run_id": manifest["run_id"], "error": str(error)},
            )
            return None
        assert records is not None and problems is not None  # checked in the manifest above
        log.info(
            "input unchanged: records read from the previous run",
            extra={"category": category, "parsed_tables": names is not None},
        )
        return LoadedCategory(
            category=category,
            source_file=source_file,
            records=records,
            problems=problems,
            input_hash=input_hash,
            entries=entries,
            names=names,
            families=families,
        )

    def _parsed_tables_apply(self, category: str) -> bool:
        """Whether the previous run's parsed tables of ``category`` are this run's (same parser and grouping)."""
        manifest = self.manifest
        assert manifest is not None
        return (
            self.parsed_tables_key is not None
            and manifest.get("parsed_tables_key") == self.parsed_tables_key
            and all(category in manifest["tables"].get(table, {}) for table in PARSED_TABLES)
        )


def _only(manifest: dict[str, Any], category: str, tables: tuple[str, ...]) -> dict[str, dict[str, Any]]:
    """The manifest's entries of ``tables`` for one category."""
    return {table: {category: manifest["tables"][table][category]} for table in tables}
