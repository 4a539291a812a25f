"""Model-reference records as a run uses them: read and validated by the source, put in canonical form by the
pure step, or read back from the previous run when the bytes are unchanged (SPEC §2.1, §9)."""

from __future__ import annotations

from typing import Protocol

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


class Reuse(Protocol):
    """Categories as an earlier run loaded them (incremental runs, SPEC §9; ``PreviousRecords``)."""

    def input_hash(self, category: str) -> str | None:
        """The sha256 of the bytes the earlier run loaded ``category`` from (None: nothing to reuse)."""
        ...

    def __call__(self, category: str, source_file: str, input_hash: str) -> LoadedCategory | None:
        """``category`` as loading ``source_file`` (whose bytes hash as ``input_hash``) would give it; None
        decodes the file."""
        ...


@collector_paused()
def load_records(
    source: str,
    *,
    max_bad_record_fraction: float = InputLimits.max_bad_record_fraction,
    fetcher: HttpFetcher | None = None,
    reuse: Reuse | None = None,
    decoding: Decoding = DEFAULT_DECODING,
) -> dict[str, LoadedCategory]:
    """Every category present at ``source`` (a folder or a base URL), validated and canonical; raises
    ReferenceInputError when one is unusable. A category that ``reuse`` holds for the same bytes is taken from
    it instead of decoded (incremental runs, SPEC §9)."""
    loaded: dict[str, LoadedCategory] = {}
    for file in reference_files(source, fetcher):
        reused = None
        # Hashed here only when an earlier run could match it; otherwise the decoder hashes the bytes it reads,
        # beside its own work.
        if reuse is not None and reuse.input_hash(file.category) is not None:
            reused = reuse(file.category, file.label, file.sha256())
        loaded[file.category] = (
            reused
            if reused is not None
            else category_records(file, max_bad_record_fraction=max_bad_record_fraction, decoding=decoding)
        )
    return loaded
