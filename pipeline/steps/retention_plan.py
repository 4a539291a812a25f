"""What to keep and what to compact in the snapshot store (SPEC §13): frames and dates in, decisions out.

Pure: no I/O, no settings, no clock. Time is the newest committed run's time (its ``--as-of``), so a backfill
ages the store exactly like the wall clock would have.

Retention acts on whole UTC days. A day's age is the number of calendar days between it and the newest run's
day (that day is 0). A run is kept while its day's age is at most ``keep_all_days`` (so every run is kept for at
least that many days, and at most one day longer); after that only the last run of its day is kept, while the
day's age is at most ``keep_daily_days``. Whole days mean a compacted day is rewritten once when it ages out,
not at every run. 0 = forever for either period.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Final

import polars as pl

from pipeline.contracts.rules import USAGE_COMPARISON_PERIOD
from pipeline.contracts.rules import (
    RetentionPolicy as RetentionPolicy,  # its defaults are stated once, with the other rules
)

#: Compacted files are named ``{COMPACT_PREFIX}{period}-{digest of their run ids}.parquet``: the name says which runs
#: the file holds, so a rewrite after a crash is the same file, and a changed set of runs is a new one.
COMPACT_PREFIX: Final = "compact-"


def kept_runs(runs: pl.DataFrame, policy: RetentionPolicy) -> pl.DataFrame:
    """``runs`` (``run_id``, ``run_at`` UTC) with ``run_date`` (UTC day, ISO) and ``keep`` (bool) per run.

    Kept: the newest run; every run of a day no older than ``keep_all_days``; the last run of a day no older than
    ``keep_daily_days``; every run newer than ``USAGE_COMPARISON_PERIOD`` before the newest, and the newest run at
    or before that point (the runs a later run's 7-day comparison may pick, SPEC §10).
    """
    if runs.is_empty():
        return runs.select("run_id", "run_at").with_columns(
            pl.lit(None, dtype=pl.String).alias("run_date"), pl.lit(None, dtype=pl.Boolean).alias("keep")
        )
    ordered = runs.select("run_id", "run_at").sort("run_at", "run_id")
    newest = ordered["run_at"].max()
    day = pl.col("run_at").dt.date()
    age_days = (pl.lit(newest).dt.date() - day).dt.total_days()
    horizon = pl.lit(newest) - pl.lit(USAGE_COMPARISON_PERIOD)
    last_of_day = pl.col("run_id") == pl.col("run_id").last().over(day)
    last_before_horizon = pl.col("run_id") == pl.col("run_id").filter(pl.col("run_at") <= horizon).last()

    def within(days: int) -> pl.Expr:
        return pl.lit(True) if days == 0 else age_days <= days

    keep = (
        (pl.col("run_at") == newest)
        | within(policy.keep_all_days)
        | (last_of_day & within(policy.keep_daily_days))
        | (pl.col("run_at") > horizon)
        | last_before_horizon.fill_null(False)
    )
    return ordered.with_columns(day.cast(pl.String).alias("run_date"), keep.alias("keep"))


def compact_file_name(period: str, run_ids: Iterable[str]) -> str:
    """The compacted file of one period (a day, ``YYYY-MM-DD``, or an hour, ``YYYY-MM-DDTHH``) holding exactly
    ``run_ids``."""
    digest = hashlib.sha256("\n".join(sorted(run_ids)).encode()).hexdigest()[:16]
    return f"{COMPACT_PREFIX}{period}-{digest}.parquet"


def compacted_period(path: str) -> str:
    """The period (``YYYY-MM-DD`` or ``YYYY-MM-DDTHH``) in a compacted file's name (``compact_file_name``)."""
    return path.rsplit("/", 1)[-1].removeprefix(COMPACT_PREFIX).rsplit("-", 1)[0]


def is_compacted_file(name: str) -> bool:
    """Whether a data file's name is a compacted day (as opposed to one run's file, named by its run id)."""
    return name.startswith(COMPACT_PREFIX)


def groups_to_compact(entries: pl.DataFrame, kept: pl.DataFrame) -> pl.DataFrame:
    """The (period, table, category) groups whose kept runs are not yet in the one file that should hold them.

    ``entries``: the run index (``run_id``, ``run_at``, ``run_date``, ``table``, ``category``, ``path``,
    ``compacted``). ``kept``: ``kept_runs``' output. A period is a closed day (before the newest run's day), or,
    within the newest run's day, a closed hour (before the newest run's hour): the open day's runs are merged hour
    by hour, so it never holds more than an hour of per-run files and its compaction at the end of the day reads
    24 files per table and category instead of 360. A group is done when all its kept runs are in one file that
    holds exactly them: the compacted file named for them, or the run's own file when a single run is kept.
    Returns ``run_date, period, table, category, run_ids`` (sorted list), ``target`` (the compacted file's name).
    """
    if kept.is_empty():
        return pl.DataFrame(
            schema={
                "run_date": pl.String,
                "period": pl.String,
                "table": pl.String,
                "category": pl.String,
                "run_ids": pl.List(pl.String),
                "target": pl.String,
            }
        )
    newest = kept["run_at"].max()
    newest_day, newest_hour = kept.filter(pl.col("run_at") == newest)["run_date"][0], pl.lit(newest).dt.truncate("1h")
    closed_day = pl.col("run_date") < newest_day
    period = (
        pl.when(closed_day)
        .then(pl.col("run_date"))
        .otherwise(pl.col("run_at").dt.truncate("1h").dt.strftime("%Y-%m-%dT%H"))
    )
    kept_ids = kept.filter("keep").select("run_id")
    groups = (
        entries.filter(pl.col("table").is_not_null(), closed_day | (pl.col("run_at").dt.truncate("1h") < newest_hour))
        .join(kept_ids, on="run_id", how="semi")
        .with_columns(period.alias("period"))
        .group_by("run_date", "period", "table", "category")
        .agg(
            pl.col("run_id").sort().alias("run_ids"),
            pl.col("path").n_unique().alias("files"),
            pl.col("path").first().alias("path"),
            pl.col("compacted").first().alias("compacted"),
        )
    )
    targets = [
        compact_file_name(period, ids)
        for period, ids in zip(groups["period"], groups["run_ids"].to_list(), strict=True)
    ]
    groups = groups.with_columns(pl.Series("target", targets, dtype=pl.String))
    done = (pl.col("files") == 1) & (
        pl.when(pl.col("compacted"))
        .then(pl.col("path").str.ends_with("/" + pl.col("target")))
        .otherwise(pl.col("run_ids").list.len() == 1)
    )
    return (
        groups.filter(~done)
        .select("run_date", "period", "table", "category", "run_ids", "target")
        .sort("run_date", "period", "table", "category")
    )
