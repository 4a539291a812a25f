"""Backend-prefixed text records (``aphrodite/<name>``, ``koboldcpp/<name without org>``) are aliases of
their canonical record, not extra models (SPEC §2.1). Folding them is a pair of joins."""

from __future__ import annotations

import functools
import operator
from typing import Final

import polars as pl

from pipeline.contracts.schemas import COPY_DIFFERENCE_DTYPE, ORPHAN_COPY_REASON
from pipeline.steps.names.patterns import BACKEND_ALIAS_RULES
from pipeline.steps.names.spellings import backend_of, short_name, without_backend

#: Record column -> the field name a maintainer knows: what a backend copy must repeat of its canonical record.
COMPARED_FIELDS: Final = {
    "parameters": "parameters",
    "raw_baseline": "baseline",
    "nsfw": "nsfw",
    "style": "style",
    "instruct_format": "instruct_format",
    "tags": "tags",
    "description": "description",
    "display_name": "display_name",
    "url": "url",
    "version": "version",
}


def _as_text(column: str, dtype: pl.DataType) -> pl.Expr:
    return pl.col(column).list.join(", ") if isinstance(dtype, pl.List) else pl.col(column).cast(pl.String)


def copy_differences(keyed: pl.DataFrame, matches: pl.DataFrame) -> pl.DataFrame:
    """``_canonical`` -> ``copy_differences``: the fields each backend copy holds differently from its record.

    Found here, while both rows are at hand, so the audit (SPEC §11) never reads the JSON twice.
    """
    fields = [column for column in COMPARED_FIELDS if column in keyed.columns]
    # One hash per row first (per-column hashes seeded apart and xor-ed; a struct hash is far slower): only the
    # copies whose hash differs from their record's are compared field by field, and usually none does.
    row_hash = functools.reduce(operator.xor, [pl.col(field).hash(seed) for seed, field in enumerate(fields)])
    hashed = keyed.select("position", row_hash.alias("_hash"))
    differing = (
        matches.join(hashed, on="position")
        .join(
            hashed.select(pl.col("position").alias("_canonical_position"), pl.col("_hash").alias("_c_hash")),
            on="_canonical_position",
        )
        .filter(pl.col("_hash") != pl.col("_c_hash"))
        .drop("_hash", "_c_hash")
    )
    if differing.is_empty():  # the usual case: nothing to spell out
        return pl.DataFrame(schema={"_canonical": pl.String, "_differences": pl.List(COPY_DIFFERENCE_DTYPE)})
    copies = differing.join(keyed.select("position", *fields), on="position").join(
        keyed.select(pl.col("position").alias("_canonical_position"), *[pl.col(f).alias(f"_c_{f}") for f in fields]),
        on="_canonical_position",
    )
    found = [
        copies.filter(pl.col(field).ne_missing(pl.col(f"_c_{field}"))).select(
            "_canonical",
            "position",
            pl.lit(order).alias("_field_order"),
            pl.struct(
                pl.col("name").alias("copy"),
                pl.lit(COMPARED_FIELDS[field]).alias("field"),
                _as_text(field, keyed.schema[field]).alias("value"),
                _as_text(f"_c_{field}", keyed.schema[field]).alias("expected"),
            ).alias("_difference"),
        )
        for order, field in enumerate(fields)
    ]
    return (
        pl.concat(found)
        .sort("position", "_field_order")
        .group_by("_canonical", maintain_order=True)
        .agg(pl.col("_difference").cast(COPY_DIFFERENCE_DTYPE).alias("_differences"))
    )


def folded_text_aliases(records: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Records with one row per canonical name (``aliases`` filled) and the problems found while folding.

    A prefixed name whose canonical record is absent stays a model of its own, with a warning.
    """
    keyed = records.with_columns(
        backend_of(pl.col("name")).alias("_backend"),
        without_backend(pl.col("name")).str.to_lowercase().alias("_rest"),
    )
    is_copy = pl.col("_backend").is_not_null()
    canonical = keyed.filter(~is_copy)
    # the copies' keys only: a filter copies every column it keeps, lists too
    copies = keyed.select("name", "position", "_backend", "_rest").filter(is_copy)
    targets = canonical.select(
        pl.col("name").alias("_canonical"),
        pl.col("position").alias("_canonical_position"),
        pl.col("name").str.to_lowercase().alias("full"),
        short_name(pl.col("name")).str.to_lowercase().alias("short"),
    )
    matches = (
        pl.concat(
            [
                copies.filter(pl.col("_backend") == backend)
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
    orphans = keyed.filter(is_copy & ~pl.col("position").is_in(matches["position"].implode()))
    folded = (
        pl.concat([canonical, orphans])
        .join(alias_lists, left_on="name", right_on="_canonical", how="left")
        .join(copy_differences(keyed, matches), left_on="name", right_on="_canonical", how="left")
        .with_columns(
            pl.col("_aliases").fill_null([]).alias("aliases"),
            pl.col("_differences")
            .fill_null(pl.lit([], dtype=pl.List(COPY_DIFFERENCE_DTYPE)))
            .alias("copy_differences"),
        )
        .drop("_backend", "_rest", "_aliases", "_differences")
    )
    problems = orphans.select(
        "name",
        pl.lit("warning").alias("severity"),
        pl.lit(ORPHAN_COPY_REASON).alias("reason"),
    )
    return folded, problems
