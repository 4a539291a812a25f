"""AI Horde runtime data: the live API (httpx) or a snapshot folder -> typed Polars frames (SPEC §2.2)."""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Annotated, Any, Final, TypeAlias

import msgspec
import polars as pl

from pipeline.contracts.categories import HORDE_MODEL_TYPES
from pipeline.contracts.keys import horde_hash_key
from pipeline.contracts.schemas import HORDE_STATUS_SCHEMA, HORDE_USAGE_SCHEMA, HORDE_WORKER_SCHEMA, HordeFrames
from pipeline.sources.field_columns import field_columns, list_series
from pipeline.sources.files import is_present, regular_file_bytes
from pipeline.sources.gc_pause import collector_paused
from pipeline.sources.http import HttpFetcher
from pipeline.sources.input_hash import sha256_while
from pipeline.sources.location import url_fetcher
from pipeline.sources.untrusted_json import NOT_UNICODE, checked_loads, checked_text, printable, value_problem

log = logging.getLogger(__name__)

#: The stats endpoint spells the image type "img".
_STATS_PATH: Final = {"image": "img", "text": "text"}
_USAGE_PERIODS: Final = ("day", "month", "total")


class HordeInputError(ValueError):
    """Horde data that cannot be used (bad JSON or shape, too many bad rows); the message names the payload."""


#: Counts and usages are integers below 2^53: exact as floats (JSON readers elsewhere), far above any real count.
MAX_COUNT: Final = 2**53


@dataclass(frozen=True, slots=True)
class _Field:
    """One API field read into a column: its name in the payload, what it may hold, whether it must be there."""

    source: str
    #: "count" (an integer in [0, 2^53)), "amount" (a number >= 0), "id" (a non-blank string), "text", "flag"
    #: (a boolean) or "names" (a list of strings).
    kind: str
    required: bool = False


_Count: TypeAlias = Annotated[int, msgspec.Meta(ge=0, lt=MAX_COUNT)]
_TYPED_KINDS: Final[dict[str, Any]] = {
    "count": _Count,
    "amount": Annotated[float, msgspec.Meta(ge=0)],
    "id": Annotated[str, msgspec.Meta(pattern=r"\S")],
    "text": str,
    "flag": bool,
    "names": list[str],
}
_WANTED: Final = {
    "count": "an integer in [0, 2^53)",
    "amount": "a number >= 0",
    "id": "a non-blank string",
    "text": "a string",
    "flag": "true or false",
    "names": "a list of strings",
}


def _fits(kind: str, value: Any) -> bool:
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


def _shown(value: Any) -> str:
    """A short, printable rendering of a rejected value for a message."""
    if type(value) in (dict, list):
        return f"a {'JSON object' if type(value) is dict else 'list'}"
    text = json.dumps(printable(value) if type(value) is str else value)
    return text if len(text) <= 40 else text[:37] + "..."


def _field_problems(row: dict[str, Any], fields: dict[str, _Field]) -> list[str]:
    problems = []
    for spec in fields.values():
        value = row.get(spec.source)
        if value is None:
            if spec.required:
                problems.append(f"'{spec.source}' is missing")
        elif not _fits(spec.kind, value):
            problems.append(f"'{spec.source}' must be {_WANTED[spec.kind]}, got {_shown(value)}")
    return problems


def _api_struct(name: str, fields: dict[str, _Field]) -> Any:
    """A msgspec struct reading ``fields`` (column -> API field) and enforcing their kinds; anything it refuses
    takes the checked path, which names the row and the field."""
    read = [
        (column, _TYPED_KINDS[spec.kind], msgspec.field(name=spec.source))
        if spec.required
        else (column, _TYPED_KINDS[spec.kind] | None, msgspec.field(default=None, name=spec.source))
        for column, spec in fields.items()
    ]
    return msgspec.defstruct(name, read, kw_only=True, gc=False)


def _decoded(label: str, raw: bytes, **hooks: Any) -> Any:
    try:
        return checked_loads(checked_text(raw), **hooks)
    except ValueError as error:
        raise HordeInputError(f"{label}: malformed JSON ({error})") from None


def _object_list(label: str, payload: Any) -> list[dict[str, Any]]:
    if not isinstance(payload, list):
        raise HordeInputError(f"{label}: expected a JSON list of objects, got {type(payload).__name__}")
    bad = next((index for index, item in enumerate(payload) if not isinstance(item, dict)), None)
    if bad is not None:
        raise HordeInputError(f"{label}: item {bad} is not an object")
    return payload


def _with_names(label: str, frame: pl.DataFrame, column: str = "name") -> pl.DataFrame:
    blank = frame.filter(pl.col(column).is_null() | (pl.col(column).str.strip_chars() == ""))
    if blank.height:
        log.warning("horde rows without a name dropped", extra={"payload": label, "rows": blank.height})
    return frame.filter(pl.col(column).is_not_null() & (pl.col(column).str.strip_chars() != ""))


def _typed(raw: bytes, shape: Any) -> Any | None:
    """``raw`` decoded straight into ``shape`` (msgspec, reading only the fields used), or None on any error.

    The worker list is the largest payload (hundreds of MB for a big Horde): typed decoding is 3x faster than
    ``json`` and holds a fraction of the memory (Polars' own JSON reader peaked at 7x the file). Anything it
    refuses (malformed JSON, a wrong shape, a mistyped or out-of-range field, text that is not valid Unicode,
    nesting too deep to decode) takes the checked path, which names the problem.
    """
    try:
        return msgspec.json.decode(raw, type=shape)
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
        return None


def _rows_frame(rows: list[Any], fields: dict[str, _Field], schema: pl.Schema, *, typed: bool) -> pl.DataFrame:
    """The ``fields`` columns of valid decoded rows as a frame of ``schema``."""
    columns = field_columns(rows, {column: spec.source for column, spec in fields.items()}, typed=typed)
    return pl.DataFrame(columns, schema={column: schema[column] for column in fields}, strict=False)


@dataclass
class _Verdicts:
    """The bad rows of one payload (name, reason) and how many rows it had, for the MAX_BAD_RECORD_FRACTION rule."""

    label: str
    rows: int = 0
    bad: list[tuple[str, str]] = field(default_factory=list)

    def add(self, frame: pl.DataFrame) -> None:
        self.bad += frame.select(pl.col("name").cast(pl.String), "reason").rows()

    def checked(self, max_bad_fraction: float) -> None:
        """Report every bad row (file and name); raise when there are too many to trust the rest."""
        for name, reason in self.bad:
            log.error("input problem", extra={"file": self.label, "entry": name, "reason": reason})
        if self.rows and len(self.bad) / self.rows > max_bad_fraction:
            name, reason = self.bad[0]
            raise HordeInputError(
                f"{self.label}: {len(self.bad)} of {self.rows} rows are bad, more than MAX_BAD_RECORD_FRACTION="
                f"{max_bad_fraction}; first: {name!r}: {reason}"
            )


def _checked_rows(
    label: str, raw: bytes, fields: dict[str, _Field], name_field: str, verdicts: _Verdicts
) -> list[dict[str, Any]]:
    """The rows of a list payload that hold what ``fields`` say; every other row goes to ``verdicts``."""
    rows = _object_list(label, _decoded(label, raw))
    verdicts.rows = len(rows)
    good: list[dict[str, Any]] = []
    for index, row in enumerate(rows):
        problems = _field_problems(row, fields)
        problem = value_problem(row)
        if problem:
            problems.insert(0, problem)
        if not problems:
            good.append(row)
            continue
        name = row.get(name_field)
        shown = printable(name) if type(name) is str else f"item {index} ({name_field} {_shown(name)})"
        verdicts.bad.append((shown, "; ".join(problems)))
    return good


def _first_of_each(frame: pl.DataFrame, column: str, verdicts: _Verdicts) -> pl.DataFrame:
    """``frame`` without repeated ``column`` values (the first is kept, SPEC §2.2); repeats go to ``verdicts``."""
    # Blank names are dropped later with their own warning, never counted as repeats.
    first = pl.col(column).is_first_distinct() | (pl.col(column).str.strip_chars().fill_null("") == "")
    verdicts.add(
        frame.filter(~first).select(
            pl.col(column).alias("name"), pl.format("repeated {}; the first is kept", pl.lit(column)).alias("reason")
        )
    )
    return frame.filter(first)


#: ``GET /v2/status/models`` fields, each read into the column of the same name.
_STATUS_FIELDS: Final = {
    "name": _Field("name", "text", required=True),
    "count": _Field("count", "count", required=True),
    "performance": _Field("performance", "amount"),
    "queued": _Field("queued", "amount"),
    "jobs": _Field("jobs", "amount"),
    "eta": _Field("eta", "count"),
    "type": _Field("type", "text"),
}
_Status: Final = _api_struct("Status", _STATUS_FIELDS)


def status_frame(label: str, raw: bytes, *, max_bad_fraction: float = 0.5) -> pl.DataFrame:
    """``GET /v2/status/models`` -> one row per model name; bad and repeated rows are reported and dropped."""
    verdicts = _Verdicts(label)
    typed = _typed(raw, list[_Status])  # type: ignore[valid-type]
    if typed is not None:
        verdicts.rows = len(typed)
    rows = typed if typed is not None else _checked_rows(label, raw, _STATUS_FIELDS, "name", verdicts)
    frame = _rows_frame(rows, _STATUS_FIELDS, HORDE_STATUS_SCHEMA, typed=typed is not None)
    frame = _first_of_each(frame, "name", verdicts)
    verdicts.checked(max_bad_fraction)
    return _with_names(label, frame)


_Usage: Final = msgspec.defstruct("Usage", [(period, dict[str, _Count]) for period in _USAGE_PERIODS], gc=False)


def _names_written_once(raw: bytes, maps: dict[str, dict[str, int]]) -> bool:
    """Whether no name is repeated within a map (a decoder keeps only the last copy, silently). With no escape
    in the text, every string is a key here (values are integers): 2 quotes per period and per name."""
    return b"\\" not in raw and raw.count(b'"') == 2 * (len(maps) + sum(map(len, maps.values())))


def _checked_usage(label: str, raw: bytes, verdicts: _Verdicts) -> dict[str, dict[str, int]]:
    """The day/month/total maps without bad names (a bad or repeated value makes the name bad in every period)."""
    repeats: list[tuple[int, str]] = []

    def first_wins(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        decoded: dict[str, Any] = {}
        for key, value in pairs:
            if key in decoded:
                repeats.append((id(decoded), key))
            else:
                decoded[key] = value
        return decoded

    payload = _decoded(label, raw, object_pairs_hook=first_wins)
    wanted = "{'day': {name: int}, 'month': {...}, 'total': {...}}"
    if not isinstance(payload, dict):
        raise HordeInputError(f"{label}: expected {wanted}, got {type(payload).__name__}")
    for period in _USAGE_PERIODS:
        if not isinstance(payload.get(period), dict):
            got = "is missing" if period not in payload else f"is a {type(payload[period]).__name__}"
            raise HordeInputError(f"{label}: expected {wanted}; '{period}' {got}")
    if any(owner == id(payload) for owner, _ in repeats):
        raise HordeInputError(f"{label}: expected {wanted}; a period appears twice")
    maps: dict[str, dict[str, Any]] = {period: payload[period] for period in _USAGE_PERIODS}
    owners = {id(names): period for period, names in maps.items()}
    problems: dict[str, list[str]] = {}
    for period, names in maps.items():
        for name, value in names.items():
            if printable(name) != name:
                problems.setdefault(name, []).append(f"name {NOT_UNICODE}")
            elif not _fits("count", value):
                problems.setdefault(name, []).append(f"'{period}' must be {_WANTED['count']}, got {_shown(value)}")
    bad_names = set(problems)
    every_name = {name for names in maps.values() for name in names}
    verdicts.rows = len(every_name) + len(repeats)
    verdicts.bad += [(printable(name), "; ".join(reasons)) for name, reasons in problems.items()]
    verdicts.bad += [(printable(name), f"repeated in '{owners[owner]}'; the first is kept") for owner, name in repeats]
    return {period: {k: v for k, v in names.items() if k not in bad_names} for period, names in maps.items()}


def usage_frame(label: str, raw: bytes, *, max_bad_fraction: float = 0.5) -> pl.DataFrame:
    """``GET /v2/stats/*/models`` -> one row per model name with day/month/total counts (0 where absent)."""
    verdicts = _Verdicts(label)
    typed = _typed(raw, _Usage)
    maps = {period: getattr(typed, period) for period in _USAGE_PERIODS} if typed is not None else None
    if maps is None or not _names_written_once(raw, maps):
        maps = _checked_usage(label, raw, verdicts)
    verdicts.checked(max_bad_fraction)
    periods = [
        pl.DataFrame(
            {"name": list(maps[period]), f"usage_{period}": list(maps[period].values())},
            schema={"name": pl.String, f"usage_{period}": pl.Int64},
        )
        for period in _USAGE_PERIODS
    ]
    frame = periods[0]
    for other in periods[1:]:
        frame = frame.join(other, on="name", how="full", coalesce=True)
    return _with_names(label, frame.select(HORDE_USAGE_SCHEMA.names()).fill_null(0).cast(HORDE_USAGE_SCHEMA))


#: The worker columns (SPEC §2.2) and the API field each comes from.
_WORKER_FIELDS: Final = {
    "worker_id": _Field("id", "id", required=True),
    "worker_name": _Field("name", "text"),
    "online": _Field("online", "flag", required=True),
    "maintenance_mode": _Field("maintenance_mode", "flag", required=True),
    "trusted": _Field("trusted", "flag"),
    "threads": _Field("threads", "count"),
    "models": _Field("models", "names"),
}
_Worker: Final = _api_struct("Worker", _WORKER_FIELDS)


def workers_frame(label: str, raw: bytes, *, max_bad_fraction: float = 0.5) -> pl.DataFrame:
    """``GET /v2/workers`` -> one row per (worker, served model name); bad and repeated workers are dropped."""
    verdicts = _Verdicts(label)
    typed = _typed(raw, list[_Worker])  # type: ignore[valid-type]
    if typed is not None:
        verdicts.rows = len(typed)
    rows = typed if typed is not None else _checked_rows(label, raw, _WORKER_FIELDS, "id", verdicts)
    fields = {column: spec for column, spec in _WORKER_FIELDS.items() if column != "models"}
    models = [row.models for row in typed] if typed is not None else [row.get("models") for row in rows]
    workers = _rows_frame(rows, fields, HORDE_WORKER_SCHEMA, typed=typed is not None)
    workers = workers.with_columns(list_series("model", models, pl.String()))
    workers = _first_of_each(workers, "worker_id", verdicts)
    verdicts.checked(max_bad_fraction)
    # One row per served name; a worker serving none has no row.
    served = workers.explode("model", empty_as_null=False)
    return _with_names(label, served.select(HORDE_WORKER_SCHEMA.names()), column="model")


def _snapshot_files(model_type: str) -> dict[str, str]:
    return {
        "status": f"status_{model_type}.json",
        "usage": f"stats_{model_type}.json",
        "workers": f"workers_{model_type}.json",
    }


def horde_payloads(source: str, fetcher: HttpFetcher | None = None) -> Iterator[tuple[str, str, str, bytes]]:
    """``(model type, "status"|"usage"|"workers", label, bytes)`` of every payload, read one at a time so that
    only one payload's bytes need be in memory."""
    if (fetcher := url_fetcher(source, fetcher)) is not None:
        base = source.rstrip("/")
        for model_type in HORDE_MODEL_TYPES:
            requests = {
                "status": (f"{base}/v2/status/models", {"type": model_type, "model_state": "known"}),
                "usage": (f"{base}/v2/stats/{_STATS_PATH[model_type]}/models", {"model_state": "known"}),
                "workers": (f"{base}/v2/workers", {"type": model_type}),
            }
            for kind, (url, params) in requests.items():
                body = fetcher.get_bytes(url, params)
                assert body is not None
                yield model_type, kind, f"{url}?type={params.get('type', '')}", body
        return
    folder = Path(source)
    if not folder.is_dir():
        raise HordeInputError(f"HORDE_SOURCE {source!r} is neither a folder nor an http(s) URL")
    # Every file is checked before any is read. Workers are optional (worker counts then come from status, SPEC
    # §4), but a workers path holding a folder, FIFO or device raises: it never silently means "no workers".
    present = {
        (model_type, kind): is_present(folder / file_name)
        for model_type in HORDE_MODEL_TYPES
        for kind, file_name in _snapshot_files(model_type).items()
    }
    for model_type in HORDE_MODEL_TYPES:
        for kind, file_name in _snapshot_files(model_type).items():
            if kind != "workers" and not present[model_type, kind]:
                raise HordeInputError(
                    f"{folder / file_name}: missing; a Horde snapshot folder holds {file_name} per type"
                )
    for model_type in HORDE_MODEL_TYPES:
        for kind, file_name in _snapshot_files(model_type).items():
            if present[model_type, kind]:
                path = folder / file_name
                yield model_type, kind, str(path), regular_file_bytes(path)


_FRAME_OF: Final = {"status": status_frame, "usage": usage_frame, "workers": workers_frame}


def horde_frames(
    payloads: Iterable[tuple[str, str, str, bytes]], *, max_bad_record_fraction: float = 0.5
) -> tuple[dict[str, HordeFrames], dict[str, str]]:
    """Typed frames per model type, and the sha256 of every payload keyed ``horde:{type}:{kind}``."""
    frames: dict[str, dict[str, pl.DataFrame]] = {}
    hashes: dict[str, str] = {}
    for model_type, kind, label, raw in payloads:
        read = partial(_FRAME_OF[kind], label, raw, max_bad_fraction=max_bad_record_fraction)
        digest, frame = sha256_while(raw, read)
        hashes[horde_hash_key(model_type, kind)] = digest
        frames.setdefault(model_type, {})[kind] = frame
    return {
        model_type: HordeFrames(status=parts["status"], usage=parts["usage"], workers=parts.get("workers"))
        for model_type, parts in frames.items()
    }, hashes


@collector_paused()
def load_horde(
    source: str, fetcher: HttpFetcher | None = None, *, max_bad_record_fraction: float = 0.5
) -> tuple[dict[str, HordeFrames], dict[str, str]]:
    """Horde frames per type and the hashes of what was read; bad rows are reported and dropped (SPEC §2.2)."""
    return horde_frames(horde_payloads(source, fetcher), max_bad_record_fraction=max_bad_record_fraction)
