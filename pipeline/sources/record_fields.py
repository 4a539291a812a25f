"""The record fields read from a reference file and the JSON kinds each accepts (SPEC §2.1): one table that the
checked path tests value by value and the typed path (msgspec) is generated from."""

from __future__ import annotations

import functools
import operator
from typing import Any, Final

import msgspec
import polars as pl

# JSON kinds accepted per record field. Anything else makes the record bad, named with the field.
_STR: Final = (str,)
FIELD_KINDS: Final[dict[str, tuple[type, ...]]] = {
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
#: Each field read under its own name, as ``field_columns`` takes them.
SAME_NAMES: Final = {field: field for field in FIELD_KINDS}
STRING_LIST_FIELDS: Final = ("tags", "trigger")
#: What ``config.download`` must hold (the one nested shape read).
DOWNLOADS_WANTED: Final = "config.download must be a list of {file_url: str, size_bytes: int}"


def _type_name(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def kind_reasons(columns: dict[str, list[Any]]) -> list[pl.Expr]:
    """Reasons for values of a kind ``FIELD_KINDS`` does not accept, and for non-string list items (the checked
    path's per-value checks; evaluated over a frame with an ``is_object`` column)."""
    reasons: list[pl.Expr] = []
    # A field is checked value by value only when the set of its types (one C-level pass) holds a wrong one.
    for field, kinds in FIELD_KINDS.items():
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
    for field in STRING_LIST_FIELDS:
        items = {type(item) for value in columns[field] if type(value) is list for item in value}
        if items <= {str}:
            continue
        items_ok = pl.Series(
            [type(v) is not list or all(type(item) is str for item in v) for v in columns[field]], dtype=pl.Boolean
        )
        reasons.append(pl.when(~pl.lit(items_ok)).then(pl.lit(f"field '{field}' must be a list of strings")))
    return reasons


class _Download(msgspec.Struct, gc=False):
    file_url: str = ""
    size_bytes: int | None = None


class _Config(msgspec.Struct, gc=False):
    download: list[_Download] | None = None


def _decoded_type(kinds: tuple[type, ...], field: str) -> Any:
    """The msgspec type accepting exactly the JSON kinds ``FIELD_KINDS`` allows for ``field``, or null."""
    if field == "config":
        return _Config | None  # the one nested shape read (config.download), as the checked path checks it
    accepted: list[Any] = []
    for kind in kinds:
        if kind is list:
            accepted.append(list[str] if field in STRING_LIST_FIELDS else list[msgspec.Raw])
        elif kind is dict:
            accepted.append(dict[str, msgspec.Raw])  # only counted: left undecoded
        else:
            accepted.append(kind)
    return functools.reduce(operator.or_, accepted) | None


_TYPED_FIELDS: Final = [(field, _decoded_type(kinds, field), None) for field, kinds in FIELD_KINDS.items()]


def typed_entries(raw: bytes) -> tuple[list[str], list[Any]] | None:
    """Names and records of a ``{name: record}`` file in one typed pass, or None when the checked path is needed.

    msgspec decodes straight into structs of the fields read, enforcing ``FIELD_KINDS`` (3-5x faster than
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
