"""Model-reference records: the category files at a folder or base URL, each decoded and validated into one
Polars frame (SPEC §2.1). Sources read and validate; canonical form (baselines, backend copies) is a pure step,
``pipeline.steps.canonical_records``, which the shell applies (``pipeline.shell.reference_records``).

Decoding: ``record_columns`` (the typed path, or the checked path of ``json_entries``); field kinds:
``record_fields``; the bad-record rule: ``bad_fraction``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import polars as pl

from pipeline.contracts.categories import CATEGORY_FILES, REQUIRED_CATEGORIES, policy
from pipeline.contracts.parameters import known_parameters
from pipeline.contracts.rules import InputLimits
from pipeline.contracts.schemas import (
    CASE_DUPLICATE_REASON,
    DUPLICATE_NAME_REASON,
    RECORD_SCHEMA,
)
from pipeline.sources.bad_fraction import check_bad_fraction
from pipeline.sources.field_columns import list_series
from pipeline.sources.files import regular_file_bytes, regular_file_sha256
from pipeline.sources.http import HttpFetcher
from pipeline.sources.json_entries import ReferenceInputError as ReferenceInputError  # raised by the loaders
from pipeline.sources.location import InputFile, input_location, present_files
from pipeline.sources.record_columns import DEFAULT_DECODING, ChunkColumns, Decoding, decoded_chunks, dict_columns
from pipeline.sources.record_fields import DOWNLOADS_WANTED, kind_reasons

#: Every category file, as a folder or a base URL holds it (SPEC §2.1); the required ones must be there.
_REFERENCE_FILES: Final = {
    category: InputFile(file_name, file_name, required=category in REQUIRED_CATEGORIES)
    for category, file_name in CATEGORY_FILES.items()
}
#: Record columns the canonical step adds (``pipeline.steps.canonical_records``).
_CANONICAL_COLUMNS: Final = frozenset({"baseline", "aliases", "copy_differences"})
_PROBLEM_COLUMNS: Final = {"name": pl.String, "severity": pl.String, "reason": pl.String}


@dataclass(frozen=True)
class ValidatedCategory:
    """One category file's valid records in file order (``position``, ``raw_baseline``; not yet canonical) and
    the problems validation found (``name, severity, reason``)."""

    category: str
    source_file: str
    records: pl.DataFrame
    problems: pl.DataFrame
    input_hash: str
    #: Entries in the file, repeated names included.
    entries: int


def _missing(_: InputFile, label: str) -> ReferenceInputError:
    required = ", ".join(CATEGORY_FILES[category] for category in REQUIRED_CATEGORIES)
    return ReferenceInputError(
        f"{label}: required file is missing; MODEL_REFERENCE_SOURCE must be a folder holding {required} "
        "(e.g. sample_data/model_reference)"
    )


class ReferenceFile:
    """One category file: its bytes, handed over once (``take``) so that the decoder holds the only reference and
    drops it as soon as decoding has started (the files are 1.8 GB at 1000x scale), and their sha256.

    ``content`` is the bytes (a URL's body) or the ``Path`` of a file on this machine, which is read only when
    taken and hashed in pieces: a file whose hash shows it unchanged (SPEC §9) is never held in memory.
    """

    def __init__(self, category: str, label: str, content: bytes | Path) -> None:
        self.category = category
        #: The file's path or URL, as messages name it.
        self.label = label
        self._content: bytes | Path | None = content
        #: the sha256 of ``content`` once computed (of the bytes held, or of the file as it was then)
        self._sha256: str | None = None

    def sha256(self) -> str:
        """The sha256 hex digest of the bytes (before ``take``)."""
        content = self._content
        assert content is not None, "the bytes were taken"
        if self._sha256 is None:
            if isinstance(content, bytes):
                self._sha256 = hashlib.sha256(content).hexdigest()
            else:
                self._sha256 = regular_file_sha256(content)
        return self._sha256

    def take(self) -> tuple[bytes, str | None]:
        """The bytes, which this object then lets go of, and their sha256 when it is known already (a file read
        now may have changed since it was hashed, so its hash is not)."""
        content, self._content = self._content, None
        assert content is not None, "the bytes were taken"
        if isinstance(content, bytes):
            return content, self._sha256
        return regular_file_bytes(content), None


def reference_files(source: str, fetcher: HttpFetcher | None = None) -> Iterator[ReferenceFile]:
    """Every category file present at ``source`` (a folder or a base URL), one at a time so that only one file's
    bytes are in memory (a folder's files are read when taken). A missing required file raises."""
    category_of = {file: category for category, file in _REFERENCE_FILES.items()}
    location = input_location(source, fetcher)
    for file in present_files(location, list(_REFERENCE_FILES.values()), _missing):
        path = location.path(file)
        content = path if path is not None else location.read(file)
        if content is not None:
            reference = ReferenceFile(category_of[file], location.label(file), content)
            del content  # the holder is the one owner: ``take`` hands the bytes to the decoder
            yield reference


def _validated_chunk(category: str, chunk: ChunkColumns) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(a reason per entry, "" when valid; the entries as record columns) for one chunk of entries."""
    columns = chunk.fields
    checks = pl.DataFrame(
        {
            "name": chunk.names,
            "is_object": chunk.is_object,
            "downloads_ok": chunk.downloads_ok,
            "unusable": chunk.unusable if chunk.unusable is not None else [None] * len(chunk.names),
        },
        schema={"name": pl.String, "is_object": pl.Boolean, "downloads_ok": pl.Boolean, "unusable": pl.String},
    )
    reasons: list[pl.Expr] = [
        pl.when(pl.col("unusable").is_not_null()).then("unusable"),
        pl.when(~pl.col("is_object") & pl.col("unusable").is_null()).then(pl.lit("record is not a JSON object")),
        pl.when(pl.col("is_object") & ~pl.col("downloads_ok")).then(pl.lit(DOWNLOADS_WANTED)),
        pl.when(pl.col("name").str.strip_chars() == "").then(pl.lit("empty model name")),
    ]
    if not chunk.typed:  # the typed decoder already enforced every field kind
        reasons += kind_reasons(columns)
    for field in policy(category).required_fields:
        missing = pl.Series([value is None for value in columns[field]], dtype=pl.Boolean)
        required = pl.lit(f"required field '{field}' is missing")
        reasons.append(pl.when(pl.col("is_object") & pl.lit(missing)).then(required))
    verdicts = checks.select(
        "name",
        pl.concat_list(reasons).list.drop_nulls().list.join("; ").alias("reason"),
    )
    parameters = [
        p if p is not None else pc for p, pc in zip(columns["parameters"], columns["parameters_count"], strict=True)
    ]
    frame = pl.DataFrame(
        {
            "name": chunk.names,
            "raw_baseline": columns["baseline"],
            "nsfw": columns["nsfw"],
            "style": columns["style"],
            "description": columns["description"],
            "version": columns["version"],
            "inpainting": columns["inpainting"],
            "requirement_count": [len(v) if isinstance(v, dict) else 0 for v in columns["requirements"]],
            "showcase_count": [len(v) if isinstance(v, list) else 0 for v in columns["showcases"]],
            "homepage": columns["homepage"],
            "size_on_disk_bytes": columns["size_on_disk_bytes"],
            "parameters": parameters,
            "display_name": columns["display_name"],
            "url": columns["url"],
            "instruct_format": columns["instruct_format"],
        },
        schema_overrides={k: v for k, v in RECORD_SCHEMA.items() if k not in {*_CANONICAL_COLUMNS, "category"}}
        | {"raw_baseline": pl.String},
        strict=False,  # mistyped values are already reported above and their rows dropped below
    ).with_columns(
        list_series("tags", columns["tags"], pl.String()),
        list_series("trigger", columns["trigger"], pl.String()),
        list_series("download_urls", chunk.download_urls, pl.String()),
        list_series("download_sizes", chunk.download_sizes, pl.Int64()),
    )
    return verdicts, frame


def validated_records(
    file: ReferenceFile,
    *,
    max_bad_record_fraction: float = InputLimits.max_bad_record_fraction,
    decoding: Decoding = DEFAULT_DECODING,
) -> ValidatedCategory:
    """One category file decoded and validated: bad records and repeated names are reported and skipped; raises
    ReferenceInputError when the file is unusable or more than ``max_bad_record_fraction`` of it is bad."""
    category, source_file = file.category, file.label
    duplicate_keys: list[str] = []
    raw, known_hash = file.take()
    input_hash, chunks = decoded_chunks(raw, source_file, duplicate_keys, decoding, known_hash)
    del raw  # decoding started: the bytes can go
    parts = [_validated_chunk(category, chunk) for chunk in chunks]
    if not parts:
        parts = [_validated_chunk(category, dict_columns([], []))]
    verdicts = pl.concat([part[0] for part in parts], rechunk=False).with_row_index("position")
    frame = pl.concat([part[1] for part in parts], rechunk=False).with_row_index("position")
    del parts
    bad = verdicts.filter(pl.col("reason") != "")
    # (each filter or join copies every column, lists too: skipped when it would drop nothing, the usual case)
    good = frame.join(bad.select("position"), on="position", how="anti") if bad.height else frame

    # Duplicates: a repeated JSON key (the decoder kept the first) and names equal but for case.
    first = good["name"].str.to_lowercase().is_first_distinct()
    case_dupes = good.filter(~first) if not first.all() else good.clear()
    good = good.filter(first) if case_dupes.height else good

    records = good.with_columns(
        pl.lit(category).alias("category"),
        pl.col("version").cast(pl.String),
        pl.col("raw_baseline").replace("", None),
        pl.col("tags").fill_null([]),
        pl.col("trigger").fill_null([]),
        pl.col("download_urls").fill_null([]),
        pl.col("download_sizes").fill_null([]),
        known_parameters(pl.col("parameters")).alias("parameters"),
    )
    problems = pl.concat(
        [
            bad.select("name", pl.lit("error").alias("severity"), "reason"),
            pl.DataFrame(
                {"name": duplicate_keys, "severity": "warning", "reason": DUPLICATE_NAME_REASON},
                schema=_PROBLEM_COLUMNS,
            ),
            case_dupes.select(
                "name",
                pl.lit("warning").alias("severity"),
                pl.lit(CASE_DUPLICATE_REASON).alias("reason"),
            ),
        ]
    )
    entries = verdicts.height + len(duplicate_keys)
    first_bad = bad.select("name", "reason").row(0) if bad.height else ("", "")
    check_bad_fraction(
        source_file,
        bad.height,
        entries,
        max_bad_record_fraction,
        first_bad,
        unit="records",
        error=ReferenceInputError,
    )
    return ValidatedCategory(category, source_file, records, problems, input_hash, entries)
