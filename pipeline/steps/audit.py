"""The reference audit: what is wrong or suspicious in the model reference itself, for its maintainers (SPEC §11).

Pure: records (with parsed names for text), the loader's problems and the unmatched Horde names in; one frame of
findings out (``AUDIT_SCHEMA``). A finding never removes a record: statistics and risk stay as they are.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
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
from pipeline.steps.baselines import is_known_baseline
from pipeline.steps.collect_engine import ENGINE
from pipeline.steps.deletion_risk import is_preferred_host
from pipeline.steps.names.families import FAMILY_ID, FAMILY_KEY
from pipeline.steps.names.patterns import BACKEND_ALIAS_RULES
from pipeline.steps.names.spellings import backend_of, short_name
from pipeline.steps.statistics import download_host

ERROR, WARNING, INFO = "error", "warning", "info"
#: Severities from most to least urgent: the order findings are listed in.
SEVERITIES: Final = (ERROR, WARNING, INFO)

#: SPEC §11 and §3.1: a dense name's size and the stored ``parameters`` may differ by up to this share of the
#: name's size; an MoE name's stored value counts as "about half" within this share of half its total.
SIZE_TOLERANCE: Final = 0.10
_B: Final = 1_000_000_000
#: Names listed in a ``duplicate_download`` detail before "and N more".
_NAMES_SHOWN: Final = 5
#: Family fields whose members must agree (SPEC §11 ``family_inconsistent``).
FAMILY_FIELDS: Final = ("baseline", "nsfw", "instruct_format", "style")


@dataclass(frozen=True)
class AuditKind:
    """One kind of finding: how urgent it is by default and what a maintainer should do about it."""

    severity: str
    explanation: str


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
    "served_not_referenced": AuditKind(WARNING, "served on the AI Horde but not in the reference"),
}


def _finding(
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


def _blank(column: str) -> pl.Expr:
    return pl.col(column).is_null() | (pl.col(column).str.strip_chars() == "")


def _billions(count: pl.Expr) -> pl.Expr:
    """A parameter count in billions, as a maintainer reads it (``8B``, ``6.7B``)."""
    return pl.format("{}B", (count / _B).round(2))


def _size_findings(text: pl.LazyFrame) -> list[pl.LazyFrame]:
    """``size_mismatch``, ``moe_size_convention`` and ``unsized_name`` from stored parameters and parsed sizes."""
    # MoE: the parser read experts (8x7B) or an active-parameter marker (30B-A3B) from the name (SPEC §3.1).
    is_moe = pl.col("experts").is_not_null() | pl.col("active_b").is_not_null()
    stored = pl.col("parameters").cast(pl.Float64)
    total = pl.col("size_b") * _B
    sized = pl.col("parameters").is_not_null() & (pl.col("size_b") > 0)
    off_by = (stored - total).abs() / total
    half_off_by = (stored - total / 2).abs() / (total / 2)
    dense_mismatch = text.filter(sized & ~is_moe & (off_by > SIZE_TOLERANCE)).select(
        _finding(
            "size_mismatch",
            pl.format(
                "stored {} but the name says {} ({} off){}",
                _billions(stored),
                pl.col("size_label"),
                pl.format("{}%", (off_by * 100).round(0).cast(pl.Int64)),
                pl.when(half_off_by <= SIZE_TOLERANCE)
                .then(pl.lit("; about half: an MoE model whose name does not say so?"))
                .otherwise(pl.lit("")),
            ),
            pl.col("parameters"),
            total.round(0).cast(pl.Int64),
        )
    )
    moe = text.filter(sized & is_moe).select(
        _finding(
            "moe_size_convention",
            pl.when(half_off_by <= SIZE_TOLERANCE)
            .then(
                pl.format(
                    "stored {}, about half the name's total {} (the reference's MoE convention)",
                    _billions(stored),
                    _billions(total),
                )
            )
            .otherwise(
                pl.format(
                    "stored {} is {}% of the name's total {}: not the reference's MoE convention (about half)",
                    _billions(stored),
                    (stored / total * 100).round(0).cast(pl.Int64),
                    _billions(total),
                )
            ),
            pl.col("parameters"),
            (total / 2).round(0).cast(pl.Int64),
            severity=pl.when(half_off_by <= SIZE_TOLERANCE).then(pl.lit(INFO)).otherwise(pl.lit(WARNING)),
        )
    )
    unsized = text.filter(pl.col("parameters").is_null() & pl.col("size_b").is_null()).select(
        _finding("unsized_name", pl.lit("no stored parameters and no size in the name: set parameters"))
    )
    return [dense_mismatch, moe, unsized]


def _family_findings(text: pl.LazyFrame) -> list[pl.LazyFrame]:
    """``family_inconsistent``: one finding per family and field whose members hold two or more values."""
    group = FAMILY_ID if FAMILY_ID in text.collect_schema().names() else FAMILY_KEY
    # One pass over integer family ids finds the few families that disagree at all; only their rows get the
    # string work below (see the README's audit cost).
    disagreeing = (
        text.group_by(group)
        .agg(pl.col(field).drop_nulls().n_unique().alias(field) for field in FAMILY_FIELDS)
        .filter(pl.any_horizontal(pl.col(field) > 1 for field in FAMILY_FIELDS))
    )
    members = text.join(disagreeing.select(group), on=group, how="semi").collect(engine=ENGINE).lazy()
    found = []
    for field in FAMILY_FIELDS:
        as_text = pl.col(field).cast(pl.String)
        per_value = (
            members.filter(pl.col(field).is_not_null())
            .group_by(FAMILY_KEY, as_text.alias("_value"))
            .agg(pl.col("name").sort().alias("_members"), pl.len().alias("_count"))
            # The family key breaks ties, so families with the same count and value keep one order run to run.
            .sort("_count", "_value", FAMILY_KEY, descending=[True, False, False])
        )
        found.append(
            per_value.group_by(FAMILY_KEY, maintain_order=True)
            .agg(
                pl.format("'{}' ({})", "_value", pl.col("_members").list.join(", ")).alias("_parts"),
                pl.col("_value").alias("_values"),
            )
            .filter(pl.col("_values").list.len() > 1)
            .select(
                _finding(
                    "family_inconsistent",
                    pl.format("{} differs among members: {}", pl.lit(field), pl.col("_parts").list.join("; ")),
                    pl.col("_values").list.join(" | "),
                    pl.col("_values").list.first(),
                    name=pl.col(FAMILY_KEY),
                )
            )
        )
    return found


def _backend_copy_findings(text: pl.LazyFrame) -> list[pl.LazyFrame]:
    """``backend_copy_missing`` (per backend) and ``backend_copy_differs`` (per copy and field)."""
    canonical = text.filter(backend_of(pl.col("name")).is_null())
    found = []
    for backend, target in BACKEND_ALIAS_RULES.items():
        copy_name = pl.lit(backend + "/") + (pl.col("name") if target == "full" else short_name(pl.col("name")))
        has_copy = pl.col("aliases").list.eval(pl.element().str.starts_with(backend + "/")).list.any()
        found.append(
            canonical.filter(~has_copy.fill_null(False)).select(
                _finding("backend_copy_missing", pl.format("no {} copy of this record", copy_name), None, copy_name)
            )
        )
    differences = text.select("name", "copy_differences").explode("copy_differences").drop_nulls("copy_differences")
    difference = pl.col("copy_differences").struct
    found.append(
        differences.select(
            _finding(
                "backend_copy_differs",
                pl.format("{}: {} differs from the record", difference.field("copy"), difference.field("field")),
                difference.field("value"),
                difference.field("expected"),
            )
        )
    )
    return found


def _record_findings(records: pl.LazyFrame, category: str, preferred_file_hosts: tuple[str, ...]) -> list[pl.LazyFrame]:
    """Baselines, descriptions and downloads of any category."""
    found = [records.filter(_blank("description")).select(_finding("missing_description", pl.lit("no description")))]
    rules = policy(category)
    if not rules.free_form_baselines:
        found.append(
            records.filter(pl.col("raw_baseline").is_not_null() & ~is_known_baseline(pl.col("raw_baseline"))).select(
                _finding(
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
            _finding("missing_download", pl.lit("no config.download entry with a file_url"))
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
            _finding(
                "non_preferred_host",
                pl.format("{} download URL(s) on {}, not a preferred host ({})", "_urls", "_host", pl.lit(preferred)),
                pl.col("_host"),
                pl.lit(preferred),
            )
        )
    )
    found.append(
        urls.filter(pl.col("_host").is_null()).select(
            _finding("invalid_download_url", pl.lit("download URL without a host"), pl.col("url"))
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
            _finding("duplicate_download", pl.col("_detail"), pl.col("url"))
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
            _finding(
                "case_duplicate",
                pl.format("equal but for case to '{}', which was kept", "_kept"),
                pl.col("name"),
                pl.col("_kept"),
            )
        )
    )
    return [
        problems.filter(pl.col("severity") == ERROR).select(_finding("invalid_record", reason)),
        problems.filter(reason == DUPLICATE_NAME_REASON).select(_finding("duplicate_name", reason)),
        problems.filter(reason == ORPHAN_COPY_REASON).select(_finding("orphan_backend_copy", reason)),
        case_duplicates,
    ]


def _unmatched_findings(unmatched: pl.LazyFrame) -> list[pl.LazyFrame]:
    """``served_not_referenced``: Horde names no record claims (SPEC §4 unmatched table)."""
    return [
        unmatched.select(
            _finding(
                "served_not_referenced",
                pl.format("served by {} workers, {} uses this month; add it or its alias", "workers", "usage_month"),
                pl.col("usage_month"),
            )
        )
    ]


def reference_audit(
    category: str,
    records: pl.LazyFrame,
    *,
    problems: pl.DataFrame,
    unmatched: pl.DataFrame | None = None,
    preferred_file_hosts: tuple[str, ...] = ("huggingface.co",),
) -> pl.DataFrame:
    """Every finding of SPEC §11 for one category (``AUDIT_SCHEMA``): by severity, most urgent first, then by kind,
    then in the records' order.

    ``records`` are the category's records; for text, with the parsed name columns and family keys (``size_b``,
    ``experts``, ``active_b``, ``_family_key``).
    """
    parts = _record_findings(records, category, preferred_file_hosts)
    if problems.height:
        parts += _problem_findings(records, problems.lazy())
    if policy(category).has_families:
        parts += _size_findings(records) + _family_findings(records) + _backend_copy_findings(records)
    if unmatched is not None:
        parts += _unmatched_findings(unmatched.lazy())
    # Each part holds one kind (and mostly one severity): ordering the parts, not sorting the rows, lists the
    # findings most urgent first and, within a kind, in the records' order, without a sort of every row.
    collected = [frame for frame in pl.collect_all(parts, engine=ENGINE) if frame.height]
    single = [
        piece
        for frame in collected
        for piece in (
            frame.partition_by("severity", maintain_order=True) if frame["severity"].n_unique() > 1 else [frame]
        )
    ]
    single.sort(key=lambda frame: (SEVERITIES.index(frame["severity"][0]), frame["kind"][0]))
    found = pl.concat(single) if single else pl.DataFrame(schema=AUDIT_SCHEMA)
    return conformed(found.with_columns(pl.lit(category).alias("category")), AUDIT_SCHEMA)


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
