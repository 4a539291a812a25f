"""The report's bar charts of one category (SPEC §9), and the sentences that stand in for a chart too sparse to
say more than a list of names."""

from __future__ import annotations

import polars as pl

from pipeline.contracts.categories import policy
from pipeline.steps.report import TOP_ROWS, Chart
from pipeline.steps.risk_order import in_risk_order, ranked


def bars(key: str, title: str, frame: pl.DataFrame, label: str, value: str) -> Chart:
    """A chart of one bar per row of ``frame``: ``label`` names it, ``value`` sizes it (a null is 0)."""
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


def baseline_view(category: str, baselines: pl.DataFrame, models: int | None) -> tuple[list[Chart], list[str]]:
    """The baselines as a chart where records have them in numbers, else as one sentence (text records mostly
    have none: its distribution is shown by size and family instead)."""
    rows = baselines.filter(~pl.col("grouped")).sort(["count", "baseline"], descending=[True, False])
    if rows.is_empty():
        return [], ["No record has a baseline."]
    if is_worth_a_chart(rows["count"]):
        return [bars(f"{category}-baselines", "Models per baseline", rows, "baseline", "count")], []
    having = int(rows["count"].sum())
    of = f" of {models:,}" if models is not None else ""
    return [], [
        f"Baselines: {having:,}{of} models record one, {rows.height:,} distinct: {_listed(rows, 'baseline', 'count')}."
    ]


def usage_by_bucket(category: str, merged: pl.DataFrame, buckets: pl.DataFrame) -> Chart | None:
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
    return bars(f"{category}-usage-buckets", "Usage this month per parameter size", rows, "bucket_label", "usage_month")


def shows_families(category: str, risk: pl.DataFrame) -> bool:
    """Whether the report shows ``category``'s families: where the category groups models into families
    (``CategoryPolicy.has_families``) and the run grouped some into families of two or more. Elsewhere each
    grouped row is its model again, and the model tables and charts say it all."""
    if not policy(category).has_families:
        return False
    families = risk.filter(pl.col("grouped"))
    # runs before the ``members`` column (an additive field) wrote no family membership to show
    return "members" in families.columns and bool((families["members"].list.len() > 1).any())


def family_label() -> pl.Expr:
    """How the report names a family (over the frame of all families): its display name, with its first member
    after it where families share that name (under GROUP_BY_VARIANT, Instruct and Base both show "Qwen2.5-14B"),
    so no two bars read the same."""
    return (
        pl.when(pl.col("name").is_duplicated())
        .then(pl.format("{} ({})", pl.col("name"), pl.col("members").list.first()))
        .otherwise(pl.col("name"))
        .alias("label")
    )


def family_charts(category: str, risk: pl.DataFrame) -> tuple[list[Chart], list[str]]:
    """By family: how many members families have, and the busiest families this month (in the risk order, so
    families that share a name keep one order from run to run)."""
    families = risk.filter(pl.col("grouped")).with_columns(family_label())
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
    charts = [bars(f"{category}-family-sizes", "Families by number of members", sizes, "label", "len")]
    busiest = in_risk_order(families.filter(pl.col("usage_month") > 0))
    if busiest.height >= 2:
        top = busiest.head(TOP_ROWS)
        charts.append(
            bars(
                f"{category}-usage-families",
                f"Busiest families this month, top {top.height}",
                top,
                "label",
                "usage_month",
            )
        )
    largest = ranked(families.filter(pl.col("members").list.len() > 1), [pl.col("members").list.len()], [True])
    notes = []
    if not largest.is_empty():
        listed = largest.with_columns(pl.col("members").list.len().alias("count"))
        notes.append(f"Largest families (members): {_listed(listed, 'label', 'count')}.")
    return charts, notes
