"""Deletion risk: flags, scores and the grouped family rows (SPEC §6), sorted by ``risk_order``; one view's summary
and JSON are ``deletion_risk_view``."""

from __future__ import annotations

from typing import Final

import polars as pl

from pipeline.contracts.categories import policy
from pipeline.contracts.models import DeletionRiskFlags
from pipeline.contracts.rules import RiskRules
from pipeline.contracts.schemas import BACKEND_VARIATION_DTYPE, RISK_SCHEMA
from pipeline.steps.collect_engine import ENGINE
from pipeline.steps.merge import WORKER_IDS, worker_weighted_mean, worker_weighted_mean_of_one
from pipeline.steps.names.families import (
    FAMILY_ID,
    most_common_per_family,
    require_family_ids,
    sorted_members,
    with_united_lists,
)
from pipeline.steps.names.patterns import VARIATION_BACKENDS
from pipeline.steps.names.spellings import display_spelling
from pipeline.steps.risk_order import in_risk_order as in_risk_order  # the risk step's order (its home)
from pipeline.steps.statistics import download_host, model_size_bytes

__all__ = [
    "FLAGS",
    "HOST_FLAGS",
    "deletion_risk_table",
    "family_backend_variations",
    "family_worker_count",
    "in_risk_order",
    "is_blank",
    "is_preferred_host",
]

#: The flag columns of a risk row, in the order of DeletionRiskFlags (a test ties it to RISK_SCHEMA).
FLAGS: Final = tuple(DeletionRiskFlags.model_fields)
#: Flags about hosting and downloads: any of them is a warning (SPEC §6 ``has_warning``).
HOST_FLAGS: Final = ("has_multiple_hosts", "has_non_preferred_host", "has_unknown_host", "no_download_urls")
_GIB: Final = 1024**3
#: The exact size in GiB (SPEC §6 divides by it); ``size_gb`` is its rounded display.
_SIZE_GIB: Final = "_size_gib"


def is_preferred_host(host: pl.Expr, preferred: tuple[str, ...]) -> pl.Expr:
    """True where ``host`` equals or is a subdomain of a preferred host (``huggingface.co.evil.net`` is not)."""
    result = pl.lit(False)
    for entry in preferred:
        result = result | (host == entry) | host.str.ends_with("." + entry)
    return result


def _host_facts(rules: RiskRules, ignore_hosts: bool) -> list[list[pl.Expr]]:
    """The host and download columns of a risk row (steps in order: the flags read ``download_hosts``)."""
    urls = pl.col("download_urls")
    hosts = urls.list.eval(download_host(pl.element()))
    known = pl.col("download_hosts")  # each known host once
    # Each list operation inside list.eval, which runs over the flat values: the list namespace's drop_nulls,
    # unique and len paid per list (0.11 s -> 0.05 s for the image hosts at 100x).
    facts = {
        "has_multiple_hosts": known.list.len() > 1,
        "has_non_preferred_host": known.list.eval(~is_preferred_host(pl.element(), rules.preferred_file_hosts))
        .list.any()
        .fill_null(False),
        "has_unknown_host": hosts.list.eval(pl.element().is_null()).list.any(),
        "no_download_urls": urls.list.len() == 0,
    }
    return [
        [
            hosts.list.eval(pl.element().drop_nulls().unique().sort()).alias("download_hosts"),
            urls.list.len().cast(pl.Int64).alias("download_count"),
        ],
        # SPEC §6: text download flags are off while TEXT_IGNORE_DOWNLOAD_HOSTS is true.
        [(pl.lit(False) if ignore_hosts else expr).alias(name) for name, expr in facts.items()],
    ]


def is_blank(column: str) -> pl.Expr:
    """True where ``column`` is null or only whitespace (a missing description or baseline, SPEC §6, §11)."""
    return pl.col(column).is_null() | (pl.col(column).str.strip_chars() == "")


def _scored(frame: pl.LazyFrame, category: str, rules: RiskRules) -> pl.LazyFrame:
    """Totals, shares, at_risk, risk_score, is_critical, has_warning from flag and usage columns."""
    text = policy(category).text_risk_rules
    critical = (
        (pl.col("usage_month") < rules.text_critical_usage_threshold)
        & (pl.col("worker_count") < rules.text_critical_worker_threshold)
        if text
        else (pl.col("usage_month") == 0) & (pl.col("worker_count") == 0)
    )
    return frame.with_columns(
        pl.any_horizontal(*FLAGS).alias("at_risk"),
        pl.sum_horizontal(*[pl.col(f).cast(pl.Int64) for f in FLAGS]).alias("risk_score"),
        critical.alias("is_critical"),
        pl.any_horizontal(*HOST_FLAGS).alias("has_warning"),
    )


def _usage_share() -> pl.Expr:
    total = pl.col("category_total_month_usage")
    return pl.when(total > 0).then(pl.col("usage_month") * 100.0 / total).otherwise(0.0).clip(0.0, 100.0).round(4)


def _ratio(numerator: str, denominator: str) -> pl.Expr:
    return pl.when(pl.col(denominator) > 0).then((pl.col(numerator) / pl.col(denominator)).round(4))


def _usage_facts(threshold: float) -> list[list[pl.Expr]]:
    """The usage and worker flags and the usage share, from a row's own numbers (steps in order). A family row
    gets them from its summed usage and worker count, never OR-ed from its members (SPEC §6)."""
    return [
        [
            (pl.col("usage_day") == 0).alias("zero_usage_day"),
            (pl.col("usage_month") == 0).alias("zero_usage_month"),
            (pl.col("usage_total") == 0).alias("zero_usage_total"),
            (pl.col("worker_count") == 0).alias("no_active_workers"),
            _usage_share().alias("usage_percentage_of_category"),
        ],
        [(pl.col("usage_percentage_of_category") < threshold).alias("low_usage")],
    ]


def deletion_risk_table(
    merged: pl.DataFrame,
    *,
    category: str,
    rules: RiskRules,
    grouped: bool = False,
) -> pl.DataFrame:
    """One flat risk row per model (or per text family when ``grouped``; ``merged`` then carries family ids, see
    ``with_family_ids``), sorted as SPEC §6 says."""
    text = policy(category).text_risk_rules
    threshold = rules.text_low_usage_threshold_percentage if text else rules.low_usage_threshold_percentage
    size = model_size_bytes()
    hosts, host_flags = _host_facts(rules, ignore_hosts=text and rules.text_ignore_download_hosts)
    rows = (
        merged.lazy()
        .with_columns(
            pl.lit(category).alias("category"),
            pl.col("usage_month").sum().alias("category_total_month_usage"),
            *hosts,
            is_blank("description").alias("missing_description"),
            is_blank("baseline").alias("missing_baseline"),
            (~is_blank("description")).alias("has_description"),
            pl.when(size > 0).then(size / _GIB).alias(_SIZE_GIB),
        )
        .with_columns(host_flags)
    )
    if grouped and policy(category).has_families:
        require_family_ids(rows, "grouped deletion_risk_table")
        rows = _family_rows(rows)
    for step in _usage_facts(threshold):
        rows = rows.with_columns(step)
    rows = _scored(rows, category, rules).with_columns(
        _ratio("usage_day", "usage_month").alias("day_to_month_ratio"),
        _ratio("usage_month", "usage_total").alias("month_to_total_ratio"),
        pl.col(_SIZE_GIB).round(2).alias("size_gb"),
        # SPEC §6: the exact size, not the rounded size_gb (rounding moved scores by up to 0.2 %).
        (pl.col("usage_month") / pl.col(_SIZE_GIB)).round(2).alias("cost_benefit_score"),
    )
    # A risk row is the flat RISK_SCHEMA row; the merged frame's other columns (descriptions, tags) stay behind.
    kept = [column for column in RISK_SCHEMA.names() if column in rows.collect_schema()]
    return in_risk_order(rows).select(kept).collect(engine=ENGINE)


def _family_rows(keyed: pl.LazyFrame) -> pl.LazyFrame:
    """SPEC §6 grouped text: usages summed, workers counted once per family; description and baseline missing
    when no member has one; host and download flags when any member has the problem. The usage and worker flags
    are left to ``_usage_facts``, which reads the family's own numbers."""
    summed = ("usage_day", "usage_month", "usage_total")
    columns = keyed.collect_schema()
    grouped = (
        keyed.group_by(FAMILY_ID)
        .agg(
            pl.col("base").drop_nulls().first(),
            pl.col("size_label").drop_nulls().first(),
            pl.first("category"),
            pl.first("category_total_month_usage"),
            *[pl.col(c).sum() for c in summed],
            family_worker_count(columns),
            *[pl.col(f).any() for f in HOST_FLAGS],
            pl.col("missing_description").all(),
            pl.col("missing_baseline").all(),
            pl.col("nsfw").fill_null(False).any(),
            pl.col("has_description").any(),
            pl.col("download_count").sum(),
            pl.col(_SIZE_GIB).max(),
        )
        .join(most_common_per_family(keyed, "baseline", "baseline"), on=FAMILY_ID, how="left")
        .join(sorted_members(keyed), on=FAMILY_ID)
    )
    if "backend_variations" in columns:
        grouped = grouped.join(family_backend_variations(keyed), on=FAMILY_ID, how="left")
    return (
        with_united_lists(grouped, keyed, ["download_hosts"])
        .with_columns(pl.col("members").list.first().alias("_first"))
        .with_columns(display_spelling(pl.col("_first")).alias("name"))
        .drop("base", "size_label", FAMILY_ID)
    )


def family_worker_count(columns: pl.Schema) -> pl.Expr:
    """A family's ``worker_count``: distinct workers over its members when the merge kept their ids (SPEC §6; a
    worker serving two spellings counts once), else the members' counts summed."""
    if WORKER_IDS in columns:
        return (
            pl.col(WORKER_IDS)
            .list.explode(keep_nulls=False, empty_as_null=False)
            .n_unique()
            .cast(pl.Int64)
            .alias("worker_count")
        )
    return pl.col("worker_count").sum()


def family_backend_variations(members: pl.LazyFrame) -> pl.LazyFrame:
    """``_family`` -> ``backend_variations``: one entry per backend (VARIATION_BACKENDS order) over the members'
    entries: workers and usages summed; ``performance`` the worker-weighted mean of the members' performance for
    that backend (the plain mean of the non-null ones when no member has a worker there; null when none has one);
    ``variant_name`` the busiest member's (ties: the smallest name).

    A member's entries are the merge's (one per backend, in VARIATION_BACKENDS order). Most families have one
    member (84 % at 100x): theirs are that member's, each ``performance`` weighted as over one row; only the other
    families' entries are grouped (0.14 s -> 0.05 s at 100x).
    """
    sized = members.select(FAMILY_ID, "backend_variations", pl.len().over(FAMILY_ID).alias("_members"))
    entry = pl.element().struct
    alone = sized.filter(pl.col("_members") == 1).select(
        FAMILY_ID,
        pl.col("backend_variations").list.eval(
            entry.with_fields(
                worker_weighted_mean_of_one(entry.field("performance"), entry.field("worker_count")).alias(
                    "performance"
                )
            )
        ),
    )
    entries = (
        sized.filter(pl.col("_members") > 1)
        .select(FAMILY_ID, "backend_variations")
        .explode("backend_variations")
        .drop_nulls("backend_variations")
        .unnest("backend_variations")
    )
    per_backend = entries.group_by(FAMILY_ID, "backend").agg(
        pl.col("variant_name").sort_by(["usage_month", "variant_name"], descending=[True, False]).first(),
        pl.col("worker_count").sum(),
        worker_weighted_mean("performance", "worker_count").alias("performance"),
        *[pl.col(c).sum() for c in ("usage_day", "usage_month", "usage_total")],
    )
    position = pl.col("backend").replace_strict(
        {backend: index for index, backend in enumerate(VARIATION_BACKENDS)}, default=len(VARIATION_BACKENDS)
    )
    grouped = (
        per_backend.sort(FAMILY_ID, position)
        .group_by(FAMILY_ID, maintain_order=True)
        .agg(pl.struct(*[field.name for field in BACKEND_VARIATION_DTYPE.fields]).alias("backend_variations"))
        .with_columns(pl.col("backend_variations").cast(pl.List(BACKEND_VARIATION_DTYPE)))
    )
    # One chunk: the family rows join and sort these lists of structs, and gathering them across two chunks cost
    # more than the group-by saved (grouped risk table 0.25 s with, 0.45 s without, in a fresh process at 100x).
    return pl.concat([alone, grouped], rechunk=True)
