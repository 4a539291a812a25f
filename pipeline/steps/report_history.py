"""The report's view of time (SPEC §9, §10): which committed runs to draw usage from, and usage over time as line
charts. Pure: manifests and risk frames in, charts out; the job reads the runs.

One point per UTC day (that day's newest committed run) over the last HISTORY_DAYS days: the hydrator commits
hundreds of runs a day, and a month-usage figure does not move enough within a day to be worth reading them all.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any, Final

import polars as pl

from pipeline.steps.risk_order import in_risk_order, ranked

#: How far back the usage charts reach, in days before the newest committed run.
HISTORY_DAYS: Final = 90
#: Lines in one usage chart (more would not be told apart).
SERIES_PER_CHART: Final = 8
#: The columns of a risk row the usage charts read.
POINT_COLUMNS: Final = ("name", "grouped", "usage_month", "at_risk", "risk_score")


@dataclass(frozen=True)
class LineChart:
    """Lines over days: one series of values (None where the run had no such model) per name."""

    key: str  # the PNG's file stem, unique within a report
    title: str
    days: tuple[str, ...]
    series: tuple[tuple[str, tuple[float | None, ...]], ...]


def daily_runs(manifests: Sequence[dict[str, Any]], days: int = HISTORY_DAYS) -> list[dict[str, Any]]:
    """The newest committed run of each UTC day, for the ``days`` days up to the newest run, oldest first
    (``manifests`` oldest first: manifests or the run index's rows, anything with ``run_at``)."""
    newest_of_day: dict[str, dict[str, Any]] = {}
    for manifest in manifests:
        newest_of_day[str(manifest["run_at"])[:10]] = manifest
    if not newest_of_day:
        return []
    last = date.fromisoformat(max(newest_of_day))
    first = (last - timedelta(days=days - 1)).isoformat()
    return [newest_of_day[day] for day in sorted(newest_of_day) if day >= first]


def usage_points(risk_by_day: Mapping[str, pl.DataFrame]) -> pl.DataFrame:
    """``day`` -> that day's risk rows, as one frame of the POINT_COLUMNS and ``day``."""
    frames = [
        risk.select(POINT_COLUMNS).with_columns(pl.lit(day).alias("day")) for day, risk in sorted(risk_by_day.items())
    ]
    if not frames:
        return pl.DataFrame(
            schema={
                "name": pl.String,
                "grouped": pl.Boolean,
                "usage_month": pl.Int64,
                "at_risk": pl.Boolean,
                "risk_score": pl.Int64,
                "day": pl.String,
            }
        )
    return pl.concat(frames, how="vertical_relaxed")


def _line_chart(key: str, title: str, points: pl.DataFrame, names: list[str]) -> LineChart:
    days = sorted(points["day"].unique().to_list())
    wide = (
        points.filter(pl.col("name").is_in(names))
        .pivot(on="name", index="day", values="usage_month", aggregate_function="first")
        .join(pl.DataFrame({"day": days}), on="day", how="right")
        .sort("day")
    )
    series = tuple(
        (name, tuple(None if value is None else float(value) for value in wide[name].to_list()))
        for name in names
        if name in wide.columns
    )
    return LineChart(key=key, title=title, days=tuple(days), series=series)


def usage_charts(category: str, points: pl.DataFrame, series: int = SERIES_PER_CHART) -> tuple[LineChart, ...]:
    """Month usage per day for the busiest models of the newest day, and for the at-risk models of that day whose
    usage fell most from their peak in the window (a model at risk and never used is a flat line at zero: its row
    in the at-risk table says as much). Nothing when the history holds fewer than two days."""
    models = points.filter(~pl.col("grouped"))
    if models["day"].n_unique() < 2:
        return ()
    newest = models.filter(pl.col("day") == models["day"].max())
    busiest = in_risk_order(newest.filter(pl.col("usage_month") > 0)).head(series)["name"].to_list()
    peak = models.group_by("name").agg(pl.col("usage_month").max().alias("peak"))
    fallen = (
        ranked(
            newest.filter(pl.col("at_risk") & ~pl.col("name").is_in(busiest))
            .join(peak, on="name")
            .with_columns((pl.col("peak") - pl.col("usage_month").fill_null(0)).alias("fall"))
            .filter(pl.col("fall") > 0),
            [pl.col("fall")],
            [True],
        )
        .head(series)["name"]
        .to_list()
    )
    charts = []
    if busiest:
        charts.append(_line_chart(f"{category}-usage-over-time", "Busiest models, usage over time", models, busiest))
    if fallen:
        charts.append(
            _line_chart(
                f"{category}-at-risk-over-time",
                "At-risk models whose usage fell most",
                models,
                fallen,
            )
        )
    return tuple(charts)
