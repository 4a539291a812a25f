"""Per-category statistics as Polars group-bys (SPEC §5)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import polars as pl

from pipeline.contracts.models import BaselineStats, CategoryStatistics, DownloadStats, ParameterBucketStats, TagStats
from pipeline.contracts.parameters import BILLION
from pipeline.contracts.schemas import StoredStatistics
from pipeline.steps.collect_engine import ENGINE

#: (label, min_params, max_params): half-open ``[min, max)`` in this order; the last has no upper edge.
PARAMETER_BUCKETS: Final[tuple[tuple[str, int, int | None], ...]] = (
    ("< 3B", 0, 3 * BILLION),
    ("3B-6B", 3 * BILLION, 6 * BILLION),
    ("6B-9B", 6 * BILLION, 9 * BILLION),
    ("9B-13B", 9 * BILLION, 13 * BILLION),
    ("13B-20B", 13 * BILLION, 20 * BILLION),
    ("20B-35B", 20 * BILLION, 35 * BILLION),
    ("35B-70B", 35 * BILLION, 70 * BILLION),
    ("70B-100B", 70 * BILLION, 100 * BILLION),
    ("100B+", 100 * BILLION, None),
)

# scheme://[user@]host[:port]/... -> host (RFC 3986 authority, simplified).
_URL_HOST: Final = r"^[A-Za-z][A-Za-z0-9+.\-]*://(?:[^@/?#]*@)?([^:/?#]+)"


def download_host(url: pl.Expr) -> pl.Expr:
    """The lower-cased hostname of a download URL, null when the URL has none."""
    return url.str.extract(_URL_HOST, 1).str.to_lowercase()


def model_size_bytes() -> pl.Expr:
    """``size_on_disk_bytes``, else the sum of per-download sizes when every download declares one."""
    sizes = pl.col("download_sizes")
    # the null test inside list.eval, over the flat values: list.drop_nulls() paid per list (0.02 s on the 72k
    # empty lists of text at 100x, for each statistics and risk table)
    all_declared = (sizes.list.len() > 0) & ~sizes.list.eval(pl.element().is_null()).list.any()
    return pl.coalesce(pl.col("size_on_disk_bytes"), pl.when(all_declared).then(sizes.list.sum()))


def _percentage(count: pl.Expr, total: int) -> pl.Expr:
    return (count * 100.0 / total).round(2) if total else pl.lit(0.0)


def _ranked(frame: pl.LazyFrame, key: str) -> pl.LazyFrame:
    # SPEC §5: count descending, then name ascending.
    return frame.sort(["count", key], descending=[True, False])


def has_baseline() -> pl.Expr:
    """True where a model names a baseline (null or blank is none: the risk rows say ``missing_baseline``)."""
    return pl.col("baseline").str.strip_chars().fill_null("") != ""


def baseline_distribution(records: pl.LazyFrame, total: int) -> pl.LazyFrame:
    """One row per baseline: ``baseline, count, percentage``; models without one are left out (SPEC §5, as the
    downstream service does) and counted in ``models_without_baseline``; percentages stay of ``total``."""
    counted = (
        records.filter(has_baseline())
        .group_by("baseline")
        .agg(pl.len().cast(pl.Int64).alias("count"))
        .with_columns(_percentage(pl.col("count"), total).alias("percentage"))
    )
    return _ranked(counted, "baseline")


def tag_distribution(records: pl.LazyFrame, total: int, limit: int | None = None) -> pl.LazyFrame:
    """The most common tags, a tag counting once per model: ``tag, count, percentage``."""
    counted = (
        records.select(pl.col("name"), pl.col("tags").list.unique().alias("tag"))
        .explode("tag")
        .drop_nulls("tag")
        .filter(pl.col("tag").str.strip_chars() != "")
        .group_by("tag")
        .agg(pl.len().cast(pl.Int64).alias("count"))
        .with_columns(_percentage(pl.col("count"), total).alias("percentage"))
    )
    ranked = _ranked(counted, "tag")
    return ranked.head(limit) if limit is not None else ranked


def style_distribution(records: pl.LazyFrame, total: int, limit: int | None = None) -> pl.LazyFrame:
    """The most common styles: ``tag, count, percentage`` (the downstream model calls a style a tag)."""
    counted = (
        records.drop_nulls("style")
        .group_by(pl.col("style").alias("tag"))
        .agg(pl.len().cast(pl.Int64).alias("count"))
        .with_columns(_percentage(pl.col("count"), total).alias("percentage"))
    )
    ranked = _ranked(counted, "tag")
    return ranked.head(limit) if limit is not None else ranked


def host_distribution(records: pl.LazyFrame) -> pl.LazyFrame:
    """Download entries per host: ``host, count`` (a URL without a host is not counted)."""
    counted = (
        records.select(pl.col("download_urls").alias("url"))
        .explode("url")
        .select(download_host(pl.col("url")).alias("host"))
        .drop_nulls("host")
        .group_by("host")
        .agg(pl.len().cast(pl.Int64).alias("count"))
    )
    return _ranked(counted, "host")


def parameter_buckets(records: pl.LazyFrame, total: int) -> pl.LazyFrame:
    """Models per parameter bucket, empty buckets omitted, in bucket order.

    Expects ``parameter_count`` (record parameters, else the parsed name size; null when unknown).
    """
    params = pl.col("parameter_count")
    bucket = pl.lit(None, dtype=pl.Int64)
    for index, (_, low, high) in reversed(list(enumerate(PARAMETER_BUCKETS))):
        inside = (params >= low) if high is None else ((params >= low) & (params < high))
        bucket = pl.when(inside).then(pl.lit(index, dtype=pl.Int64)).otherwise(bucket)
    edges = pl.LazyFrame(
        {
            "bucket": list(range(len(PARAMETER_BUCKETS))),
            "bucket_label": [label for label, _, _ in PARAMETER_BUCKETS],
            "min_params": [low for _, low, _ in PARAMETER_BUCKETS],
            "max_params": [high for _, _, high in PARAMETER_BUCKETS],
        },
        schema={
            "bucket": pl.Int64,
            "bucket_label": pl.String,
            "min_params": pl.Int64,
            "max_params": pl.Int64,
        },
    )
    counts = (
        records.select(bucket.alias("bucket"))
        .drop_nulls("bucket")
        .group_by("bucket")
        .agg(pl.len().cast(pl.Int64).alias("count"))
    )
    return (
        edges.join(counts, on="bucket", how="inner")
        .sort("bucket")
        .select(
            "bucket_label",
            "min_params",
            "max_params",
            "count",
            _percentage(pl.col("count"), total).alias("percentage"),
        )
    )


def model_counts(records: pl.LazyFrame) -> pl.LazyFrame:
    """One row of per-category counts (nsfw, triggers, inpainting, requirements, showcases, downloads)."""
    size = model_size_bytes()
    return records.select(
        pl.len().cast(pl.Int64).alias("total_models"),
        pl.col("nsfw").fill_null(False).sum().cast(pl.Int64).alias("nsfw_count"),
        (pl.col("parameter_count").is_null()).sum().cast(pl.Int64).alias("models_without_param_info"),
        (~has_baseline()).sum().cast(pl.Int64).alias("models_without_baseline"),
        (pl.col("trigger").list.len() > 0).sum().cast(pl.Int64).alias("models_with_trigger_words"),
        pl.col("inpainting").fill_null(False).sum().cast(pl.Int64).alias("models_with_inpainting"),
        (pl.col("requirement_count") > 0).sum().cast(pl.Int64).alias("models_with_requirements"),
        (pl.col("showcase_count") > 0).sum().cast(pl.Int64).alias("models_with_showcases"),
        (pl.col("download_urls").list.len() > 0).sum().cast(pl.Int64).alias("total_models_with_downloads"),
        pl.col("download_urls").list.len().sum().cast(pl.Int64).alias("total_download_entries"),
        size.sum().fill_null(0).cast(pl.Int64).alias("total_size_bytes"),
        size.is_not_null().sum().cast(pl.Int64).alias("models_with_size_info"),
    )


#: The snapshot tables of a category's statistics, each ``StatisticsTables``' frame of that name (``buckets`` only
#: where parameter buckets are computed).
STATISTICS_TABLES: Final = ("baselines", "tags", "styles", "hosts", "buckets")


@dataclass(frozen=True)
class StatisticsTables:
    """The collected tables behind one ``CategoryStatistics`` (also written to the snapshot)."""

    counts: dict[str, int]
    baselines: pl.DataFrame
    buckets: pl.DataFrame | None
    tags: pl.DataFrame
    styles: pl.DataFrame
    hosts: pl.DataFrame

    def frames(self) -> dict[str, pl.DataFrame]:
        """``{snapshot table: frame}`` for each of ``STATISTICS_TABLES`` this holds."""
        found = {table: getattr(self, table) for table in STATISTICS_TABLES}
        return {table: frame for table, frame in found.items() if frame is not None}


def stored_statistics(
    stored: StoredStatistics, *, grouped: bool, with_parameter_buckets: bool
) -> StatisticsTables | None:
    """The ``grouped`` (or ungrouped) tables of ``stored``, as ``statistics_tables`` computed them for that run;
    None when ``stored`` lacks one of them (they are computed again)."""
    frames = {
        table: frame.filter(pl.col("grouped") == grouped).drop("grouped") for table, frame in stored.tables.items()
    }
    expected = {table for table in STATISTICS_TABLES if with_parameter_buckets or table != "buckets"}
    if set(frames) != expected or grouped not in stored.counts:
        return None
    return StatisticsTables(counts=stored.counts[grouped], buckets=frames.pop("buckets", None), **frames)


def statistics_tables(
    records: pl.LazyFrame, *, top_tags_limit: int, with_parameter_buckets: bool = False
) -> StatisticsTables:
    """Every §5 table of one category from its records (or family rows); expects ``parameter_count``."""
    counts = model_counts(records).collect(engine=ENGINE).row(0, named=True)
    total = counts["total_models"]
    return StatisticsTables(
        counts=counts,
        baselines=baseline_distribution(records, total).collect(engine=ENGINE),
        buckets=parameter_buckets(records, total).collect(engine=ENGINE) if with_parameter_buckets else None,
        tags=tag_distribution(records, total, top_tags_limit).collect(engine=ENGINE),
        styles=style_distribution(records, total, top_tags_limit).collect(engine=ENGINE),
        hosts=host_distribution(records).collect(engine=ENGINE),
    )


def category_statistics(
    category: str, tables: StatisticsTables, *, computed_at: int, grouped: bool = False, run_id: str | None = None
) -> CategoryStatistics:
    """The §5 statistics object of one category; buckets only where they were computed (text)."""
    counts = tables.counts
    total = counts["total_models"]
    with_size = counts["models_with_size_info"]
    return CategoryStatistics(
        category=category,
        total_models=total,
        returned_models=total,
        nsfw_count=counts["nsfw_count"],
        baseline_distribution={row["baseline"]: BaselineStats(**row) for row in tables.baselines.iter_rows(named=True)},
        download_stats=DownloadStats(
            total_models_with_downloads=counts["total_models_with_downloads"],
            total_download_entries=counts["total_download_entries"],
            total_size_bytes=counts["total_size_bytes"],
            models_with_size_info=with_size,
            average_size_bytes=round(counts["total_size_bytes"] / with_size, 2) if with_size else 0.0,
            hosts=dict(tables.hosts.iter_rows()),
        ),
        top_tags=[TagStats(**row) for row in tables.tags.iter_rows(named=True)],
        top_styles=[TagStats(**row) for row in tables.styles.iter_rows(named=True)],
        parameter_buckets=[]
        if tables.buckets is None
        else [ParameterBucketStats(**row) for row in tables.buckets.iter_rows(named=True)],
        models_without_param_info=counts["models_without_param_info"] if tables.buckets is not None else 0,
        models_with_trigger_words=counts["models_with_trigger_words"],
        models_with_inpainting=counts["models_with_inpainting"],
        models_with_requirements=counts["models_with_requirements"],
        models_with_showcases=counts["models_with_showcases"],
        models_without_baseline=counts["models_without_baseline"],
        computed_at=computed_at,
        grouped=grouped,
        run_id=run_id,
    )
