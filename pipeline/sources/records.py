"""Model-reference records: folder or base URL -> one validated Polars frame per category (SPEC §2.1).

Decoding: clean files take msgspec's typed path (``typed_entries``); a file it refuses is read entry by entry by
``json_entries.top_level_entries`` so that every bad record is named. Canonical form (baselines, backend copies):
``pipeline.steps.canonical_records``, a pure step.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import operator
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import msgspec
import polars as pl

from pipeline.contracts.categories import CATEGORY_FILES, IMAGE_GENERATION, REQUIRED_CATEGORIES
from pipeline.contracts.schemas import (
    CASE_DUPLICATE_REASON,
    DUPLICATE_NAME_REASON,
    PROBLEM_SCHEMA,
    RECORD_SCHEMA,
    LoadedCategory,
)
from pipeline.sources.field_columns import field_columns, list_series
from pipeline.sources.files import is_present, regular_file_bytes
from pipeline.sources.gc_pause import collector_paused
from pipeline.sources.http import HttpFetcher
from pipeline.sources.input_hash import sha256_while
from pipeline.sources.json_entries import ReferenceInputError as ReferenceInputError  # raised by load_records
from pipeline.sources.json_entries import top_level_entries
from pipeline.sources.location import url_fetcher
from pipeline.sources.untrusted_json import (
    Unusable,
    checked_text,
)
from pipeline.steps.canonical_records import canonical_records

log = logging.getLogger(__name__)


# JSON kinds accepted per record field (the checked path tests them; the typed path is generated from them).
# Anything else makes the record bad, named with the field.
_STR: Final = (str,)
_FIELD_KINDS: Final[dict[str, tuple[type, ...]]] = {
    "baseline": _STR,
    "nsfw": (bool,),
    "style": _STR,
    "tags": (list,),
    "description": _STR,
    "version": (str, int, float),
    "inpainting": (bool,),
    "trigger": (list,),
    "requirements": (dict,),
    "showcases": (list,),
    "homepage": _STR,
    "size_on_disk_bytes": (int,),
    "config": (dict,),
    "parameters": (int,),
    "parameters_count": (int,),
    "display_name": _STR,
    "url": _STR,
    "instruct_format": _STR,
}
_FIELDS: Final = tuple(_FIELD_KINDS)
#: Each field read under its own name, as ``field_columns`` takes them.
_SAME_NAMES: Final = {field: field for field in _FIELDS}
#: Fields a record of the category must carry (SPEC §2.1: image baseline and nsfw are required).
REQUIRED_FIELDS: Final[dict[str, tuple[str, ...]]] = {IMAGE_GENERATION: ("baseline", "nsfw")}
_STRING_LIST_FIELDS: Final = ("tags", "trigger")


def _type_name(value: Any) -> str:
    return "null" if value is None else type(value).__name__


#: Entries decoded and turned into columns at a time: bounds memory on million-record files.
CHUNK_ENTRIES: Final = 50_000


def _first_occurrences(entries: Iterator[tuple[str, Any]], duplicate_keys: list[str]) -> Iterator[tuple[str, Any]]:
    """``entries`` without repeated names (the first occurrence wins, SPEC §2.1); repeats go to ``duplicate_keys``."""
    seen: set[str] = set()
    for name, value in entries:
        if name in seen:
            duplicate_keys.append(name)
        else:
            seen.add(name)
            yield name, value


def _chunks(entries: Iterator[tuple[str, Any]], size: int) -> Iterator[tuple[list[str], list[Any]]]:
    names: list[str] = []
    values: list[Any] = []
    for name, value in entries:
        names.append(name)
        values.append(value)
        if len(names) == size:
            yield names, values
            names, values = [], []
    if names:
        yield names, values


@dataclass(frozen=True, slots=True)
class _ChunkColumns:
    """One chunk of entries as Python columns, before any Polars work."""

    names: list[str]
    is_object: list[bool]
    fields: dict[str, list[Any]]
    download_urls: list[list[str] | None]
    download_sizes: list[list[int | None] | None]
    downloads_ok: list[bool]
    #: Why an entry cannot be used at all (too deep, not valid text), else None; None for the whole chunk when no
    #: entry has such a problem.
    unusable: list[str | None] | None
    #: True when the decoder already enforced every field kind (the typed path): no per-value checks needed.
    typed: bool


def _dict_columns(names: list[str], values: list[Any]) -> _ChunkColumns:
    """Columns of entries decoded into plain Python values, any of which may be mistyped."""
    fields = field_columns(values, _SAME_NAMES, typed=False)
    count = len(values)
    urls: list[list[str] | None] = [[]] * count  # shared empties: read-only downstream
    sizes: list[list[int | None] | None] = [[]] * count
    valid = [True] * count
    # Only records with a config are looked at (text records have none).
    for index in [i for i, config in enumerate(fields["config"]) if config is not None]:
        config = fields["config"][index]
        downloads = config.get("download") if isinstance(config, dict) else None
        if downloads is None:
            continue
        entries_ok = isinstance(downloads, list) and all(
            isinstance(d, dict)
            and isinstance(d.get("file_url", ""), str)
            and (d.get("size_bytes") is None or type(d.get("size_bytes")) is int)
            for d in downloads
        )
        valid[index] = entries_ok
        if not entries_ok:
            urls[index] = sizes[index] = None
            continue
        urls[index] = [d["file_url"] for d in downloads if d.get("file_url")]
        sizes[index] = [d.get("size_bytes") for d in downloads if d.get("file_url")]
    unusable = (
        [value.reason if type(value) is Unusable else None for value in values]
        if Unusable in set(map(type, values))
        else None
    )
    is_object = [type(value) is dict for value in values]
    return _ChunkColumns(names, is_object, fields, urls, sizes, valid, unusable, typed=False)


def _struct_columns(names: list[str], records: list[Any]) -> _ChunkColumns:
    """Columns of entries decoded by the typed decoder (every field already of an accepted kind)."""
    fields = field_columns(records, _SAME_NAMES, typed=True)
    count = len(records)
    urls: list[list[str] | None] = [[]] * count
    sizes: list[list[int | None] | None] = [[]] * count
    for index in [i for i, config in enumerate(fields["config"]) if config is not None and config.download]:
        downloads = fields["config"][index].download
        urls[index] = [d.file_url for d in downloads if d.file_url]
        sizes[index] = [d.size_bytes for d in downloads if d.file_url]
    return _ChunkColumns(names, [True] * count, fields, urls, sizes, [True] * count, None, typed=True)


def _kind_reasons(columns: dict[str, list[Any]]) -> list[pl.Expr]:
    """Reasons for values of a kind ``_FIELD_KINDS`` does not accept, and for non-string list items."""
    reasons: list[pl.Expr] = []
    # A field is checked value by value only when the set of its types (one C-level pass) holds a wrong one.
    for field, kinds in _FIELD_KINDS.items():
        allowed = {type(None), *kinds}
        found = set(map(type, columns[field]))
        if found <= allowed:
            continue
        kind = pl.Series([_type_name(v) for v in columns[field]], dtype=pl.String)
        accepted = [t.__name__ for t in kinds]
        reasons.append(
            pl.when(pl.col("is_object") & ~pl.lit(kind).is_in(["null", *accepted])).then(
                pl.lit(f"field '{field}' must be {' or '.join(accepted)}, got ") + pl.lit(kind)
            )
        )
    for field in _STRING_LIST_FIELDS:
        items = {type(item) for value in columns[field] if type(value) is list for item in value}
        if items <= {str}:
            continue
        items_ok = pl.Series(
            [type(v) is not list or all(type(item) is str for item in v) for v in columns[field]], dtype=pl.Boolean
        )
        reasons.append(pl.when(~pl.lit(items_ok)).then(pl.lit(f"field '{field}' must be a list of strings")))
    return reasons


def _validated_chunk(category: str, chunk: _ChunkColumns) -> tuple[pl.DataFrame, pl.DataFrame]:
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
        pl.when(pl.col("is_object") & ~pl.col("downloads_ok")).then(
            pl.lit("config.download must be a list of {file_url: str, size_bytes: int}")
        ),
        pl.when(pl.col("name").str.strip_chars() == "").then(pl.lit("empty model name")),
    ]
    if not chunk.typed:  # the typed decoder already enforced every field kind
        reasons += _kind_reasons(columns)
    for field in REQUIRED_FIELDS.get(category, ()):
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
        schema_overrides={
            k: v for k, v in RECORD_SCHEMA.items() if k not in {"baseline", "category", "aliases", "copy_differences"}
        }
        | {"raw_baseline": pl.String},
        strict=False,  # mistyped values are already reported above and their rows dropped below
    ).with_columns(
        list_series("tags", columns["tags"], pl.String()),
        list_series("trigger", columns["trigger"], pl.String()),
        list_series("download_urls", chunk.download_urls, pl.String()),
        list_series("download_sizes", chunk.download_sizes, pl.Int64()),
    )
    return verdicts, frame


class _Download(msgspec.Struct, gc=False):
    file_url: str = ""
    size_bytes: int | None = None


class _Config(msgspec.Struct, gc=False):
    download: list[_Download] | None = None


def _decoded_type(kinds: tuple[type, ...], field: str) -> Any:
    """The msgspec type accepting exactly the JSON kinds ``_FIELD_KINDS`` allows for ``field``, or null."""
    if field == "config":
        return _Config | None  # the one nested shape read (config.download), checked as _dict_columns checks it
    accepted: list[Any] = []
    for kind in kinds:
        if kind is list:
            accepted.append(list[str] if field in _STRING_LIST_FIELDS else list[msgspec.Raw])
        elif kind is dict:
            accepted.append(dict[str, msgspec.Raw])  # only counted: left undecoded
        else:
            accepted.append(kind)
    return functools.reduce(operator.or_, accepted) | None


_TYPED_FIELDS: Final = [(field, _decoded_type(kinds, field), None) for field, kinds in _FIELD_KINDS.items()]


def typed_entries(raw: bytes) -> tuple[list[str], list[Any]] | None:
    """Names and records of a ``{name: record}`` file in one typed pass, or None when the checked path is needed.

    msgspec decodes straight into structs of the fields read, enforcing ``_FIELD_KINDS`` (3-5x faster than
    ``json`` into dicts, and unread fields are skipped). It cannot say which record is wrong, nor see a repeated
    name (the last would silently win), so any error or repeat returns None and the checked path reports it.
    """
    decoded = 0

    def counted(_: object) -> None:
        nonlocal decoded
        decoded += 1

    record = msgspec.defstruct("Record", _TYPED_FIELDS, namespace={"__post_init__": counted}, gc=False)
    try:
        entries = msgspec.json.decode(raw, type=dict[str, record])  # type: ignore[valid-type]
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
        return None
    if decoded != len(entries):  # a record was decoded and then replaced by a repeat of its name
        return None
    return list(entries), list(entries.values())


def _typed_chunks(names: list[str], records: list[Any]) -> Iterator[_ChunkColumns]:
    while names:  # each chunk's structs are released once its columns are built
        chunk = _struct_columns(names[:CHUNK_ENTRIES], records[:CHUNK_ENTRIES])
        del names[:CHUNK_ENTRIES], records[:CHUNK_ENTRIES]
        yield chunk


def _checked_chunks(entries: Iterator[tuple[str, Any]], duplicate_keys: list[str]) -> Iterator[_ChunkColumns]:
    for names, values in _chunks(_first_occurrences(entries, duplicate_keys), CHUNK_ENTRIES):
        yield _dict_columns(names, values)


def _decoded(raw: bytes, source_file: str, duplicate_keys: list[str]) -> tuple[str, Iterator[_ChunkColumns]]:
    """The sha256 of ``raw`` and its entries in chunks; decoding starts here, so the caller can drop ``raw``.

    Clean files take the typed path; any file it refuses is decoded again by the checked path, which names
    every bad record (and the line and column of malformed JSON) and sends repeated names to ``duplicate_keys``.
    """
    digest, typed = sha256_while(raw, lambda: typed_entries(raw))
    if typed is not None:
        return digest, _typed_chunks(*typed)
    return digest, _checked_chunks(top_level_entries(checked_text(raw), source_file), duplicate_keys)


def records_frame(
    category: str, raw: bytes, source_file: str, *, max_bad_record_fraction: float = 0.5
) -> LoadedCategory:
    """Validate one category file and return its canonical records; bad records are reported and skipped."""
    duplicate_keys: list[str] = []
    digest, chunks = _decoded(raw, source_file, duplicate_keys)
    return _records_from_chunks(
        category, chunks, duplicate_keys, source_file, digest, max_bad_record_fraction=max_bad_record_fraction
    )


def _records_from_chunks(
    category: str,
    chunks: Iterator[_ChunkColumns],
    duplicate_keys: list[str],
    source_file: str,
    input_hash: str,
    *,
    max_bad_record_fraction: float,
) -> LoadedCategory:
    """The canonical records of a category from its decoded chunks."""
    parts = [_validated_chunk(category, chunk) for chunk in chunks]
    if parts:
        verdicts = pl.concat([part[0] for part in parts], rechunk=False).with_row_index("position")
        frame = pl.concat([part[1] for part in parts], rechunk=False).with_row_index("position")
    else:
        verdicts, frame = _validated_chunk(category, _dict_columns([], []))
        verdicts, frame = verdicts.with_row_index("position"), frame.with_row_index("position")
    del parts
    bad = verdicts.filter(pl.col("reason") != "")
    good = frame.join(bad.select("position"), on="position", how="anti")

    # Duplicates: a repeated JSON key (the decoder kept the first) and names equal but for case.
    folded = good.with_columns(pl.col("name").str.to_lowercase().alias("_folded"))
    case_dupes = folded.filter(pl.col("_folded").is_duplicated() & ~pl.col("_folded").is_first_distinct())
    good = folded.filter(pl.col("_folded").is_first_distinct()).drop("_folded")

    records = good.with_columns(
        pl.lit(category).alias("category"),
        pl.col("version").cast(pl.String),
        pl.col("raw_baseline").replace("", None),
        pl.col("tags").fill_null([]),
        pl.col("trigger").fill_null([]),
        pl.col("download_urls").fill_null([]),
        pl.col("download_sizes").fill_null([]),
        pl.when(pl.col("parameters") > 0).then(pl.col("parameters")).alias("parameters"),
    )
    problems = [
        bad.select("name", pl.lit("error").alias("severity"), "reason"),
        pl.DataFrame(
            {
                "name": duplicate_keys,
                "severity": "warning",
                "reason": DUPLICATE_NAME_REASON,
            },
            schema={"name": pl.String, "severity": pl.String, "reason": pl.String},
        ),
        case_dupes.select(
            "name",
            pl.lit("warning").alias("severity"),
            pl.lit(CASE_DUPLICATE_REASON).alias("reason"),
        ),
    ]
    records, canonical_problems = canonical_records(category, records)
    problems += canonical_problems

    entry_count = verdicts.height + len(duplicate_keys)
    if entry_count and bad.height / entry_count > max_bad_record_fraction:
        raise ReferenceInputError(
            f"{source_file}: {bad.height} of {entry_count} records are bad, more than MAX_BAD_RECORD_FRACTION="
            f"{max_bad_record_fraction}; first: {bad.row(0, named=True)['name']!r}: {bad.row(0, named=True)['reason']}"
        )
    problem_frame = pl.concat(problems).select(pl.lit(category).alias("category"), pl.all()).cast(PROBLEM_SCHEMA)
    return LoadedCategory(
        category=category,
        source_file=source_file,
        records=records.sort("position").select(RECORD_SCHEMA.names()).cast(RECORD_SCHEMA),
        problems=problem_frame,
        input_hash=input_hash,
        entries=entry_count,
    )


def reference_files(source: str, fetcher: HttpFetcher | None = None) -> Iterator[tuple[str, str, bytes]]:
    """``(category, label, bytes)`` of every category file present at ``source`` (a folder or a base URL), read
    one at a time so that only one file's bytes are in memory. A missing required file raises."""
    if (fetcher := url_fetcher(source, fetcher)) is not None:
        for category, file_name in CATEGORY_FILES.items():
            url = source.rstrip("/") + "/" + file_name
            body = fetcher.get_bytes(url, missing_ok=True)
            if body is None and category in REQUIRED_CATEGORIES:
                raise ReferenceInputError(f"{url}: required file is missing (HTTP 404)")
            if body is not None:
                yield category, url, body
        return
    folder = Path(source)
    # Every path is checked before any file is read: a folder, FIFO or device in a category's place is an error
    # naming it (never "absent", which would retire the category's keys), and no read waits on a FIFO.
    present = [category for category, file_name in CATEGORY_FILES.items() if is_present(folder / file_name)]
    for category in REQUIRED_CATEGORIES:
        if category not in present:
            raise ReferenceInputError(
                f"{folder / CATEGORY_FILES[category]}: required file is missing; MODEL_REFERENCE_SOURCE must be a "
                f"folder holding {', '.join(CATEGORY_FILES[c] for c in REQUIRED_CATEGORIES)} "
                "(e.g. sample_data/model_reference)"
            )
    for category in present:
        path = folder / CATEGORY_FILES[category]
        yield category, str(path), regular_file_bytes(path)


@collector_paused()
def load_records(
    source: str,
    *,
    max_bad_record_fraction: float = 0.5,
    fetcher: HttpFetcher | None = None,
    reuse: Callable[[str, str, str], LoadedCategory | None] | None = None,
) -> dict[str, LoadedCategory]:
    """Every category present at ``source``, validated; raises ReferenceInputError when one is unusable.

    ``reuse(category, source_file, sha256)`` may return the category as an earlier run loaded the same bytes
    (incremental runs, SPEC §9); None decodes them.
    """
    loaded: dict[str, LoadedCategory] = {}
    for category, label, raw in reference_files(source, fetcher):
        reused = reuse(category, label, hashlib.sha256(raw).hexdigest()) if reuse is not None else None
        if reused is not None:
            loaded[category] = reused
            continue
        duplicate_keys: list[str] = []
        digest, chunks = _decoded(raw, label, duplicate_keys)
        del raw  # decoded: the bytes can go (1 GB at 1000x scale)
        loaded[category] = _records_from_chunks(
            category, chunks, duplicate_keys, label, digest, max_bad_record_fraction=max_bad_record_fraction
        )
    return loaded
