"""What the report shows (SPEC §9): reasons in words, the changes and audit tables, sparse distributions as
sentences, usage over time from daily runs. Pure functions on small hand-made frames."""

from __future__ import annotations

import warnings
from datetime import UTC, datetime
from pathlib import Path

import polars as pl

from pipeline.sinks.report_files import write_report
from pipeline.steps.audit_kinds import KINDS
from pipeline.steps.changes import CHANGE_KINDS
from pipeline.steps.deletion_risk import FLAGS
from pipeline.steps.report import CategorySection
from pipeline.steps.report_bars import is_worth_a_chart
from pipeline.steps.report_history import LineChart, daily_runs, usage_charts, usage_points
from pipeline.steps.report_sections import category_section
from pipeline.steps.report_tables import (
    AUDIT_EXAMPLES,
    CHANGE_WORDS,
    FLAG_WORDS,
    audit_tables,
    change_tables,
    flag_reasons,
    most_at_risk,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _risk(rows: list[dict[str, object]]) -> pl.DataFrame:
    """Risk rows with every flag false unless given."""
    defaults: dict[str, object] = {
        "grouped": False,
        "members": None,
        "at_risk": True,
        "risk_score": 1,
        "is_critical": False,
        "worker_count": 0,
        "usage_month": 0,
        **dict.fromkeys(FLAGS, False),
    }
    return pl.DataFrame([{**defaults, **row} for row in rows])


def test_every_change_kind_has_words() -> None:
    assert list(CHANGE_WORDS) == list(CHANGE_KINDS)


def test_every_risk_flag_has_words_and_the_strongest_usage_flag_speaks_for_the_rest() -> None:
    assert set(FLAG_WORDS) == set(FLAGS)
    risk = _risk(
        [
            {"name": "never", **dict.fromkeys(("zero_usage_day", "zero_usage_month", "zero_usage_total"), True)},
            {"name": "quiet", "zero_usage_day": True, "zero_usage_month": True, "low_usage": True},
            {"name": "hosts", "low_usage": True, "no_active_workers": True, "has_non_preferred_host": True},
        ]
    )
    reasons = risk.select(flag_reasons().alias("reasons"))["reasons"].to_list()
    assert reasons == [
        "never used",
        "unused in the last month",
        "no worker serves it; a download off the preferred hosts; low share of the category's usage",
    ]


def test_at_risk_rows_carry_reasons_and_the_history_fields_the_run_wrote() -> None:
    old = _risk([{"name": "a", "no_active_workers": True}, {"name": "b", "at_risk": False}])
    shown = most_at_risk(old, grouped=False)
    assert shown.columns == ["name", "reasons", "risk_score", "is_critical", "worker_count", "usage_month"]
    assert shown.rows() == [("a", "no worker serves it", 1, False, 0, 0)]

    since = datetime(2026, 11, 20, 6, 0, tzinfo=UTC)
    new = old.with_columns(
        pl.lit(12).alias("days_without_workers"),
        pl.lit(since).alias("at_risk_since"),
        pl.lit(40).alias("usage_month_previous"),
        pl.lit(-40).alias("usage_month_change"),
    )
    row = most_at_risk(new, grouped=False).row(0, named=True)
    assert row["days_without_workers"] == 12
    assert row["at_risk_since"] == since.date()
    assert (row["usage_month_week_before"], row["usage_month_change"]) == (40, -40)


def test_a_chart_of_single_model_bars_becomes_a_sentence() -> None:
    assert is_worth_a_chart(pl.Series([106, 49, 4, 1, 1]))
    assert not is_worth_a_chart(pl.Series([5, 1, 1, 1]))
    assert not is_worth_a_chart(pl.Series([7]))
    sparse = pl.DataFrame(
        {"baseline": ["x/base", "y/base", "z/base"], "count": [2, 1, 1], "percentage": [2.0, 1.0, 1.0]}
    ).with_columns(pl.lit(False).alias("grouped"))
    merged = pl.DataFrame({"name": [f"m{i}" for i in range(100)], "usage_month": [0] * 100, "worker_count": [1] * 100})
    section = category_section(
        "text_generation", {("baselines", "text_generation"): sparse, ("merged", "text_generation"): merged}
    )
    assert not any(chart.key.endswith("baselines") for chart in section.charts)
    assert "Baselines: 4 of 100 models record one, 3 distinct: x/base (2), y/base (1), z/base (1)." in section.notes


def test_changes_are_counted_and_listed_in_words() -> None:
    changes = pl.DataFrame(
        {
            "category": ["text_generation"] * 4,
            "name": ["b", "a", "c", "d"],
            "change": ["usage_dropped", "became_at_risk", "added", "a_future_kind"],
            "before": [100, 1, None, None],
            "after": [40, 3, 5, None],
        }
    )
    counts, listed = change_tables(changes)
    assert counts.rows.rows() == [
        (CHANGE_WORDS["added"], 1),
        (CHANGE_WORDS["became_at_risk"], 1),
        (CHANGE_WORDS["usage_dropped"], 1),
        ("a_future_kind", 1),  # a kind this report does not know yet is shown as it is spelled
    ]
    assert listed.rows["name"].to_list() == ["c", "a", "b", "d"]
    assert listed.rows.row(2) == ("b", CHANGE_WORDS["usage_dropped"], 100, 40)
    (nothing,) = change_tables(changes.head(0))
    assert "Nothing changed" in nothing.note


def test_audit_summary_lists_findings_in_the_audit_order_with_the_first_few_of_each_kind() -> None:
    # in_audit_order, as the audit table and the CLI: most urgent first, then by kind (not by count), then as given
    findings = [("z1", "case_duplicate", "warning"), ("m0", "backend_copy_differs", "error")]
    findings += [(f"d{i:02}", "missing_description", "warning") for i in range(12)]
    findings += [("s1", "size_mismatch", "warning"), ("s2", "size_mismatch", "warning")]
    audit = pl.DataFrame(
        [
            {"category": "text_generation", "name": n, "kind": k, "severity": s, "detail": f"{k} of {n}"}
            for n, k, s in findings
        ]
    )
    counts, top = audit_tables(audit)
    assert counts.rows.select("severity", "kind", "findings").rows() == [
        ("error", "backend_copy_differs", 1),
        ("warning", "case_duplicate", 1),
        ("warning", "missing_description", 12),
        ("warning", "size_mismatch", 2),
    ]
    assert counts.rows["what it means"][0] == KINDS["backend_copy_differs"].explanation
    per_kind = top.rows.group_by("kind", maintain_order=True).len()
    assert per_kind.rows() == [
        ("backend_copy_differs", 1),
        ("case_duplicate", 1),
        ("missing_description", AUDIT_EXAMPLES),
        ("size_mismatch", 2),
    ]
    assert top.rows["name"].to_list()[:4] == ["m0", "z1", "d00", "d01"]


def test_daily_runs_take_the_newest_run_of_each_day_within_the_window() -> None:
    runs = [
        {"run_id": "1", "run_at": "2026-01-01T10:00:00+00:00"},
        {"run_id": "2", "run_at": "2026-03-01T08:00:00+00:00"},
        {"run_id": "3", "run_at": "2026-03-01T20:00:00+00:00"},
        {"run_id": "4", "run_at": "2026-03-03T09:00:00+00:00"},
    ]
    assert [run["run_id"] for run in daily_runs(runs)] == ["1", "3", "4"]
    assert [run["run_id"] for run in daily_runs(runs, days=30)] == ["3", "4"]  # January is 61 days back
    assert [run["run_id"] for run in daily_runs(runs, days=3)] == ["3", "4"]  # 1 to 3 March: three days
    assert daily_runs([]) == []


def _day(usage: dict[str, int], at_risk: set[str]) -> pl.DataFrame:
    return _risk([{"name": n, "usage_month": u, "at_risk": n in at_risk} for n, u in usage.items()])


def test_usage_over_time_draws_the_busiest_and_the_at_risk_whose_usage_fell() -> None:
    one_day = usage_points({"2026-03-01": _day({"a": 5}, set())})
    assert usage_charts("text_generation", one_day) == ()
    points = usage_points(
        {
            "2026-03-01": _day({"busy": 100, "fading": 50, "never": 0, "dip": 5}, set()),
            "2026-03-02": _day({"busy": 120, "fading": 10, "never": 0, "new": 7, "dip": 4}, {"fading", "never"}),
            "2026-03-03": _day({"busy": 150, "fading": 0, "never": 0, "new": 9, "dip": 4}, {"busy", "fading", "dip"}),
        }
    )
    busiest, fading = usage_charts("text_generation", points, series=2)
    assert busiest.days == ("2026-03-01", "2026-03-02", "2026-03-03")
    assert dict(busiest.series) == {"busy": (100.0, 120.0, 150.0), "new": (None, 7.0, 9.0)}
    # the biggest falls first; "busy" (at risk too) is drawn once, "never" never moved: a flat zero line says
    # nothing its table row does not
    assert dict(fading.series) == {"fading": (50.0, 10.0, 0.0), "dip": (5.0, 4.0, 4.0)}


def test_line_charts_draw_hostile_names(tmp_path: Path) -> None:
    chart = LineChart(
        key="lines",
        title="$x$ $$",
        days=("2026-03-01", "2026-03-02"),
        series=(("$$ a\x00b", (1.0, None)), ("模型 🚀", (None, 2.0))),
    )
    section = CategorySection(
        category="text_generation", facts={}, charts=(chart,), long_tail=None, at_risk=None, at_risk_families=None
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        write_report([section], tmp_path / "report", run_id="r", run_at="now")
    assert (tmp_path / "report" / "lines.png").read_bytes().startswith(PNG_SIGNATURE)
