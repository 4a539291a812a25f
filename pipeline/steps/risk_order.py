"""The one order of model and family rows (SPEC §6): busiest first, then by name, then, for families that share a
display name, by their first member. The risk step, ``query``, the merge's unmatched table and every "busiest"
list of the report sort with it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

import polars as pl

FrameT = TypeVar("FrameT", pl.DataFrame, pl.LazyFrame)


def ranked(rows: FrameT, by: Sequence[pl.Expr], descending: Sequence[bool]) -> FrameT:
    """``rows`` sorted by ``by``, ties by ``name`` ascending, then (rows with a ``members`` list: families) by the
    first member.

    Under GROUP_BY_VARIANT two families can share a display name (Instruct and Base both show "Qwen2.5-14B"):
    their first member, unique per family, breaks the tie so the order does not change from run to run."""
    keys, order = [*by, pl.col("name")], [*descending, False]
    if isinstance(rows.collect_schema().get("members"), pl.List):
        keys.append(pl.col("members").list.first())
        order.append(False)
    return rows.sort(keys, descending=order)


def in_risk_order(rows: FrameT, *, most_at_risk_first: bool = False) -> FrameT:
    """``rows`` in the SPEC §6 order: usage_month descending, then name ascending (then the first member, see
    ``ranked``).

    ``most_at_risk_first`` is the report's ranking: risk_score descending, then least used, then name.
    """
    if most_at_risk_first:
        return ranked(rows, [pl.col("risk_score"), pl.col("usage_month")], [True, False])
    return ranked(rows, [pl.col("usage_month")], [True])
