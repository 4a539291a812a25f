"""History and changes (SPEC §10): the state a run carries to the next, the fields it adds to risk rows, and what
changed since the previous committed run.

Pure: every function takes the previous committed run's ``model_state`` (or None), this run's frames and its
time, and returns frames; reading the previous state is the snapshot store's job. Time is linear in the number of
models: a run never looks further back than the previous state.

State per category, one row per model (``grouped`` false, keyed by name) and per text family (``grouped`` true,
keyed by its first member, which is unique per family even where two families share a display name):

- ``first_seen`` / ``last_seen_with_workers``: a model's own; a family's are its members' earliest and latest, so
  they do not depend on how members are grouped (``GROUP_BY_VARIANT`` may change between runs).
- ``at_risk_since``: the first run of the current unbroken series of at-risk runs (a family's own, since its
  flags come from its own numbers).
- ``point_{0..8}_at`` / ``point_{0..8}_usage_month``: a ring of daily points, newest first: one per UTC day (the
  day's latest run, the run §13 retention keeps), kept back to the latest point at least 7 days old, so
  ``usage_month_previous`` (the usage of the latest such run at least 7 days older) needs no rescan. Every model
  present in a run gets that run's point, so the slot times are the same in every row and each run decides once
  where the ring turns: a new day shifts every slot by one (a rename), the same day overwrites slot 0. Nine slots
  suffice: the points newer than 7 days fall on at most 8 UTC dates. A family's previous usage is its current
  members' previous usage, summed.

A model that leaves the reference leaves the state (``removed``); if it comes back it starts afresh. What changed
between two states is ``changes``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime
from typing import Final

import polars as pl

from pipeline.contracts.rules import USAGE_COMPARISON_PERIOD
from pipeline.contracts.schemas import (
    HISTORY_FIELDS,
    MODEL_STATE_SCHEMA,
    POINT_SLOTS,
    RISK_SCHEMA,
    conformed,
)
from pipeline.steps.changes import changes
from pipeline.steps.collect_engine import ENGINE
from pipeline.steps.outputs import RunOutputs

_TIME: Final = pl.Datetime("us", "UTC")
_KEY: Final = ("grouped", "key")


def _now(run_at: datetime) -> pl.Expr:
    return pl.lit(run_at, dtype=_TIME)


def _current(risk: pl.DataFrame) -> pl.LazyFrame:
    """The columns of risk rows (either view, both in one frame) the state needs, each with its key."""
    members = pl.col("members") if "members" in risk.columns else pl.lit(None, dtype=pl.List(pl.String()))
    return risk.lazy().select(
        "grouped",
        pl.when(pl.col("grouped"))
        .then(pl.coalesce(members.list.first(), pl.col("name")))
        .otherwise(pl.col("name"))
        .alias("key"),
        "name",
        "worker_count",
        "usage_month",
        "at_risk",
        "risk_score",
        # a non-text family is the model itself
        pl.coalesce(members, pl.concat_list(pl.col("name"))).alias("members"),
    )


def _empty_state() -> pl.DataFrame:
    return pl.DataFrame(schema=MODEL_STATE_SCHEMA)


def _member_facts(families: pl.DataFrame, models: pl.LazyFrame, aggregations: list[pl.Expr]) -> pl.DataFrame:
    """``aggregations`` over each family's member rows of ``models`` (keyed by model name), one row per family
    in the order of ``families`` (grouped by position: no join back by key)."""
    return (
        families.lazy()
        .select(pl.int_range(pl.len()).alias("_family"), pl.col("members").alias("member"))
        .explode("member")
        .join(models.rename({"key": "member"}), on="member", how="left", maintain_order="left")
        .group_by("_family", maintain_order=True)
        .agg(aggregations)
        .drop("_family")
        .collect(engine=ENGINE)
    )


def _at(slot: int) -> str:
    return f"point_{slot}_at"


def _usage(slot: int) -> str:
    return f"point_{slot}_usage_month"


def point_times(state: pl.DataFrame | None) -> list[datetime | None]:
    """The run times of a state's point slots, newest first (the same in every row)."""
    if state is None or state.height == 0:
        return [None] * POINT_SLOTS
    return [state[_at(slot)][0] for slot in range(POINT_SLOTS)]


def _oldest_kept(times: list[datetime | None], run_at: datetime) -> int:
    """The slot of the latest point at least USAGE_COMPARISON_PERIOD older than ``run_at``, else the last one."""
    cutoff = run_at - USAGE_COMPARISON_PERIOD
    return next((slot for slot, time in enumerate(times) if time is not None and time <= cutoff), POINT_SLOTS - 1)


def _turned_ring(previous: list[datetime | None], run_at: datetime) -> tuple[list[datetime | None], list[pl.Expr]]:
    """This run's slot times and each model's slot values: this run's usage in slot 0, the previous points
    after it (one slot further on a new UTC day), nothing beyond the latest point old enough."""
    same_day = previous[0] is not None and previous[0].date() == run_at.date()
    source = [None, *range(1, POINT_SLOTS)] if same_day else [None, *range(POINT_SLOTS - 1)]
    times = [run_at, *(previous[slot] for slot in source[1:] if slot is not None)]
    last = _oldest_kept(times, run_at)
    values = [pl.col("usage_month")] + [
        pl.col(_usage(slot)) if slot is not None else pl.lit(None, pl.Int64()) for slot in source[1:]
    ]
    kept_times = [time if slot <= last else None for slot, time in enumerate(times)]
    expressions = [
        (value if slot <= last else pl.lit(None, pl.Int64())).alias(_usage(slot)) for slot, value in enumerate(values)
    ]
    return kept_times, expressions


def _ring_times(times: list[datetime | None]) -> list[pl.Expr]:
    return [pl.lit(time, dtype=_TIME).alias(_at(slot)) for slot, time in enumerate(times)]


def model_state(previous: pl.DataFrame | None, risk: pl.DataFrame, run_at: datetime) -> pl.DataFrame:
    """This run's state of one category from the previous committed run's state and this run's risk rows: its
    models in the order of ``risk``, then its families in that order (``history_fields`` relies on it)."""
    now = _now(run_at)
    before = previous if previous is not None else _empty_state()
    carried = ["key", "first_seen", "last_seen_with_workers", "at_risk_since"]
    times, ring = _turned_ring(point_times(previous), run_at)
    figures = ["grouped", "name", "worker_count", "usage_month", "at_risk", "risk_score"]
    # a family is keyed by its first member; a non-text "family" (no members) is the model itself
    has_members = "members" in risk.columns and risk["members"].null_count() < risk.height
    family_key = pl.coalesce(pl.col("members").list.first(), pl.col("name")) if has_members else pl.col("name")
    current = {
        False: risk.lazy().filter(~pl.col("grouped")).select(pl.col("name").alias("key"), *figures),
        True: risk.lazy()
        .filter(pl.col("grouped"))
        .select(family_key.alias("key"), *figures, *(["members"] if has_members else [])),
    }

    def joined(grouped: bool, columns: list[str]) -> pl.LazyFrame:
        old = before.lazy().filter(pl.col("grouped") == grouped).select(columns)
        return current[grouped].join(old, on="key", how="left", maintain_order="left")

    models = (
        joined(False, [*carried, *map(_usage, range(POINT_SLOTS))])
        .with_columns(
            pl.coalesce("first_seen", now).alias("first_seen"),
            pl.when(pl.col("worker_count") > 0)
            .then(now)
            .otherwise(pl.col("last_seen_with_workers"))
            .alias("last_seen_with_workers"),
            *ring,
            *_ring_times(times),
        )
        .collect(engine=ENGINE)
    )
    families = joined(True, ["key", "at_risk_since"]).collect(engine=ENGINE)
    points = [_usage(slot) for slot in range(POINT_SLOTS)]
    member_rows = models.lazy().select("key", "first_seen", "last_seen_with_workers", *points)
    facts = [
        pl.col("first_seen").min(),
        pl.col("last_seen_with_workers").max(),
        # a family's point: its current members' then, unknown when none of them was there
        *[pl.when(pl.col(point).count() > 0).then(pl.col(point).sum()).alias(point) for point in points],
    ]
    if has_members:
        seen = _member_facts(families, member_rows, facts)
        if seen.height != families.height:
            raise ValueError("a grouped risk row without members: every family has at least one model")
        joined_families = families.drop("members").hstack(seen).lazy()
    else:  # a non-text "family" is the model itself
        joined_families = families.lazy().join(member_rows, on="key", how="left", maintain_order="left")
    families_state = joined_families.with_columns(
        pl.coalesce("first_seen", now).alias("first_seen"),
        *_ring_times(times),
    )
    state = pl.concat([models.lazy(), families_state], how="diagonal").with_columns(
        pl.when(pl.col("at_risk")).then(pl.coalesce("at_risk_since", now)).alias("at_risk_since")
    )
    return conformed(state.collect(engine=ENGINE), MODEL_STATE_SCHEMA)


def history_fields(state: pl.DataFrame, run_at: datetime) -> pl.DataFrame:
    """``grouped, key, name`` and the SPEC §10 fields of each row of this run's ``state``, in its order."""
    times = point_times(state)
    slot = _oldest_kept(times, run_at)
    old_enough = times[slot] is not None and times[slot] <= run_at - USAGE_COMPARISON_PERIOD  # type: ignore[operator]
    previous_usage = pl.col(_usage(slot)) if old_enough else pl.lit(None, pl.Int64())
    return state.select(
        *_KEY,
        "name",
        "first_seen",
        "last_seen_with_workers",
        pl.when(pl.col("worker_count") > 0)
        .then(0)
        .otherwise((_now(run_at) - pl.coalesce("last_seen_with_workers", "first_seen")).dt.total_days())
        .cast(pl.Int64)
        .alias("days_without_workers"),
        "at_risk_since",
        previous_usage.alias("usage_month_previous"),
        (pl.col("usage_month") - previous_usage).alias("usage_month_change"),
    )


def with_history_fields(rows: pl.DataFrame, fields: pl.DataFrame) -> pl.DataFrame:
    """``rows`` (risk rows with a ``grouped`` column) with their ``history_fields``; the row order is kept."""
    keyed = rows.drop(HISTORY_FIELDS.names(), strict=False).with_columns(
        _current(rows).select("key").collect(engine=ENGINE).to_series()
    )
    return keyed.join(fields.drop("name"), on=list(_KEY), how="left", maintain_order="left").drop("key")


def _attached(rows: pl.DataFrame, fields: pl.DataFrame, grouped: bool) -> pl.DataFrame:
    """``rows`` of one view with the fields of that view's part of ``fields``: side by side when they are the
    same rows in the same order (as ``run_outputs`` builds them; no join), else joined by key."""
    part = fields.filter(pl.col("grouped") == grouped)
    bare = rows.drop(HISTORY_FIELDS.names(), strict=False)
    if bare.height == part.height and bare["name"].equals(part["name"]):
        return bare.hstack(part.drop(*_KEY, "name"))
    return with_history_fields(bare.with_columns(pl.lit(grouped).alias("grouped")), fields).drop("grouped")


def with_history(outputs: RunOutputs, previous: Mapping[str, pl.DataFrame], run_at: datetime) -> RunOutputs:
    """``outputs`` with SPEC §10 applied to every category that has risk rows: the history fields on every risk
    row and view, and the ``model_state`` and ``changes`` tables. ``previous``: category -> previous state."""
    tables = dict(outputs.tables)
    views = dict(outputs.deletion_risk)
    for (table, category), risk in outputs.tables.items():
        if table != "deletion_risk":
            continue
        state = model_state(previous.get(category), risk, run_at)
        fields = history_fields(state, run_at)
        parts = [_attached(risk.filter(pl.col("grouped") == flag), fields, flag) for flag in (False, True)]
        tables[("deletion_risk", category)] = conformed(pl.concat(parts), RISK_SCHEMA)
        tables[("model_state", category)] = state
        tables[("changes", category)] = changes(previous.get(category), state, category)
        attached: dict[tuple[int, bool], pl.DataFrame] = {}  # views of one table keep sharing one table
        for key, view in outputs.deletion_risk.items():
            if key[0] != category:
                continue
            shared = (id(view.table), key[1])
            if shared not in attached:
                attached[shared] = _attached(view.table, fields, key[1])
            views[key] = replace(view, table=attached[shared])
    return replace(outputs, tables=tables, deletion_risk=views)
