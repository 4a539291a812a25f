"""The pure plan of SPEC §13: which runs retention keeps and which days compaction rewrites (no files here)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import polars as pl

from pipeline.contracts.rules import USAGE_COMPARISON_PERIOD
from pipeline.steps.retention_plan import (
    RetentionPolicy,
    compact_file_name,
    groups_to_compact,
    kept_runs,
)

NEWEST = datetime(2027, 3, 10, 13, 0, tzinfo=UTC)


def hourly_runs(days: int, newest: datetime = NEWEST) -> pl.DataFrame:
    times = [newest - timedelta(hours=hour) for hour in range(days * 24)]
    return pl.DataFrame(
        {"run_id": [t.strftime("%Y%m%dT%H%M%SZ") for t in times], "run_at": times},
        schema={"run_id": pl.String, "run_at": pl.Datetime("us", "UTC")},
    )


def day_age(frame: pl.DataFrame, newest: datetime = NEWEST) -> pl.Expr:
    return (pl.lit(newest.date()) - pl.col("run_at").dt.date()).dt.total_days()


def test_defaults_keep_every_run_for_a_week_then_one_a_day_for_a_year() -> None:
    plan = kept_runs(hourly_runs(400), RetentionPolicy())
    with_age = plan.with_columns(day_age(plan).alias("age"))
    recent = with_age.filter(pl.col("age") <= 7)
    assert recent["keep"].all()
    assert recent.height == 24 * 7 + 14  # today's 14 runs (00:00..13:00) and 7 whole days
    daily = with_age.filter(pl.col("age").is_between(8, 365))
    kept_daily = daily.filter("keep")
    assert kept_daily.height == 365 - 7
    assert (kept_daily["run_at"].dt.hour() == 23).all(), "the last run of each day is the one kept"
    assert not with_age.filter(pl.col("age") > 365)["keep"].any()
    # every run is kept at least the 7 days of the first period
    assert plan.filter(pl.col("run_at") > NEWEST - timedelta(days=7))["keep"].all()


def test_periods_count_from_the_newest_run_not_the_wall_clock() -> None:
    """A backfill ten years back ages exactly like the same runs now (SPEC §13: the newest run's --as-of)."""
    shift = timedelta(days=3650)
    now = kept_runs(hourly_runs(30), RetentionPolicy())
    then = kept_runs(hourly_runs(30, NEWEST - shift), RetentionPolicy())
    assert now["keep"].to_list() == then["keep"].to_list()
    assert not now["keep"].all()


def test_zero_keeps_forever() -> None:
    runs = hourly_runs(40)
    assert kept_runs(runs, RetentionPolicy(keep_all_days=0, keep_daily_days=1))["keep"].all()
    forever_daily = kept_runs(runs, RetentionPolicy(keep_all_days=1, keep_daily_days=0))
    assert forever_daily.filter(pl.col("run_at").dt.hour() == 23)["keep"].all()
    assert not forever_daily["keep"].all()


def test_the_runs_the_seven_day_comparison_needs_are_kept_even_with_a_short_first_period() -> None:
    plan = kept_runs(hourly_runs(30), RetentionPolicy(keep_all_days=1, keep_daily_days=30))
    horizon = NEWEST - USAGE_COMPARISON_PERIOD
    assert plan.filter(pl.col("run_at") > horizon)["keep"].all()
    before = plan.filter(pl.col("run_at") <= horizon)
    assert before.filter(pl.col("run_at") == pl.col("run_at").max())["keep"].all(), "the latest run 7 days back"
    assert not before["keep"].all()


def test_the_newest_run_is_always_kept() -> None:
    (single,) = kept_runs(hourly_runs(1).head(1), RetentionPolicy(keep_all_days=1, keep_daily_days=1))["keep"]
    assert single


def index_rows(runs: list[tuple[str, datetime]], path_of: dict[str, str] | None = None) -> pl.DataFrame:
    rows = []
    for run_id, run_at in runs:
        for table in ("records", "deletion_risk"):
            day = run_at.date().isoformat()
            path = (path_of or {}).get(run_id, f"{table}/category=x/run_date={day}/{run_id}.parquet")
            rows.append(
                {
                    "run_id": run_id,
                    "run_at": run_at,
                    "run_date": day,
                    "table": table,
                    "category": "x",
                    "path": path.replace("{table}", table),
                    "compacted": "compact-" in path,
                    "rows": 3,
                }
            )
    return pl.DataFrame(rows, schema_overrides={"run_at": pl.Datetime("us", "UTC")})


def test_only_closed_days_with_several_runs_outside_their_file_are_compacted() -> None:
    day1, day2 = datetime(2027, 3, 8, tzinfo=UTC), datetime(2027, 3, 9, tzinfo=UTC)
    runs = [
        ("a1", day1 + timedelta(hours=1)),
        ("a2", day1 + timedelta(hours=2)),
        ("b1", day2 + timedelta(hours=5)),  # a single run: its own file is already one file for the day
        ("c1", NEWEST - timedelta(hours=2)),  # today: a closed hour with one run (already its own file)
        ("c2", NEWEST - timedelta(minutes=4)),  # today, the open hour: not compacted
        ("c3", NEWEST),
    ]
    index = index_rows(runs)
    plan = kept_runs(index.select("run_id", "run_at").unique(), RetentionPolicy())
    todo = groups_to_compact(index, plan)
    assert todo["run_date"].unique().to_list() == ["2027-03-08"]
    assert sorted(todo["table"]) == ["deletion_risk", "records"]
    assert todo["run_ids"].to_list() == [["a1", "a2"], ["a1", "a2"]]

    # within today, closed hours are merged hour by hour
    hourly = index_rows([*runs, ("c0", NEWEST - timedelta(hours=2, minutes=-30))])
    today = groups_to_compact(hourly, kept_runs(hourly.select("run_id", "run_at").unique(), RetentionPolicy()))
    today = today.filter(pl.col("run_date") == "2027-03-10")
    assert today["period"].unique().to_list() == ["2027-03-10T11"]
    assert today["run_ids"].to_list() == [["c0", "c1"], ["c0", "c1"]]
    assert todo["target"][0] == compact_file_name("2027-03-08", ["a2", "a1"])

    # once both runs are in the file named for them the day is done; a different set of runs is not
    target = "{table}/category=x/run_date=2027-03-08/" + todo["target"][0]
    done = index_rows(runs, {"a1": target, "a2": target})
    assert groups_to_compact(done, plan).is_empty()
    stale = index_rows(runs, {"a1": target, "a2": target.replace(todo["target"][0], "compact-2027-03-08-0.parquet")})
    assert groups_to_compact(stale, plan)["run_date"].unique().to_list() == ["2027-03-08"]
