"""Backend-prefixed text records (``aphrodite/<name>``, ``koboldcpp/<name without org>``) are aliases of
their canonical record, not extra models (SPEC §2.1). Folding them is a pair of joins."""

from __future__ import annotations

import polars as pl

from pipeline.names.patterns import BACKEND_ALIAS_RULES
from pipeline.names.polars_engine import backend_of, short_name, without_backend


def folded_text_aliases(records: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Records with one row per canonical name (``aliases`` filled) and the problems found while folding.

    A prefixed name whose canonical record is absent stays a model of its own, with a warning.
    """
    keyed = records.with_columns(
        backend_of(pl.col("name")).alias("_backend"),
        without_backend(pl.col("name")).str.to_lowercase().alias("_rest"),
    )
    canonical = keyed.filter(pl.col("_backend").is_null())
    prefixed = keyed.filter(pl.col("_backend").is_not_null())
    targets = canonical.select(
        pl.col("name").alias("_canonical"),
        pl.col("position").alias("_canonical_position"),
        pl.col("name").str.to_lowercase().alias("full"),
        short_name(pl.col("name")).str.to_lowercase().alias("short"),
    )
    matches = (
        pl.concat(
            [
                prefixed.filter(pl.col("_backend") == backend)
                .join(
                    targets.select("_canonical", "_canonical_position", target_key),
                    left_on="_rest",
                    right_on=target_key,
                )
                .select("name", "position", "_canonical", "_canonical_position")
                for backend, target_key in BACKEND_ALIAS_RULES.items()
            ]
        )
        # Two orgs may share a short name: the koboldcpp copy belongs to the first record in the file.
        .sort("_canonical_position")
        .unique(subset="name", keep="first", maintain_order=True)
    )
    alias_lists = (
        matches.sort("position").group_by("_canonical", maintain_order=True).agg(pl.col("name").alias("_aliases"))
    )
    orphans = prefixed.join(matches.select("name"), on="name", how="anti")
    folded = (
        pl.concat([canonical, orphans])
        .join(alias_lists, left_on="name", right_on="_canonical", how="left")
        .with_columns(pl.col("_aliases").fill_null([]).alias("aliases"))
        .drop("_backend", "_rest", "_aliases")
    )
    problems = orphans.select(
        "name",
        pl.lit("warning").alias("severity"),
        pl.lit("backend-prefixed name without a canonical record; kept as a model of its own").alias("reason"),
    )
    return folded, problems
