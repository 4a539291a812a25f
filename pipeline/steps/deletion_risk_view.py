"""One deletion-risk view (SPEC §6): its rows, the summary counted over them and the JSON published for it."""

from __future__ import annotations

import json
from dataclasses import dataclass

import polars as pl

from pipeline.contracts.models import (
    CategoryDeletionRiskResponse,
    CategoryDeletionRiskSummary,
    ModelDeletionRiskInfo,
)
from pipeline.contracts.schemas import HISTORY_FIELDS
from pipeline.steps.deletion_risk import FLAGS


def deletion_risk_summary(table: pl.DataFrame) -> CategoryDeletionRiskSummary:
    """Counts over the rows of one risk table."""
    totals = table.select(
        pl.len().alias("total_models"),
        pl.col("at_risk").sum().alias("models_at_risk"),
        pl.col("is_critical").sum().alias("models_critical"),
        pl.col("has_warning").sum().alias("models_with_warnings"),
        pl.col("zero_usage_day").sum().alias("models_with_zero_day_usage"),
        pl.col("zero_usage_month").sum().alias("models_with_zero_month_usage"),
        pl.col("zero_usage_total").sum().alias("models_with_zero_total_usage"),
        pl.col("no_active_workers").sum().alias("models_with_no_active_workers"),
        pl.col("no_download_urls").sum().alias("models_with_no_downloads"),
        pl.col("has_non_preferred_host").sum().alias("models_with_non_preferred_hosts"),
        pl.col("has_multiple_hosts").sum().alias("models_with_multiple_hosts"),
        pl.col("low_usage").sum().alias("models_with_low_usage"),
        pl.col("risk_score").mean().fill_null(0.0).round(2).alias("average_risk_score"),
        pl.col("usage_month").sum().alias("category_total_month_usage"),
    ).row(0, named=True)
    return CategoryDeletionRiskSummary(**totals)


def _info_struct(table: pl.DataFrame, with_variations: bool) -> pl.Expr:
    """One row as the ModelDeletionRiskInfo JSON object, fields in the model's order (plus ``members``)."""
    fields: list[pl.Expr] = []
    for name in ModelDeletionRiskInfo.model_fields:
        if name == "deletion_risk_flags":
            fields.append(pl.struct(*FLAGS).alias(name))
        elif name == "usage_trend":
            fields.append(pl.struct("day_to_month_ratio", "month_to_total_ratio").alias(name))
        elif name == "backend_variations" and not (with_variations and name in table.columns):
            fields.append(pl.lit(None).alias(name))
        elif name in ("usage_hour", "usage_minute"):
            fields.append(pl.lit(None, dtype=pl.Int64).alias(name))  # not available from the AI Horde
        elif name in HISTORY_FIELDS:
            fields.append(_history_field(table, name))
        else:
            fields.append(pl.col(name))
    if "members" in table.columns:
        fields.append(pl.col("members"))  # grouped rows name their member models (an additive field)
    return pl.struct(*fields)


def _history_field(table: pl.DataFrame, name: str) -> pl.Expr:
    """A SPEC §10 field: null where the table carries no history; times written as Pydantic writes them."""
    dtype = HISTORY_FIELDS[name]
    if name not in table.columns:
        return pl.lit(None, dtype=pl.String() if dtype.is_temporal() else dtype).alias(name)
    if dtype.is_temporal():
        return pl.col(name).dt.to_string("%Y-%m-%dT%H:%M:%S%.fZ").alias(name)
    return pl.col(name)


@dataclass(frozen=True)
class DeletionRiskView:
    """One deletion-risk view (category × grouped × variations): its flat table and its JSON.

    The JSON is built by Polars in the exact shape of CategoryDeletionRiskResponse (a test decodes every view
    with the Pydantic model and compares); per-model Python objects would cost seconds per 100k models.
    """

    category: str
    table: pl.DataFrame
    with_variations: bool = False
    run_id: str | None = None
    limit: int | None = None
    total_count: int | None = None

    def summary(self) -> CategoryDeletionRiskSummary:
        """Counts over the rows of this view."""
        return deletion_risk_summary(self.table)

    def json(self) -> str:
        """Compact UTF-8 JSON of the CategoryDeletionRiskResponse."""
        summary = self.summary()
        envelope = {
            "category": self.category,
            "category_total_month_usage": summary.category_total_month_usage,
            "total_count": self.table.height if self.total_count is None else self.total_count,
            "returned_count": self.table.height,
            "offset": 0,
            "limit": self.limit,
            "summary": summary.model_dump(mode="json"),
            "run_id": self.run_id,
        }
        rows = self.table.select(_info_struct(self.table, self.with_variations).struct.json_encode())
        # Joined by Polars (no list of 100k Python strings) and copied once into the value: a text view at 100x
        # is ~90 MB of JSON, so each extra copy of it costs.
        models = rows.to_series().str.join(",").item() if rows.height else ""
        parts: list[str] = []
        for key in CategoryDeletionRiskResponse.model_fields:
            parts.append("," if parts else "{")
            if key == "models":
                parts += ['"models":[', models, "]"]
            else:
                parts.append(
                    json.dumps(key) + ":" + json.dumps(envelope[key], separators=(",", ":"), ensure_ascii=False)
                )
        parts.append("}")
        return "".join(parts)

    def response(self) -> CategoryDeletionRiskResponse:
        """The view as the validated Pydantic model (built from ``json()``: one serialization path)."""
        return CategoryDeletionRiskResponse.model_validate_json(self.json())


def deletion_risk_response(
    table: pl.DataFrame, *, category: str, with_variations: bool = False, run_id: str | None = None
) -> DeletionRiskView:
    """The §6 view of one risk table."""
    return DeletionRiskView(category=category, table=table, with_variations=with_variations, run_id=run_id)


__all__ = [
    "DeletionRiskView",
    "deletion_risk_response",
    "deletion_risk_summary",
]
