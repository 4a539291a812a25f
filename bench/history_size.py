"""History that stays small (issue #20): a year of 240-s cycles on the real data, then retention and compaction.

    .venv/bin/python bench/history_size.py --store /tmp/year-store          # writes ~70,000 files, ~2 GB
    .venv/bin/python bench/history_size.py --store /tmp/year-store --keep   # leave the store for a look

One real run on the real data (``../shared/data``) gives the tables of a run. The store is then written directly
(not by running the job 131,400 times), in the shape the store has just before the maintenance that follows the
last commit of a day (the newest run at 23:56 UTC, so today holds its full 360 runs, the worst case):

- today and yesterday: 360 runs each, every run its own files (``SnapshotWriter``, manifest per run): yesterday is
  the closed day this maintenance compacts (its time is the "compaction of one day"), today is open;
- the 6 days before: 360 runs each, already compacted (one file per table, category and day, the rows of all 360
  runs; 360 manifests per day naming it), as earlier maintenances left them;
- the 358 days before those: the last run of each day only (own files, one manifest), as retention left them;
- one day more than a year back (1 run) and, 8 days back, a day with all its 360 runs (own files): the work
  retention does at the first run after midnight (that day keeps its last run only, the year-old day goes).

Every run has the template's rows with its own ``run_id``/``run_at`` (values otherwise identical, so compacted
files compress a little better than on live data, where usage counts change between runs).
Then, timed: the maintenance (retention + compaction) as a run does it, the index, ``query`` (the latest run's
deletion-risk table through the index) and a model's history over the year (``history(...)``, filtered by name).
The machine is shared with other engineers: figures are one run each, not medians.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))

from pipeline.batch import run_once  # noqa: E402
from pipeline.retention_plan import RetentionPolicy, compact_file_name  # noqa: E402
from pipeline.settings import load_settings  # noqa: E402
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


def write_compacted_day(root: Path, template: Template, times: list[datetime], hashes: dict[str, str]) -> None:
    """A day as compaction leaves it: one file per table and category with every run's rows, manifests naming it."""
    day = times[0].date().isoformat()
    ids = [run_id_at(run_at) for run_at in times]
    stamps = pl.DataFrame(
        {"run_id": ids, "run_at": times}, schema={"run_id": pl.String, "run_at": pl.Datetime("us", "UTC")}
    )
    entries: dict[str, dict[str, Any]] = {}
    for (table, category), frame in sorted(template.items()):
        relative = f"{table}/category={category}/run_date={day}/{compact_file_name(day, ids)}"
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        stamps.join(frame, how="cross").select(*frame.columns, "run_id", "run_at").write_parquet(
            root / relative, compression="zstd", compression_level=3
        )
        entries.setdefault(table, {})[category] = {COMPACTED_KEY: relative, "rows": frame.height}
    for run_id, run_at in zip(ids, times, strict=True):
        manifest = {"run_id": run_id, "run_at": run_at.isoformat(), "tables": entries, "input_hashes": hashes}
        (root / MANIFEST_DIR / f"{run_id}.json").write_text(json.dumps(manifest, indent=1, sort_keys=True))


def store_size(root: Path) -> dict[str, float]:
    files = [path for path in root.rglob("*") if path.is_file()]
    return {"files": len(files), "gb": round(sum(path.stat().st_size for path in files) / 1e9, 3)}


def timed(function: Any) -> tuple[Any, float]:
    started = time.perf_counter()
    result = function()
    return result, round(time.perf_counter() - started, 3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(REPO.parent / "shared" / "data"), help="the real data")
    parser.add_argument("--store", required=True, help="an empty folder for the synthetic store")
    parser.add_argument("--keep", action="store_true", help="leave the store in place")
    args = parser.parse_args()
    work = Path(args.store)
    if work.exists() and any(work.iterdir()):
        raise SystemExit(f"{work} is not empty")
    root = work / "snapshots"
    (root / MANIFEST_DIR).mkdir(parents=True)
    template, manifest = template_run(Path(args.data), work)
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
    write_runs(root, template, run_times(today, RUNS_PER_DAY), hashes)
    write_runs(root, template, run_times(today - timedelta(days=1), RUNS_PER_DAY), hashes)
    for back in range(2, 8):
        write_compacted_day(root, template, run_times(today - timedelta(days=back), RUNS_PER_DAY), hashes)
    write_runs(root, template, run_times(today - timedelta(days=8), RUNS_PER_DAY), hashes)  # retention's work
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
    print(f"compaction of one day ({RUNS_PER_DAY} runs, {files_per_run * RUNS_PER_DAY} files): {day_s} s")
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
