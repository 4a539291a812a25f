"""What the report shows (SPEC §9), computed from one snapshot's tables. Pure: frames in, plain values and small
frames out; ``sinks/report_files.py`` draws and writes them.

A column that older runs did not write (the history fields of §10, the ``changes`` and ``audit`` tables) is
simply not shown for them: the report of an old snapshot is smaller, never wrong.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

import polars as pl

from pipeline.contracts.categories import CATEGORY_FILES
from pipeline.contracts.schemas import HISTORY_FIELDS
from pipeline.steps.audit import KINDS, SEVERITIES
from pipeline.steps.deletion_risk import in_risk_order
from pipeline.steps.report_history import LineChart

#: The snapshot tables a report reads (``changes`` and ``audit`` only where the run wrote them).
REPORT_TABLES: Final = ("baselines", "buckets", "merged", "deletion_risk", "changes", "audit")
#: Shares of a month's usage the long-tail table answers for ("the busiest N models carry 90 % of it").
LONG_TAIL_SHARES: Final = (0.5, 0.9, 0.99)
#: Bars in a top-usage chart.
TOP_ROWS: Final = 25
#: Rows in one of the page's tables; the rest is a query away (the page says which).
TABLE_ROWS: Final = 300
#: Findings shown per audit kind in "top problems" (the counts table has them all).
AUDIT_EXAMPLES: Final = 5

#: Each deletion-risk flag (SPEC §6) as a maintainer would say it; a test checks every flag has words.
FLAG_WORDS: Final[dict[str, str]] = {
    "zero_usage_day": "unused in the last day",
    "zero_usage_month": "unused in the last month",
    "zero_usage_total": "never used",
    "no_active_workers": "no worker serves it",
    "has_multiple_hosts": "downloads spread over several hosts",
    "has_non_preferred_host": "a download off the preferred hosts",
    "has_unknown_host": "a download host that cannot be read",
    "no_download_urls": "no download URL",
    "missing_description": "no description",
    "missing_baseline": "no baseline",
    "low_usage": "low share of the category's usage",
}
#: Each change kind of the ``changes`` table (SPEC §10) in words, in the order the page lists them.
CHANGE_WORDS: Final[dict[str, str]] = {
    "added": "added to the reference",
    "removed": "removed from the reference",
    "became_at_risk": "became at risk",
    "no_longer_at_risk": "no longer at risk",
    "lost_all_workers": "lost all its workers",
    "gained_workers": "gained workers",
    "usage_dropped": "month usage fell by half or more",
}
#: The history fields of a risk row (SPEC §10) the at-risk tables show, where the run wrote them (first_seen and
#: last_seen_with_workers are what days_without_workers is counted from).
_HISTORY_COLUMNS: Final = tuple(
    name for name in HISTORY_FIELDS.names() if name not in {"first_seen", "last_seen_with_workers"}
)
_USAGE_HISTORY: Final = tuple(name for name in _HISTORY_COLUMNS if name.startswith("usage_month"))
_WORKER_HISTORY: Final = tuple(name for name in _HISTORY_COLUMNS if name not in _USAGE_HISTORY)

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
class TableView:
    """One table of the page: a heading, a sentence saying what it holds, and the rows (already cut)."""

    kind: str  # "changes" or "audit": where the page puts it
    title: str
    note: str
    rows: pl.DataFrame


@dataclass(frozen=True)
class CategorySection:
    """Everything the report shows for one category."""

    category: str
    facts: dict[str, int]
    charts: tuple[Chart | LineChart, ...]
    long_tail: pl.DataFrame | None
    at_risk: pl.DataFrame | None
    at_risk_families: pl.DataFrame | None
    #: sentences shown under the facts (distributions too sparse for a chart, what history is missing)
    notes: tuple[str, ...] = ()
    #: further tables, in page order: what changed since the last run, the audit summary and its top problems
    tables: tuple[TableView, ...] = field(default=())


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


def flag_reasons() -> pl.Expr:
    """The risk row's set flags in words (the order of FLAG_WORDS), joined by "; "."""
    # the strongest usage flag says it all: "never used" implies unused this month and today, and low usage
    implied = {
        "zero_usage_day": pl.col("zero_usage_month"),
        "zero_usage_month": pl.col("zero_usage_total"),
        "low_usage": pl.col("zero_usage_month"),
    }
    words = [
        pl.when(pl.col(flag) & ~implied.get(flag, pl.lit(False))).then(pl.lit(FLAG_WORDS[flag])) for flag in FLAG_WORDS
    ]
    return pl.concat_list(words).list.drop_nulls().list.join("; ")


def most_at_risk(risk: pl.DataFrame, *, grouped: bool, limit: int = TABLE_ROWS) -> pl.DataFrame:
    """The at-risk rows of one view, highest risk score first, then least used, then by name: name, reasons,
    numbers, and the history fields (§10) the run wrote."""
    # worker history, then this month's usage beside the usage a week before and the change (SPEC §10)
    workers = [pl.col(c).dt.date() if c == "at_risk_since" else pl.col(c) for c in _WORKER_HISTORY if c in risk.columns]
    trend = [pl.col(column) for column in _USAGE_HISTORY if column in risk.columns]
    members = [pl.col("members").list.len().alias("members")] if grouped and "members" in risk.columns else []
    return (
        in_risk_order(risk.filter((pl.col("grouped") == grouped) & pl.col("at_risk")), most_at_risk_first=True)
        .head(limit)
        .select(
            "name",
            *members,
            flag_reasons().alias("reasons"),
            "risk_score",
            "is_critical",
            "worker_count",
            *workers,
            "usage_month",
            *trend,
        )
        .rename({"usage_month_previous": "usage_month_week_before"}, strict=False)
    )


def _bars(key: str, title: str, frame: pl.DataFrame, label: str, value: str) -> Chart:
    return Chart(
        key=key,
        title=title,
        labels=tuple(str(item) for item in frame[label].to_list()),
        values=tuple(float(item or 0) for item in frame[value].to_list()),
    )


def is_worth_a_chart(counts: pl.Series) -> bool:
    """A count chart is drawn when it has two or more bars and most bars stand for more than one model; a chart of
    single-model bars says less than the list of names (the page gives that list as a sentence instead)."""
    return counts.len() >= 2 and int((counts > 1).sum()) * 2 > counts.len()


def _listed(frame: pl.DataFrame, label: str, value: str, *, limit: int = 8) -> str:
    shown = ", ".join(f"{row[label]} ({row[value]:,})" for row in frame.head(limit).iter_rows(named=True))
    more = f", and {frame.height - limit:,} more" if frame.height > limit else ""
    return shown + more


def _baseline_view(category: str, baselines: pl.DataFrame, models: int | None) -> tuple[list[Chart], list[str]]:
    """The baselines as a chart where records have them in numbers, else as one sentence (text records mostly
    have none: its distribution is shown by size and family instead)."""
    rows = baselines.filter(~pl.col("grouped")).sort(["count", "baseline"], descending=[True, False])
    if rows.is_empty():
        return [], ["No record has a baseline."]
    if is_worth_a_chart(rows["count"]):
        return [_bars(f"{category}-baselines", "Models per baseline", rows, "baseline", "count")], []
    having = int(rows["count"].sum())
    of = f" of {models:,}" if models is not None else ""
    return [], [
        f"Baselines: {having:,}{of} models record one, {rows.height:,} distinct: {_listed(rows, 'baseline', 'count')}."
    ]


def _usage_by_bucket(category: str, merged: pl.DataFrame, buckets: pl.DataFrame) -> Chart | None:
    """Month usage per parameter-size bucket, each model in the bucket whose lower edge it reaches (the edges
    are the run's ``buckets`` table: the bucket rule has one home, ``statistics.PARAMETER_BUCKETS``)."""
    edges = buckets.filter(~pl.col("grouped")).select("bucket_label", "min_params").sort("min_params")
    if edges.is_empty() or "parameter_count" not in merged.columns:
        return None
    sized = merged.drop_nulls("parameter_count").select("parameter_count", "usage_month").sort("parameter_count")
    per_bucket = (
        sized.join_asof(edges, left_on="parameter_count", right_on="min_params", strategy="backward")
        .group_by("bucket_label")
        .agg(pl.col("usage_month").fill_null(0).sum())
    )
    rows = edges.join(per_bucket, on="bucket_label", how="left").with_columns(pl.col("usage_month").fill_null(0))
    if int(rows["usage_month"].sum()) == 0:
        return None
    return _bars(
        f"{category}-usage-buckets", "Usage this month per parameter size", rows, "bucket_label", "usage_month"
    )


def has_families(risk: pl.DataFrame) -> bool:
    """Whether the run grouped ``risk``'s models into families of two or more (text only): elsewhere each grouped
    row is its model again, and the model tables and charts say it all."""
    families = risk.filter(pl.col("grouped"))
    return "members" in families.columns and bool((families["members"].list.len() > 1).any())


def _family_charts(category: str, risk: pl.DataFrame) -> tuple[list[Chart], list[str]]:
    """Text by family: how many members families have, and the busiest families this month."""
    families = risk.filter(pl.col("grouped"))
    sizes = (
        families.select(pl.col("members").list.len().alias("members"))
        .group_by("members")
        .len()
        .sort("members")
        .with_columns(
            pl.format(
                "{} {}", "members", pl.when(pl.col("members") == 1).then(pl.lit("member")).otherwise(pl.lit("members"))
            ).alias("label")
        )
    )
    charts = [_bars(f"{category}-family-sizes", "Families by number of members", sizes, "label", "len")]
    busiest = families.filter(pl.col("usage_month") > 0).sort(["usage_month", "name"], descending=[True, False])
    if busiest.height >= 2:
        top = busiest.head(TOP_ROWS)
        charts.append(
            _bars(
                f"{category}-usage-families",
                f"Busiest families this month, top {top.height}",
                top,
                "name",
                "usage_month",
            )
        )
    largest = families.filter(pl.col("members").list.len() > 1).sort(
        [pl.col("members").list.len(), pl.col("name")], descending=[True, False]
    )
    notes = []
    if not largest.is_empty():
        listed = largest.with_columns(pl.col("members").list.len().alias("count"))
        notes.append(f"Largest families (members): {_listed(listed, 'name', 'count')}.")
    return charts, notes


def change_tables(changes: pl.DataFrame) -> list[TableView]:
    """What changed since the previous committed run (SPEC §10): a count per kind, then each change."""
    if changes.is_empty():
        return [
            TableView(
                "changes",
                "Changed since the last run",
                "Nothing changed since the previous committed run.",
                changes.head(0).select(),
            )
        ]
    order = {kind: index for index, kind in enumerate(CHANGE_WORDS)}
    worded = changes.with_columns(
        pl.col("change").replace_strict(CHANGE_WORDS, default=pl.col("change")).alias("what"),
        pl.col("change").replace_strict(order, default=len(order), return_dtype=pl.Int64).alias("_order"),
    )
    counts = worded.group_by("_order", "what").len("models").sort("_order").select("what", "models")
    listed = worded.sort("_order", "name").head(TABLE_ROWS).select("name", "what", "before", "after")
    cut = f" (first {TABLE_ROWS} of {changes.height:,})" if changes.height > TABLE_ROWS else ""
    return [
        TableView(
            "changes",
            "Changed since the last run",
            "Models per kind of change against the previous committed run.",
            counts,
        ),
        TableView(
            "changes",
            "Changes, one per model",
            f"before/after are the numbers the change is about: month usage for added, removed and usage drops, "
            f"risk score for the at-risk changes, workers for the worker changes{cut}.",
            listed,
        ),
    ]


def audit_tables(audit: pl.DataFrame) -> list[TableView]:
    """The reference audit (SPEC §11) in short: findings per kind and severity, then a few examples of each kind
    (errors first, then the kinds with the most findings)."""
    if audit.is_empty():
        return [
            TableView("audit", "Reference audit", "The audit found nothing in this category.", audit.head(0).select())
        ]
    rank = {severity: index for index, severity in enumerate(SEVERITIES)}
    explained = {kind: spec.explanation for kind, spec in KINDS.items()}
    counts = (
        audit.group_by("severity", "kind")
        .len("findings")
        .with_columns(
            pl.col("severity").replace_strict(rank, default=len(rank), return_dtype=pl.Int64).alias("_rank"),
            pl.col("kind").replace_strict(explained, default="").alias("what it means"),
        )
        .sort(["_rank", "findings", "kind"], descending=[False, True, False])
    )
    order = counts.with_row_index("_order").select("severity", "kind", "_order")
    examples = (
        audit.join(order, on=["severity", "kind"])
        .sort("_order", "name")
        .group_by("_order", maintain_order=True)
        .head(AUDIT_EXAMPLES)
        .select("severity", "kind", "name", "detail")
    )
    return [
        TableView(
            "audit",
            "Reference audit",
            "Findings per kind and severity (horde-analytics audit lists each one).",
            counts.drop("_rank"),
        ),
        TableView(
            "audit", "Top problems", f"Up to {AUDIT_EXAMPLES} findings of each kind, most urgent kinds first.", examples
        ),
    ]


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
        busiest = merged.filter(pl.col("usage_month") > 0).sort(["usage_month", "name"], descending=[True, False])
        if busiest.height >= 2:
            top = busiest.head(TOP_ROWS)
            charts.append(_bars(f"{category}-usage", f"Usage this month, top {top.height}", top, "name", "usage_month"))
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
                    _bars(f"{category}-buckets{suffix}", f"{what} per parameter size", rows, "bucket_label", "count")
                )
        if merged is not None and (usage := _usage_by_bucket(category, merged, buckets)) is not None:
            charts.append(usage)
    if risk is not None and has_families(risk):
        family_charts, family_notes = _family_charts(category, risk)
        charts.extend(family_charts)
        notes.extend(family_notes)
    if baselines is not None:
        baseline_charts, baseline_notes = _baseline_view(
            category, baselines, merged.height if merged is not None else None
        )
        charts.extend(baseline_charts)
        notes.extend(baseline_notes)
    at_risk = families = None
    if risk is not None:
        models = risk.filter(~pl.col("grouped"))
        facts |= {"at risk": int(models["at_risk"].sum()), "critical": int(models["is_critical"].sum())}
        at_risk = most_at_risk(risk, grouped=False)
        if has_families(risk):
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
