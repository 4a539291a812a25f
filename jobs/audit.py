"""``horde-analytics audit``: the reference audit of the latest committed run (SPEC §11), filtered."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

import polars as pl

from jobs._cli import EXIT_FAILED, EXIT_OK, ArgumentParser, snapshot_reader_setup
from pipeline.contracts.categories import CATEGORY_FILES
from pipeline.shell.latest_audit import latest_findings
from pipeline.shell.logs import terminal_safe
from pipeline.steps.audit import severity_counts
from pipeline.steps.audit_kinds import KINDS, SEVERITIES, selected_findings


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(
        prog="horde-analytics audit",
        description=(
            "What is wrong in the reference, from the latest committed run: most urgent first, then by kind,"
            " then by category and in the reference's order."
        ),
        epilog="kinds:\n"
        + "\n".join(f"  {kind:<22} {spec.severity:<8} {spec.explanation}" for kind, spec in KINDS.items()),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--category", choices=sorted(CATEGORY_FILES), help="one category (default: all)")
    parser.add_argument("--kind", choices=sorted(KINDS), help="one kind of finding")
    parser.add_argument("--severity", choices=SEVERITIES, help="one severity")
    parser.add_argument("--json", action="store_true", help="one JSON object per finding (JSON lines)")
    parser.add_argument("--snapshot-dir", help="where the snapshots are (SNAPSHOT_DIR)")
    return parser


def format_findings(findings: pl.DataFrame) -> str:
    """One line per finding (control characters escaped), then the counts per severity."""
    lines = [
        f"{row['severity']:<8} {row['category']:<17} {row['kind']:<22} "
        f"{terminal_safe(row['name'] or '')}: {terminal_safe(row['detail'] or '')}"
        for row in findings.iter_rows(named=True)
    ]
    counts = severity_counts(findings)
    lines.append(
        f"{findings.height} findings: " + ", ".join(f"{counts[severity]} {severity}" for severity in SEVERITIES)
    )
    return "\n".join(lines)


def format_counts_line(category: str, findings: pl.DataFrame) -> str:
    """``audit <category> error E, warning W, info I``: the run summary's line per category."""
    counts = severity_counts(findings)
    return f"audit {category:<18} " + ", ".join(f"{severity} {counts[severity]}" for severity in SEVERITIES)


def main(argv: Sequence[str]) -> int:
    setup = snapshot_reader_setup(build_parser(), argv)
    if isinstance(setup, int):
        return setup
    args, settings = setup
    findings = latest_findings(settings.snapshot_dir)
    if findings is None:
        print(
            f"horde-analytics audit: no audit snapshot in {settings.snapshot_dir}; run `horde-analytics run` first",
            file=sys.stderr,
        )
        return EXIT_FAILED
    shown = selected_findings(findings, category=args.category, kind=args.kind, severity=args.severity)
    if args.json:
        columns = ["run_id", "category", "name", "kind", "severity", "detail", "value", "expected"]
        for row in shown.select(columns).iter_rows(named=True):
            print(json.dumps(row))  # ASCII-escaped: control characters cannot reach the terminal raw
    else:
        print(format_findings(shown))
    return EXIT_OK
