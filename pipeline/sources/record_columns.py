"""A reference file's entries as Python columns, one chunk at a time (SPEC §2.1).

Clean files take msgspec's typed path (``record_fields.typed_entries``); a file it refuses is read entry by entry
by ``json_entries.top_level_entries``, which names every bad record and sees repeated names.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Final

from pipeline.sources.field_columns import field_columns
from pipeline.sources.input_hash import sha256_while
from pipeline.sources.json_entries import top_level_entries
from pipeline.sources.record_fields import SAME_NAMES, typed_entries
from pipeline.sources.untrusted_json import Unusable, checked_text

#: Entries decoded and turned into columns at a time: bounds memory on million-record files.
CHUNK_ENTRIES: Final = 50_000


@dataclass(frozen=True)
class Decoding:
    """How a reference file is decoded; the outputs are the same for every choice (tests compare them)."""

    #: Entries turned into columns at a time.
    chunk_entries: int = CHUNK_ENTRIES
    #: Try the typed path first; False always takes the checked path (the slower one that names every problem).
    typed: bool = True


#: How a run decodes (the default of every loader).
DEFAULT_DECODING: Final = Decoding()


@dataclass(frozen=True, slots=True)
class ChunkColumns:
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


def dict_columns(names: list[str], values: list[Any]) -> ChunkColumns:
    """Columns of entries decoded into plain Python values, any of which may be mistyped."""
    fields = field_columns(values, SAME_NAMES, typed=False)
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
    return ChunkColumns(names, is_object, fields, urls, sizes, valid, unusable, typed=False)


def _struct_columns(names: list[str], records: list[Any]) -> ChunkColumns:
    """Columns of entries decoded by the typed decoder (every field already of an accepted kind)."""
    fields = field_columns(records, SAME_NAMES, typed=True)
    count = len(records)
    urls: list[list[str] | None] = [[]] * count
    sizes: list[list[int | None] | None] = [[]] * count
    for index in [i for i, config in enumerate(fields["config"]) if config is not None and config.download]:
        downloads = fields["config"][index].download
        urls[index] = [d.file_url for d in downloads if d.file_url]
        sizes[index] = [d.size_bytes for d in downloads if d.file_url]
    return ChunkColumns(names, [True] * count, fields, urls, sizes, [True] * count, None, typed=True)


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


def _typed_chunks(names: list[str], records: list[Any], size: int) -> Iterator[ChunkColumns]:
    while names:  # each chunk's structs are released once its columns are built
        chunk = _struct_columns(names[:size], records[:size])
        del names[:size], records[:size]
        yield chunk


def _checked_chunks(entries: Iterator[tuple[str, Any]], duplicate_keys: list[str], size: int) -> Iterator[ChunkColumns]:
    for names, values in _chunks(_first_occurrences(entries, duplicate_keys), size):
        yield dict_columns(names, values)


def decoded_chunks(
    raw: bytes, source_file: str, duplicate_keys: list[str], decoding: Decoding, sha256: str | None = None
) -> tuple[str, Iterator[ChunkColumns]]:
    """The sha256 of ``raw`` (``sha256`` when the caller knows it already) and its entries in chunks; decoding
    starts here, so the caller can drop ``raw``.

    Clean files take the typed path; any file it refuses is decoded again by the checked path, which names
    every bad record (and the line and column of malformed JSON) and sends repeated names to ``duplicate_keys``.
    """

    def typed() -> tuple[list[str], list[Any]] | None:
        return typed_entries(raw) if decoding.typed else None

    digest, typed_records = (sha256, typed()) if sha256 is not None else sha256_while(raw, typed)
    if typed_records is not None:
        return digest, _typed_chunks(*typed_records, decoding.chunk_entries)
    text = checked_text(raw)
    return digest, _checked_chunks(top_level_entries(text, source_file), duplicate_keys, decoding.chunk_entries)
