"""What changed for a category's models since the previous committed run (SPEC §10): the ``changes`` table, read
off two runs' ``model_state``, and its published JSON."""

from __future__ import annotations

from typing import Final

import polars as pl

from pipeline.contracts.models import CategoryChanges
from pipeline.contracts.schemas import CHANGES_SCHEMA, conformed
from pipeline.steps.collect_engine import ENGINE

__all__ = [
    "CHANGE_KINDS",
    "changed_models",
    "changes",
    "changes_json",
]

#: Every kind of change, in the order the changes table lists them.
CHANGE_KINDS: Final = (
    "added",
    "removed",
    "became_at_risk",
    "no_longer_at_risk",
    "lost_all_workers",
    "gained_workers",
    "usage_dropped",
)


def changes(previous: pl.DataFrame | None, state: pl.DataFrame, category: str) -> pl.DataFrame:
    """What changed for the models of ``category`` between the previous committed run's state and this one's
    (SPEC §10); nothing when there is no previous run to compare with."""
    if previous is None:
        return pl.DataFrame(schema=CHANGES_SCHEMA)
    columns = ["key", "worker_count", "usage_month", "at_risk", "risk_score"]
    before = previous.lazy().filter(~pl.col("grouped")).select(columns).with_columns(pl.lit(True).alias("was"))
    after = state.lazy().filter(~pl.col("grouped")).select(columns).with_columns(pl.lit(True).alias("is"))
    both = (
        before.join(after, on="key", how="full", coalesce=True, suffix="_after")
        .with_columns(pl.col("was").fill_null(False), pl.col("is").fill_null(False))
        .collect(engine=ENGINE)  # once, for the seven rules below
        .lazy()
    )
    present = pl.col("was") & pl.col("is")
    risk, risk_after = pl.col("risk_score"), pl.col("risk_score_after")
    # (change, condition, before, after): the numbers a change is about (see CHANGES_SCHEMA)
    none = pl.lit(None, pl.Int64)
    rules: list[tuple[str, pl.Expr, pl.Expr, pl.Expr]] = [
        ("added", ~pl.col("was"), none, pl.col("usage_month_after")),
        ("removed", ~pl.col("is"), pl.col("usage_month"), none),
        ("became_at_risk", present & ~pl.col("at_risk") & pl.col("at_risk_after"), risk, risk_after),
        ("no_longer_at_risk", present & pl.col("at_risk") & ~pl.col("at_risk_after"), risk, risk_after),
        (
            "lost_all_workers",
            present & (pl.col("worker_count") > 0) & (pl.col("worker_count_after") == 0),
            pl.col("worker_count"),
            pl.col("worker_count_after"),
        ),
        (
            "gained_workers",
            present & (pl.col("worker_count") == 0) & (pl.col("worker_count_after") > 0),
            pl.col("worker_count"),
            pl.col("worker_count_after"),
        ),
        (
            # "fell by half or more" (SPEC §10)
            "usage_dropped",
            present & (pl.col("usage_month") > 0) & (pl.col("usage_month_after") * 2 <= pl.col("usage_month")),
            pl.col("usage_month"),
            pl.col("usage_month_after"),
        ),
    ]
    found = pl.concat(
        both.filter(condition).select(
            pl.lit(category).alias("category"),
            pl.col("key").alias("name"),
            pl.lit(kind).alias("change"),
            old.cast(pl.Int64).alias("before"),
            new.cast(pl.Int64).alias("after"),
            pl.lit(order).alias("_order"),
        )
        for order, (kind, condition, old, new) in enumerate(rules)
    )
    return conformed(found.sort("_order", "name").collect(engine=ENGINE), CHANGES_SCHEMA)


def changes_json(frame: pl.DataFrame, *, category: str, run_id: str) -> str:
    """Compact JSON of CategoryChanges (the Redis value of SPEC §10), built by Polars."""
    counts = {kind: frame.filter(pl.col("change") == kind).height for kind in CHANGE_KINDS}
    rows = frame.select(pl.struct("name", "change", "before", "after").struct.json_encode()).to_series().to_list()
    head = CategoryChanges(run_id=run_id, category=category, counts=counts, changes=[]).model_dump_json()
    return head[: -len("[]}")] + "[" + ",".join(rows) + "]}"


def changed_models(frame: pl.DataFrame) -> int:
    """How many models changed state in a changes table."""
    return frame["name"].n_unique() if frame.height else 0
