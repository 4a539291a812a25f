"""Text model names: one pattern table, two engines that agree, and families (SPEC §3)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

import polars as pl

from pipeline.contracts.schemas import PARSED_NAME_SCHEMA
from pipeline.steps.collect_engine import ENGINE
from pipeline.steps.names.polars_engine import parsed_names
from pipeline.steps.names.python_engine import ParsedName, parse_name

Engine = Literal["polars", "python"]
ENGINES: tuple[Engine, ...] = ("polars", "python")


def parsed_name_frame(names: Iterable[object], engine: Engine = "polars") -> pl.DataFrame:
    """One row per input name (in order): ``name`` plus the §3.1 fields, from the chosen engine."""
    values = list(names)
    text = [value if isinstance(value, str) else None for value in values]
    if engine == "polars":
        frame = pl.DataFrame({"name": text}, schema={"name": pl.String})
        return parsed_names(frame).collect(engine=ENGINE)
    if engine == "python":
        parsed = [parse_name(value) for value in values]
        columns: dict[str, list[object]] = {
            field: [getattr(row, field) for row in parsed] for field in PARSED_NAME_SCHEMA.names()
        }
        # Building a list column from Python tuples is slow in Polars; variants are canonical ASCII words, so
        # they travel as one comma-joined string and Polars splits them.
        columns["variants"] = [None if row.variants is None else ",".join(row.variants) for row in parsed]
        variants = pl.col("variants")
        return pl.DataFrame(
            {"name": text, **columns}, schema={"name": pl.String, **PARSED_NAME_SCHEMA, "variants": pl.String}
        ).with_columns(
            pl.when(variants == "")
            .then(pl.lit([], dtype=pl.List(pl.String)))
            .otherwise(variants.str.split(","))
            .alias("variants")
        )
    raise ValueError(f"unknown engine {engine!r}; valid: {', '.join(ENGINES)}")


__all__ = ["ENGINES", "Engine", "ParsedName", "parse_name", "parsed_name_frame", "parsed_names"]
