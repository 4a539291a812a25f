"""Records ⨝ AI Horde data: each Horde name credited to at most one model (SPEC §4)."""

from __future__ import annotations

from typing import Final

import polars as pl

from pipeline.contracts.categories import policy
from pipeline.contracts.schemas import HordeFrames
from pipeline.steps.collect_engine import sorted_lists
from pipeline.steps.names.patterns import BACKEND_ALIAS_RULES, CANONICAL, SUFFIX_STRIPS, VARIATION_BACKENDS
from pipeline.steps.names.spellings import backend_of, backend_spelling
from pipeline.steps.risk_order import in_risk_order

# Models are joined and grouped by their row in the records frame, not by name: with integer keys the text merge
# at 1000x scale (720k models, 817k Horde names) went from 7.6 s to 5.2 s.
_MODEL_ID: Final = "model_id"
#: The distinct ids of a model's active workers (a list column of the merged frame, not of its snapshot table):
#: a family counts a worker serving two of its members once (SPEC §6).
WORKER_IDS: Final = "worker_ids"
_COPY: Final = "copy_id"


def match_keys(records: pl.DataFrame, *, text: bool) -> pl.DataFrame:
    """``key`` (lower-cased name) -> ``model_id`` (row in ``records``): names, recorded aliases and, for text,
    backend spellings. A key claimed by several models goes to the exact name first, then the first record in
    file order."""
    ordered = records.select("name", "aliases").with_row_index(_MODEL_ID)
    lower = pl.col("name").str.to_lowercase()
    parts = [  # in priority order: exact names, recorded aliases, backend spellings
        ordered.select(_MODEL_ID, lower.alias("key")),
        ordered.select(_MODEL_ID, "aliases")
        .explode("aliases")
        .drop_nulls("aliases")
        .select(_MODEL_ID, pl.col("aliases").str.to_lowercase().alias("key")),
    ]
    if text:
        for backend in BACKEND_ALIAS_RULES:
            parts.append(ordered.select(_MODEL_ID, backend_spelling(backend, lower).alias("key")))
    # Each part is in file order and the two backend parts never share a key (different prefixes): the first row
    # of a key is already its winner, no sort needed (0.6 s at 1000x).
    return pl.concat(parts).unique("key", keep="first").select("key", _MODEL_ID)


def horde_names(frames: HordeFrames) -> pl.DataFrame:
    """Every distinct name the Horde data mentions (status, usage, workers), as spelled there, in no set order
    (every use joins or groups; sorting 1.5M names at 1000x scale cost a second)."""
    sources = [frames.status.select("name"), frames.usage.select("name")]
    if frames.workers is not None:
        sources.append(frames.workers.select(pl.col("model").alias("name")))
    return pl.concat(sources).unique()


def _attributed(records: pl.DataFrame, frames: HordeFrames, *, text: bool) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(``horde_name``, ``model_id``) for every Horde name that belongs to a record (SPEC §4 matching order), and
    the ``name`` of every Horde name that belongs to none."""
    keys = match_keys(records, text=text)
    lower = pl.col("name").str.to_lowercase()
    candidates = [lower, *[lower.str.replace(strip, "") for strip in SUFFIX_STRIPS]]
    remaining = horde_names(frames).with_row_index("_row")
    found = []
    for candidate in candidates:  # each stage only sees the names the earlier ones left unmatched
        # Inner join (hashing the smaller side), then dropping the matched rows by their integer row: a left join
        # hashed all 2M keys at every stage.
        matched = remaining.with_columns(candidate.alias("key")).join(keys, on="key", how="inner")
        found.append(matched.select(pl.col("name").alias("horde_name"), _MODEL_ID))
        remaining = remaining.join(matched.select("_row"), on="_row", how="anti")
    return pl.concat(found), remaining.select("name")


def _active_workers(frames: HordeFrames) -> pl.DataFrame | None:
    if frames.workers is None:
        return None
    return frames.workers.filter(pl.col("online").fill_null(False) & ~pl.col("maintenance_mode").fill_null(False))


def _split_rows(frames: HordeFrames, owners: pl.DataFrame) -> tuple[HordeFrames, HordeFrames]:
    """(the rows of the Horde names in ``owners``, with its columns; the rows of every other name), active workers
    only. One string join per table; every later join and group-by is on the integer model id."""

    def split(frame: pl.DataFrame, column: str) -> tuple[pl.DataFrame, pl.DataFrame]:
        labelled = frame.join(owners, left_on=column, right_on="horde_name", how="left")
        owned = pl.col(_MODEL_ID).is_not_null()
        return labelled.filter(owned), labelled.filter(~owned).select(frame.columns)

    usage, status = split(frames.usage, "name"), split(frames.status, "name")
    active = _active_workers(frames)
    workers = (None, None) if active is None else split(active, "model")
    return (
        HordeFrames(usage=usage[0], status=status[0], workers=workers[0]),
        HordeFrames(usage=usage[1], status=status[1], workers=workers[1]),
    )


def _per_key(rows: HordeFrames, key: list[str]) -> pl.DataFrame:
    """Usage, status and worker figures summed per ``key`` (columns every table of ``rows`` carries)."""
    usage = rows.usage.group_by(key).agg(
        pl.col("usage_day").sum(), pl.col("usage_month").sum(), pl.col("usage_total").sum()
    )
    status = rows.status.group_by(key).agg(
        pl.col("count").sum().alias("status_count"),
        pl.col("performance").max(),
        pl.col("queued").sum(),
        pl.col("jobs").sum(),
        pl.col("eta").max(),
    )
    combined = usage.join(status, on=key, how="full", coalesce=True)
    if rows.workers is None:
        # SPEC §4: without the workers list, worker_count is the sum of status counts.
        return combined.with_columns(pl.col("status_count").alias("worker_count"))
    workers = rows.workers.group_by(key).agg(
        pl.col("worker_id").n_unique().cast(pl.Int64).alias("worker_count"),
        pl.col("worker_id").unique().alias(WORKER_IDS),
    )
    return combined.join(workers, on=key, how="full", coalesce=True)


_ZERO_FILLED: Final = ("usage_day", "usage_month", "usage_total", "worker_count", "status_count")


def worker_weighted_mean(value: str, weight: str) -> pl.Expr:
    """The mean of ``value`` weighted by ``weight`` (an aggregation): how a ``backend_variations`` entry's
    ``performance`` combines what it covers (a model's Horde spellings on one backend; a family's members), so a
    one-worker spelling does not set the figure for ten workers. Rows without a value are left out; when the
    others weigh 0 in all, the plain mean of their values; null when no row has one."""
    weights = pl.when(pl.col(value).is_not_null()).then(pl.col(weight).fill_null(0))
    total = weights.sum()
    return pl.when(total > 0).then((pl.col(value) * weights).sum() / total).otherwise(pl.col(value).mean())


def worker_weighted_mean_of_one(value: pl.Expr, weight: pl.Expr) -> pl.Expr:
    """``worker_weighted_mean`` over a single row, row by row (not an aggregation): the same float operations on
    the one value, so the same bits (``x * w / w`` is not always ``x``)."""
    return pl.when(value.is_not_null() & (weight.fill_null(0) > 0)).then(value * weight / weight).otherwise(value)


def _copy_of(model_id: pl.Expr, horde_name: pl.Expr) -> pl.Expr:
    """A (model, backend) pair as one integer: ``model_id * len(VARIATION_BACKENDS) + backend position``, so the
    rows of a model's copies lie next to each other in VARIATION_BACKENDS order."""
    position = backend_of(horde_name).replace_strict(
        {backend: index for index, backend in enumerate(VARIATION_BACKENDS)}, default=0, return_dtype=pl.UInt64
    )
    return model_id.cast(pl.UInt64) * len(VARIATION_BACKENDS) + position.fill_null(0)


def _backend_variations(records: pl.DataFrame, owned: HordeFrames, attributed: pl.DataFrame) -> pl.Series:
    """Per text model (aligned with ``records``' rows), one struct per backend in VARIATION_BACKENDS order, zeros
    where none is served. Figures per ``copy_id`` joined onto the grid of every (model, backend), which is cut into
    rows of len(VARIATION_BACKENDS): one integer join (a join per backend on names, then a gather, took 2.1 s at
    720k models; a grid grouped back into lists, 4.5 s)."""
    # A copy's performance over its spellings (koboldcpp/Model and koboldcpp/Model-Q4_K_M): weighted by each
    # spelling's worker count in the status list, not the fastest one.
    performance = owned.status.group_by(_COPY).agg(worker_weighted_mean("performance", "count").alias("performance"))
    figures = _per_key(owned, [_COPY]).drop("performance").join(performance, on=_COPY, how="left")
    # The copy a backend serves a model under: its busiest Horde name this month (ties: the first by name; a
    # name with no usage row counts as -1). Plain aggregations and a join: a filter inside the aggregation runs
    # group by group, 10x slower.
    copies = pl.concat(
        [
            owned.usage.select(
                pl.col("name").alias("horde_name"), _COPY, pl.col("usage_month").fill_null(-1).alias("_usage")
            ),
            attributed.select("horde_name", _COPY, pl.lit(-1, dtype=pl.Int64).alias("_usage")),
        ]
    )
    busiest = copies.group_by(_COPY).agg(pl.col("_usage").max())
    served = (
        copies.join(busiest, on=[_COPY, "_usage"], how="semi")
        .group_by(_COPY)
        .agg(pl.col("horde_name").min().alias("served_name"))
        .join(figures, on=_COPY, how="left")
    )
    width = len(VARIATION_BACKENDS)
    # a backend serving no copy: the name such a copy would have
    unserved_names = _interleaved(
        [
            records.select(
                pl.col("name") if backend == CANONICAL else backend_spelling(backend, pl.col("name"))
            ).to_series()
            for backend in VARIATION_BACKENDS
        ]
    )
    grid = pl.DataFrame({_COPY: pl.int_range(records.height * width, dtype=pl.UInt64, eager=True)})
    cells = (
        grid.join(served, on=_COPY, how="left", maintain_order="left")
        .select(
            pl.struct(
                (pl.col(_COPY) % width)
                .replace_strict(dict(enumerate(VARIATION_BACKENDS)), return_dtype=pl.String)
                .alias("backend"),
                pl.coalesce("served_name", unserved_names).alias("variant_name"),
                pl.col("worker_count").fill_null(0).cast(pl.Int64),
                pl.col("performance").cast(pl.Float64),
                *[pl.col(c).fill_null(0) for c in ("usage_day", "usage_month", "usage_total")],
            )
        )
        .to_series()
    )
    return cells.reshape((records.height, width)).cast(pl.List(cells.dtype)).alias("backend_variations")


def _interleaved(columns: list[pl.Series]) -> pl.Series:
    """``[columns[0][0], columns[1][0], ..., columns[0][1], ...]``: equal-length columns woven row by row."""
    rows, width = len(columns[0]), len(columns)
    position = pl.int_range(rows * width, dtype=pl.Int64, eager=True)
    return pl.concat(columns).gather((position % width) * rows + position // width)


def merged_models(records: pl.DataFrame, frames: HordeFrames, *, category: str) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(one row per record with its Horde figures, the Horde names no record claims)."""
    # backend copies: their spellings match the record, and the record carries one variation per backend
    text = policy(category).folds_backend_copies
    attributed, unclaimed = _attributed(records, frames, text=text)
    if text:
        attributed = attributed.with_columns(_copy_of(pl.col(_MODEL_ID), pl.col("horde_name")).alias(_COPY))
    owned, others = _split_rows(frames, attributed)
    per_model = _per_key(owned, [_MODEL_ID])
    served_as = attributed.group_by(_MODEL_ID).agg(pl.col("horde_name").alias("horde_names"))
    served_as = served_as.with_columns(sorted_lists(pl.col("horde_names")))  # 0.39 s -> 0.27 s at 1000x
    merged = (
        records.with_row_index(_MODEL_ID)
        .join(per_model, on=_MODEL_ID, how="left", maintain_order="left")
        .join(served_as, on=_MODEL_ID, how="left", maintain_order="left")
        .drop(_MODEL_ID)
        .with_columns(pl.col(c).fill_null(0).cast(pl.Int64) for c in _ZERO_FILLED)
        .with_columns(pl.col("horde_names").fill_null([]))
    )
    if text:
        merged = merged.with_columns(_backend_variations(records, owned, attributed))

    # Case-only duplicates of one unknown model are summed under their first spelling (SPEC §4).
    folded = pl.col("name").str.to_lowercase().alias("folded")
    by_folded = HordeFrames(
        usage=others.usage.with_columns(folded),
        status=others.status.with_columns(folded),
        workers=None
        if others.workers is None
        else others.workers.with_columns(pl.col("model").str.to_lowercase().alias("folded")),
    )
    unmatched = in_risk_order(
        unclaimed.group_by(folded)
        .agg(pl.col("name").min(), pl.col("name").sort().alias("spellings"))
        .join(_per_key(by_folded, ["folded"]), on="folded", how="left")
        .with_columns(pl.col(c).fill_null(0).cast(pl.Int64) for c in _ZERO_FILLED)
        .select(
            "name",
            pl.lit(policy(category).horde_type).alias("type"),
            "spellings",
            pl.col("worker_count").alias("workers"),
            "status_count",
            "usage_day",
            "usage_month",
            "usage_total",
        )
    )
    return merged, unmatched
