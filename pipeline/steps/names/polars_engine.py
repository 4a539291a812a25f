"""The vectorized parser: Polars expressions built from the pattern table (SPEC §3.2).

Only distinct names are parsed; results are joined back onto the input.
"""

from __future__ import annotations

from typing import Any, Final, get_args

import polars as pl

from pipeline.contracts.schemas import PARSED_NAME_SCHEMA
from pipeline.steps.names import patterns as p
from pipeline.steps.names.spellings import backend_of, without_backend

_ID: Final = "__model_index"
_MODEL: Final = "__model"
_TOKEN: Final = "__token"
_LOWER: Final = "__lower"
_KIND: Final = "__kind"
#: Token classes as an Enum: the per-row comparisons are integer ones.
_KINDS: Final = pl.Enum(get_args(p.TokenClass))


def _token_kind(lowered: pl.Expr) -> pl.Expr:
    """The first TOKEN_CLASSES class whose pattern matches the whole token, else null."""
    chain: Any = pl
    for kind, pattern in p.TOKEN_CLASSES:
        chain = chain.when(lowered.str.contains(f"^(?:{pattern})$")).then(pl.lit(kind))
    result: pl.Expr = chain.otherwise(None)
    return result


def _billions(value: pl.Expr, unit: pl.Expr) -> pl.Expr:
    multiplier = unit.replace_strict({k: v[0] for k, v in p.UNIT_SCALE.items()}, default=None, return_dtype=pl.Float64)
    divisor = unit.replace_strict({k: v[1] for k, v in p.UNIT_SCALE.items()}, default=None, return_dtype=pl.Float64)
    return value.cast(pl.Float64) * multiplier / divisor


def _plain_value(parts: pl.Expr) -> pl.Expr:
    """``whole.decimals`` of a SIZE_PARTS match, as the fallback engine spells it before float()."""
    decimals = pl.coalesce(
        parts.struct.field("2").replace("", None), parts.struct.field("4").replace("", None), pl.lit("0")
    )
    return pl.concat_str(parts.struct.field("1"), pl.lit("."), decimals)


def _model_fields(models: pl.LazyFrame) -> pl.LazyFrame:
    """Distinct model parts (``_MODEL``) -> every §3.1 field that depends only on the model part.

    Model parts -> one row per token (explode) -> classified by joining the few distinct lower-cased tokens
    against their class -> one row per model part again (group_by) -> sizes and the family key.
    """
    tokens = (
        models.with_row_index(_ID)
        .with_columns(pl.col(_MODEL).str.extract_all(p.TOKEN).list.head(p.MAX_TOKENS).alias(_TOKEN))
        .explode(_TOKEN, empty_as_null=True, keep_nulls=True)
        .with_columns(pl.col(_TOKEN).str.to_lowercase().alias(_LOWER))
    )
    # Real names repeat a few hundred tokens ("8b", "instruct", "q4_k_m"): classify each distinct one once, and
    # work out there everything that depends on the token alone, so per-row work is integer and boolean.
    kind = pl.col(_KIND)
    lower = pl.col(_LOWER)
    token_classes = (
        tokens.select(lower.unique())
        .drop_nulls()
        .with_columns(_token_kind(lower).cast(_KINDS).alias(_KIND))
        .with_columns(
            pl.when(kind.is_null())
            .then(lower.replace_strict(p.VARIANTS, default=None, return_dtype=pl.String))
            .alias("__variant"),
            pl.when(kind == "quant_q").then(lower.str.to_uppercase()).when(kind == "quant").then(lower).alias("quant"),
            pl.when(kind == "format")
            .then(lower.replace_strict(p.FORMATS, default=None, return_dtype=pl.String))
            .alias("format"),
            # where a glued token's size starts (r7b -> 1), applied to each row by slicing
            pl.when(kind == "glued").then(lower.str.extract(p.GLUED_PARTS, 1).str.len_chars()).alias("__glue_at"),
            kind.is_in(["moe", "size", "glued"]).fill_null(False).alias("__sized"),
        )
        .with_columns(
            pl.when(~pl.col("format").is_in(p.WEAK_FORMATS)).then(pl.col("format")).alias("__strong_format"),
            # a base word whatever its neighbours: an unclassified non-variant word or a glued size's word
            ((kind.is_null() & pl.col("__variant").is_null()) | (kind == "glued")).fill_null(False).alias("__word"),
        )
    )
    token = pl.col(_TOKEN)
    glue_at = pl.col("__glue_at")
    # Context, from neighbouring rows (each name's rows are contiguous and in name order, so a fill along the
    # whole column, cut where the name id changes, stands in for a window per name): an integer right after a
    # version token continues it (neural-chat-7b-v3-1). A dotted number is a release version when no base word
    # stands right before it (vicuna-13b-1.1, Pantheon-RP-1.8-24b) or when the next base word or size after it is
    # a base word (hermes-2.5-mistral-7b); else it names a generation (Llama-3.1-8B, Llama-3.1-8B-Lexi).
    same_name_as_previous = pl.col(_ID).shift(1) == pl.col(_ID)
    integer = kind == "integer"
    continues_version = integer & (kind.shift(1) == "version") & same_name_as_previous
    base_word = pl.col("__word") | (integer & ~continues_version.fill_null(False)).fill_null(False)
    marker = base_word | pl.col("__sized")
    next_marker_name = pl.when(marker).then(pl.col(_ID)).shift(-1).backward_fill()
    next_marker_is_base = pl.when(marker).then(base_word).shift(-1).backward_fill()
    base_next = ((next_marker_name == pl.col(_ID)) & next_marker_is_base).fill_null(False)
    base_word_before = (base_word.shift(1) & same_name_as_previous).fill_null(False)
    dotted = kind == "dotted"
    release = dotted & (~base_word_before | base_next)
    fields = (
        tokens.join(token_classes, on=_LOWER, how="left", maintain_order="left")
        .with_columns(
            pl.when(kind == "glued")
            .then(token.str.slice(glue_at))
            .when(pl.col("__sized"))
            .then(token)
            .alias("__size_token"),
            pl.when(kind == "active").then(lower).alias("__active_token"),
            pl.when((kind == "version") | release).then(lower).alias("version"),
            pl.when(release)
            .then(None)
            .when(kind == "glued")
            .then(token.str.head(glue_at))
            .when(base_word | dotted)
            .then(token)
            .alias("__base"),
            pl.when(pl.col("__variant").is_not_null()).then(token).alias("__variant_token"),
        )
        .group_by(_ID)
        .agg(
            pl.col(_MODEL).first(),
            pl.col("__size_token", "__active_token", "version", "quant", "__strong_format", "format")
            .drop_nulls()
            .first(),
            pl.col("__variant").drop_nulls().unique(maintain_order=True).alias("variants"),
            pl.col("__base").drop_nulls().alias("__base"),
            pl.col("__variant_token").drop_nulls(),
            pl.col("__variant").drop_nulls().alias("__variant_all"),
        )
        # a name of variant words only (Alpha-8B, Chat-7B-Instruct): the first is its name, the rest its variants
        .with_columns(
            pl.when(pl.col("__base").list.len() == 0)
            .then(pl.col("__variant_token").list.head(1))
            .otherwise(pl.col("__base"))
            .alias("__base"),
            pl.when(pl.col("__base").list.len() == 0)
            .then(pl.col("__variant_all").list.slice(1).list.unique(maintain_order=True))
            .otherwise(pl.col("variants"))
            .alias("variants"),
        )
        .drop("__variant_token", "__variant_all")
        # the first format not in WEAK_FORMATS, else the first
        .with_columns(pl.coalesce("__strong_format", "format").alias("format"))
        .drop("__strong_format")
    )
    key_base = pl.col("base").str.replace_all(p.KEY_GLUE, p.KEY_GLUE_POLARS)
    major = pl.col("version").str.extract(p.VERSION_MAJOR, 0)
    size_lower = pl.col("__size_token").str.to_lowercase()
    moe = size_lower.str.extract_groups(p.MOE_PARTS)
    plain = size_lower.str.extract_groups(p.SIZE_PARTS)
    active = pl.col("__active_token").str.extract_groups(p.ACTIVE_PARTS)
    experts = moe.struct.field("1").cast(pl.Int64)
    expert_size = _billions(moe.struct.field("2"), moe.struct.field("3"))
    return (
        fields.with_columns(
            pl.col("__base").list.join(p.BASE_SEPARATOR).replace("", None).alias("base"),
            pl.col("__size_token").str.to_uppercase().alias("size_label"),
            experts.alias("experts"),
            expert_size.alias("expert_size_b"),
            _billions(active.struct.field("1"), active.struct.field("2")).alias("active_b"),
            pl.when(experts.is_not_null())
            .then(experts.cast(pl.Float64) * expert_size)
            .otherwise(_billions(_plain_value(plain), plain.struct.field("3")))
            .alias("size_b"),
        )
        .with_columns(
            pl.when(pl.col("base").is_not_null())
            .then(
                pl.when(pl.col("size_label").is_not_null())
                .then(key_base + p.BASE_SEPARATOR + pl.col("size_label"))
                .when(major.is_not_null())
                .then(key_base + p.BASE_SEPARATOR + major)
                .otherwise(key_base)
                .str.to_lowercase()
            )
            .alias("family_key")
        )
        .drop(_ID, "__base", "__size_token", "__active_token")
    )


def _parsed_rows(frame: pl.LazyFrame, column: str, *, keep_order: bool) -> pl.LazyFrame:
    """Parse every row of ``frame`` (meant to hold each name once): its columns plus the §3.1 fields.

    Backend and author come from each name; every other field depends only on the model part (after the last
    "/"), so that work runs once per distinct model part: ``Model-8B``, ``koboldcpp/Model-8B`` and
    ``aphrodite/org/Model-8B`` share one.
    """
    name = pl.col(column)
    per_name = (
        frame.with_columns(
            backend_of(name).alias("backend"),
            without_backend(name).str.split("/").alias("__parts"),
            name.str.contains(p.PARSEABLE).fill_null(False).alias("__ok"),
        )
        .with_columns(
            pl.when(pl.col("__parts").list.len() > 1)
            .then(pl.col("__parts").list.first().replace("", None))
            .alias("author"),
            pl.col("__parts").list.last().alias(_MODEL),
        )
        .drop("__parts")
    )
    parsed = per_name.join(
        _model_fields(per_name.select(pl.col(_MODEL).unique())),
        on=_MODEL,
        how="left",
        maintain_order="left" if keep_order else "none",
    )
    # An unparseable name (no ASCII letter or digit, or null) gets an all-null parse, as in the fallback.
    ok = pl.col("__ok")
    return parsed.select(
        *frame.collect_schema().names(),
        *[pl.when(ok).then(pl.col(field)).alias(field) for field in PARSED_NAME_SCHEMA.names()],
    ).cast(PARSED_NAME_SCHEMA)


def parsed_names(frame: pl.LazyFrame | pl.DataFrame, column: str = "name", *, distinct: bool = False) -> pl.LazyFrame:
    """``frame`` with the §3.1 fields of its ``column`` of names added (distinct names parsed once).

    ``distinct=True`` is the caller's promise that no name repeats (the text names table): rows are parsed as
    they are, without the dedupe and the join back (1.5 s of 6 s at 2M names). A repeat would only be parsed twice.
    """
    lazy = frame.lazy()
    schema = lazy.collect_schema()
    clashes = sorted(set(schema.names()) & set(PARSED_NAME_SCHEMA.names()) - {column})
    if clashes:
        raise ValueError(f"parsed_names: input already has columns {clashes}; select the names column first")
    if schema[column] != pl.String:
        # Non-string names never parse (SPEC §3.2); keep the column, add all-null fields.
        return lazy.with_columns(pl.lit(None, dtype=dtype).alias(field) for field, dtype in PARSED_NAME_SCHEMA.items())
    if distinct:
        return _parsed_rows(lazy, column, keep_order=True)
    names = lazy.select(pl.col(column)).unique().filter(pl.col(column).is_not_null())
    parsed = _parsed_rows(names, column, keep_order=False)
    return lazy.join(parsed, on=column, how="left", maintain_order="left")
