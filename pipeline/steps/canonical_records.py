"""Records in canonical form, a pure step (SPEC §2.1): what the sources read, as the analysis means it.

Image baselines go through the alias table (an unknown one is kept verbatim, with a warning); backend-prefixed
text copies (``koboldcpp/Model``) are folded into their canonical record (``text_aliases``). Which category gets
which rule is the category policy's to say.
"""

from __future__ import annotations

import polars as pl

from pipeline.contracts.categories import policy
from pipeline.contracts.schemas import COPY_DIFFERENCE_DTYPE
from pipeline.steps.baselines import is_known_baseline, normalized_baseline
from pipeline.steps.text_aliases import folded_text_aliases


def canonical_records(category: str, records: pl.DataFrame) -> tuple[pl.DataFrame, list[pl.DataFrame]]:
    """(``records`` with ``baseline``, ``aliases`` and ``copy_differences``; the warnings that produced, as
    ``name, severity, reason`` frames). ``records`` are validated and carry ``raw_baseline``."""
    rules = policy(category)
    raw = pl.col("raw_baseline")
    canonical = records.with_columns(
        (normalized_baseline(raw) if rules.normalizes_baselines else raw).alias("baseline"),
        pl.lit([], dtype=pl.List(pl.String)).alias("aliases"),
        pl.lit([], dtype=pl.List(COPY_DIFFERENCE_DTYPE)).alias("copy_differences"),
    )
    problems: list[pl.DataFrame] = []
    if rules.normalizes_baselines:
        problems.append(
            canonical.filter(raw.is_not_null() & ~is_known_baseline(raw)).select(
                "name",
                pl.lit("warning").alias("severity"),
                pl.format("unknown baseline '{}' kept verbatim", raw).alias("reason"),
            )
        )
    if rules.folds_backend_copies:
        canonical, alias_problems = folded_text_aliases(canonical)
        problems.append(alias_problems)
    return canonical, problems
