"""Every output of two runs, written to a folder; and the comparison of two such folders (issue #12).

A refactor must leave every snapshot table, the statistics JSON and the deletion-risk JSON unchanged, for both
``GROUP_BY_VARIANT`` settings. ``dump`` runs the job (through the package's public surface only, so it works on
any layout of the package) twice per setting into a fresh snapshot store: a first run, then a second one a day
later on the same inputs (``as_of``), so the incremental path (unchanged inputs read back from the first run) and
the history (``model_state``, ``changes``, the history fields of the risk rows) run too. Per run it writes every
table as committed, read from the store through the run's manifest (every table the manifest lists, ``problems``
included, one Parquet file per table and category), and one JSON file per statistics and deletion-risk object.
``compare`` checks two dumps table by table and object by object, ignoring what differs from run to run by design
(run ids and wall-clock timestamps; the run times themselves are fixed, so the history's dates are compared).

    .venv/bin/python bench/compare_outputs.py dump --reference ../shared/data/model_reference \\
        --horde ../shared/data/horde --out /tmp/outputs-before
    ... refactor ...
    .venv/bin/python bench/compare_outputs.py dump ... --out /tmp/outputs-after
    .venv/bin/python bench/compare_outputs.py compare /tmp/outputs-before /tmp/outputs-after

The code dumped is the ``pipeline`` Python imports: another checkout's with ``PYTHONPATH=/path/to/checkout``
(``dump`` prints which). ``compare`` exits 0 when both folders hold the same outputs, 1 (listing every difference)
otherwise.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl
from polars.testing import assert_frame_equal

#: Columns and JSON fields that differ between two runs of the same inputs by design.
VOLATILE = frozenset({"run_id", "computed_at", "started_at", "finished_at", "timestamp"})
#: The two runs of a dump: the first, and one a day later on the same inputs (SPEC §9 incremental, §10 history).
RUN_TIMES = {"run1": datetime(2026, 1, 1, tzinfo=UTC), "run2": datetime(2026, 1, 2, tzinfo=UTC)}


def committed_tables(snapshots: Path, run_id: str) -> dict[tuple[str, str], pl.DataFrame]:
    """``(table, category) -> frame`` of every table the committed run ``run_id`` lists in its manifest
    (``_runs/{run_id}.json``, SPEC §7.2), read from the files it names (only that run's rows of each)."""
    manifest = json.loads((snapshots / "_runs" / f"{run_id}.json").read_text(encoding="utf-8"))
    tables: dict[tuple[str, str], pl.DataFrame] = {}
    for table, by_category in manifest["tables"].items():
        for category, entry in by_category.items():
            frame = pl.read_parquet(snapshots / entry["path"], hive_partitioning=False)
            if "run_id" in frame.columns:  # a file that holds several runs (compacted): this run's rows
                frame = frame.filter(pl.col("run_id") == run_id)
            tables[(table, category)] = frame
    return tables


def _write_run(folder: Path, snapshots: Path, report: Any) -> None:
    (folder / "tables").mkdir(parents=True)
    (folder / "json").mkdir()
    tables = committed_tables(snapshots, report.run_id)
    for (table, category), frame in sorted(tables.items()):
        frame.write_parquet(folder / "tables" / f"{table}.{category}.parquet")
    outputs = report.outputs
    for (category, grouped), statistics in sorted(outputs.statistics.items()):
        name = f"statistics.{category}.grouped={str(grouped).lower()}.json"
        (folder / "json" / name).write_text(statistics.model_dump_json(), encoding="utf-8")
    for (category, grouped, variations), view in sorted(outputs.deletion_risk.items()):
        name = f"deletion_risk.{category}.grouped={str(grouped).lower()}.variations={str(variations).lower()}.json"
        (folder / "json" / name).write_text(view.json(), encoding="utf-8")
    table_names = sorted({table for table, _ in tables})
    print(f"{folder}: {len(tables)} tables ({len(table_names)} kinds), {len(list((folder / 'json').iterdir()))} JSON")


def dump(reference: str, horde: str, out: Path) -> None:
    """Run the job twice on ``reference`` and ``horde`` for both GROUP_BY_VARIANT settings; write every committed
    table and published object of each run to ``out``."""
    import pipeline  # the public surface: survives any move of the modules behind it

    print(f"pipeline from {Path(pipeline.__file__).parent}")
    if out.exists():
        shutil.rmtree(out)
    for group_by_variant in (False, True):
        with tempfile.TemporaryDirectory(prefix="compare-outputs-") as snapshots:
            settings = pipeline.Settings(
                model_reference_source=reference,
                horde_source=horde,
                snapshot_dir=snapshots,
                group_by_variant=group_by_variant,
                redis_url=None,
            )
            for run, as_of in RUN_TIMES.items():
                report = pipeline.run_once(settings, as_of=as_of)
                folder = out / f"group_by_variant={str(group_by_variant).lower()}" / run
                _write_run(folder, Path(snapshots), report)


def _stable(document: Any) -> Any:
    """``document`` without its volatile fields, at any depth."""
    if isinstance(document, dict):
        return {key: _stable(value) for key, value in document.items() if key not in VOLATILE}
    if isinstance(document, list):
        return [_stable(value) for value in document]
    return document


def _without_volatile(frame: pl.DataFrame) -> pl.DataFrame:
    """``frame`` without run ids and wall-clock timestamps."""
    return frame.drop([name for name in frame.columns if name in VOLATILE])


def differences(before: Path, after: Path) -> list[str]:
    """What differs between two dumps (empty when they hold the same outputs)."""
    found: list[str] = []
    names_before = {path.relative_to(before) for path in before.rglob("*") if path.is_file()}
    names_after = {path.relative_to(after) for path in after.rglob("*") if path.is_file()}
    found += [f"only in {before}: {name}" for name in sorted(names_before - names_after)]
    found += [f"only in {after}: {name}" for name in sorted(names_after - names_before)]
    for name in sorted(names_before & names_after):
        if name.suffix == ".parquet":
            left, right = pl.read_parquet(before / name), pl.read_parquet(after / name)
            left, right = _without_volatile(left), _without_volatile(right)
            try:
                assert_frame_equal(left, right, check_exact=True)
            except AssertionError as error:
                found.append(f"{name}: {str(error).splitlines()[0]}")
        else:
            left_json = _stable(json.loads((before / name).read_text(encoding="utf-8")))
            right_json = _stable(json.loads((after / name).read_text(encoding="utf-8")))
            if left_json != right_json:
                found.append(f"{name}: JSON differs")
            elif list(left_json) != list(right_json):
                found.append(f"{name}: JSON key order differs")
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    commands = parser.add_subparsers(dest="command", required=True)
    dumping = commands.add_parser("dump", help="run the job twice and write every output to a folder")
    dumping.add_argument("--reference", required=True, help="folder or base URL of the category files")
    dumping.add_argument("--horde", required=True, help="Horde snapshot folder or API URL")
    dumping.add_argument("--out", type=Path, required=True)
    comparing = commands.add_parser("compare", help="compare two dumps")
    comparing.add_argument("before", type=Path)
    comparing.add_argument("after", type=Path)
    args = parser.parse_args(argv)
    if args.command == "dump":
        dump(args.reference, args.horde, args.out)
        return 0
    found = differences(args.before, args.after)
    for line in found:
        print(line)
    files = sum(1 for path in args.before.rglob("*") if path.is_file())
    print(f"{files} outputs compared: " + (f"{len(found)} differ" if found else "identical"))
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
