"""Each AI Horde payload as one typed Polars frame (SPEC §2.2): bad and repeated rows are reported and dropped.

``typed=False`` reads a payload on the checked path only; the frames are the same either way (tests compare them).
"""

from __future__ import annotations

import logging
from typing import Any, Final

import msgspec
import polars as pl

from pipeline.contracts.rules import InputLimits
from pipeline.contracts.schemas import HORDE_STATUS_SCHEMA, HORDE_USAGE_SCHEMA, HORDE_WORKER_SCHEMA
from pipeline.sources.field_columns import list_series
from pipeline.sources.horde_fields import (
    STATUS_FIELDS,
    USAGE_PERIODS,
    WANTED,
    WORKER_FIELDS,
    ApiField,
    Count,
    HordeInputError,
    api_struct,
    fits,
    shown,
    typed_rows_fit,
)
from pipeline.sources.horde_rows import (
    Verdicts,
    checked_rows,
    decoded,
    first_of_each,
    rows_frame,
    typed_payload,
    with_names,
)
from pipeline.sources.untrusted_json import NOT_UNICODE, surrogates_escaped

log = logging.getLogger(__name__)

_Status: Final = api_struct("Status", STATUS_FIELDS)
_Worker: Final = api_struct("Worker", WORKER_FIELDS)
_Usage: Final = msgspec.defstruct("Usage", [(period, dict[str, Count]) for period in USAGE_PERIODS], gc=False)


def _payload_rows(
    label: str, raw: bytes, shape: Any, fields: dict[str, ApiField], key: str, verdicts: Verdicts, *, typed: bool
) -> tuple[list[Any], bool]:
    """A payload's rows: typed structs when the whole payload decodes as ``shape`` (the fast path), else the
    checked rows, each bad one reported in ``verdicts``; and whether they are the typed ones."""
    typed_rows = typed_payload(label, raw, list[shape], typed=typed)
    if typed_rows is not None and typed_rows_fit(typed_rows, fields):
        verdicts.rows = len(typed_rows)
        return typed_rows, True
    return checked_rows(label, raw, fields, key, verdicts), False


def status_frame(
    label: str, raw: bytes, *, max_bad_fraction: float = InputLimits.max_bad_record_fraction, typed: bool = True
) -> pl.DataFrame:
    """``GET /v2/status/models`` -> one row per model name; bad and repeated rows are reported and dropped."""
    verdicts = Verdicts(label)
    rows, is_typed = _payload_rows(label, raw, _Status, STATUS_FIELDS, "name", verdicts, typed=typed)
    frame = rows_frame(rows, STATUS_FIELDS, HORDE_STATUS_SCHEMA, typed=is_typed)
    frame = first_of_each(frame, "name", verdicts)
    verdicts.checked(max_bad_fraction)
    return with_names(label, frame)


def _names_written_once(raw: bytes, maps: dict[str, dict[str, int]]) -> bool:
    """Whether no name is repeated within a map (a decoder keeps only the last copy, silently). With no escape
    in the text, every string is a key here (values are integers): 2 quotes per period and per name."""
    return b"\\" not in raw and raw.count(b'"') == 2 * (len(maps) + sum(map(len, maps.values())))


def _checked_usage(label: str, raw: bytes, verdicts: Verdicts) -> dict[str, dict[str, int]]:
    """The day/month/total maps without bad names (a bad or repeated value makes the name bad in every period)."""
    repeats: list[tuple[int, str]] = []

    def first_wins(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        kept: dict[str, Any] = {}
        for key, value in pairs:
            if key in kept:
                repeats.append((id(kept), key))
            else:
                kept[key] = value
        return kept

    payload = decoded(label, raw, object_pairs_hook=first_wins)
    wanted = "{'day': {name: int}, 'month': {...}, 'total': {...}}"
    if not isinstance(payload, dict):
        raise HordeInputError(f"{label}: expected {wanted}, got {type(payload).__name__}")
    for period in USAGE_PERIODS:
        if not isinstance(payload.get(period), dict):
            got = "is missing" if period not in payload else f"is a {type(payload[period]).__name__}"
            raise HordeInputError(f"{label}: expected {wanted}; '{period}' {got}")
    if any(owner == id(payload) for owner, _ in repeats):
        raise HordeInputError(f"{label}: expected {wanted}; a period appears twice")
    maps: dict[str, dict[str, Any]] = {period: payload[period] for period in USAGE_PERIODS}
    owners = {id(names): period for period, names in maps.items()}
    problems: dict[str, list[str]] = {}
    for period, names in maps.items():
        for name, value in names.items():
            if surrogates_escaped(name) != name:
                problems.setdefault(name, []).append(f"name {NOT_UNICODE}")
            elif not fits("count", value):
                problems.setdefault(name, []).append(f"'{period}' must be {WANTED['count']}, got {shown(value)}")
    bad_names = set(problems)
    every_name = {name for names in maps.values() for name in names}
    verdicts.rows = len(every_name) + len(repeats)
    verdicts.bad += [(surrogates_escaped(name), "; ".join(reasons)) for name, reasons in problems.items()]
    verdicts.bad += [
        (surrogates_escaped(name), f"repeated in '{owners[owner]}'; the first is kept") for owner, name in repeats
    ]
    return {period: {k: v for k, v in names.items() if k not in bad_names} for period, names in maps.items()}


def usage_frame(
    label: str, raw: bytes, *, max_bad_fraction: float = InputLimits.max_bad_record_fraction, typed: bool = True
) -> pl.DataFrame:
    """``GET /v2/stats/*/models`` -> one row per model name with day/month/total counts (0 where absent)."""
    verdicts = Verdicts(label)
    usage = typed_payload(label, raw, _Usage, typed=typed)
    maps = {period: getattr(usage, period) for period in USAGE_PERIODS} if usage is not None else None
    if maps is not None and not _names_written_once(raw, maps):
        log.debug("horde payload read on the checked path", extra={"payload": label, "reason": "a repeated name"})
        maps = None
    if maps is None:
        maps = _checked_usage(label, raw, verdicts)
    verdicts.checked(max_bad_fraction)
    periods = [
        pl.DataFrame(
            {"name": list(maps[period]), f"usage_{period}": list(maps[period].values())},
            schema={"name": pl.String, f"usage_{period}": pl.Int64},
        )
        for period in USAGE_PERIODS
    ]
    frame = periods[0]
    for other in periods[1:]:
        frame = frame.join(other, on="name", how="full", coalesce=True)
    return with_names(label, frame.select(HORDE_USAGE_SCHEMA.names()).fill_null(0).cast(HORDE_USAGE_SCHEMA))


def workers_frame(
    label: str, raw: bytes, *, max_bad_fraction: float = InputLimits.max_bad_record_fraction, typed: bool = True
) -> pl.DataFrame:
    """``GET /v2/workers`` -> one row per (worker, served model name); bad and repeated workers are dropped."""
    verdicts = Verdicts(label)
    rows, is_typed = _payload_rows(label, raw, _Worker, WORKER_FIELDS, "id", verdicts, typed=typed)
    fields = {column: spec for column, spec in WORKER_FIELDS.items() if column != "models"}
    models = [row.models for row in rows] if is_typed else [row.get("models") for row in rows]
    workers = rows_frame(rows, fields, HORDE_WORKER_SCHEMA, typed=is_typed)
    workers = workers.with_columns(list_series("model", models, pl.String()))
    workers = first_of_each(workers, "worker_id", verdicts)
    verdicts.checked(max_bad_fraction)
    # One row per served name; a worker serving none has no row.
    served = workers.explode("model", empty_as_null=False)
    return with_names(label, served.select(HORDE_WORKER_SCHEMA.names()), column="model")
