"""The report's tables (SPEC §9): the most-at-risk rows with their reasons in words, what changed since the last run
(§10) and the reference audit in short (§11)."""

from __future__ import annotations

from typing import Final

import polars as pl

from pipeline.contracts.schemas import HISTORY_FIELDS
from pipeline.steps.audit_kinds import KINDS, in_audit_order
from pipeline.steps.report import TABLE_ROWS, TableView
from pipeline.steps.risk_order import in_risk_order

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
    """The reference audit (SPEC §11) in short: findings per kind and severity, then the first few findings of each
    kind, both ``in_audit_order`` (most urgent first, then by kind; the page sorts by count on a click)."""
    if audit.is_empty():
        return [
            TableView("audit", "Reference audit", "The audit found nothing in this category.", audit.head(0).select())
        ]
    explained = {kind: spec.explanation for kind, spec in KINDS.items()}
    counts = in_audit_order(
        audit.group_by("severity", "kind")
        .len("findings")
        .with_columns(pl.col("kind").replace_strict(explained, default="").alias("what it means"))
    )
    examples = (
        in_audit_order(audit)
        .group_by("severity", "kind", maintain_order=True)
        .head(AUDIT_EXAMPLES)
        .select("severity", "kind", "name", "detail")
    )
    return [
        TableView(
            "audit",
            "Reference audit",
            "Findings per kind and severity (horde-analytics audit lists each one).",
            counts,
        ),
        TableView(
            "audit", "Top problems", f"Up to {AUDIT_EXAMPLES} findings of each kind, most urgent kinds first.", examples
        ),
    ]
