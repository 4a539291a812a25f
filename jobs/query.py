"""``horde-analytics query``: filter the latest deletion-risk snapshot by a named preset (SPEC §6)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import polars as pl

from jobs._cli import EXIT_FAILED, EXIT_OK, EXIT_USAGE, ArgumentParser, snapshot_reader_setup
from pipeline.contracts.categories import CATEGORY_FILES
from pipeline.contracts.rules import analysis_rules
from pipeline.shell.logs import TERMINAL_ESCAPES, terminal_safe, terminal_safe_json
from pipeline.sinks.parquet_snapshot import SnapshotReadError, latest_table
from pipeline.steps.deletion_risk import in_risk_order
from pipeline.steps.deletion_risk_view import DeletionRiskView
from pipeline.steps.presets import PRESETS, UnknownPresetError, preset_filter

_TABLE_COLUMNS = ("name", "usage_month", "usage_percentage_of_category", "worker_count", "risk_score", "is_critical")


def _limit(text: str) -> int:
    """``--limit``: a whole number, 0 or more (``1e20``, ``2.5`` and ``-1`` are refused)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, 0 or more (e.g. --limit 20), not {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more (e.g. --limit 20), not {value}")
    return value


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(prog="horde-analytics query", description="Filter the latest deletion-risk snapshot.")
    parser.add_argument("--category", required=True, choices=sorted(CATEGORY_FILES))
    parser.add_argument("--preset", help=f"one of: {', '.join(sorted(PRESETS))} (default: every model)")
    parser.add_argument("--grouped", action="store_true", help="text families instead of models")
    parser.add_argument("--json", action="store_true", help="print the CategoryDeletionRiskResponse JSON")
    parser.add_argument("--limit", type=_limit, help="at most N models")
    parser.add_argument("--snapshot-dir", help="where the snapshots are (SNAPSHOT_DIR)")
    return parser


def selected_rows(risk: pl.DataFrame, *, grouped: bool, preset: pl.Expr | None) -> pl.DataFrame:
    """The risk rows of one view that pass ``preset``, in the risk step's order (SPEC §6)."""
    rows = risk.filter(pl.col("grouped") == grouped)
    if preset is not None:
        rows = rows.filter(preset)
    return in_risk_order(rows)


def response_json(risk: pl.DataFrame, rows: pl.DataFrame, *, category: str, grouped: bool, limit: int | None) -> str:
    """The CategoryDeletionRiskResponse of the rows shown. ``category_total_month_usage`` is the whole category's
    (every model of the view in the latest run, as Redis serves it), not the sum over the rows a preset or
    ``--limit`` keeps; the summary counts the rows the preset selected (``total_count``), before ``--limit``."""
    shown = rows.head(min(limit, rows.height)) if limit is not None else rows
    total = int(risk.filter(pl.col("grouped") == grouped)["usage_month"].sum())
    summary = DeletionRiskView(category=category, table=rows).summary()
    response = DeletionRiskView(category=category, table=shown, limit=limit, total_count=rows.height).response()
    whole = response.model_copy(
        update={
            "category_total_month_usage": total,
            "summary": summary.model_copy(update={"category_total_month_usage": total}),
        }
    )
    return terminal_safe_json(whole.model_dump_json(indent=1))


def table_text(rows: pl.DataFrame, *, limit: int | None, preset: str | None) -> str:
    """The rows shown as a table, every control character in a name escaped (it must not act on the terminal)."""
    shown = rows.head(min(limit, rows.height)) if limit is not None else rows
    escaped = shown.select(_TABLE_COLUMNS).with_columns(
        pl.col(pl.String).str.replace_many(list(TERMINAL_ESCAPES), list(TERMINAL_ESCAPES.values()))
    )
    with pl.Config(tbl_rows=-1, tbl_cols=-1, fmt_str_lengths=60, tbl_hide_dataframe_shape=True):
        table = str(escaped)
    return f"{table}\n{shown.height} of {rows.height} models" + (f" (preset {preset})" if preset else "")


def main(argv: Sequence[str]) -> int:
    setup = snapshot_reader_setup(build_parser(), argv)
    if isinstance(setup, int):
        return setup
    args, settings = setup
    rules = analysis_rules(settings).risk
    try:
        preset = preset_filter(args.preset, rules) if args.preset else None
    except UnknownPresetError as error:
        print(f"horde-analytics query: {error}", file=sys.stderr)
        return EXIT_USAGE
    try:
        risk = latest_table(settings.snapshot_dir, "deletion_risk", args.category)
        if risk is None:
            print(
                f"horde-analytics query: no deletion-risk snapshot for {args.category} in {settings.snapshot_dir};"
                " run `horde-analytics run` first",
                file=sys.stderr,
            )
            return EXIT_FAILED
        rows = selected_rows(risk, grouped=args.grouped, preset=preset)
        if args.json:
            output = response_json(risk, rows, category=args.category, grouped=args.grouped, limit=args.limit)
        else:
            output = table_text(rows, limit=args.limit, preset=args.preset)
    except SnapshotReadError as error:
        print(f"horde-analytics query: {terminal_safe(str(error))}", file=sys.stderr)
        return EXIT_FAILED
    except pl.exceptions.PolarsError as error:  # a committed file that is Parquet but not a deletion-risk table
        print(
            f"horde-analytics query: the deletion-risk snapshot of {args.category} in {settings.snapshot_dir} is not"
            f" readable as a deletion-risk table ({type(error).__name__}: {terminal_safe(str(error))})",
            file=sys.stderr,
        )
        return EXIT_FAILED
    print(output)
    return EXIT_OK
