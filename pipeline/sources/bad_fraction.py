"""The bad-record rule shared by every input (SPEC §2.1, §2.2): bad records or rows are reported and dropped, and
the input fails when more than ``MAX_BAD_RECORD_FRACTION`` of it is bad."""

from __future__ import annotations


def check_bad_fraction(
    label: str,
    bad: int,
    total: int,
    max_bad_fraction: float,
    first: tuple[str, str],
    *,
    unit: str,
    error: type[ValueError],
) -> None:
    """Raise ``error`` naming ``label`` and the first bad ``(name, reason)`` when ``bad`` of ``total`` ``unit``
    (records, rows) is more than ``max_bad_fraction``."""
    if total and bad / total > max_bad_fraction:
        name, reason = first
        raise error(
            f"{label}: {bad} of {total} {unit} are bad, more than MAX_BAD_RECORD_FRACTION={max_bad_fraction}; "
            f"first: {name!r}: {reason}"
        )
