"""Model-reference records as a run uses them: read and validated by the source, put in canonical form by the
pure step, or read back from the previous run when the bytes are unchanged (SPEC §2.1, §9)."""

from __future__ import annotations

from collections.abc import Callable

import polars as pl

from pipeline.contracts.rules import InputLimits
from pipeline.contracts.schemas import PROBLEM_SCHEMA, RECORD_SCHEMA, LoadedCategory
from pipeline.sources.gc_pause import collector_paused
from pipeline.sources.http import HttpFetcher
from pipeline.sources.record_columns import DEFAULT_DECODING, Decoding
from pipeline.sources.records import ReferenceFile, reference_files, validated_records
from pipeline.steps.canonical_records import canonical_records


def category_records(
    file: ReferenceFile,
    *,
    max_bad_record_fraction: float = InputLimits.max_bad_record_fraction,
    decoding: Decoding = DEFAULT_DECODING,
) -> LoadedCategory:
    """One category file's canonical records and every problem found on the way; raises ReferenceInputError
    when the file is unusable."""
    validated = validated_records(file, max_bad_record_fraction=max_bad_record_fraction, decoding=decoding)
    records, canonical_problems = canonical_records(validated.category, validated.records)
    problems = pl.concat([validated.problems, *canonical_problems])
    return LoadedCategory(
        category=validated.category,
        source_file=validated.source_file,
        records=records.sort("position").select(RECORD_SCHEMA.names()).cast(RECORD_SCHEMA),
        problems=problems.select(pl.lit(validated.category).alias("category"), pl.all()).cast(PROBLEM_SCHEMA),
        input_hash=validated.input_hash,
        entries=validated.entries,
    )


@collector_paused()
def load_records(
    source: str,
    *,
    max_bad_record_fraction: float = InputLimits.max_bad_record_fraction,
    fetcher: HttpFetcher | None = None,
    reuse: Callable[[str, str, str], LoadedCategory | None] | None = None,
    decoding: Decoding = DEFAULT_DECODING,
) -> dict[str, LoadedCategory]:
    """Every category present at ``source`` (a folder or a base URL), validated and canonical; raises
    ReferenceInputError when one is unusable.

    ``reuse(category, source_file, sha256)`` may return the category as an earlier run loaded the same bytes
    (incremental runs, SPEC §9); None decodes them.
    """
    loaded: dict[str, LoadedCategory] = {}
    for file in reference_files(source, fetcher):
        reused = reuse(file.category, file.label, file.sha256()) if reuse is not None else None
        loaded[file.category] = (
            reused
            if reused is not None
            else category_records(file, max_bad_record_fraction=max_bad_record_fraction, decoding=decoding)
        )
    return loaded
