"""Text model families: base name + size, collapsing quantization and backend variants (SPEC §3.3)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final, TypeVar

import polars as pl

from pipeline.contracts.parameters import known_parameters, parameters_of_billions
from pipeline.steps.collect_engine import ENGINE, sorted_lists
from pipeline.steps.names.patterns import BACKENDS, BASE_SEPARATOR, CANONICAL, VARIATION_BACKENDS
from pipeline.steps.names.polars_engine import parsed_names
from pipeline.steps.names.spellings import display_spelling

#: Parsed fields renamed where a record column has the same name.
_RENAMED: Final = {"version": "name_version", "format": "name_format"}

FrameT = TypeVar("FrameT", pl.DataFrame, pl.LazyFrame)


def text_names(records: pl.LazyFrame) -> pl.LazyFrame:
    """Every text name the reference knows (canonical and aliases), parsed once, with its canonical record."""
    exploded = records.select(
        pl.concat_list(pl.col("name"), "aliases").alias("name"), pl.col("name").alias("canonical")
    ).explode("name")
    return parsed_names(exploded, distinct=True)  # a name is canonical or an alias of one record, never both


def with_parsed_names(records: pl.LazyFrame, names: pl.LazyFrame | None = None) -> pl.LazyFrame:
    """Records plus the parsed fields of their names (``version``/``format`` as ``name_version``/``name_format``).

    ``names`` is the ``text_names`` table when it is already computed (its canonical rows are reused).
    """
    if names is None:
        parsed = parsed_names(records.select("name")).unique("name", maintain_order=True)
    else:
        parsed = _canonical_rows(names)
    return records.join(parsed.rename(_RENAMED), on="name", how="left", maintain_order="left")


def parsed_records(records: pl.DataFrame, names: pl.DataFrame) -> pl.DataFrame:
    """``with_parsed_names(records, names)`` of collected frames. Where the names table's canonical rows are the
    records' names in order, as ``text_names`` lists them, its fields are laid beside the records: the same frame
    as the join, without hashing every name (the join cost 0.08 s at 100x)."""
    parsed = _canonical_rows(names)
    if parsed["name"].equals(records["name"]):
        return records.hstack(parsed.drop("name").rename(_RENAMED))
    return with_parsed_names(records.lazy(), names.lazy()).collect(engine=ENGINE)


def _canonical_rows(names: FrameT) -> FrameT:
    """The rows of a ``text_names`` table that parse a record's own name (not an alias), without ``canonical``."""
    return names.filter(pl.col("name") == pl.col("canonical")).drop("canonical")


def parameter_count() -> pl.Expr:
    """Record parameters when positive, else the parsed name size, else null (SPEC §5)."""
    return pl.coalesce(known_parameters(pl.col("parameters")), parameters_of_billions(pl.col("size_b")))


def grouping_key(group_by_variant: bool) -> pl.Expr:
    """The key models are grouped by: ``family_key``, plus the sorted variants when ``group_by_variant``.

    A name that does not parse is a family of its own (its lower-cased name).
    """
    key = pl.coalesce(pl.col("family_key"), pl.col("name").str.to_lowercase())
    if not group_by_variant:
        return key
    variants = sorted_lists(pl.col("variants")).list.join(BASE_SEPARATOR).str.to_lowercase()
    return pl.when(variants.fill_null("") != "").then(key + BASE_SEPARATOR + variants).otherwise(key)


#: An integer the rows of one family share: families are grouped by it, not by key strings (each aggregation
#: 1.4-3x faster at 600k families).
FAMILY_ID: Final = "_family"
#: A row's family grouping key (``grouping_key``); the parser's own ``family_key`` column stays as parsed.
FAMILY_KEY: Final = "_family_key"


def with_family_ids(frame: pl.LazyFrame, *, group_by_variant: bool) -> pl.LazyFrame:
    """``frame`` plus ``_family_key`` (its family's grouping key) and ``_family`` (that key's integer id, a dense
    rank: ids sort as the keys do).

    The one place that decides which rows form a family: ``families``, ``family_records`` and the grouped risk
    view all group a frame that went through it, so a run sorts the keys for ids once, not three times (0.27 s each
    at 1000x).
    """
    return frame.with_columns(grouping_key(group_by_variant).alias(FAMILY_KEY)).with_columns(
        pl.col(FAMILY_KEY).rank("dense").alias(FAMILY_ID)
    )


def require_family_ids(frame: pl.LazyFrame, caller: str) -> None:
    """Raise a clear error when ``frame`` did not go through ``with_family_ids``."""
    if FAMILY_ID not in frame.collect_schema():
        raise ValueError(f"{caller} needs family ids: pass the frame through with_family_ids() first")


def sorted_members(members: pl.LazyFrame) -> pl.LazyFrame:
    """``_family`` -> ``members``, its names sorted: one global sort, whose order each group keeps (a sort per
    group was 2x slower at 600k families)."""
    return members.select(FAMILY_ID, "name").sort("name").group_by(FAMILY_ID).agg(pl.col("name").alias("members"))


def most_common_per_family(members: pl.LazyFrame, column: str, alias: str) -> pl.LazyFrame:
    """``_family`` -> the most common non-null ``column`` value among its members (ties: the smallest).

    Counted per (family, value) and picked per family: a per-group mode() was 3-4 s at 570k families.
    """
    return (
        members.filter(pl.col(column).is_not_null())
        .group_by(FAMILY_ID, column)
        .agg(pl.len().alias("_count"))
        .group_by(FAMILY_ID)
        .agg(pl.col(column).sort_by(["_count", column], descending=[True, False]).first().alias(alias))
    )


def _with_most_common(families_frame: pl.LazyFrame, members: pl.LazyFrame, columns: dict[str, str]) -> pl.LazyFrame:
    """``families_frame`` plus, per ``{member column: alias}``, the most common member value."""
    for column, alias in columns.items():
        families_frame = families_frame.join(most_common_per_family(members, column, alias), on=FAMILY_ID, how="left")
    return families_frame


def _sorted_sets(pairs: pl.LazyFrame, column: str, alias: str) -> pl.LazyFrame:
    """``_family`` -> the sorted distinct non-null ``column`` values of its rows in ``pairs``.

    One global unique and sort, then a plain list aggregation (the order of rows within a group is kept): per-group
    ``unique().sort()`` over 600k families cost seconds.
    """
    return (
        pairs.select(FAMILY_ID, column)
        .drop_nulls()
        .unique()
        .sort(column)
        .group_by(FAMILY_ID)
        .agg(pl.col(column).alias(alias))
    )


def with_united_lists(families_frame: pl.LazyFrame, members: pl.LazyFrame, columns: Iterable[str]) -> pl.LazyFrame:
    """``families_frame`` plus, per list column of ``members``, the sorted distinct values of its members' lists
    (``[]`` when all are empty). One global explode per column, where empty lists, most of them, cost nothing: a
    union per group took 0.2-0.3 s per column at 1000x even when every list was empty."""
    for column in columns:
        united = _sorted_sets(members.select(FAMILY_ID, column).explode(column), column, column)
        families_frame = families_frame.join(united, on=FAMILY_ID, how="left").with_columns(
            pl.col(column).fill_null([])
        )
    return families_frame


def families(members: pl.LazyFrame, names: pl.LazyFrame) -> pl.LazyFrame:
    """One row per family of ``members`` (parsed text records with family ids): key, display name, members,
    backends, quants, sizes. ``names`` is the ``text_names`` table: its alias rows give a family's backends and
    quantizations."""
    require_family_ids(members, "families")
    members = members.with_columns(display_spelling(pl.col("name")).alias("_spelling"))
    # Every name of a family (its members and their backend copies), with the family's id.
    # (``names`` carries the parser's family_key; the grouping key is the members' own, variants included.)
    family_names = names.select("name", "canonical", "backend", "quant").join(
        members.select(pl.col("name").alias("canonical"), FAMILY_ID), on="canonical"
    )
    grouped = (
        members.group_by(FAMILY_ID)
        .agg(
            pl.first(FAMILY_KEY).alias("family_key"),
            pl.len().cast(pl.Int64).alias("member_count"),
            pl.col("size_b").drop_nulls().first().alias("size_b"),
        )
        .join(sorted_members(members), on=FAMILY_ID)
    )
    # Per family: how many backend copies its names have, and which backends serve it (one pass of plain sums
    # and any() per backend: a unique-then-sort over 2.9M (family, backend) rows took 0.5 s at 1000x).
    copies = family_names.group_by(FAMILY_ID).agg(
        (pl.col("name") != pl.col("canonical")).sum().cast(pl.Int64).alias("alias_count"),
        *[(pl.col("backend") == backend).any().alias(backend) for backend in BACKENDS],
    )
    # Every family is served as "canonical", plus each backend one of its names carries; listed sorted.
    served_by = [
        pl.lit(b) if b == CANONICAL else pl.when(pl.col(b)).then(pl.lit(b)) for b in sorted(VARIATION_BACKENDS)
    ]
    return (
        _with_most_common(grouped, members, {"_spelling": "display_name"})
        .join(copies, on=FAMILY_ID, how="left")
        .with_columns(pl.concat_list(served_by).list.drop_nulls().alias("backends"))
        .join(_sorted_sets(family_names, "quant", "quants"), on=FAMILY_ID, how="left")
        .join(_sorted_sets(members, "size_label", "sizes"), on=FAMILY_ID, how="left")
        .sort(FAMILY_ID)  # ids are dense ranks of the keys: family_key order, sorting integers
        .select(
            "family_key",
            "display_name",
            "members",
            "member_count",
            pl.col("alias_count").fill_null(0),
            "backends",
            pl.col("quants").fill_null([]),
            pl.col("sizes").fill_null([]),
            "size_b",
        )
    )


#: List columns a family row holds the union of (sorted, distinct).
_UNITED: Final = ("tags", "trigger", "download_urls")


def family_records(members: pl.LazyFrame) -> pl.LazyFrame:
    """One record-shaped row per family of ``members`` (records with family ids), for grouped statistics (SPEC §5
    "Grouped text").

    baseline and style: most common member value; nsfw: any member; tags: union; parameters: the family size.
    Rows come in no set order: statistics only count them (sorting 600k keys cost 0.3 s at 1000x).
    """
    require_family_ids(members, "family_records")
    members = members.with_columns(
        display_spelling(pl.col("name")).alias("_spelling"), parameter_count().alias("parameter_count")
    )
    grouped = members.group_by(FAMILY_ID).agg(
        pl.first(FAMILY_KEY).alias("family_key"),
        pl.first("category"),
        pl.col("nsfw").fill_null(False).any().alias("nsfw"),
        pl.col("description").drop_nulls().first().alias("description"),
        pl.col("inpainting").fill_null(False).any().alias("inpainting"),
        pl.col("requirement_count").max().alias("requirement_count"),
        pl.col("showcase_count").max().alias("showcase_count"),
        pl.col("size_on_disk_bytes").max().alias("size_on_disk_bytes"),
        pl.lit([], dtype=pl.List(pl.Int64)).first().alias("download_sizes"),
        pl.col("size_b").drop_nulls().first().alias("size_b"),
    )
    common = {"_spelling": "name", "baseline": "baseline", "style": "style", "parameter_count": "_member_parameters"}
    return (
        _with_most_common(with_united_lists(grouped, members, _UNITED), members, common)
        .join(sorted_members(members), on=FAMILY_ID)
        .with_columns(
            pl.coalesce(parameters_of_billions(pl.col("size_b")), pl.col("_member_parameters")).alias("parameter_count")
        )
        .drop("_member_parameters", FAMILY_ID)
    )
