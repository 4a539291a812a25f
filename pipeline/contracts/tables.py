"""The snapshot tables: each table's name paired with its declared schema (the one registry).

The snapshot writer adds ``run_id`` and ``run_at`` to every row. A test runs the job and checks every table it
writes against this registry, and checks this registry against ``tests/data/table_schemas.json``: columns may be
added, never removed, renamed, retyped or reordered (readers of older snapshots rely on it).
"""

from __future__ import annotations

from typing import Final

import polars as pl

from pipeline.contracts.schemas import (
    AUDIT_SCHEMA,
    BASELINE_ROW_SCHEMA,
    BUCKET_ROW_SCHEMA,
    CHANGES_SCHEMA,
    FAMILY_SCHEMA,
    HORDE_STATUS_SCHEMA,
    HORDE_USAGE_SCHEMA,
    HOST_ROW_SCHEMA,
    MERGED_SCHEMA,
    MODEL_STATE_SCHEMA,
    NAMES_TABLE_SCHEMA,
    PROBLEM_SCHEMA,
    RECORD_SCHEMA,
    RISK_SCHEMA,
    TAG_ROW_SCHEMA,
    UNMATCHED_SCHEMA,
)

#: table name -> the schema of its rows (before the writer's run_id and run_at).
#: How every snapshot file is written (SPEC §7.2: zstd level 3), by a run and by compaction alike.
PARQUET_COMPRESSION: Final = "zstd"
PARQUET_COMPRESSION_LEVEL: Final = 3

SNAPSHOT_TABLES: Final[dict[str, pl.Schema]] = {
    "records": RECORD_SCHEMA,
    "names": NAMES_TABLE_SCHEMA,
    "families": FAMILY_SCHEMA,
    "horde_status": HORDE_STATUS_SCHEMA,
    "horde_usage": HORDE_USAGE_SCHEMA,
    "merged": MERGED_SCHEMA,
    "baselines": BASELINE_ROW_SCHEMA,
    "buckets": BUCKET_ROW_SCHEMA,
    "tags": TAG_ROW_SCHEMA,
    "styles": TAG_ROW_SCHEMA,
    "hosts": HOST_ROW_SCHEMA,
    "deletion_risk": RISK_SCHEMA,
    "unmatched": UNMATCHED_SCHEMA,
    "audit": AUDIT_SCHEMA,
    "model_state": MODEL_STATE_SCHEMA,
    "changes": CHANGES_SCHEMA,
    # the input problems loading reported per category; incremental runs read them back (SPEC §9)
    "problems": PROBLEM_SCHEMA,
}


def table_schema(table: str) -> pl.Schema:
    """The declared schema of a snapshot table (KeyError naming the registry for an undeclared one)."""
    try:
        return SNAPSHOT_TABLES[table]
    except KeyError:
        raise KeyError(
            f"snapshot table {table!r} is not declared in pipeline.contracts.tables.SNAPSHOT_TABLES"
        ) from None


def schema_document(schema: pl.Schema) -> list[list[str]]:
    """``schema`` as JSON-ready ``[column, dtype]`` pairs, in column order."""
    return [[name, str(dtype)] for name, dtype in schema.items()]
