"""How the pipeline runs Polars: the engine that collects its lazy frames, and list kernels chosen by measurement.

Measured on this workload (bench/names.py, Polars 2.1): the default "auto" engine runs the parser's ordered
join back onto 1M names on the streaming engine, 2.4x slower end to end than the in-memory engine. The batch
works on frames that fit in memory; the history readers (scan_parquet) choose streaming themselves.
"""

from __future__ import annotations

from typing import Final, Literal

import polars as pl

ENGINE: Final[Literal["in-memory"]] = "in-memory"


def sorted_lists(values: pl.Expr) -> pl.Expr:
    """Every list of ``values`` sorted ascending, as ``list.sort()`` would.

    ``list.eval`` sorts the flattened values in one pass; ``list.sort()`` took 0.26 s on 720k empty lists and
    0.59 s on 160k short ones where this takes 0.03-0.13 s (Polars 2.1).
    """
    return values.list.eval(pl.element().sort())
