"""Records ⨝ AI Horde data: each Horde name credited to at most one model (SPEC §4)."""

from __future__ import annotations

from typing import Final

import polars as pl

from pipeline.categories import HORDE_TYPES, TEXT_GENERATION
from pipeline.names.patterns import BACKEND_ALIAS_RULES, BACKENDS, TOKEN_CLASSES
from pipeline.names.polars_engine import backend_of, backend_spelling
from pipeline.schemas import HordeFrames

#: The fixed order of text backend variations; "canonical" is the unprefixed name.
VARIATION_BACKENDS: Final = ("canonical", *BACKENDS)
# A trailing run of quantization/format tokens, e.g. "-Q4_K_M", "-GGUF", ".q8_0-gguf" (matched lower-case).
_SUFFIX_CLASSES: Final = ("quant_q", "quant", "format")
_SUFFIX_TOKEN: Final = (
    "[-_. ](?:" + "|".join(pattern for kind, pattern in TOKEN_CLASSES if kind in _SUFFIX_CLASSES) + ")"
)
#: Removal tried in order (SPEC §4 step 3): the last quant/format token, then every trailing one. One token
#: first, because a format can be part of the name: koboldcpp/CodeLlama-34b-hf-Q4_K_S is CodeLlama-34b-hf.
SUFFIX_STRIPS: Final = (_SUFFIX_TOKEN + "$", "(?:" + _SUFFIX_TOKEN + ")+$")


def match_keys(records: pl.DataFrame, *, text: bool) -> pl.DataFrame:
    """``key`` (lower-cased name) -> ``model``: names, recorded aliases and, for text, backend spellings.

    A key claimed by several models goes to the exact name first, then the first record in file order.
    """
    ordered = records.select("name", "aliases")
    lower = pl.col("name").str.to_lowercase()
    parts = [  # in priority order: exact names, recorded aliases, backend spellings
        ordered.select(pl.col("name").alias("model"), lower.alias("key")),
        ordered.explode("aliases")
        .drop_nulls("aliases")
        .select(pl.col("name").alias("model"), pl.col("aliases").str.to_lowercase().alias("key")),
    ]
    if text:
        for backend in BACKEND_ALIAS_RULES:
            parts.append(ordered.select(pl.col("name").alias("model"), backend_spelling(backend, lower).alias("key")))
    # Each part is in file order and the two backend parts never share a key (different prefixes): the first row
    # of a key is already its winner, no sort needed (0.6 s at 1000x).
    return pl.concat(parts).unique("key", keep="first").select("key", "model")


def horde_names(frames: HordeFrames) -> pl.DataFrame:
    """Every distinct name the Horde data mentions (status, usage, workers), as spelled there, in no set order
    (every use joins or groups; sorting 1.5M names at 1000x scale cost a second)."""
    sources = [frames.status.select("name"), frames.usage.select("name")]
    if frames.workers is not None:
        sources.append(frames.workers.select(pl.col("model").alias("name")))
    return pl.concat(sources).unique()


def name_attribution(records: pl.DataFrame, frames: HordeFrames, *, text: bool) -> pl.DataFrame:
    """``horde_name -> model`` for every Horde name that belongs to a record (SPEC §4 matching order)."""
    keys = match_keys(records, text=text)
    lower = pl.col("name").str.to_lowercase()
    candidates = [lower, *[lower.str.replace(strip, "") for strip in SUFFIX_STRIPS]]
    remaining = horde_names(frames)
    found = []
    for candidate in candidates:  # each stage only sees the names the earlier ones left unmatched
        matched = remaining.with_columns(candidate.alias("key")).join(keys, on="key", how="inner")
        found.append(matched.select("name", "model"))
        remaining = remaining.join(matched.select("name"), on="name", how="anti")
    return pl.concat(found).rename({"name": "horde_name"})


def _active_workers(frames: HordeFrames) -> pl.DataFrame | None:
    if frames.workers is None:
        return None
    return frames.workers.filter(pl.col("online").fill_null(False) & ~pl.col("maintenance_mode").fill_null(False))


def _per_key(frames: HordeFrames, attribution: pl.DataFrame, key: list[str], by: pl.DataFrame) -> pl.DataFrame:
    """Usage, status and worker figures summed per ``key`` over the Horde names mapped in ``by``."""
    usage = (
        frames.usage.join(by, left_on="name", right_on="horde_name", how="inner")
        .group_by(key)
        .agg(pl.col("usage_day").sum(), pl.col("usage_month").sum(), pl.col("usage_total").sum())
    )
    status = (
        frames.status.join(by, left_on="name", right_on="horde_name", how="inner")
        .group_by(key)
        .agg(
            pl.col("count").sum().alias("status_count"),
            pl.col("performance").max(),
            pl.col("queued").sum(),
            pl.col("jobs").sum(),
            pl.col("eta").max(),
        )
    )
    active = _active_workers(frames)
    combined = usage.join(status, on=key, how="full", coalesce=True)
    if active is not None:
        workers = (
            active.select("worker_id", pl.col("model").alias("_served"))
            .join(by, left_on="_served", right_on="horde_name", how="inner")
            .group_by(key)
            .agg(pl.col("worker_id").n_unique().cast(pl.Int64).alias("worker_count"))
        )
        combined = combined.join(workers, on=key, how="full", coalesce=True)
    else:
        # SPEC §4: without the workers list, worker_count is the sum of status counts.
        combined = combined.with_columns(pl.col("status_count").alias("worker_count"))
    return combined


_ZERO_FILLED: Final = ("usage_day", "usage_month", "usage_total", "worker_count", "status_count")


def _backend_variations(records: pl.DataFrame, frames: HordeFrames, attribution: pl.DataFrame) -> pl.Series:
    """Per text model (aligned with ``records``' rows), one struct per backend in VARIATION_BACKENDS order, zeros
    where none is served. One left join per backend, then the rows cut into lists: a grid of every (model,
    backend) grouped back into lists took 4.5 s at 720k models; this, with its figures, 3.5 s."""
    by = attribution.with_columns(backend_of(pl.col("horde_name")).fill_null("canonical").alias("backend"))
    figures = _per_key(frames, attribution, ["model", "backend"], by)
    # The copy a backend serves a model under: its busiest Horde name this month (ties: the first by name).
    # (Plain aggregations and a join: a filter inside the aggregation runs group by group, 10x slower.)
    copies = by.join(frames.usage.select("name", "usage_month"), left_on="horde_name", right_on="name", how="left")
    copies = copies.with_columns(pl.col("usage_month").fill_null(-1).alias("_usage"))
    busiest = copies.group_by("model", "backend").agg(pl.col("_usage").max())
    served = (
        copies.join(busiest, on=["model", "backend", "_usage"], how="semi")
        .group_by("model", "backend")
        .agg(pl.col("horde_name").min().alias("served_name"))
        .join(figures, on=["model", "backend"], how="left")
    )
    models = records.select(pl.col("name").alias("model"))
    variations = [
        models.join(served.filter(pl.col("backend") == backend), on="model", how="left", maintain_order="left")
        .select(
            pl.struct(
                pl.lit(backend).alias("backend"),
                # a backend serving no copy: the name such a copy would have
                pl.coalesce(
                    "served_name",
                    pl.col("model") if backend == "canonical" else backend_spelling(backend, pl.col("model")),
                ).alias("variant_name"),
                pl.col("worker_count").fill_null(0).cast(pl.Int64),
                pl.col("performance").cast(pl.Float64),
                *[pl.col(c).fill_null(0) for c in ("usage_day", "usage_month", "usage_total")],
            )
        )
        .to_series()
        .alias(backend)
        for backend in VARIATION_BACKENDS
    ]
    return _row_lists(variations).alias("backend_variations")


def _row_lists(columns: list[pl.Series]) -> pl.Series:
    """Row i -> ``[columns[0][i], columns[1][i], ...]``: interleaved by a gather, cut into fixed-size rows.

    ``pl.concat_list`` over struct columns took 3.3 s for 3 x 720k; this takes 0.1 s.
    """
    rows, width = len(columns[0]), len(columns)
    flat = pl.concat(columns)
    position = pl.int_range(rows * width, dtype=pl.Int64, eager=True)
    interleaved = flat.gather((position % width) * rows + position // width)
    return interleaved.reshape((rows, width)).cast(pl.List(flat.dtype))


def merged_models(records: pl.DataFrame, frames: HordeFrames, *, category: str) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(one row per record with its Horde figures, the Horde names no record claims)."""
    text = category == TEXT_GENERATION
    attribution = name_attribution(records, frames, text=text)
    per_model = _per_key(frames, attribution, ["model"], attribution)
    served_as = attribution.group_by("model").agg(pl.col("horde_name").sort().alias("horde_names"))
    merged = (
        records.join(per_model, left_on="name", right_on="model", how="left", maintain_order="left")
        .join(served_as, left_on="name", right_on="model", how="left", maintain_order="left")
        .with_columns(pl.col(c).fill_null(0).cast(pl.Int64) for c in _ZERO_FILLED)
        .with_columns(pl.col("horde_names").fill_null([]))
    )
    if text:
        merged = merged.with_columns(_backend_variations(records, frames, attribution))

    unclaimed = horde_names(frames).join(attribution, left_on="name", right_on="horde_name", how="anti")
    # Case-only duplicates of one unknown model are summed under their first spelling (SPEC §4).
    unclaimed_by = unclaimed.with_columns(
        pl.col("name").alias("horde_name"), pl.col("name").str.to_lowercase().alias("folded")
    )
    unmatched_figures = _per_key(frames, attribution, ["folded"], unclaimed_by)
    unmatched = (
        unclaimed_by.group_by("folded")
        .agg(pl.col("name").sort().first(), pl.col("name").sort().alias("spellings"))
        .join(unmatched_figures, on="folded", how="left")
        .with_columns(pl.col(c).fill_null(0).cast(pl.Int64) for c in _ZERO_FILLED)
        .select(
            "name",
            pl.lit(HORDE_TYPES[category]).alias("type"),
            "spellings",
            pl.col("worker_count").alias("workers"),
            "status_count",
            "usage_day",
            "usage_month",
            "usage_total",
        )
        .sort("usage_month", "name", descending=[True, False])
    )
    return merged, unmatched
