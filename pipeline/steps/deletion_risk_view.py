"""One deletion-risk view (SPEC §6): its rows, the summary counted over them and the JSON published for it."""

from __future__ import annotations

import io
import json
from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from typing import Final, TypeVar

import polars as pl

from pipeline.contracts.models import (
    CategoryDeletionRiskResponse,
    CategoryDeletionRiskSummary,
    ModelDeletionRiskInfo,
)
from pipeline.contracts.schemas import HISTORY_FIELDS
from pipeline.steps.deletion_risk import FLAGS

ViewKeyT = TypeVar("ViewKeyT", bound=Hashable)


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


#: The row field only the variations view fills; every view of a table shares the fields around it.
_VARIATIONS: Final = "backend_variations"


def _info_fields(table: pl.DataFrame, names: list[str]) -> list[pl.Expr]:
    """The ModelDeletionRiskInfo fields ``names`` of a row, as Pydantic writes them (``backend_variations`` apart)."""
    fields: list[pl.Expr] = []
    for name in names:
        if name == "deletion_risk_flags":
            fields.append(pl.struct(*FLAGS).alias(name))
        elif name == "usage_trend":
            fields.append(pl.struct("day_to_month_ratio", "month_to_total_ratio").alias(name))
        elif name in ("usage_hour", "usage_minute"):
            fields.append(pl.lit(None, dtype=pl.Int64).alias(name))  # not available from the AI Horde
        elif name in HISTORY_FIELDS:
            fields.append(_history_field(table, name))
        else:
            fields.append(pl.col(name))
    return fields


def _history_field(table: pl.DataFrame, name: str) -> pl.Expr:
    """A SPEC §10 field: null where the table carries no history; times written as Pydantic writes them."""
    dtype = HISTORY_FIELDS[name]
    if name not in table.columns:
        return pl.lit(None, dtype=pl.String() if dtype.is_temporal() else dtype).alias(name)
    if dtype.is_temporal():
        return pl.col(name).dt.to_string("%Y-%m-%dT%H:%M:%S%.fZ").alias(name)
    return pl.col(name)


class _EncodedRows:
    """One risk table's rows as JSON objects, in two parts around ``backend_variations``: encoded once, shared
    by every view of the table (the variations view adds only that field)."""

    def __init__(self, table: pl.DataFrame) -> None:
        self.table = table
        names = list(ModelDeletionRiskInfo.model_fields)
        cut = names.index(_VARIATIONS)
        tail = _info_fields(table, names[cut + 1 :])
        if "members" in table.columns:
            tail.append(pl.col("members"))  # grouped rows name their member models (an additive field)
        parts = table.select(
            pl.struct(*_info_fields(table, names[:cut])).struct.json_encode().str.head(-1).alias("head"),
            pl.struct(*tail).struct.json_encode().str.slice(1).alias("tail"),
        )
        self.head, self.tail = parts["head"], parts["tail"]

    def write(self, buffer: io.BytesIO, with_variations: bool) -> None:
        """Every row, comma-separated, into ``buffer``: ``{head,"backend_variations":...,tail}``."""
        if not self.table.height:
            return
        middle: pl.Expr = pl.lit(f'"{_VARIATIONS}":null')
        if with_variations and _VARIATIONS in self.table.columns:
            middle = pl.struct(_VARIATIONS).struct.json_encode().str.slice(1).str.head(-1)
        rows = self.table.select(self.head, middle.alias("middle"), self.tail)
        # The CSV writer puts the parts side by side straight into the buffer, in one copy (a text view at 100x
        # is ~100 MB of JSON: each copy of it costs); every part is JSON, so nothing needs quoting.
        rows.write_csv(buffer, include_header=False, separator=",", line_terminator=",", quote_style="never")
        buffer.seek(-1, io.SEEK_END)  # the terminator after the last row
        buffer.truncate()


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
        return self.encoded(_EncodedRows(self.table)).decode()

    def encoded(self, rows: _EncodedRows) -> bytes:
        """``json()`` as UTF-8 bytes, from this view's table's ``rows`` (see ``encoded_views``)."""
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
        before: list[str] = []  # the envelope's fields before the models, and (``after``) after them
        after: list[str] = []
        parts = before
        for key in CategoryDeletionRiskResponse.model_fields:
            parts.append("," if before else "{")
            if key == "models":
                parts.append('"models":[')
                parts = after
                parts.append("]")
            else:
                parts.append(
                    json.dumps(key) + ":" + json.dumps(envelope[key], separators=(",", ":"), ensure_ascii=False)
                )
        parts.append("}")
        buffer = io.BytesIO()
        buffer.write("".join(before).encode())
        rows.write(buffer, self.with_variations)
        buffer.write("".join(after).encode())
        return buffer.getvalue()

    def response(self) -> CategoryDeletionRiskResponse:
        """The view as the validated Pydantic model (built from ``json()``: one serialization path)."""
        return CategoryDeletionRiskResponse.model_validate_json(self.json())


def encoded_views(views: Mapping[ViewKeyT, DeletionRiskView]) -> dict[ViewKeyT, bytes]:
    """The JSON of every view, each table's rows encoded once: views of equal tables share their rows (the
    variations view adds only ``backend_variations``), and equal views share one value."""
    tables: list[_EncodedRows] = []
    values: dict[ViewKeyT, bytes] = {}
    done: dict[tuple[int, bool, str, str | None, int | None, int | None], bytes] = {}
    for key, view in views.items():
        rows = next((rows for rows in tables if _same_table(rows.table, view.table)), None)
        if rows is None:
            rows = _EncodedRows(view.table)
            tables.append(rows)
        shape = (id(rows), view.with_variations, view.category, view.run_id, view.limit, view.total_count)
        if shape not in done:
            done[shape] = view.encoded(rows)
        values[key] = done[shape]
    return values


def _same_table(one: pl.DataFrame, other: pl.DataFrame) -> bool:
    """True when both frames hold the same rows (two views of one table are often distinct but equal frames)."""
    if one is other:
        return True
    return one.schema == other.schema and one.height == other.height and one.equals(other)


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
