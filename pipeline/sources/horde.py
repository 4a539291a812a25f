"""AI Horde runtime data: the live API (httpx) or a snapshot folder -> typed Polars frames (SPEC §2.2).

Where the payloads are read: here; what each field may hold: ``horde_fields``; decoding and the bad-row rule:
``horde_rows``; one frame per payload: ``horde_tables``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from functools import partial
from typing import Final

import polars as pl

from pipeline.contracts.categories import HORDE_MODEL_TYPES
from pipeline.contracts.keys import horde_hash_key
from pipeline.contracts.rules import InputLimits
from pipeline.contracts.schemas import HordeFrames
from pipeline.sources.gc_pause import collector_paused
from pipeline.sources.horde_fields import HordeInputError as HordeInputError  # raised by the loaders
from pipeline.sources.horde_tables import status_frame, usage_frame, workers_frame
from pipeline.sources.http import HttpFetcher
from pipeline.sources.input_hash import sha256_while
from pipeline.sources.location import InputFile, input_files, input_location

#: The stats endpoint spells the image type "img".
_STATS_PATH: Final = {"image": "img", "text": "text"}


def _payload_files(model_type: str, *, from_api: bool) -> dict[str, InputFile]:
    """The three payloads of a model type, as a snapshot folder and the API hold them. A snapshot folder may lack
    workers (worker counts then come from status, SPEC §4); the API always serves them, so a 404 there fails."""
    return {
        "status": InputFile(
            f"status_{model_type}.json", "v2/status/models", {"type": model_type, "model_state": "known"}
        ),
        "usage": InputFile(
            f"stats_{model_type}.json", f"v2/stats/{_STATS_PATH[model_type]}/models", {"model_state": "known"}
        ),
        "workers": InputFile(f"workers_{model_type}.json", "v2/workers", {"type": model_type}, required=from_api),
    }


def _missing(file: InputFile, label: str) -> HordeInputError:
    return HordeInputError(f"{label}: missing; a Horde snapshot folder holds {file.file_name} per type")


def horde_payloads(source: str, fetcher: HttpFetcher | None = None) -> Iterator[tuple[str, str, str, bytes]]:
    """``(model type, "status"|"usage"|"workers", label, bytes)`` of every payload, read one at a time so that
    only one payload's bytes need be in memory."""
    location = input_location(source, fetcher)
    if not location.exists():
        raise HordeInputError(f"HORDE_SOURCE {source!r} is neither a folder nor an http(s) URL")
    wanted = {
        file: (model_type, kind)
        for model_type in HORDE_MODEL_TYPES
        for kind, file in _payload_files(model_type, from_api=location.remote).items()
    }
    for file, label, raw in input_files(location, list(wanted), _missing):
        if raw is not None:
            yield *wanted[file], label, raw


_FRAME_OF: Final[dict[str, Callable[..., pl.DataFrame]]] = {
    "status": status_frame,
    "usage": usage_frame,
    "workers": workers_frame,
}


def horde_frames(
    payloads: Iterable[tuple[str, str, str, bytes]],
    *,
    max_bad_record_fraction: float = InputLimits.max_bad_record_fraction,
    typed: bool = True,
) -> tuple[dict[str, HordeFrames], dict[str, str]]:
    """Typed frames per model type, and the sha256 of every payload keyed ``horde:{type}:{kind}``.

    ``typed=False`` reads every payload on the checked path (the same frames, slower)."""
    frames: dict[str, dict[str, pl.DataFrame]] = {}
    hashes: dict[str, str] = {}
    for model_type, kind, label, raw in payloads:
        read = partial(_FRAME_OF[kind], label, raw, max_bad_fraction=max_bad_record_fraction, typed=typed)
        digest, frame = sha256_while(raw, read)
        hashes[horde_hash_key(model_type, kind)] = digest
        frames.setdefault(model_type, {})[kind] = frame
    return {
        model_type: HordeFrames(status=parts["status"], usage=parts["usage"], workers=parts.get("workers"))
        for model_type, parts in frames.items()
    }, hashes


@collector_paused()
def load_horde(
    source: str,
    fetcher: HttpFetcher | None = None,
    *,
    max_bad_record_fraction: float = InputLimits.max_bad_record_fraction,
) -> tuple[dict[str, HordeFrames], dict[str, str]]:
    """Horde frames per type and the hashes of what was read; bad rows are reported and dropped (SPEC §2.2)."""
    return horde_frames(horde_payloads(source, fetcher), max_bad_record_fraction=max_bad_record_fraction)
