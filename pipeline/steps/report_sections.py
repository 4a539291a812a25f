"""The report's sections (SPEC §9): one per category, from whichever report tables the run wrote for it."""

from __future__ import annotations

from collections.abc import Mapping

import polars as pl

from pipeline.contracts.categories import CATEGORY_FILES
from pipeline.steps.report import LONG_TAIL_SHARES, TOP_ROWS, CategorySection, Chart, Tables, TableView
from pipeline.steps.report_bars import bars, baseline_view, family_charts, shows_families, usage_by_bucket
from pipeline.steps.report_history import LineChart
from pipeline.steps.report_tables import audit_tables, change_tables, most_at_risk
from pipeline.steps.risk_order import in_risk_order


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


def category_section(
    category: str, tables: Tables, usage_charts: tuple[LineChart, ...] = (), history_note: str | None = None
) -> CategorySection:
    """The section of ``category`` from whichever of REPORT_TABLES the run wrote for it, with the usage-over-time
    charts drawn from earlier runs (``report_history``)."""
    charts: list[Chart | LineChart] = []
    notes: list[str] = []
    merged = tables.get(("merged", category))
    risk = tables.get(("deletion_risk", category))
    buckets = tables.get(("buckets", category))
    baselines = tables.get(("baselines", category))
    facts: dict[str, int] = {}
    long_tail = None
    if merged is not None:
        busiest = in_risk_order(merged.filter(pl.col("usage_month") > 0))
        if busiest.height >= 2:
            top = busiest.head(TOP_ROWS)
            charts.append(bars(f"{category}-usage", f"Usage this month, top {top.height}", top, "name", "usage_month"))
        long_tail = usage_long_tail(merged["usage_month"])
        facts |= {
            "models": merged.height,
            "used this month": int((merged["usage_month"] > 0).sum()),
            "no usage this month": int((merged["usage_month"] == 0).sum()),
            "no active worker": int((merged["worker_count"] == 0).sum()),
        }
    charts.extend(usage_charts)
    if history_note:
        notes.append(history_note)
    if buckets is not None:
        for grouped, what in ((False, "Models"), (True, "Families")):
            rows = buckets.filter(pl.col("grouped") == grouped).sort("min_params", nulls_last=True)
            if not rows.is_empty():
                suffix = "-families" if grouped else ""
                charts.append(
                    bars(f"{category}-buckets{suffix}", f"{what} per parameter size", rows, "bucket_label", "count")
                )
        if merged is not None and (usage := usage_by_bucket(category, merged, buckets)) is not None:
            charts.append(usage)
    if risk is not None and shows_families(category, risk):
        by_family, family_notes = family_charts(category, risk)
        charts.extend(by_family)
        notes.extend(family_notes)
    if baselines is not None:
        baseline_charts, baseline_notes = baseline_view(
            category, baselines, merged.height if merged is not None else None
        )
        charts.extend(baseline_charts)
        notes.extend(baseline_notes)
    at_risk = families = None
    if risk is not None:
        models = risk.filter(~pl.col("grouped"))
        facts |= {"at risk": int(models["at_risk"].sum()), "critical": int(models["is_critical"].sum())}
        at_risk = most_at_risk(risk, grouped=False)
        if shows_families(category, risk):
            families = most_at_risk(risk, grouped=True)
            family_rows = risk.filter(pl.col("grouped"))
            facts |= {"families": family_rows.height, "families at risk": int(family_rows["at_risk"].sum())}
    views: list[TableView] = []
    if (changes := tables.get(("changes", category))) is not None:
        views.extend(change_tables(changes))
    if (audit := tables.get(("audit", category))) is not None:
        views.extend(audit_tables(audit))
    return CategorySection(
        category=category,
        facts=facts,
        charts=tuple(charts),
        long_tail=long_tail,
        at_risk=at_risk,
        at_risk_families=families,
        notes=tuple(notes),
        tables=tuple(views),
    )


def report_sections(
    tables: Tables, usage_charts: Mapping[str, tuple[LineChart, ...]] | None = None, history_note: str | None = None
) -> list[CategorySection]:
    """One section per category the run wrote any report table for, in the category table's order; a note about
    the history (once, under the first section's counts)."""
    present = [category for category in CATEGORY_FILES if category in {category for _, category in tables}]
    charts = usage_charts or {}
    return [
        category_section(category, tables, charts.get(category, ()), history_note if index == 0 else None)
        for index, category in enumerate(present)
    ]
