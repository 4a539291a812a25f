"""The reference audit: what is wrong or suspicious in the model reference itself, for its maintainers (SPEC §11).

Pure: records (with parsed names for text), the loader's problems and the unmatched Horde names in; one frame of
findings out (``AUDIT_SCHEMA``). A finding never removes a record: statistics and risk stay as they are. The
kinds of finding are ``audit_kinds``; the findings about parsed names (sizes, families, backend copies) are
``audit_names``.
"""

from __future__ import annotations

import json
from typing import Final

import polars as pl

from pipeline.contracts.categories import policy
from pipeline.contracts.schemas import (
    AUDIT_SCHEMA,
    CASE_DUPLICATE_REASON,
    DUPLICATE_NAME_REASON,
    ORPHAN_COPY_REASON,
    conformed,
)
from pipeline.steps.audit_kinds import ERROR, HORDE_KINDS, SEVERITIES, finding, in_audit_order
from pipeline.steps.audit_names import name_findings
from pipeline.steps.baselines import is_known_baseline
from pipeline.steps.collect_engine import ENGINE
from pipeline.steps.deletion_risk import is_blank, is_preferred_host
from pipeline.steps.statistics import download_host

__all__ = [
    "audit_json",
    "audit_table",
    "reference_audit",
    "reference_findings",
    "severity_counts",
]

#: Names listed in a ``duplicate_download`` detail before "and N more".
_NAMES_SHOWN: Final = 5
#: The columns of one finding (``audit_kinds.finding``): the audit table's but its category.
_FINDING_COLUMNS: Final = [column for column in AUDIT_SCHEMA.names() if column != "category"]


def _record_findings(records: pl.LazyFrame, category: str, preferred_file_hosts: tuple[str, ...]) -> list[pl.LazyFrame]:
    """Baselines, descriptions and downloads of any category."""
    found = [records.filter(is_blank("description")).select(finding("missing_description", pl.lit("no description")))]
    rules = policy(category)
    if not rules.free_form_baselines:
        found.append(
            records.filter(pl.col("raw_baseline").is_not_null() & ~is_known_baseline(pl.col("raw_baseline"))).select(
                finding(
                    "unknown_baseline",
                    pl.format("baseline '{}' is not in the alias table", "raw_baseline"),
                    pl.col("raw_baseline"),
                )
            )
        )
    if not rules.has_downloads:
        return found
    found.append(
        records.filter(pl.col("download_urls").list.len() == 0).select(
            finding("missing_download", pl.lit("no config.download entry with a file_url"))
        )
    )
    urls = records.select("name", pl.col("download_urls").list.unique(maintain_order=True).alias("url")).explode("url")
    # Collected once: three kinds read it, and the host regex is the costly part.
    urls = (
        urls.drop_nulls("url").with_columns(download_host(pl.col("url")).alias("_host")).collect(engine=ENGINE).lazy()
    )
    preferred = ", ".join(preferred_file_hosts)
    off_host = urls.filter(pl.col("_host").is_not_null() & ~is_preferred_host(pl.col("_host"), preferred_file_hosts))
    found.append(
        off_host.group_by("name", "_host", maintain_order=True)
        .len("_urls")
        .select(
            finding(
                "non_preferred_host",
                pl.format("{} download URL(s) on {}, not a preferred host ({})", "_urls", "_host", pl.lit(preferred)),
                pl.col("_host"),
                pl.lit(preferred),
            )
        )
    )
    found.append(
        urls.filter(pl.col("_host").is_null()).select(
            finding("invalid_download_url", pl.lit("download URL without a host"), pl.col("url"))
        )
    )
    users = pl.col("name").sort()
    more = users.len().cast(pl.Int64) - _NAMES_SHOWN
    # The detail is built once per shared URL, then joined to its users: never a list of users per user.
    shared = (
        urls.filter(pl.col("url").is_duplicated())
        .group_by("url")
        .agg(
            pl.format(
                "shared by {} models: {}{}",
                users.len(),
                users.head(_NAMES_SHOWN).str.join(", "),
                pl.when(more > 0).then(pl.format(" and {} more", more)).otherwise(pl.lit("")),
            ).alias("_detail")
        )
    )
    found.append(
        urls.join(shared, on="url", maintain_order="left").select(
            finding("duplicate_download", pl.col("_detail"), pl.col("url"))
        )
    )
    return found


def _problem_findings(records: pl.LazyFrame, problems: pl.LazyFrame) -> list[pl.LazyFrame]:
    """Findings the loader already reported as problems, under their own kinds."""
    reason = pl.col("reason")
    kept = records.select(pl.col("name").alias("_kept"), pl.col("name").str.to_lowercase().alias("_folded"))
    case_duplicates = (
        problems.filter(reason == CASE_DUPLICATE_REASON)
        .with_columns(pl.col("name").str.to_lowercase().alias("_folded"))
        .join(kept, on="_folded", how="left")
        .select(
            finding(
                "case_duplicate",
                pl.format("equal but for case to '{}', which was kept", "_kept"),
                pl.col("name"),
                pl.col("_kept"),
            )
        )
    )
    return [
        problems.filter(pl.col("severity") == ERROR).select(finding("invalid_record", reason)),
        problems.filter(reason == DUPLICATE_NAME_REASON).select(finding("duplicate_name", reason)),
        problems.filter(reason == ORPHAN_COPY_REASON).select(finding("orphan_backend_copy", reason)),
        case_duplicates,
    ]


def _unmatched_findings(unmatched: pl.LazyFrame) -> list[pl.LazyFrame]:
    """``served_not_referenced``: Horde names no record claims (SPEC §4 unmatched table)."""
    return [
        unmatched.select(
            finding(
                "served_not_referenced",
                pl.format("served by {} workers, {} uses this month; add it or its alias", "workers", "usage_month"),
                pl.col("usage_month"),
            )
        )
    ]


def reference_findings(
    category: str,
    records: pl.LazyFrame,
    *,
    problems: pl.DataFrame,
    preferred_file_hosts: tuple[str, ...] = ("huggingface.co",),
) -> pl.DataFrame:
    """The findings of SPEC §11 about the reference alone (every kind but ``HORDE_KINDS``), in the order the audit
    table lists them within a kind: what ``audit_table`` completes with the Horde's findings.

    ``records`` are the category's records; for text, with the parsed name columns and family keys (``size_b``,
    ``experts``, ``active_b``, ``_family_key``).
    """
    parts = _record_findings(records, category, preferred_file_hosts)
    if problems.height:
        parts += _problem_findings(records, problems.lazy())
    if policy(category).has_families:
        parts += name_findings(records)
    collected = [frame for frame in pl.collect_all(parts, engine=ENGINE) if frame.height]
    return pl.concat(collected) if collected else pl.DataFrame(schema=AUDIT_SCHEMA).select(_FINDING_COLUMNS)


def audit_table(category: str, reference: pl.DataFrame, unmatched: pl.DataFrame | None = None) -> pl.DataFrame:
    """The ``audit`` table of one category (``AUDIT_SCHEMA``) ``in_audit_order`` (by severity, most urgent first,
    then by kind, then in the records' order): the ``reference``'s findings and, from ``unmatched``, the Horde's.

    ``reference`` is ``reference_findings`` or, for an unchanged reference, the previous run's audit table: only
    its findings of kinds other than ``HORDE_KINDS`` are kept (the order sorts them back where they were).
    """
    parts = [reference.filter(~pl.col("kind").is_in(HORDE_KINDS)).select(_FINDING_COLUMNS)]
    if unmatched is not None:
        parts.append(_unmatched_findings(unmatched.lazy())[0].collect(engine=ENGINE))
    found = in_audit_order(pl.concat(parts, how="vertical_relaxed"))
    return conformed(found.with_columns(pl.lit(category).alias("category")), AUDIT_SCHEMA)


def reference_audit(
    category: str,
    records: pl.LazyFrame,
    *,
    problems: pl.DataFrame,
    unmatched: pl.DataFrame | None = None,
    preferred_file_hosts: tuple[str, ...] = ("huggingface.co",),
) -> pl.DataFrame:
    """Every finding of SPEC §11 for one category: ``audit_table`` of the ``reference_findings``."""
    found = reference_findings(category, records, problems=problems, preferred_file_hosts=preferred_file_hosts)
    return audit_table(category, found, unmatched)


def severity_counts(findings: pl.DataFrame) -> dict[str, int]:
    """``{severity: number of findings}`` for every severity, zeros included."""
    counted = dict(findings.group_by("severity").len().iter_rows())
    return {severity: int(counted.get(severity, 0)) for severity in SEVERITIES}


def audit_json(findings: pl.DataFrame, *, category: str, run_id: str | None) -> bytes:
    """The Redis value of ``{prefix}:analytics:audit:{category}`` (UTF-8): counts per severity and every finding.

    ``{"category", "run_id", "counts", "findings": [...]}`` as ``json.dumps`` writes it compactly with
    ``ensure_ascii=False``; the findings (one per reference problem, so as many as the reference has records) are
    encoded by Polars, which escapes strings the same way (a test holds both to the same bytes).
    """
    head = json.dumps(
        {"category": category, "run_id": run_id, "counts": severity_counts(findings)},
        separators=(",", ":"),
        ensure_ascii=False,
    )
    rows = findings.select(pl.struct(AUDIT_SCHEMA.names()[1:]).struct.json_encode().str.join(","))
    encoded: bytes = rows.to_series().cast(pl.Binary).item() if findings.height else b""
    return b"".join((head[:-1].encode(), b',"findings":[', encoded, b"]}"))
