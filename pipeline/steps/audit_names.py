"""The reference audit's findings about parsed names (SPEC §11), for categories whose names are parsed into families:
stored sizes against the name's, families whose members disagree, backend copies missing or differing."""

from __future__ import annotations

from typing import Final

import polars as pl

from pipeline.contracts.schemas import BILLION
from pipeline.steps.audit_kinds import INFO, WARNING, finding
from pipeline.steps.collect_engine import ENGINE
from pipeline.steps.names.families import FAMILY_ID, FAMILY_KEY
from pipeline.steps.names.patterns import BACKEND_ALIAS_RULES
from pipeline.steps.names.spellings import backend_of, backend_spelling

#: SPEC §11 and §3.1: a dense name's size and the stored ``parameters`` may differ by up to this share of the
#: name's size; an MoE name's stored value counts as "about half" within this share of half its total.
SIZE_TOLERANCE: Final = 0.10
#: Family fields whose members must agree (SPEC §11 ``family_inconsistent``).
FAMILY_FIELDS: Final = ("baseline", "nsfw", "instruct_format", "style")


def _billions(count: pl.Expr) -> pl.Expr:
    """A parameter count in billions, as a maintainer reads it (``8B``, ``6.7B``)."""
    return pl.format("{}B", (count / BILLION).round(2))


def size_findings(text: pl.LazyFrame) -> list[pl.LazyFrame]:
    """``size_mismatch``, ``moe_size_convention`` and ``unsized_name`` from stored parameters and parsed sizes."""
    # MoE: the parser read experts (8x7B) or an active-parameter marker (30B-A3B) from the name (SPEC §3.1).
    is_moe = pl.col("experts").is_not_null() | pl.col("active_b").is_not_null()
    stored = pl.col("parameters").cast(pl.Float64)
    total = pl.col("size_b") * BILLION
    sized = pl.col("parameters").is_not_null() & (pl.col("size_b") > 0)
    off_by = (stored - total).abs() / total
    half_off_by = (stored - total / 2).abs() / (total / 2)
    dense_mismatch = text.filter(sized & ~is_moe & (off_by > SIZE_TOLERANCE)).select(
        finding(
            "size_mismatch",
            pl.format(
                "stored {} but the name says {} ({} off){}",
                _billions(stored),
                pl.col("size_label"),
                pl.format("{}%", (off_by * 100).round(0).cast(pl.Int64)),
                pl.when(half_off_by <= SIZE_TOLERANCE)
                .then(pl.lit("; about half: an MoE model whose name does not say so?"))
                .otherwise(pl.lit("")),
            ),
            pl.col("parameters"),
            total.round(0).cast(pl.Int64),
        )
    )
    moe = text.filter(sized & is_moe).select(
        finding(
            "moe_size_convention",
            pl.when(half_off_by <= SIZE_TOLERANCE)
            .then(
                pl.format(
                    "stored {}, about half the name's total {} (the reference's MoE convention)",
                    _billions(stored),
                    _billions(total),
                )
            )
            .otherwise(
                pl.format(
                    "stored {} is {}% of the name's total {}: not the reference's MoE convention (about half)",
                    _billions(stored),
                    (stored / total * 100).round(0).cast(pl.Int64),
                    _billions(total),
                )
            ),
            pl.col("parameters"),
            (total / 2).round(0).cast(pl.Int64),
            severity=pl.when(half_off_by <= SIZE_TOLERANCE).then(pl.lit(INFO)).otherwise(pl.lit(WARNING)),
        )
    )
    unsized = text.filter(pl.col("parameters").is_null() & pl.col("size_b").is_null()).select(
        finding("unsized_name", pl.lit("no stored parameters and no size in the name: set parameters"))
    )
    return [dense_mismatch, moe, unsized]


def family_findings(text: pl.LazyFrame) -> list[pl.LazyFrame]:
    """``family_inconsistent``: one finding per family and field whose members hold two or more values."""
    group = FAMILY_ID if FAMILY_ID in text.collect_schema().names() else FAMILY_KEY
    # One pass over integer family ids finds the few families that disagree at all; only their rows get the
    # string work below (see the README's audit cost).
    disagreeing = (
        text.group_by(group)
        .agg(pl.col(field).drop_nulls().n_unique().alias(field) for field in FAMILY_FIELDS)
        .filter(pl.any_horizontal(pl.col(field) > 1 for field in FAMILY_FIELDS))
    )
    members = text.join(disagreeing.select(group), on=group, how="semi").collect(engine=ENGINE).lazy()
    found = []
    for field in FAMILY_FIELDS:
        as_text = pl.col(field).cast(pl.String)
        per_value = (
            members.filter(pl.col(field).is_not_null())
            .group_by(FAMILY_KEY, as_text.alias("_value"))
            .agg(pl.col("name").sort().alias("_members"), pl.len().alias("_count"))
            # The family key breaks ties, so families with the same count and value keep one order run to run.
            .sort("_count", "_value", FAMILY_KEY, descending=[True, False, False])
        )
        found.append(
            per_value.group_by(FAMILY_KEY, maintain_order=True)
            .agg(
                pl.format("'{}' ({})", "_value", pl.col("_members").list.join(", ")).alias("_parts"),
                pl.col("_value").alias("_values"),
            )
            .filter(pl.col("_values").list.len() > 1)
            .select(
                finding(
                    "family_inconsistent",
                    pl.format("{} differs among members: {}", pl.lit(field), pl.col("_parts").list.join("; ")),
                    pl.col("_values").list.join(" | "),
                    pl.col("_values").list.first(),
                    name=pl.col(FAMILY_KEY),
                )
            )
        )
    return found


def backend_copy_findings(text: pl.LazyFrame) -> list[pl.LazyFrame]:
    """``backend_copy_missing`` (per backend) and ``backend_copy_differs`` (per copy and field)."""
    canonical = text.filter(backend_of(pl.col("name")).is_null())
    found = []
    for backend in BACKEND_ALIAS_RULES:
        copy_name = backend_spelling(backend, pl.col("name"))
        has_copy = pl.col("aliases").list.eval(pl.element().str.starts_with(backend + "/")).list.any()
        found.append(
            canonical.filter(~has_copy.fill_null(False)).select(
                finding("backend_copy_missing", pl.format("no {} copy of this record", copy_name), None, copy_name)
            )
        )
    differences = text.select("name", "copy_differences").explode("copy_differences").drop_nulls("copy_differences")
    difference = pl.col("copy_differences").struct
    found.append(
        differences.select(
            finding(
                "backend_copy_differs",
                pl.format("{}: {} differs from the record", difference.field("copy"), difference.field("field")),
                difference.field("value"),
                difference.field("expected"),
            )
        )
    )
    return found


def name_findings(records: pl.LazyFrame) -> list[pl.LazyFrame]:
    """Every finding of this module for ``records`` with parsed name columns and family keys."""
    return size_findings(records) + family_findings(records) + backend_copy_findings(records)
