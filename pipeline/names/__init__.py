"""Text model names: one pattern table, two engines that agree, and families (SPEC §3)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

import polars as pl

from pipeline.names.polars_engine import parsed_names
from pipeline.names.python_engine import ParsedName, parse_name
from pipeline.schemas import PARSED_NAME_SCHEMA

Engine = Literal["polars", "python"]
ENGINES: tuple[Engine, ...] = ("polars", "python")


def parsed_name_frame(names: Iterable[object], engine: Engine = "polars") -> pl.DataFrame:
    """One row per input name (in order): ``name`` plus the §3.1 fields, from the chosen engine."""
    values = list(names)
    text = [value if isinstance(value, str) else None for value in values]
    if engine == "polars":
        frame = pl.DataFrame({"name": text}, schema={"name": pl.String})
        return parsed_names(frame).collect()
    if engine == "python":
        rows = [parse_name(value).to_dict() for value in values]
        return pl.DataFrame(rows, schema=PARSED_NAME_SCHEMA).select(pl.Series("name", text, dtype=pl.String), pl.all())
    raise ValueError(f"unknown engine {engine!r}; valid: {', '.join(ENGINES)}")


__all__ = ["ENGINES", "Engine", "ParsedName", "parse_name", "parsed_name_frame", "parsed_names"]
