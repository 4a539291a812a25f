"""Named filters over a deletion-risk table (SPEC §6), each defined once as a Polars expression."""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

import polars as pl

from pipeline.contracts.rules import RiskRules
from pipeline.steps.deletion_risk import HOST_FLAGS

__all__ = [
    "CANDIDATE_SHARE_PERCENTAGE",
    "PRESETS",
    "UnknownPresetError",
    "preset_filter",
]

#: Usage share (percent) under which a model is a deletion candidate.
CANDIDATE_SHARE_PERCENTAGE: Final = 0.01

_share = pl.col("usage_percentage_of_category")

PRESETS: Final[dict[str, Callable[[RiskRules], pl.Expr]]] = {
    "deletion_candidates": lambda _: (
        pl.col("at_risk") | (_share < CANDIDATE_SHARE_PERCENTAGE) | (pl.col("worker_count") == 0)
    ),
    "zero_usage": lambda _: pl.col("usage_month") == 0,
    "no_workers": lambda _: pl.col("worker_count") == 0,
    "missing_data": lambda _: pl.col("missing_description") | pl.col("missing_baseline"),
    "host_issues": lambda _: pl.any_horizontal(*HOST_FLAGS),
    "critical": lambda _: pl.col("is_critical"),
    "low_usage": lambda _: pl.col("low_usage"),
    "at_risk": lambda _: pl.col("at_risk"),
    "high_usage": lambda rules: _share >= rules.high_usage_threshold_percentage,
    "stale_workers": lambda rules: pl.col("days_without_workers") >= rules.stale_worker_days,
}


class UnknownPresetError(ValueError):
    """A preset name that does not exist; the message lists the valid ones."""


def preset_filter(name: str, rules: RiskRules | None = None) -> pl.Expr:
    """The filter expression of preset ``name``."""
    try:
        build = PRESETS[name]
    except KeyError:
        raise UnknownPresetError(f"unknown preset {name!r}; valid presets: {', '.join(sorted(PRESETS))}") from None
    return build(rules or RiskRules())
