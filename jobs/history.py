"""``horde-analytics history``: one model's timeline over the committed runs, or ``--rebuild`` of model_state
(SPEC §10)."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path

import polars as pl

from jobs._cli import EXIT_FAILED, EXIT_LOCKED, EXIT_OK, EXIT_USAGE, ArgumentParser, snapshot_reader_setup
from pipeline.contracts.categories import CATEGORY_FILES
from pipeline.shell.store_upkeep import rebuild_history
from pipeline.sinks.history_store import model_timeline
from pipeline.sinks.parquet_snapshot import SnapshotLockedError


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(
        prog="horde-analytics history",
        description="A model's timeline over the committed runs, or --rebuild of the carried state.",
    )
    parser.add_argument("name", nargs="?", help="the model (or, with --grouped, the family) name")
    parser.add_argument("--category", choices=sorted(CATEGORY_FILES))
    parser.add_argument("--grouped", action="store_true", help="a text family instead of a model")
    parser.add_argument("--json", action="store_true", help="JSON lines instead of a table")
    parser.add_argument("--rebuild", action="store_true", help="recompute model_state from every committed run")
    parser.add_argument("--snapshot-dir", help="where the snapshots are (SNAPSHOT_DIR)")
    return parser


def timeline_json_lines(timeline: pl.DataFrame) -> str:
    """One JSON object per run, times as ISO 8601 UTC."""
    times = [name for name, dtype in timeline.schema.items() if dtype.is_temporal()]
    text = timeline.with_columns(pl.col(times).dt.to_string("%Y-%m-%dT%H:%M:%S%.fZ"))
    return "\n".join(json.dumps(row, separators=(",", ":")) for row in text.iter_rows(named=True))


def rebuild(root: Path | str) -> int:
    """``--rebuild``: under the snapshot lock (a run must not commit meanwhile)."""
    try:
        done = rebuild_history(root)
    except SnapshotLockedError as error:
        print(f"horde-analytics history: {error}", file=sys.stderr)
        return EXIT_LOCKED
    print(
        f"rebuilt model_state over {done.runs} committed runs: {done.states} states compared, "
        f"{len(done.rewritten)} rewritten" + "".join(f"\n  {item}" for item in done.rewritten)
    )
    return EXIT_OK


def main(argv: Sequence[str]) -> int:
    setup = snapshot_reader_setup(build_parser(), argv)
    if isinstance(setup, int):
        return setup
    args, settings = setup
    root = settings.snapshot_dir  # a folder or s3://bucket/prefix
    if args.rebuild:
        return rebuild(root)
    if args.category is None or args.name is None:
        print(
            "horde-analytics history: give --category and a model name, e.g. "
            "`horde-analytics history --category image_generation Deliberate`, or --rebuild",
            file=sys.stderr,
        )
        return EXIT_USAGE
    timeline = model_timeline(root, args.category, args.name, grouped=args.grouped)
    rows = timeline.collect(engine="streaming") if timeline is not None else None
    if rows is None or rows.height == 0:
        print(
            f"horde-analytics history: no committed run of {args.category} in {root} has {args.name!r}",
            file=sys.stderr,
        )
        return EXIT_FAILED
    if args.json:
        print(timeline_json_lines(rows))
    else:
        table = rows.with_columns(
            pl.col("run_at", "at_risk_since").dt.to_string("%Y-%m-%d %H:%M"), pl.col("flags").list.join(", ")
        )
        with pl.Config(
            tbl_rows=-1, tbl_cols=-1, fmt_str_lengths=120, tbl_width_chars=240, tbl_hide_dataframe_shape=True
        ):
            print(table)
        print(f"{rows.height} committed runs of {args.category} {args.name}")
    return EXIT_OK
