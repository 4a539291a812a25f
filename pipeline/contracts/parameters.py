"""What a parameter count means: billions of a parsed size, and the reference's "0 means unknown" (SPEC §3.1, §5)."""

from __future__ import annotations

from typing import Final

import polars as pl

__all__ = ["BILLION", "known_parameters", "parameters_of_billions"]

#: Parameters per unit of ``size_b``, ``expert_size_b`` and ``active_b`` (billions, SPEC §3.1); ``parameters`` and
#: ``parameter_count`` count them one by one.
BILLION: Final = 1_000_000_000


def known_parameters(parameters: pl.Expr) -> pl.Expr:
    """A record's stored parameter count, null when it is not positive: the reference writes 0 for "unknown"
    (SPEC §5: "when absent or 0, from the parsed name size"). The one home of that rule."""
    return pl.when(parameters > 0).then(parameters)


def parameters_of_billions(size_b: pl.Expr) -> pl.Expr:
    """A size in billions (``size_b``) as a whole parameter count: the one billions-to-parameters formula."""
    return (size_b * BILLION).round(0).cast(pl.Int64)
