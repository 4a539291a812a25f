"""The kinds of finding the reference audit reports (SPEC §11), their severities, the columns of one finding, and
the one order findings are listed in (the audit table, ``horde-analytics audit`` and the report)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import polars as pl

__all__ = [
    "ERROR",
    "HORDE_KINDS",
    "INFO",
    "KINDS",
    "SEVERITIES",
    "WARNING",
    "AuditKind",
    "finding",
    "in_audit_order",
    "selected_findings",
    "severity_rank",
]

ERROR, WARNING, INFO = "error", "warning", "info"
#: Severities from most to least urgent: the order findings are listed in.
SEVERITIES: Final = (ERROR, WARNING, INFO)


@dataclass(frozen=True)
class AuditKind:
    """One kind of finding: how urgent it is by default and what a maintainer should do about it."""

    severity: str
    explanation: str
    #: found in the AI Horde data, not in the reference alone: the other kinds of an unchanged reference are found
    #: again as they were, so a run may read them back (SPEC §9)
    from_horde: bool = False


#: Every kind of finding (the README's table repeats this; a test ties the two).
KINDS: Final[dict[str, AuditKind]] = {
    "invalid_record": AuditKind(ERROR, "a record the loader refused (reason in detail): fix the field named"),
    "backend_copy_differs": AuditKind(ERROR, "an aphrodite/ or koboldcpp/ copy disagrees with its record"),
    "size_mismatch": AuditKind(WARNING, "a dense text model's stored parameters differ from its name by >10 %"),
    "moe_size_convention": AuditKind(INFO, "an MoE name stored at about half its total (warning when not half)"),
    "unsized_name": AuditKind(WARNING, "a text model with neither parameters nor a size in its name"),
    "family_inconsistent": AuditKind(WARNING, "members of one family disagree on baseline/nsfw/instruct/style"),
    "backend_copy_missing": AuditKind(WARNING, "a text record without its aphrodite/ or koboldcpp/ copy"),
    "orphan_backend_copy": AuditKind(WARNING, "a backend copy whose canonical record is absent"),
    "unknown_baseline": AuditKind(WARNING, "a baseline outside the published alias table"),
    "missing_description": AuditKind(WARNING, "a record without a description"),
    "missing_download": AuditKind(WARNING, "a downloadable model without any download URL"),
    "non_preferred_host": AuditKind(WARNING, "a download URL off the preferred file hosts"),
    "invalid_download_url": AuditKind(WARNING, "a download URL without a readable host"),
    "duplicate_download": AuditKind(WARNING, "one file URL used by two or more models"),
    "duplicate_name": AuditKind(WARNING, "the same name twice in one file (the first was kept)"),
    "case_duplicate": AuditKind(WARNING, "names equal but for case (the first was kept)"),
    "served_not_referenced": AuditKind(WARNING, "served on the AI Horde but not in the reference", from_horde=True),
}
#: The kinds found in the AI Horde data (``AuditKind.from_horde``).
HORDE_KINDS: Final = tuple(kind for kind, about in KINDS.items() if about.from_horde)


def finding(
    kind: str,
    detail: pl.Expr,
    value: pl.Expr | None = None,
    expected: pl.Expr | None = None,
    *,
    name: pl.Expr | None = None,
    severity: pl.Expr | None = None,
) -> list[pl.Expr]:
    """The columns of one finding of ``kind`` (its default severity unless ``severity`` is given)."""
    null = pl.lit(None, dtype=pl.String)
    return [
        (pl.col("name") if name is None else name).alias("name"),
        pl.lit(kind).alias("kind"),
        (pl.lit(KINDS[kind].severity) if severity is None else severity).alias("severity"),
        detail.alias("detail"),
        (null if value is None else value.cast(pl.String)).alias("value"),
        (null if expected is None else expected.cast(pl.String)).alias("expected"),
    ]


def severity_rank(severity: pl.Expr) -> pl.Expr:
    """0 for the most urgent severity, 1 for the next, ...; an unknown one after them all."""
    return severity.replace_strict(
        SEVERITIES, list(range(len(SEVERITIES))), default=len(SEVERITIES), return_dtype=pl.Int64
    )


def in_audit_order(findings: pl.DataFrame) -> pl.DataFrame:
    """``findings`` (or rows with ``severity`` and ``kind``) in the audit's order: most urgent severity first, then
    by kind (alphabetically), then in the order given (the records' order within one category's table).

    The one order of findings: the ``audit`` snapshot table is written in it, ``horde-analytics audit`` lists the
    latest run's findings in it (categories in the order the run wrote them), and the report's audit summary and
    examples follow it (its page sorts a table by any column on a click).
    """
    return findings.sort(severity_rank(pl.col("severity")), "kind", maintain_order=True)


def selected_findings(
    findings: pl.DataFrame, *, category: str | None = None, kind: str | None = None, severity: str | None = None
) -> pl.DataFrame:
    """The findings that pass every given filter, ``in_audit_order``."""
    for column, wanted in (("category", category), ("kind", kind), ("severity", severity)):
        if wanted is not None:
            findings = findings.filter(pl.col(column) == wanted)
    return in_audit_order(findings)
