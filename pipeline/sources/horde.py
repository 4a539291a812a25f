"""AI Horde runtime data: the live API (httpx) or a snapshot folder -> typed Polars frames (SPEC §2.2)."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Iterator
from functools import partial
from pathlib import Path
from typing import Any, Final

import msgspec
import polars as pl

from pipeline.categories import HORDE_MODEL_TYPES
from pipeline.keys import horde_hash_key
from pipeline.schemas import HORDE_STATUS_SCHEMA, HORDE_USAGE_SCHEMA, HORDE_WORKER_SCHEMA, HordeFrames
from pipeline.sources.field_columns import field_columns, list_series
from pipeline.sources.gc_pause import collector_paused
from pipeline.sources.http import HttpFetcher
from pipeline.sources.input_hash import sha256_while

log = logging.getLogger(__name__)

#: The stats endpoint spells the image type "img".
_STATS_PATH: Final = {"image": "img", "text": "text"}
_USAGE_PERIODS: Final = ("day", "month", "total")


class HordeInputError(ValueError):
    """Horde data that cannot be used (bad JSON or shape); the message names the payload."""


def _decoded(label: str, raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
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
    refuses (malformed JSON, a wrong shape, a mistyped field) takes the checked path, which names the problem.
    """
    try:
        return msgspec.json.decode(raw, type=shape)
    except (msgspec.DecodeError, UnicodeDecodeError):
        return None


def _api_struct(name: str, fields: dict[str, str], schema: pl.Schema, **more: Any) -> Any:
    """A msgspec struct reading API field ``fields[column]`` into ``column``, typed as ``schema[column]`` or null;
    ``more`` adds attributes read under their own names (type given). Generated, so the schema stays the one
    place that says what a column holds."""
    read = [
        (column, schema[column].to_python() | None, msgspec.field(default=None, name=source))
        for column, source in fields.items()
    ]
    return msgspec.defstruct(name, read + [(field, kind, None) for field, kind in more.items()], gc=False)


def _rows_frame(rows: list[Any], fields: dict[str, str], schema: pl.Schema, *, typed: bool) -> pl.DataFrame:
    """The ``fields`` columns of decoded rows as a frame of ``schema`` (checked rows: a mistyped value is null)."""
    columns = field_columns(rows, fields, typed=typed)
    return pl.DataFrame(columns, schema={column: schema[column] for column in fields}, strict=False)


#: ``GET /v2/status/models`` fields, each read into the column of the same name.
_STATUS_FIELDS: Final = {column: column for column in HORDE_STATUS_SCHEMA.names()}
_Status: Final = _api_struct("Status", _STATUS_FIELDS, HORDE_STATUS_SCHEMA)


def status_frame(label: str, raw: bytes) -> pl.DataFrame:
    """``GET /v2/status/models`` -> one row per model name."""
    typed = _typed(raw, list[_Status])  # type: ignore[valid-type]
    rows = typed if typed is not None else _object_list(label, _decoded(label, raw))
    return _with_names(label, _rows_frame(rows, _STATUS_FIELDS, HORDE_STATUS_SCHEMA, typed=typed is not None))


_Usage: Final = msgspec.defstruct(
    "Usage", [(period, dict[str, int], msgspec.field(default_factory=dict)) for period in _USAGE_PERIODS], gc=False
)


def usage_frame(label: str, raw: bytes) -> pl.DataFrame:
    """``GET /v2/stats/*/models`` -> one row per model name with day/month/total counts (0 where absent)."""
    typed = _typed(raw, _Usage)
    payload = (
        {period: getattr(typed, period) for period in _USAGE_PERIODS} if typed is not None else _decoded(label, raw)
    )
    if not isinstance(payload, dict) or not all(isinstance(payload.get(p, {}), dict) for p in _USAGE_PERIODS):
        raise HordeInputError(f"{label}: expected {{'day': {{name: int}}, 'month': {{...}}, 'total': {{...}}}}")
    periods = [
        pl.DataFrame(
            {
                "name": list(payload.get(period, {})),
                f"usage_{period}": list(payload.get(period, {}).values()),
            },
            schema={"name": pl.String, f"usage_{period}": pl.Int64},
            strict=False,
        )
        for period in _USAGE_PERIODS
    ]
    frame = periods[0]
    for other in periods[1:]:
        frame = frame.join(other, on="name", how="full", coalesce=True)
    return _with_names(label, frame.select(HORDE_USAGE_SCHEMA.names()).fill_null(0).cast(HORDE_USAGE_SCHEMA))


#: The worker columns (SPEC §2.2) and the API field each comes from.
_WORKER_FIELDS: Final = {
    "worker_id": "id",
    "worker_name": "name",
    "online": "online",
    "maintenance_mode": "maintenance_mode",
    "trusted": "trusted",
    "threads": "threads",
}
_Worker: Final = _api_struct("Worker", _WORKER_FIELDS, HORDE_WORKER_SCHEMA, models=list[str] | None)


def workers_frame(label: str, raw: bytes) -> pl.DataFrame:
    """``GET /v2/workers`` -> one row per (worker, served model name)."""
    typed = _typed(raw, list[_Worker])  # type: ignore[valid-type]
    rows = typed if typed is not None else _object_list(label, _decoded(label, raw))
    models = [row.models for row in typed] if typed is not None else [row.get("models") for row in rows]
    workers = _rows_frame(rows, _WORKER_FIELDS, HORDE_WORKER_SCHEMA, typed=typed is not None)
    # One row per served name; a worker serving none (or a non-list) has no row.
    served = workers.with_columns(list_series("model", models, pl.String())).explode("model", empty_as_null=False)
    return _with_names(label, served.select(HORDE_WORKER_SCHEMA.names()).drop_nulls("worker_id"), column="model")


def _snapshot_files(model_type: str) -> dict[str, str]:
    return {
        "status": f"status_{model_type}.json",
        "usage": f"stats_{model_type}.json",
        "workers": f"workers_{model_type}.json",
    }


def horde_payloads(source: str, fetcher: HttpFetcher | None = None) -> Iterator[tuple[str, str, str, bytes]]:
    """``(model type, "status"|"usage"|"workers", label, bytes)`` of every payload, read one at a time so that
    only one payload's bytes need be in memory."""
    if source.startswith(("http://", "https://")):
        if fetcher is None:
            raise ValueError("a URL source needs an HttpFetcher")
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
    for model_type in HORDE_MODEL_TYPES:  # every required file is checked before any is read
        for kind, file_name in _snapshot_files(model_type).items():
            if kind != "workers" and not (folder / file_name).is_file():
                raise HordeInputError(
                    f"{folder / file_name}: missing; a Horde snapshot folder holds {file_name} per type"
                )
    for model_type in HORDE_MODEL_TYPES:
        for kind, file_name in _snapshot_files(model_type).items():
            path = folder / file_name
            if path.is_file():  # workers are optional: worker counts then come from status (SPEC §4)
                yield model_type, kind, str(path), path.read_bytes()


_FRAME_OF: Final = {"status": status_frame, "usage": usage_frame, "workers": workers_frame}


def horde_frames(payloads: Iterable[tuple[str, str, str, bytes]]) -> tuple[dict[str, HordeFrames], dict[str, str]]:
    """Typed frames per model type, and the sha256 of every payload keyed ``horde:{type}:{kind}``."""
    frames: dict[str, dict[str, pl.DataFrame]] = {}
    hashes: dict[str, str] = {}
    for model_type, kind, label, raw in payloads:
        digest, frame = sha256_while(raw, partial(_FRAME_OF[kind], label, raw))
        hashes[horde_hash_key(model_type, kind)] = digest
        frames.setdefault(model_type, {})[kind] = frame
    return {
        model_type: HordeFrames(status=parts["status"], usage=parts["usage"], workers=parts.get("workers"))
        for model_type, parts in frames.items()
    }, hashes


@collector_paused()
def load_horde(source: str, fetcher: HttpFetcher | None = None) -> tuple[dict[str, HordeFrames], dict[str, str]]:
    """Horde frames per type and the hashes of what was read."""
    return horde_frames(horde_payloads(source, fetcher))
