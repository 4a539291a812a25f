"""AI Horde runtime data: the live API (httpx) or a snapshot folder -> typed Polars frames (SPEC §2.2)."""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any, Final

import polars as pl

from pipeline.schemas import HORDE_STATUS_SCHEMA, HORDE_USAGE_SCHEMA, HORDE_WORKER_SCHEMA, HordeFrames
from pipeline.sources.http import HttpFetcher

log = logging.getLogger(__name__)

HORDE_MODEL_TYPES: Final = ("image", "text")
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


def _native_list(raw: bytes, schema: dict[str, pl.DataType]) -> pl.DataFrame | None:
    """A JSON list of objects read by Polars (no Python object per row), or None to take the checked path.

    The worker list is the largest payload (hundreds of MB for a big Horde); Polars reads it natively. Anything
    unusual (not a list, a non-object item, a type it refuses) falls back to the path that names the problem.
    """
    if raw.lstrip()[:1] != b"[":
        return None
    try:
        return pl.read_json(raw, schema=schema)
    except Exception:  # the checked path below reports what is wrong, precisely
        return None


def status_frame(label: str, raw: bytes) -> pl.DataFrame:
    """``GET /v2/status/models`` -> one row per model name."""
    native = _native_list(raw, dict(HORDE_STATUS_SCHEMA))
    if native is not None:
        return _with_names(label, native.select(HORDE_STATUS_SCHEMA.names()))
    rows = _object_list(label, _decoded(label, raw))
    columns = {field: [row.get(field) for row in rows] for field in HORDE_STATUS_SCHEMA.names()}
    frame = pl.DataFrame(columns, schema=HORDE_STATUS_SCHEMA, strict=False)
    return _with_names(label, frame)


def usage_frame(label: str, raw: bytes) -> pl.DataFrame:
    """``GET /v2/stats/*/models`` -> one row per model name with day/month/total counts (0 where absent)."""
    payload = _decoded(label, raw)
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


_WORKER_FIELDS: Final = {
    "id": pl.String(),
    "name": pl.String(),
    "online": pl.Boolean(),
    "maintenance_mode": pl.Boolean(),
    "trusted": pl.Boolean(),
    "threads": pl.Int64(),
    "models": pl.List(pl.String()),
}


def workers_frame(label: str, raw: bytes) -> pl.DataFrame:
    """``GET /v2/workers`` -> one row per (worker, served model name)."""
    native = _native_list(raw, _WORKER_FIELDS)
    if native is not None:
        frame = native.select(
            pl.col("id").alias("worker_id"),
            pl.col("name").alias("worker_name"),
            "online",
            "maintenance_mode",
            "trusted",
            "threads",
            pl.col("models").fill_null([]).alias("model"),
        )
        exploded = frame.explode("model").select(HORDE_WORKER_SCHEMA.names()).cast(HORDE_WORKER_SCHEMA)
        return _with_names(label, exploded.drop_nulls("worker_id"), column="model")
    rows = _object_list(label, _decoded(label, raw))
    frame = pl.DataFrame(
        {
            "worker_id": [row.get("id") for row in rows],
            "worker_name": [row.get("name") for row in rows],
            "online": [row.get("online") for row in rows],
            "maintenance_mode": [row.get("maintenance_mode") for row in rows],
            "trusted": [row.get("trusted") for row in rows],
            "threads": [row.get("threads") for row in rows],
            "model": [m if isinstance(m := row.get("models"), list) else [] for row in rows],
        },
        schema_overrides={"model": pl.List(pl.String)} | {k: v for k, v in HORDE_WORKER_SCHEMA.items() if k != "model"},
        strict=False,
    )
    exploded = frame.explode("model").select(HORDE_WORKER_SCHEMA.names()).cast(HORDE_WORKER_SCHEMA)
    return _with_names(label, exploded.drop_nulls("worker_id"), column="model")


def _snapshot_files(model_type: str) -> dict[str, str]:
    return {
        "status": f"status_{model_type}.json",
        "usage": f"stats_{model_type}.json",
        "workers": f"workers_{model_type}.json",
    }


def read_horde_payloads(source: str, fetcher: HttpFetcher | None = None) -> dict[str, dict[str, tuple[str, bytes]]]:
    """Raw payloads per model type: ``{type: {"status"|"usage"|"workers": (label, bytes)}}``."""
    payloads: dict[str, dict[str, tuple[str, bytes]]] = {}
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
            payloads[model_type] = {}
            for kind, (url, params) in requests.items():
                body = fetcher.get_bytes(url, params)
                assert body is not None
                payloads[model_type][kind] = (f"{url}?type={params.get('type', '')}", body)
        return payloads
    folder = Path(source)
    if not folder.is_dir():
        raise HordeInputError(f"HORDE_SOURCE {source!r} is neither a folder nor an http(s) URL")
    for model_type in HORDE_MODEL_TYPES:
        payloads[model_type] = {}
        for kind, file_name in _snapshot_files(model_type).items():
            path = folder / file_name
            if not path.is_file():
                if kind == "workers":
                    continue  # optional: worker counts then come from status (SPEC §4)
                raise HordeInputError(f"{path}: missing; a Horde snapshot folder holds {file_name} per type")
            payloads[model_type][kind] = (str(path), path.read_bytes())
    return payloads


def horde_frames(payloads: dict[str, dict[str, tuple[str, bytes]]]) -> dict[str, HordeFrames]:
    """Typed frames per model type from raw payloads."""
    frames: dict[str, HordeFrames] = {}
    for model_type, parts in payloads.items():
        workers = parts.get("workers")
        frames[model_type] = HordeFrames(
            status=status_frame(*parts["status"]),
            usage=usage_frame(*parts["usage"]),
            workers=workers_frame(*workers) if workers else None,
        )
    return frames


def payload_hashes(payloads: dict[str, dict[str, tuple[str, bytes]]]) -> dict[str, str]:
    """sha256 of every payload, keyed ``horde:{type}:{kind}``."""
    return {
        f"horde:{model_type}:{kind}": hashlib.sha256(raw).hexdigest()
        for model_type, parts in payloads.items()
        for kind, (_, raw) in parts.items()
    }


def load_horde(source: str, fetcher: HttpFetcher | None = None) -> tuple[dict[str, HordeFrames], dict[str, str]]:
    """Horde frames per type and the hashes of what was read."""
    payloads = read_horde_payloads(source, fetcher)
    return horde_frames(payloads), payload_hashes(payloads)
