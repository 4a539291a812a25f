"""What the report shows (SPEC §9), computed from one snapshot's tables. Pure: frames in, plain values and small
frames out; ``sinks/report_files.py`` draws and writes them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

import polars as pl

from pipeline.categories import CATEGORY_FILES
from pipeline.deletion_risk import in_risk_order

#: The snapshot tables a report reads.
REPORT_TABLES: Final = ("baselines", "buckets", "merged", "deletion_risk")
#: Shares of a month's usage the long-tail table answers for ("the busiest N models carry 90 % of it").
LONG_TAIL_SHARES: Final = (0.5, 0.9, 0.99)
#: Bars in a top-usage chart, rows in an at-risk table.
TOP_ROWS: Final = 25
_RISK_COLUMNS: Final = ("name", "risk_score", "is_critical", "usage_month", "worker_count")

#: (table, category) -> that table of one run.
Tables = Mapping[tuple[str, str], pl.DataFrame]


@dataclass(frozen=True)
class Chart:
    """One horizontal bar chart: a bar per label, in order."""

    key: str  # the PNG's file stem, unique within a report
    title: str
    labels: tuple[str, ...]
    values: tuple[float, ...]


@dataclass(frozen=True)
class CategorySection:
    """Everything the report shows for one category."""

    category: str
    facts: dict[str, int]
    charts: tuple[Chart, ...]
    long_tail: pl.DataFrame | None
    at_risk: pl.DataFrame | None
    at_risk_families: pl.DataFrame | None


def usage_long_tail(usage_month: pl.Series) -> pl.DataFrame:
    """``share`` -> ``models``: how few of the busiest models carry that share of the month's usage (0 when there
    is no usage at all)."""
    carried = usage_month.fill_null(0).sort(descending=True).cum_sum()
    total = int(carried[-1]) if len(carried) else 0
    needed = [int((carried < share * total).sum()) + 1 if total > 0 else 0 for share in LONG_TAIL_SHARES]
    return pl.DataFrame(
        {"share": [f"{share:.0%}" for share in LONG_TAIL_SHARES], "models": needed},
        schema={"share": pl.String, "models": pl.Int64},
    )


def most_at_risk(risk: pl.DataFrame, *, grouped: bool) -> pl.DataFrame:
    """The at-risk rows of one view, highest risk score first, then least used, then by name."""
    return (
        in_risk_order(risk.filter((pl.col("grouped") == grouped) & pl.col("at_risk")), most_at_risk_first=True)
        .select(_RISK_COLUMNS)
        .head(TOP_ROWS)
    )


def _bars(key: str, title: str, frame: pl.DataFrame, label: str, value: str) -> Chart:
    return Chart(
        key=key,
        title=title,
        labels=tuple(str(item) for item in frame[label].to_list()),
        values=tuple(float(item or 0) for item in frame[value].to_list()),
    )


def category_section(category: str, tables: Tables) -> CategorySection:
    """The section of ``category`` from whichever of REPORT_TABLES the run wrote for it."""
    charts = []
    baselines = tables.get(("baselines", category))
    if baselines is not None:
        ungrouped = baselines.filter(~pl.col("grouped"))
        charts.append(_bars(f"{category}-baselines", "Models per baseline", ungrouped, "baseline", "count"))
    buckets = tables.get(("buckets", category))
    if buckets is not None:
        for grouped, what in ((False, "Models"), (True, "Families")):
            rows = buckets.filter(pl.col("grouped") == grouped).sort("min_params", nulls_last=True)
            suffix = "-families" if grouped else ""
            charts.append(
                _bars(f"{category}-buckets{suffix}", f"{what} per parameter size", rows, "bucket_label", "count")
            )
    merged = tables.get(("merged", category))
    facts: dict[str, int] = {}
    long_tail = None
    if merged is not None:
        busiest = merged.sort(["usage_month", "name"], descending=[True, False]).head(TOP_ROWS)
        charts.append(_bars(f"{category}-usage", f"Usage this month, top {TOP_ROWS}", busiest, "name", "usage_month"))
        long_tail = usage_long_tail(merged["usage_month"])
        facts |= {
            "models": merged.height,
            "used this month": int((merged["usage_month"] > 0).sum()),
            "no usage this month": int((merged["usage_month"] == 0).sum()),
            "no active worker": int((merged["worker_count"] == 0).sum()),
        }
    risk = tables.get(("deletion_risk", category))
    at_risk = families = None
    if risk is not None:
        models = risk.filter(~pl.col("grouped"))
        facts |= {"at risk": int(models["at_risk"].sum()), "critical": int(models["is_critical"].sum())}
        at_risk = most_at_risk(risk, grouped=False)
        if risk["grouped"].any():
            families = most_at_risk(risk, grouped=True)
    return CategorySection(
        category=category,
        facts=facts,
        charts=tuple(charts),
        long_tail=long_tail,
        at_risk=at_risk,
        at_risk_families=families,
    )


def report_sections(tables: Tables) -> list[CategorySection]:
    """One section per category the run wrote any report table for, in the category table's order."""
    present = {category for _, category in tables}
    return [category_section(category, tables) for category in CATEGORY_FILES if category in present]
