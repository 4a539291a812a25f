"""The AI Horde API fields read, and what each may hold (SPEC §2.2: Horde data is validated like records, never
trusted): one table per payload that the checked path tests value by value and the typed path is generated from."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from operator import attrgetter
from typing import Annotated, Any, Final, TypeAlias

import msgspec

from pipeline.sources.untrusted_json import surrogates_escaped


class HordeInputError(ValueError):
    """Horde data that cannot be used (bad JSON or shape, too many bad rows); the message names the payload."""


#: Counts and usages are integers below 2^53: exact as floats (JSON readers elsewhere), far above any real count.
MAX_COUNT: Final = 2**53


@dataclass(frozen=True, slots=True)
class ApiField:
    """One API field read into a column: its name in the payload, what it may hold, whether it must be there."""

    source: str
    #: "count" (an integer in [0, 2^53)), "amount" (a number >= 0), "id" (a non-blank string), "text", "flag"
    #: (a boolean) or "names" (a list of strings).
    kind: str
    required: bool = False


Count: TypeAlias = Annotated[int, msgspec.Meta(ge=0, lt=MAX_COUNT)]
_TYPED_KINDS: Final[dict[str, Any]] = {
    "count": Count,
    "amount": Annotated[float, msgspec.Meta(ge=0)],
    # Any string: a blank one is found after decoding (``typed_rows_fit``), not by a regex run per value inside
    # the decoder, which made decoding the worker list 1.4x slower.
    "id": str,
    "text": str,
    "flag": bool,
    "names": list[str],
}
#: What each kind must be, as a message says it.
WANTED: Final = {
    "count": "an integer in [0, 2^53)",
    "amount": "a number >= 0",
    "id": "a non-blank string",
    "text": "a string",
    "flag": "true or false",
    "names": "a list of strings",
}


def fits(kind: str, value: Any) -> bool:
    """Whether a decoded JSON value is of ``kind`` (the checked path's copy of what the typed path enforces)."""
    if kind == "count":
        return type(value) is int and 0 <= value < MAX_COUNT
    if kind == "amount":
        return type(value) in (int, float) and 0 <= value < math.inf  # NaN fails both comparisons
    if kind == "id":
        return type(value) is str and value.strip() != ""
    if kind == "text":
        return type(value) is str
    if kind == "flag":
        return type(value) is bool
    return type(value) is list and all(type(item) is str for item in value)


def shown(value: Any) -> str:
    """A short, printable rendering of a rejected value for a message."""
    if type(value) in (dict, list):
        return f"a {'JSON object' if type(value) is dict else 'list'}"
    text = json.dumps(surrogates_escaped(value) if type(value) is str else value)
    return text if len(text) <= 40 else text[:37] + "..."


def field_problems(row: dict[str, Any], fields: dict[str, ApiField]) -> list[str]:
    """What is wrong with the ``fields`` of one decoded row (empty when nothing is)."""
    problems = []
    for spec in fields.values():
        value = row.get(spec.source)
        if value is None:
            if spec.required:
                problems.append(f"'{spec.source}' is missing")
        elif not fits(spec.kind, value):
            problems.append(f"'{spec.source}' must be {WANTED[spec.kind]}, got {shown(value)}")
    return problems


def api_struct(name: str, fields: dict[str, ApiField]) -> Any:
    """A msgspec struct reading ``fields`` (column -> API field) and enforcing their kinds (but for a blank "id":
    ``typed_rows_fit``); anything it refuses takes the checked path, which names the row and the field."""
    read = [
        (column, _TYPED_KINDS[spec.kind], msgspec.field(name=spec.source))
        if spec.required
        else (column, _TYPED_KINDS[spec.kind] | None, msgspec.field(default=None, name=spec.source))
        for column, spec in fields.items()
    ]
    return msgspec.defstruct(name, read, kw_only=True, gc=False)


def typed_rows_fit(rows: list[Any], fields: dict[str, ApiField]) -> bool:
    """Whether rows decoded by an ``api_struct`` hold what the decoder leaves unchecked: no blank "id"."""
    ids = [column for column, spec in fields.items() if spec.kind == "id"]
    return all(value is None or value.strip() for column in ids for value in map(attrgetter(column), rows))


#: ``GET /v2/status/models`` fields, each read into the column of the same name.
STATUS_FIELDS: Final = {
    "name": ApiField("name", "text", required=True),
    "count": ApiField("count", "count", required=True),
    "performance": ApiField("performance", "amount"),
    "queued": ApiField("queued", "amount"),
    "jobs": ApiField("jobs", "amount"),
    "eta": ApiField("eta", "count"),
    "type": ApiField("type", "text"),
}
#: The worker columns (SPEC §2.2) and the API field each comes from.
WORKER_FIELDS: Final = {
    "worker_id": ApiField("id", "id", required=True),
    "worker_name": ApiField("name", "text"),
    "online": ApiField("online", "flag", required=True),
    "maintenance_mode": ApiField("maintenance_mode", "flag", required=True),
    "trusted": ApiField("trusted", "flag"),
    "threads": ApiField("threads", "count"),
    "models": ApiField("models", "names"),
}
USAGE_PERIODS: Final = ("day", "month", "total")
