"""History that stays small (issue #20): a year of 240-s cycles on the real data, then retention and compaction.

    .venv/bin/python bench/history_size.py --store /tmp/year-store          # writes ~42,000 files, ~0.45 GB
    .venv/bin/python bench/history_size.py --store /tmp/year-store --keep   # leave the store for a look
    .venv/bin/python bench/history_size.py --store /tmp/day-store --before /tmp/main-checkout --rounds 3
        # only the compaction of one day, this checkout against another one (e.g. `git worktree add` of main),
        # interleaved in one sitting: wall and CPU seconds of each, and the load average

One real run on the real data (``../shared/data``) gives the tables of a run. The store is then written directly
(not by running the job 131,400 times), in the shape the maintenances of the year leave it in just before the
maintenance that follows the last commit of a day (the newest run at 23:56 UTC, the worst case for file counts):

- today and yesterday: hours 00-22 merged into one file per table, category and hour (15 runs each), the 15 runs
  of hour 23 in their own files (``SnapshotWriter``, manifest per run); yesterday is the closed day this
  maintenance compacts (its time is "compaction of one day"), today's hour 23 is still open;
- the 7 days before: 360 runs each, compacted (one file per table, category and day with the rows of all 360
  runs; 360 manifests per day naming it);
- the 357 days before those: the last run of each day only, in its own files, as retention left them;
- one day more than a year back (1 run), which retention removes; and 8 days back is the day that leaves the
  first period at this midnight: retention keeps its last run and rewrites its compacted file.

Every run has the template's rows with its own ``run_id``/``run_at`` (values otherwise identical, so compacted
files compress a little better than on live data, where usage counts change between runs).
Then, timed: the maintenance (retention + compaction) as a run does it, the index, ``query`` (the latest run's
deletion-risk table through the index) and a model's history over the year (``history(...)``, filtered by name).
The machine is shared with other engineers: figures are one run each, not medians.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))

from pipeline.contracts.settings import load_settings  # noqa: E402
from pipeline.shell.batch import run_once  # noqa: E402
from pipeline.sinks.parquet_snapshot import (  # noqa: E402
    COMPACTED_KEY,
    MANIFEST_DIR,
    SnapshotWriter,
    history,
    latest_table,
    manifests,
    run_tables,
)
from pipeline.sinks.retention import maintain_store  # noqa: E402
from pipeline.sinks.run_index import INDEX_PATH, reconcile_index  # noqa: E402
from pipeline.steps.retention_plan import RetentionPolicy, compact_file_name  # noqa: E402

RUNS_PER_DAY = 360  # 86,400 s / 240 s
NEWEST = datetime(2027, 12, 31, 23, 56, tzinfo=UTC)

Template = dict[tuple[str, str], pl.DataFrame]


def template_run(data: Path, work: Path) -> tuple[Template, dict[str, Any]]:
    """The tables of one real run on the real data (without their run columns), and its manifest."""
    root = work / "template"
    run_once(
        load_settings(
            model_reference_source=str(data / "model_reference"),
            horde_source=str(data / "horde"),
            snapshot_dir=str(root),
        )
    )
    (manifest,) = manifests(root)
    tables = run_tables(root, manifest, sorted(manifest["tables"]))
    return {key: frame.drop("run_id", "run_at", "category", "run_date") for key, frame in tables.items()}, manifest


def run_times(day: datetime, count: int) -> list[datetime]:
    """The last ``count`` cycle times of ``day`` (every 240 s, the last at 23:56)."""
    last = day.replace(hour=23, minute=56)
    return [last - timedelta(seconds=240 * (count - 1 - n)) for n in range(count)]


def run_id_at(run_at: datetime) -> str:
    return run_at.strftime("%Y%m%dT%H%M%SZ") + "-bench000"


def write_runs(root: Path, template: Template, times: list[datetime], hashes: dict[str, str]) -> None:
    for run_at in times:
        writer = SnapshotWriter(root=root, run_id=run_id_at(run_at), run_at=run_at)
        for (table, category), frame in sorted(template.items()):
            writer.write(table, category, frame)
        writer.commit(input_hashes=hashes, counts={})


def write_compacted(root: Path, template: Template, times: list[datetime], hashes: dict[str, str], period: str) -> None:
    """Runs as compaction leaves them: one file per table and category with every run's rows (``period`` a day or
    an hour), each run's manifest naming it."""
    day = times[0].date().isoformat()
    ids = [run_id_at(run_at) for run_at in times]
    stamps = pl.DataFrame(
        {"run_id": ids, "run_at": times}, schema={"run_id": pl.String, "run_at": pl.Datetime("us", "UTC")}
    )
    entries: dict[str, dict[str, Any]] = {}
    for (table, category), frame in sorted(template.items()):
        relative = f"{table}/category={category}/run_date={day}/{compact_file_name(period, ids)}"
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        stamps.join(frame, how="cross").select(*frame.columns, "run_id", "run_at").write_parquet(
            root / relative, compression="zstd", compression_level=3
        )
        entries.setdefault(table, {})[category] = {COMPACTED_KEY: relative, "rows": frame.height}
    for run_id, run_at in zip(ids, times, strict=True):
        manifest = {"run_id": run_id, "run_at": run_at.isoformat(), "tables": entries, "input_hashes": hashes}
        (root / MANIFEST_DIR / f"{run_id}.json").write_text(json.dumps(manifest, indent=1, sort_keys=True))


def write_hourly_day(root: Path, template: Template, day: datetime, hashes: dict[str, str]) -> None:
    """A day as the maintenances after each run leave it at 23:56: closed hours merged, the last hour per run."""
    times = run_times(day, RUNS_PER_DAY)
    for hour in range(23):
        in_hour = [run_at for run_at in times if run_at.hour == hour]
        write_compacted(root, template, in_hour, hashes, in_hour[0].strftime("%Y-%m-%dT%H"))
    write_runs(root, template, [run_at for run_at in times if run_at.hour == 23], hashes)


def store_size(root: Path) -> dict[str, float]:
    files = [path for path in root.rglob("*") if path.is_file()]
    return {"files": len(files), "gb": round(sum(path.stat().st_size for path in files) / 1e9, 3)}


def timed(function: Any) -> tuple[Any, float]:
    started = time.perf_counter()
    result = function()
    return result, round(time.perf_counter() - started, 3)


#: The child that compacts one day with a given checkout's code: ``python -c CHILD REPO STORE``; prints its seconds.
COMPACT_CHILD = """
import sys, time, logging
sys.path.insert(0, sys.argv[1])
from pathlib import Path
from pipeline.sinks.retention import maintain_store
from pipeline.sinks.run_index import reconcile_index
from pipeline.steps.retention_plan import RetentionPolicy
root = Path(sys.argv[2])
reconcile_index(root)  # not timed: the index as each checkout writes it
logging.disable(logging.CRITICAL)
wall, cpu = time.perf_counter(), time.process_time()
report = maintain_store(root, RetentionPolicy())
assert report.days_compacted == 1, report
print(time.perf_counter() - wall, time.process_time() - cpu)
"""


def compare_compaction(work: Path, template: Template, hashes: dict[str, str], before: Path, rounds: int) -> None:
    """Compaction of one day (yesterday as 23 hour files and the 15 runs of hour 23; today one run), by the
    checkout at ``before`` and by this one, alternately, each in a fresh process on a fresh copy of the store."""
    day_store = work / "day"
    (day_store / MANIFEST_DIR).mkdir(parents=True)
    today = NEWEST.replace(hour=0, minute=0)
    write_hourly_day(day_store, template, today - timedelta(days=1), hashes)
    write_runs(day_store, template, run_times(today, 1), hashes)
    figures: dict[str, list[tuple[float, float]]] = {"before": [], "after": []}
    for _ in range(rounds):
        for name, checkout in (("before", before), ("after", REPO)):
            copy = work / f"copy-{name}"
            shutil.copytree(day_store, copy)
            done = subprocess.run(
                [sys.executable, "-c", COMPACT_CHILD, str(checkout), str(copy)],
                capture_output=True,
                text=True,
                check=True,
            )
            wall, cpu = (float(value) for value in done.stdout.split()[-2:])
            figures[name].append((round(wall, 2), round(cpu, 2)))
            print(f"{name}: compaction of one day {wall:.2f} s wall, {cpu:.2f} s CPU; load {os.getloadavg()}")
            shutil.rmtree(copy)
    print(json.dumps(figures | {"load_average": os.getloadavg()}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(REPO.parent / "shared" / "data"), help="the real data")
    parser.add_argument("--store", required=True, help="an empty folder for the synthetic store")
    parser.add_argument("--keep", action="store_true", help="leave the store in place")
    parser.add_argument("--before", help="another checkout: compare its compaction of one day with this one's")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of the comparison (each: before, after)")
    args = parser.parse_args()
    work = Path(args.store)
    if work.exists() and any(work.iterdir()):
        raise SystemExit(f"{work} is not empty")
    root = work / "snapshots"
    (root / MANIFEST_DIR).mkdir(parents=True)
    template, manifest = template_run(Path(args.data), work)
    if args.before:
        compare_compaction(work, template, manifest["input_hashes"], Path(args.before).resolve(), args.rounds)
        if not args.keep:
            shutil.rmtree(work)
        return
    hashes = manifest["input_hashes"]
    files_per_run = sum(1 for _ in template)
    run_mb = (
        sum(
            (work / "template" / entry["path"]).stat().st_size
            for t in manifest["tables"].values()
            for entry in t.values()
        )
        / 1e6
    )
    print(f"template: {files_per_run} files per run, {run_mb:.2f} MB per run")

    started = time.perf_counter()
    today = NEWEST.replace(hour=0, minute=0)
    write_hourly_day(root, template, today, hashes)
    write_hourly_day(root, template, today - timedelta(days=1), hashes)
    for back in range(2, 9):
        times = run_times(today - timedelta(days=back), RUNS_PER_DAY)
        write_compacted(root, template, times, hashes, times[0].date().isoformat())
    for back in range(9, 366):
        write_runs(root, template, run_times(today - timedelta(days=back), 1), hashes)
    write_runs(root, template, run_times(today - timedelta(days=366), 1), hashes)  # past the year: removed
    reconcile_index(root)
    print(f"store written in {time.perf_counter() - started:.0f} s")
    before = store_size(root)
    print(f"before: {before}")

    day_seconds: dict[str, float] = {}
    day_started: dict[str, float] = {}

    def per_day(step: str, fields: dict[str, Any]) -> None:  # the maintenance's step hook: time per day
        if step == "day started":
            day_started[fields["day"]] = time.perf_counter()
        elif step == "day finished":
            day_seconds[fields["day"]] = round(time.perf_counter() - day_started[fields["day"]], 3)

    report, maintenance_s = timed(lambda: maintain_store(root, RetentionPolicy(), on_step=per_day))
    yesterday = (today - timedelta(days=1)).date().isoformat()
    day_s = day_seconds[yesterday]
    print(f"compaction of one day ({RUNS_PER_DAY} runs, from 23 hour files and 15 runs' own files): {day_s} s")
    print(f"seconds per day maintained: {day_seconds}")
    after = store_size(root)
    print(f"maintenance: {maintenance_s} s ({report})")
    print(f"after: {after}")

    risk, query_s = timed(lambda: latest_table(root, "deletion_risk", "text_generation"))
    assert risk is not None
    name = risk.sort("usage_month", descending=True)["name"][0]

    def model_history() -> pl.DataFrame:
        frame = history(root, "deletion_risk", "text_generation")
        assert frame is not None
        return frame.filter(pl.col("name") == name).select("run_at", "worker_count", "usage_month").collect()

    timeline, history_s = timed(model_history)
    print(f"query (latest run, deletion_risk text_generation, {risk.height} rows): {query_s} s")
    print(f"history of {name!r} over the year ({timeline.height} runs): {history_s} s")
    index_kb = (root / INDEX_PATH).stat().st_size / 1e3
    print(f"run index: {index_kb:.0f} kB")
    print(
        json.dumps(
            {
                "files_per_run": files_per_run,
                "run_mb": round(run_mb, 2),
                "before": before,
                "after": after,
                "maintenance_s": maintenance_s,
                "compact_one_day_s": day_s,
                "seconds_per_day": day_seconds,
                "query_s": query_s,
                "history_s": history_s,
                "history_runs": timeline.height,
                "index_kb": round(index_kb),
            }
        )
    )
    if not args.keep:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
