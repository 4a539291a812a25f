"""``horde-analytics query``: filter the latest deletion-risk snapshot by a named preset (SPEC §6)."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

import polars as pl

from jobs._cli import EXIT_FAILED, EXIT_OK, EXIT_USAGE, ArgumentParser, parsed_or_exit, settings_or_exit
from pipeline.batch import analysis_rules
from pipeline.categories import CATEGORY_FILES
from pipeline.deletion_risk import DeletionRiskView
from pipeline.presets import PRESETS, UnknownPresetError, preset_filter
from pipeline.sinks.parquet_snapshot import latest_table

_TABLE_COLUMNS = ("name", "usage_month", "usage_percentage_of_category", "worker_count", "risk_score", "is_critical")


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(prog="horde-analytics query", description="Filter the latest deletion-risk snapshot.")
    parser.add_argument("--category", required=True, choices=sorted(CATEGORY_FILES))
    parser.add_argument("--preset", help=f"one of: {', '.join(sorted(PRESETS))} (default: every model)")
    parser.add_argument("--grouped", action="store_true", help="text families instead of models")
    parser.add_argument("--json", action="store_true", help="print the CategoryDeletionRiskResponse JSON")
    parser.add_argument("--limit", type=int, help="at most N models")
    parser.add_argument("--snapshot-dir", help="where the snapshots are (SNAPSHOT_DIR)")
    return parser


def selected_rows(risk: pl.DataFrame, *, grouped: bool, preset: pl.Expr | None) -> pl.DataFrame:
    """The risk rows of one view that pass ``preset``, sorted as SPEC §6 says."""
    rows = risk.filter(pl.col("grouped") == grouped)
    if preset is not None:
        rows = rows.filter(preset)
    return rows.sort(["usage_month", "name"], descending=[True, False])


def main(argv: Sequence[str]) -> int:
    args = parsed_or_exit(build_parser(), argv)
    if isinstance(args, int):
        return args
    if args.limit is not None and args.limit < 0:
        print("horde-analytics query: --limit must be 0 or more", file=sys.stderr)
        return EXIT_USAGE
    settings = settings_or_exit(snapshot_dir=args.snapshot_dir)
    if isinstance(settings, int):
        return settings
    rules = analysis_rules(settings).risk
    try:
        preset = preset_filter(args.preset, rules) if args.preset else None
    except UnknownPresetError as error:
        print(f"horde-analytics query: {error}", file=sys.stderr)
        return EXIT_USAGE
    risk = latest_table(Path(settings.snapshot_dir), "deletion_risk", args.category)
    if risk is None:
        print(
            f"horde-analytics query: no deletion-risk snapshot for {args.category} in {settings.snapshot_dir};"
            " run `horde-analytics run` first",
            file=sys.stderr,
        )
        return EXIT_FAILED
    rows = selected_rows(risk, grouped=args.grouped, preset=preset)
    shown = rows.head(args.limit) if args.limit is not None else rows
    if args.json:
        view = DeletionRiskView(category=args.category, table=shown, limit=args.limit, total_count=rows.height)
        print(view.response().model_dump_json(indent=1))
    else:
        with pl.Config(tbl_rows=-1, tbl_cols=-1, fmt_str_lengths=60, tbl_hide_dataframe_shape=True):
            print(shown.select(_TABLE_COLUMNS))
        print(f"{shown.height} of {rows.height} models" + (f" (preset {args.preset})" if args.preset else ""))
    return EXIT_OK
