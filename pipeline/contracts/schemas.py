"""Polars schemas of every input and output frame: the one list of column names.

Column names are the field names of the Pydantic models in ``pipeline.contracts.models`` where a frame feeds one
(a test ties the two together).

One module on purpose, although it is longer than most: it is the one list of column names, read top to bottom as
the data flows (inputs, the merged frame, risk rows, history, the statistics rows), and several schemas are built
from others (``RISK_SCHEMA`` from the flags and ``HISTORY_FIELDS``, ``NAMES_TABLE_SCHEMA`` from the parsed
names); split by table it would scatter one vocabulary over files that import each other.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import polars as pl

__all__ = [
    "AUDIT_SCHEMA",
    "BACKEND_VARIATION_DTYPE",
    "BASELINE_ROW_SCHEMA",
    "BUCKET_ROW_SCHEMA",
    "CASE_DUPLICATE_REASON",
    "CHANGES_SCHEMA",
    "COPY_DIFFERENCE_DTYPE",
    "DUPLICATE_NAME_REASON",
    "FAMILY_SCHEMA",
    "HISTORY_FIELDS",
    "HORDE_STATUS_SCHEMA",
    "HORDE_USAGE_SCHEMA",
    "HORDE_WORKER_SCHEMA",
    "HOST_ROW_SCHEMA",
    "MERGED_SCHEMA",
    "MODEL_STATE_SCHEMA",
    "NAMES_TABLE_SCHEMA",
    "ORPHAN_COPY_REASON",
    "PARSED_NAME_SCHEMA",
    "POINT_SLOTS",
    "PROBLEM_SCHEMA",
    "RECORD_SCHEMA",
    "RISK_SCHEMA",
    "RUN_COLUMNS",
    "TAG_ROW_SCHEMA",
    "UNMATCHED_SCHEMA",
    "HordeFrames",
    "LoadedCategory",
    "StoredStatistics",
    "conformed",
]

#: A field of a backend copy (``aphrodite/<name>``, ``koboldcpp/<name>``) that disagrees with its canonical record,
#: as text (SPEC §11 ``backend_copy_differs``): the copy's name, the field, the copy's value and the record's.
COPY_DIFFERENCE_DTYPE: Final = pl.Struct(
    {"copy": pl.String(), "field": pl.String(), "value": pl.String(), "expected": pl.String()}
)

#: One row per canonical model of a category (SPEC §2.1). Image-only and text-only columns are null
#: where they do not apply, so every category shares one schema and one set of statistics code.
RECORD_SCHEMA: Final = pl.Schema(
    {
        "category": pl.String(),
        "name": pl.String(),
        "baseline": pl.String(),
        "raw_baseline": pl.String(),
        "nsfw": pl.Boolean(),
        "style": pl.String(),
        "tags": pl.List(pl.String()),
        "description": pl.String(),
        "version": pl.String(),
        "inpainting": pl.Boolean(),
        "trigger": pl.List(pl.String()),
        "requirement_count": pl.Int64(),
        "showcase_count": pl.Int64(),
        "homepage": pl.String(),
        "size_on_disk_bytes": pl.Int64(),
        "download_urls": pl.List(pl.String()),
        "download_sizes": pl.List(pl.Int64()),
        "parameters": pl.Int64(),
        "display_name": pl.String(),
        "url": pl.String(),
        "instruct_format": pl.String(),
        "aliases": pl.List(pl.String()),
        "copy_differences": pl.List(COPY_DIFFERENCE_DTYPE),
    }
)

#: A problem found in an input: reported, never silently dropped (SPEC §2.1 "Validation").
PROBLEM_SCHEMA: Final = pl.Schema(
    {"category": pl.String(), "name": pl.String(), "severity": pl.String(), "reason": pl.String()}
)

#: Reasons the loader gives for problems the audit reports under their own kind (SPEC §11): one spelling for both.
DUPLICATE_NAME_REASON: Final = "duplicate name; the first wins"
CASE_DUPLICATE_REASON: Final = "case-only duplicate name; the first wins"
ORPHAN_COPY_REASON: Final = "backend-prefixed name without a canonical record; kept as a model of its own"

#: One row per parsed text model name (SPEC §3.1); the fields of ``pipeline.steps.names.ParsedName``.
PARSED_NAME_SCHEMA: Final = pl.Schema(
    {
        "backend": pl.String(),
        "author": pl.String(),
        "base": pl.String(),
        "size_label": pl.String(),
        "size_b": pl.Float64(),
        "experts": pl.Int64(),
        "expert_size_b": pl.Float64(),
        "active_b": pl.Float64(),  # additive (issue 17): an MoE name's stated active parameters (30B-A3B -> 3.0)
        "variants": pl.List(pl.String()),
        "version": pl.String(),
        "quant": pl.String(),
        "format": pl.String(),
        "family_key": pl.String(),
    }
)

#: AI Horde model status rows (SPEC §2.2): ``GET /v2/status/models``.
HORDE_STATUS_SCHEMA: Final = pl.Schema(
    {
        "name": pl.String(),
        "count": pl.Int64(),
        "performance": pl.Float64(),
        "queued": pl.Float64(),
        "jobs": pl.Float64(),
        "eta": pl.Int64(),
        "type": pl.String(),
    }
)

#: AI Horde usage, one row per model name: the day/month/total maps of ``GET /v2/stats/*/models``.
HORDE_USAGE_SCHEMA: Final = pl.Schema(
    {"name": pl.String(), "usage_day": pl.Int64(), "usage_month": pl.Int64(), "usage_total": pl.Int64()}
)

#: AI Horde workers, one row per (worker, served model name).
HORDE_WORKER_SCHEMA: Final = pl.Schema(
    {
        "worker_id": pl.String(),
        "worker_name": pl.String(),
        "online": pl.Boolean(),
        "maintenance_mode": pl.Boolean(),
        "trusted": pl.Boolean(),
        "threads": pl.Int64(),
        "model": pl.String(),
    }
)

#: Columns every snapshot row carries (SPEC §7.2).
RUN_COLUMNS: Final = pl.Schema({"run_id": pl.String(), "run_at": pl.Datetime("us", "UTC")})


@dataclass(frozen=True)
class LoadedCategory:
    """One category's records, the problems found on the way, and the hash of the input bytes."""

    category: str
    source_file: str
    records: pl.DataFrame
    problems: pl.DataFrame
    input_hash: str
    entries: int
    #: The tables derived from these records alone when an earlier run's were read back with them (SPEC §9: the
    #: same code and rules); None: computed by the run. ``names`` and ``families`` (text), the statistics
    #: tables and counts, and the previous ``audit`` table (its findings about the reference are this run's).
    names: pl.DataFrame | None = None
    families: pl.DataFrame | None = None
    statistics: StoredStatistics | None = None
    audit: pl.DataFrame | None = None


@dataclass(frozen=True)
class StoredStatistics:
    """A category's statistics as an earlier run stored them: each statistics table (``baselines``, ``tags``, ...;
    both ``grouped`` values in one frame, as the snapshot holds them) and, per ``grouped``, the counts behind its
    statistics object (the run's manifest holds those)."""

    tables: dict[str, pl.DataFrame]
    counts: dict[bool, dict[str, int]]


@dataclass(frozen=True)
class HordeFrames:
    """The AI Horde runtime data of one model type (SPEC §2.2); ``workers`` is None when not fetched."""

    status: pl.DataFrame
    usage: pl.DataFrame
    workers: pl.DataFrame | None


#: One text model's figures under one backend spelling (SPEC §4 ``backend_variations``).
BACKEND_VARIATION_DTYPE: Final = pl.Struct(
    {
        "backend": pl.String(),
        "variant_name": pl.String(),
        "worker_count": pl.Int64(),
        "performance": pl.Float64(),
        "usage_day": pl.Int64(),
        "usage_month": pl.Int64(),
        "usage_total": pl.Int64(),
    }
)

#: Records joined with their Horde figures (SPEC §4); one schema for every category so the snapshot table
#: reads as one dataset.
MERGED_SCHEMA: Final = pl.Schema(
    {
        **RECORD_SCHEMA,
        "size_b": pl.Float64(),
        "family_key": pl.String(),
        "parameter_count": pl.Int64(),
        "worker_count": pl.Int64(),
        "status_count": pl.Int64(),
        "usage_day": pl.Int64(),
        "usage_month": pl.Int64(),
        "usage_total": pl.Int64(),
        "performance": pl.Float64(),
        "queued": pl.Float64(),
        "jobs": pl.Float64(),
        "eta": pl.Int64(),
        "horde_names": pl.List(pl.String()),
        "backend_variations": pl.List(BACKEND_VARIATION_DTYPE),
    }
)

#: One finding of the reference audit (SPEC §11); ``value`` is what the reference holds, ``expected`` what it
#: should hold (both as text, null where they do not apply). The writer adds ``run_id`` and ``run_at``.
AUDIT_SCHEMA: Final = pl.Schema(
    {
        "category": pl.String(),
        "name": pl.String(),
        "kind": pl.String(),
        "severity": pl.String(),
        "detail": pl.String(),
        "value": pl.String(),
        "expected": pl.String(),
    }
)

_FLAG_NAMES: Final = (
    "zero_usage_day",
    "zero_usage_month",
    "zero_usage_total",
    "no_active_workers",
    "has_multiple_hosts",
    "has_non_preferred_host",
    "has_unknown_host",
    "no_download_urls",
    "missing_description",
    "missing_baseline",
    "low_usage",
)

#: The additive history fields of a risk row (SPEC §10), in the order of ModelDeletionRiskInfo.
HISTORY_FIELDS: Final = pl.Schema(
    {
        "first_seen": pl.Datetime("us", "UTC"),
        "last_seen_with_workers": pl.Datetime("us", "UTC"),
        "days_without_workers": pl.Int64(),
        "at_risk_since": pl.Datetime("us", "UTC"),
        "usage_month_previous": pl.Int64(),
        "usage_month_change": pl.Int64(),
    }
)

#: One flat deletion-risk row (SPEC §6); the flags are columns so presets are plain expressions.
RISK_SCHEMA: Final = pl.Schema(
    {
        "name": pl.String(),
        "category": pl.String(),
        "grouped": pl.Boolean(),
        "members": pl.List(pl.String()),
        "worker_count": pl.Int64(),
        "usage_day": pl.Int64(),
        "usage_month": pl.Int64(),
        "usage_total": pl.Int64(),
        "category_total_month_usage": pl.Int64(),
        "usage_percentage_of_category": pl.Float64(),
        **{flag: pl.Boolean() for flag in _FLAG_NAMES},
        "at_risk": pl.Boolean(),
        "risk_score": pl.Int64(),
        "is_critical": pl.Boolean(),
        "has_warning": pl.Boolean(),
        "day_to_month_ratio": pl.Float64(),
        "month_to_total_ratio": pl.Float64(),
        "size_gb": pl.Float64(),
        "cost_benefit_score": pl.Float64(),
        "baseline": pl.String(),
        "nsfw": pl.Boolean(),
        "has_description": pl.Boolean(),
        "download_count": pl.Int64(),
        "download_hosts": pl.List(pl.String()),
        "backend_variations": pl.List(BACKEND_VARIATION_DTYPE),
        **HISTORY_FIELDS,
    }
)

#: Daily points a model_state row keeps: a 7-day window touches at most 8 UTC dates, plus the latest older one.
POINT_SLOTS: Final = 9

#: What a run carries to the next, per model (``grouped`` false) and per text family (``grouped`` true), keyed
#: by ``key`` (the model name; a family's first member). SPEC §10; see ``pipeline.steps.history``.
MODEL_STATE_SCHEMA: Final = pl.Schema(
    {
        "grouped": pl.Boolean(),
        "key": pl.String(),
        "name": pl.String(),
        "first_seen": pl.Datetime("us", "UTC"),
        "last_seen_with_workers": pl.Datetime("us", "UTC"),
        "at_risk_since": pl.Datetime("us", "UTC"),
        "worker_count": pl.Int64(),
        "usage_month": pl.Int64(),
        "at_risk": pl.Boolean(),
        "risk_score": pl.Int64(),
        # the 7-day comparison's ring of daily points, newest first (see pipeline.steps.history): when each point's run
        # ran (the same in every row) and this model's usage_month then (null where it was not in that run)
        **{f"point_{slot}_at": pl.Datetime("us", "UTC") for slot in range(POINT_SLOTS)},
        **{f"point_{slot}_usage_month": pl.Int64() for slot in range(POINT_SLOTS)},
    }
)

#: What changed for a model since the previous committed run (SPEC §10); ``before``/``after`` are the numbers
#: the change is about (usage_month for added/removed/usage_dropped, risk_score for the at-risk changes,
#: worker_count for the worker changes).
CHANGES_SCHEMA: Final = pl.Schema(
    {
        "category": pl.String(),
        "name": pl.String(),
        "change": pl.String(),
        "before": pl.Int64(),
        "after": pl.Int64(),
    }
)


def conformed(frame: pl.DataFrame, schema: pl.Schema) -> pl.DataFrame:
    """``frame`` with exactly ``schema``'s columns, in order: missing ones null, extra ones dropped."""
    missing = [pl.lit(None, dtype=dtype).alias(name) for name, dtype in schema.items() if name not in frame.columns]
    return frame.with_columns(missing).select(schema.names()).cast(schema)


#: A parsed text name as the ``names`` snapshot table holds it: the name, its canonical spelling, its parts.
NAMES_TABLE_SCHEMA: Final = pl.Schema({"name": pl.String(), "canonical": pl.String(), **PARSED_NAME_SCHEMA})

#: One text family (SPEC §3): its key, display name, members and what tells them apart.
FAMILY_SCHEMA: Final = pl.Schema(
    {
        "family_key": pl.String(),
        "display_name": pl.String(),
        "members": pl.List(pl.String()),
        "member_count": pl.Int64(),
        "alias_count": pl.Int64(),
        "backends": pl.List(pl.String()),
        "quants": pl.List(pl.String()),
        "sizes": pl.List(pl.String()),
        "size_b": pl.Float64(),
    }
)

#: Statistics rows (SPEC §5), each with the ``grouped`` view it belongs to.
BASELINE_ROW_SCHEMA: Final = pl.Schema(
    {"baseline": pl.String(), "count": pl.Int64(), "percentage": pl.Float64(), "grouped": pl.Boolean()}
)
BUCKET_ROW_SCHEMA: Final = pl.Schema(
    {
        "bucket_label": pl.String(),
        "min_params": pl.Int64(),
        "max_params": pl.Int64(),
        "count": pl.Int64(),
        "percentage": pl.Float64(),
        "grouped": pl.Boolean(),
    }
)
TAG_ROW_SCHEMA: Final = pl.Schema(
    {"tag": pl.String(), "count": pl.Int64(), "percentage": pl.Float64(), "grouped": pl.Boolean()}
)
HOST_ROW_SCHEMA: Final = pl.Schema({"host": pl.String(), "count": pl.Int64(), "grouped": pl.Boolean()})

#: A Horde name no record claims (SPEC §4), case-only spellings summed under the first.
UNMATCHED_SCHEMA: Final = pl.Schema(
    {
        "name": pl.String(),
        "type": pl.String(),
        "spellings": pl.List(pl.String()),
        "workers": pl.Int64(),
        "status_count": pl.Int64(),
        "usage_day": pl.Int64(),
        "usage_month": pl.Int64(),
        "usage_total": pl.Int64(),
    }
)
