"""Decoding an AI Horde payload into valid rows: the typed path (msgspec), the checked path that names every bad
row, and the verdicts that the bad-row rule is applied to (SPEC §2.2)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import msgspec
import polars as pl

from pipeline.sources.bad_fraction import check_bad_fraction
from pipeline.sources.field_columns import field_columns
from pipeline.sources.horde_fields import ApiField, HordeInputError, field_problems, shown
from pipeline.sources.untrusted_json import checked_loads, checked_text, surrogates_escaped, value_problem

log = logging.getLogger(__name__)


def decoded(label: str, raw: bytes, **hooks: Any) -> Any:
    """``raw`` decoded as untrusted JSON (the checked path); malformed JSON raises naming ``label``."""
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


def with_names(label: str, frame: pl.DataFrame, column: str = "name") -> pl.DataFrame:
    """``frame`` without rows whose ``column`` is blank (logged, never counted as bad)."""
    blank = frame.select(pl.col(column).is_null() | (pl.col(column).str.strip_chars() == "")).to_series()
    blanks = blank.sum()
    if not blanks:
        return frame
    log.warning("horde rows without a name dropped", extra={"payload": label, "rows": blanks})
    return frame.filter(~blank)


def typed_payload(label: str, raw: bytes, shape: Any, *, typed: bool = True) -> Any | None:
    """``raw`` decoded straight into ``shape`` (msgspec, reading only the fields used), or None when the checked
    path must read it (or ``typed`` is False).

    The worker list is the largest payload (hundreds of MB for a big Horde): typed decoding is 3x faster than
    ``json`` and holds a fraction of the memory (Polars' own JSON reader peaked at 7x the file). Anything it
    refuses (malformed JSON, a wrong shape, a mistyped or out-of-range field, text that is not valid Unicode,
    nesting too deep to decode) takes the checked path, which names the problem.
    """
    if typed:
        try:
            return msgspec.json.decode(raw, type=shape)
        except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
            pass
    log.debug("horde payload read on the checked path", extra={"payload": label})
    return None


def rows_frame(rows: list[Any], fields: dict[str, ApiField], schema: pl.Schema, *, typed: bool) -> pl.DataFrame:
    """The ``fields`` columns of valid decoded rows as a frame of ``schema``."""
    columns = field_columns(rows, {column: spec.source for column, spec in fields.items()}, typed=typed)
    return pl.DataFrame(columns, schema={column: schema[column] for column in fields}, strict=False)


@dataclass
class Verdicts:
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
        first = self.bad[0] if self.bad else ("", "")
        check_bad_fraction(
            self.label, len(self.bad), self.rows, max_bad_fraction, first, unit="rows", error=HordeInputError
        )


def checked_rows(
    label: str, raw: bytes, fields: dict[str, ApiField], name_field: str, verdicts: Verdicts
) -> list[dict[str, Any]]:
    """The rows of a list payload that hold what ``fields`` say; every other row goes to ``verdicts``."""
    rows = _object_list(label, decoded(label, raw))
    verdicts.rows = len(rows)
    good: list[dict[str, Any]] = []
    for index, row in enumerate(rows):
        problems = field_problems(row, fields)
        problem = value_problem(row)
        if problem:
            problems.insert(0, problem)
        if not problems:
            good.append(row)
            continue
        name = row.get(name_field)
        named = surrogates_escaped(name) if type(name) is str else f"item {index} ({name_field} {shown(name)})"
        verdicts.bad.append((named, "; ".join(problems)))
    return good


def first_of_each(frame: pl.DataFrame, column: str, verdicts: Verdicts) -> pl.DataFrame:
    """``frame`` without repeated ``column`` values (the first is kept, SPEC §2.2); repeats go to ``verdicts``."""
    # Blank names are dropped later with their own warning, never counted as repeats.
    first = pl.col(column).is_first_distinct() | (pl.col(column).str.strip_chars().fill_null("") == "")
    kept = frame.select(first).to_series()
    if kept.all():
        return frame
    verdicts.add(
        frame.filter(~kept).select(
            pl.col(column).alias("name"), pl.format("repeated {}; the first is kept", pl.lit(column)).alias("reason")
        )
    )
    return frame.filter(kept)
