"""Which Polars engine collects the pipeline's lazy frames: one place for the choice.

Measured on this workload (bench/names.py, Polars 2.1): the default "auto" engine runs the parser's ordered
join back onto 1M names on the streaming engine, 2.4x slower end to end than the in-memory engine. The batch
works on frames that fit in memory; the history readers (scan_parquet) choose streaming themselves.
"""

from __future__ import annotations

from typing import Final, Literal

ENGINE: Final[Literal["in-memory"]] = "in-memory"
