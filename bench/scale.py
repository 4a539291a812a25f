"""The whole batch at 1x..1000x scale, and a year of history (issue #6).

    .venv/bin/python bench/scale.py                       # scales 1 10 100, then the history query at 100x
    .venv/bin/python bench/scale.py --scales 1 10 100 1000 --history-days 365
    .venv/bin/python bench/scale.py --scales 100 1000 --history-days 0 --repeat 3   # medians of 3 rounds
    .venv/bin/python bench/scale.py --scales 100 --history-days 0 --steady   # cold, then steady state (SPEC §9)
    .venv/bin/python bench/scale.py --scales 100 --history-days 0 --steady --repeat 3 --no-history-cost \
        --baseline /tmp/before-checkout      # each round also runs another commit's code: before/after, interleaved
    REDIS_URL=redis://127.0.0.1:PORT/0 .venv/bin/python bench/scale.py --scales 100 --history-days 0 --steady \
        --no-history-cost --floors           # and the floors: JSON decode, Parquet read, one bare MULTI/EXEC

For each scale the generator (bench/generate.py) writes scaled inputs to a temporary folder (not timed); then a
child process runs one full `run` (load, parse, join, statistics grouped and ungrouped, deletion risk in every view,
Parquet snapshot, and Redis when REDIS_URL is set) and reports import time, time per stage, peak RSS and models per
second. The child imports the `run` command's module as the console script does; with ``--steady`` or ``--baseline``
the import's wall and CPU seconds and the start-up CPU (everything before the run: the interpreter, imports,
settings, the Redis client) are shown too. Growth is the compute time divided by the previous scale's. With
``--repeat N`` the scales run in N interleaved rounds (100x, 1000x, 100x, 1000x, ...), so a slow spell of a shared
machine hits every scale alike; each row is then the median of its N runs, with the range of compute times beside
it. Every cold run starts from an empty snapshot folder (nothing to read back); with ``--steady`` a second run
follows on that snapshot, the reference unchanged as in a hydrator's runs, and both are reported per stage with the
whole child process's time. Per stage the wall and the CPU seconds of the child process are shown (CPU: what the
work costs, whatever else a shared machine runs; Redis' own CPU is not in it). ``--baseline DIR`` runs a checkout of
another commit in the same rounds, alternating with this one, and shows the CPU ratio per stage.

History: the 100x run's snapshot is replicated into ``--history-days`` daily snapshots (every table, manifests
included, with a deterministic share of models losing their workers each day); then a child process answers
"how many of the last 90 days was each model without active workers" with scan_parquet over the manifests and
the streaming engine, reporting time and peak RSS.
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


def child_run(inputs_dir: str, snapshots_dir: str) -> dict[str, object]:
    """One full run in this process; returns timings (called in a child)."""
    inputs, snapshots = Path(inputs_dir), Path(snapshots_dir)
    # start-up as `horde-analytics run` has it: the console script imports the command's module
    started, cpu_started = time.perf_counter(), time.process_time()
    try:
        from jobs.__main__ import command_module
    except ImportError:  # a baseline checkout from before the console script imported commands this way
        import jobs.run  # noqa: F401
    else:
        command_module("run")
    from pipeline.contracts.settings import load_settings
    from pipeline.shell.batch import run_once

    imported, import_cpu = time.perf_counter() - started, time.process_time() - cpu_started
    settings = load_settings(
        model_reference_source=str(inputs / "model_reference"),
        horde_source=str(inputs / "horde"),
        snapshot_dir=str(snapshots),
    )
    publisher = None
    if settings.redis_url:
        try:
            from pipeline.sinks.redis_publisher import RedisPublisher
        except ImportError:  # a baseline checkout from before the Redis modules were split
            from pipeline.sinks.redis_cache import RedisPublisher  # type: ignore[attr-defined,no-redef]

        publisher = RedisPublisher.from_settings(settings)
    # start-up: everything this process did before the run (the interpreter, imports, settings, the Redis client)
    before_run = resource.getrusage(resource.RUSAGE_SELF)
    run_started = time.perf_counter()
    report = run_once(settings, publisher=publisher)
    total = time.perf_counter() - run_started
    models = sum(stats.total_models for (_, grouped), stats in report.outputs.statistics.items() if not grouped)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "import_s": imported,
        "import_cpu_s": import_cpu,
        "startup_cpu_s": before_run.ru_utime + before_run.ru_stime,
        "run_s": total,
        "stages": report.timings,
        # CPU seconds of this process per stage and in all (start-up included): what the work costs, whatever
        # else a shared machine runs (Redis' own CPU is not in it)
        "cpu_stages": getattr(report, "cpu_timings", {}),
        "process_cpu_s": usage.ru_utime + usage.ru_stime,
        "package": str(Path(sys.modules["pipeline"].__file__ or "").parent.parent),
        "models": models,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def child_history(snapshots_dir: str, days: str) -> dict[str, object]:
    """The 90-day no-worker query over the history (called in a child)."""
    import polars as pl

    snapshots = Path(snapshots_dir)

    from pipeline.sinks.parquet_snapshot import history

    started = time.perf_counter()
    risk = history(snapshots, "deletion_risk")
    assert risk is not None
    last_day = risk.select(pl.col("run_date").max()).collect(engine="streaming").item()
    since = last_day - __import__("datetime").timedelta(days=90)
    answer = (
        risk.filter(pl.col("run_date") > since, ~pl.col("grouped"), pl.col("no_active_workers"))
        .group_by("category", "name")
        .agg(pl.col("run_date").n_unique().alias("days_without_workers"))
        .sort("days_without_workers", "name", descending=[True, False])
        .collect(engine="streaming")
    )
    return {
        "seconds": time.perf_counter() - started,
        "rows": answer.height,
        "max_days": int(answer["days_without_workers"].max() or 0),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def child_floors(inputs_dir: str, snapshots_dir: str, repeat: str) -> dict[str, object]:
    """What the stages cannot go below, on the same bytes (called in a child, after a run with Redis): decoding the
    reference JSON (msgspec, untyped), reading its parsed tables back from the latest run's Parquet, and one
    MULTI/EXEC of that run's stored Redis values with a bare redis-py pipeline, each beside the job's own publish
    of the same values (alternating). Minimum of ``repeat`` rounds, wall and CPU seconds of this process."""
    import msgspec
    import polars as pl
    import redis

    from pipeline.contracts.settings import load_settings
    from pipeline.sinks.parquet_snapshot import manifests, read_artifact
    from pipeline.sinks.redis_publisher import RedisPublisher

    def timed(work: Callable[[], object]) -> tuple[float, float]:
        wall, cpu = time.perf_counter(), time.process_time()
        work()
        return time.perf_counter() - wall, time.process_time() - cpu

    inputs, snapshots = Path(inputs_dir), Path(snapshots_dir)
    settings = load_settings(snapshot_dir=str(snapshots))
    latest = manifests(snapshots)[-1]
    stored = read_artifact(snapshots, latest, "redis")
    publisher = RedisPublisher.from_settings(settings)
    values = publisher.restored(stored)
    reference = sorted((inputs / "model_reference").glob("*.json"))
    parquet = [
        snapshots / entry["path"]
        for table in ("records", "problems")
        for entry in latest["tables"].get(table, {}).values()
    ]
    client = redis.Redis.from_url(settings.redis_url or "")

    def bare_publish() -> None:
        pipe = client.pipeline(transaction=True)
        for key, (value, expiry) in values.items():
            pipe.set(key, value, ex=expiry)
        pipe.execute()

    def job_publish() -> None:
        with publisher.run_lock() as fence:
            assert fence is not None
            publisher.publish(values, fence)

    work: dict[str, Callable[[], object]] = {
        "json_decode": lambda: [msgspec.json.decode(path.read_bytes()) for path in reference],
        "parquet_read": lambda: [pl.read_parquet(path) for path in parquet],
        "redis_multi_exec": bare_publish,
        "publish": job_publish,
    }
    rounds: dict[str, list[tuple[float, float]]] = {name: [] for name in work}
    for _ in range(int(repeat)):
        for name, call in work.items():
            rounds[name].append(timed(call))
    result: dict[str, object] = {f"{name}_wall": min(w for w, _ in laps) for name, laps in rounds.items()}
    result |= {f"{name}_cpu": min(c for _, c in laps) for name, laps in rounds.items()}
    result["redis_mb"] = sum(len(value) for value, _ in values.values()) / 1e6
    result["json_mb"] = sum(path.stat().st_size for path in reference) / 1e6
    return result


def child_history_cost(inputs_dir: str, repeat: str) -> dict[str, object]:
    """SPEC §10's cost per run against the rest of compute, on the same loaded inputs, in CPU seconds (what the
    work costs, whatever else the machine runs) and wall seconds; the minimum of ``repeat`` rounds. The previous
    state is a committed-like one from the day before, read back from Parquet as a run reads it."""
    import datetime as dt

    import polars as pl

    from pipeline.contracts.schemas import MODEL_STATE_SCHEMA
    from pipeline.contracts.settings import load_settings
    from pipeline.shell.batch import analysis_rules, load_inputs
    from pipeline.sources.http import HttpFetcher
    from pipeline.steps.history import with_history
    from pipeline.steps.outputs import run_outputs

    inputs = Path(inputs_dir)
    settings = load_settings(model_reference_source=str(inputs / "model_reference"), horde_source=str(inputs / "horde"))
    with HttpFetcher(timeout=30, attempts=1) as fetcher:
        loaded = load_inputs(settings, fetcher)
    rules = analysis_rules(settings)
    run_at = dt.datetime(2026, 2, 2, 6, tzinfo=dt.UTC)
    first = with_history(run_outputs(loaded.records, loaded.horde, rules, computed_at=0), {}, run_at)
    folder = Path(tempfile.mkdtemp(prefix="horde-state-"))
    for (table, category), frame in first.tables.items():
        if table == "model_state":
            frame.write_parquet(folder / f"{category}.parquet", compression="zstd", compression_level=3)
    rounds = []
    for _ in range(int(repeat)):
        wall, cpu = time.perf_counter(), time.process_time()
        outputs = run_outputs(loaded.records, loaded.horde, rules, computed_at=0)
        wall_compute, cpu_compute = time.perf_counter() - wall, time.process_time() - cpu
        wall, cpu = time.perf_counter(), time.process_time()
        previous = {
            path.stem: pl.read_parquet(path, columns=MODEL_STATE_SCHEMA.names()) for path in folder.glob("*.parquet")
        }
        with_history(outputs, previous, run_at + dt.timedelta(days=1))
        rounds.append((cpu_compute, time.process_time() - cpu, wall_compute, time.perf_counter() - wall))
    return {
        "compute_cpu": min(r[0] for r in rounds),
        "history_cpu": min(r[1] for r in rounds),
        "compute_wall": min(r[2] for r in rounds),
        "history_wall": min(r[3] for r in rounds),
    }


def child_history_command(snapshots_dir: str, category: str) -> dict[str, object]:
    """``horde-analytics history --category C NAME`` over the history: one model's timeline (called in a child)."""
    import polars as pl

    from pipeline.sinks.history_store import model_timeline
    from pipeline.sinks.parquet_snapshot import latest_table

    snapshots = Path(snapshots_dir)
    risk = latest_table(snapshots, "deletion_risk", category)
    assert risk is not None
    name = risk.filter(~pl.col("grouped"))["name"][risk.height // 4]  # a model from the middle of the table
    del risk
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    started = time.perf_counter()
    timeline = model_timeline(snapshots, category, name)
    assert timeline is not None
    rows = timeline.collect(engine="streaming")
    return {
        "seconds": time.perf_counter() - started,
        "rows": rows.height,
        "name": name,
        "rss_before_mb": before,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def child_history_command_alone(snapshots_dir: str, category: str, name: str) -> dict[str, object]:
    """The ``history`` command's work alone in a fresh process: its time and whole-process peak RSS."""
    import polars as pl  # noqa: F401  (imported before the clock starts, as the CLI has it)

    from pipeline.sinks.history_store import model_timeline

    started = time.perf_counter()
    timeline = model_timeline(Path(snapshots_dir), category, name)
    assert timeline is not None
    rows = timeline.collect(engine="streaming")
    return {
        "seconds": time.perf_counter() - started,
        "rows": rows.height,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def replicate_history(snapshots: Path, days: int) -> int:
    """Turn one run's snapshot into ``days`` daily snapshots of every table; returns files written."""
    import datetime as dt

    import polars as pl

    from pipeline.sinks.parquet_snapshot import SnapshotWriter, manifests

    (manifest,) = manifests(snapshots)
    tables = {
        (table, category): pl.read_parquet(snapshots / entry["path"]).drop("run_id", "run_at")
        for table, categories in manifest["tables"].items()
        for category, entry in categories.items()
    }
    start = dt.datetime.fromisoformat(manifest["run_at"]) - dt.timedelta(days=days)
    written = 0
    for day in range(1, days):
        run_at = start + dt.timedelta(days=day)
        run_id = run_at.strftime("%Y%m%dT%H%M%SZ") + f"-d{day:03d}"
        writer = SnapshotWriter(root=snapshots, run_id=run_id, run_at=run_at)
        for (table, category), frame in tables.items():
            if table == "deletion_risk":
                # a changing share of models loses its workers on a given day (deterministic)
                lost = (pl.col("name").hash(seed=day) % 100) < 10
                frame = frame.with_columns(
                    pl.when(lost).then(0).otherwise(pl.col("worker_count")).alias("worker_count"),
                    (lost | pl.col("no_active_workers")).alias("no_active_workers"),
                )
            writer.write(table, category, frame)
            written += 1
        writer.commit(input_hashes=manifest["input_hashes"], counts=manifest["counts"])
    # A store the job writes keeps its run index up to date (SPEC §13); one written directly gets it here.
    from pipeline.sinks.run_index import reconcile_index

    reconcile_index(snapshots)
    return written


def in_child(function: str, *args: str, checkout: Path | None = None) -> dict[str, object]:
    """``scale.function(*args)`` in a fresh process; with ``checkout``, the package is imported from that checkout
    (another commit's code, for before/after rounds) instead of this one."""
    call = f"scale.{function}(*{args!r})"
    code = f"import sys; sys.path.insert(0, {str(HERE)!r}); import json, scale; print(json.dumps({call}))"
    env = os.environ.copy()
    if checkout is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(checkout), env.get("PYTHONPATH")]))
    # in the checkout's folder too: ``-c`` puts the working folder first on sys.path
    cwd = str(checkout) if checkout is not None else None
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=cwd)
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-3000:])
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    if checkout is not None:
        assert Path(str(result.get("package", checkout))).is_relative_to(checkout), "the baseline ran this checkout"
    return result


STAGES = ("load", "compute", "snapshot", "commit", "publish", "maintain")


def print_stages(
    measured: dict[tuple[str, str], dict[int, list[dict[str, float]]]],
    scales: list[int],
    kinds: tuple[str, ...],
    codes: list[str],
) -> None:
    """Medians per stage, wall and CPU seconds of the child process, per kind of run and per checkout; with a
    baseline, this checkout's CPU against the baseline's (the ratio the machine's load moves least)."""
    for kind in kinds:
        print(f"{kind}: medians per stage, wall s / CPU s (process = the whole child process, start-up included)")
        for scale in scales:
            medians = {}
            for code in codes:
                runs = measured[(code, kind)][scale]
                fields = {field for run in runs for field in run}
                medians[code] = {field: statistics.median(run.get(field, 0.0) for run in runs) for field in fields}
                median = medians[code]
                stages = "  ".join(
                    f"{stage} {median.get(stage, 0.0):.2f}/{median.get('cpu_' + stage, 0.0):.2f}" for stage in STAGES
                )
                print(
                    f"  {scale:>5}x {code:>8}  process {median['process_s']:.2f}/{median['process_cpu_s']:.2f}"
                    f"  import {median['import_s']:.2f}/{median['import_cpu_s']:.2f}"
                    f"  start-up CPU {median['startup_cpu_s']:.2f}  {stages}  ({len(runs)} runs)"
                )
            if len(codes) == 2:
                this, base = medians["this"], medians["baseline"]
                ratios = "  ".join(
                    f"{stage} {base.get('cpu_' + stage, 0.0) / this['cpu_' + stage]:.2f}x"
                    for stage in STAGES
                    if this.get("cpu_" + stage)
                )
                print(
                    f"  {scale:>5}x  baseline/this CPU: process {base['process_cpu_s'] / this['process_cpu_s']:.2f}x"
                    f"  import {base['import_cpu_s'] / this['import_cpu_s']:.2f}x"
                    f"  start-up {base['startup_cpu_s'] / this['startup_cpu_s']:.2f}x  {ratios}"
                )
        sys.stdout.flush()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scales", type=int, nargs="+", default=[1, 10, 100])
    parser.add_argument("--history-days", type=int, default=365, help="0 skips the history benchmark")
    parser.add_argument("--repeat", type=int, default=1, help="rounds over the scales; rows show medians")
    parser.add_argument("--history-scale", type=int, default=100)
    parser.add_argument("--data", type=Path, default=HERE.parents[1] / "shared" / "data")
    parser.add_argument("--workdir", type=Path, default=None, help="keep generated data here (default: a temp dir)")
    parser.add_argument(
        "--steady",
        action="store_true",
        help="after each cold run, run again on its snapshot (the reference unchanged: a hydrator's steady state)",
    )
    parser.add_argument(
        "--baseline",
        type=Path,
        default=None,
        help="a checkout of another commit: each round also runs it (interleaved), and the per-stage tables compare",
    )
    parser.add_argument("--no-history-cost", action="store_true", help="skip the history-per-run measurement")
    parser.add_argument(
        "--floors",
        action="store_true",
        help="after the runs: JSON decode, Parquet read and a bare MULTI/EXEC of the same bytes (needs REDIS_URL)",
    )
    args = parser.parse_args()

    import generate

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="horde-bench-"))
    print(
        f"{'scale':>6} {'models':>9} {'import s':>9} {'load s':>8} {'compute s':>10} {'snapshot s':>11} "
        f"{'run s':>7} {'peak MB':>8} {'models/s':>10} {'growth':>7}"
    )
    for scale in args.scales:
        inputs = workdir / f"inputs-{scale}"
        if not (inputs / "horde" / "workers_text.json").exists():
            generate.generate(args.data, scale, inputs)
    # (code, kind) -> scale -> runs; code "this" is this checkout, "baseline" the --baseline one
    measured: dict[tuple[str, str], dict[int, list[dict[str, float]]]] = {}
    codes: list[tuple[str, Path | None]] = [("this", None)] + ([("baseline", args.baseline)] if args.baseline else [])
    for _, checkout in codes:
        # As an installed package has it (pip compiles at install): an editable checkout under
        # PYTHONDONTWRITEBYTECODE would otherwise compile its own source in every run's start-up (~0.09 s).
        for package in ("pipeline", "jobs"):
            compileall.compile_dir((checkout or HERE.parent) / package, quiet=1)
    kinds = ("cold", "steady") if args.steady else ("cold",)
    models: dict[int, int] = {}
    for _ in range(args.repeat):
        for scale in args.scales:
            for code, checkout in codes:  # before and after alternate, so a slow spell hits both alike
                inputs, snapshots = workdir / f"inputs-{scale}", workdir / f"snapshots-{scale}-{code}"
                shutil.rmtree(snapshots, ignore_errors=True)  # a cold run: no earlier snapshot to read back (SPEC §9)
                for kind in kinds:
                    started = time.perf_counter()
                    result = in_child("child_run", str(inputs), str(snapshots), checkout=checkout)
                    process = time.perf_counter() - started
                    models[scale] = int(result["models"])  # type: ignore[call-overload]
                    stages: dict[str, float] = result["stages"]  # type: ignore[assignment]
                    cpu: dict[str, float] = result.get("cpu_stages") or {}  # type: ignore[assignment]
                    figures = {
                        field: float(result.get(field, 0.0))  # type: ignore[arg-type]
                        for field in (
                            "import_s",
                            "import_cpu_s",
                            "startup_cpu_s",
                            "run_s",
                            "peak_rss_mb",
                            "process_cpu_s",
                        )
                    }
                    run = figures | stages | {f"cpu_{stage}": value for stage, value in cpu.items()}
                    measured.setdefault((code, kind), {}).setdefault(scale, []).append(run | {"process_s": process})
    runs = measured[("this", "cold")]
    previous = None
    for scale in args.scales:
        median = {field: statistics.median(run[field] for run in runs[scale]) for field in runs[scale][0]}
        compute = median["compute"]
        growth = f"{compute / previous:6.1f}x" if previous else "      -"
        previous = compute
        computes = sorted(run["compute"] for run in runs[scale])
        spread = (
            f"  (compute {computes[0]:.2f}-{computes[-1]:.2f} s over {len(computes)} runs)" if len(computes) > 1 else ""
        )
        print(
            f"{scale:>5}x {models[scale]:>9,} {median['import_s']:>9.2f} {median['load']:>8.2f} {compute:>10.2f} "
            f"{median['snapshot']:>11.2f} {median['run_s']:>7.2f} {median['peak_rss_mb']:>8.0f} "
            f"{models[scale] / median['run_s']:>10,.0f} {growth}{spread}"
        )
        sys.stdout.flush()
    for scale in args.scales:
        # SPEC §10's part of compute (model_state, the history fields, changes); the first run on an empty store
        # has no previous state, the later ones do
        parts = [(run["history"], run["compute"] - run["history"]) for run in runs[scale] if "history" in run]
        if parts:
            extra = statistics.median(history for history, _ in parts)
            rest = statistics.median(rest for _, rest in parts)
            print(
                f"{scale:>5}x history fields, model_state, changes: {extra:.3f} s"
                f" = {extra / rest:.1%} of the rest of compute"
            )

    for scale in args.scales if args.floors else ():
        snapshots = workdir / f"snapshots-{scale}-this"
        floors = in_child("child_floors", str(workdir / f"inputs-{scale}"), str(snapshots), str(max(args.repeat, 3)))
        print(
            f"{scale:>5}x floors (min of {max(args.repeat, 3)}, wall/CPU s): msgspec decode of the reference's"
            f" {floors['json_mb']:.0f} MB {floors['json_decode_wall']:.2f}/{floors['json_decode_cpu']:.2f};"
            f" its records and problems from Parquet"
            f" {floors['parquet_read_wall']:.2f}/{floors['parquet_read_cpu']:.2f};"
            f" one bare MULTI/EXEC of the {floors['redis_mb']:.0f} MB of Redis values"
            f" {floors['redis_multi_exec_wall']:.2f}/{floors['redis_multi_exec_cpu']:.2f}, the job's publish of them"
            f" {floors['publish_wall']:.2f}/{floors['publish_cpu']:.2f}"
        )
        sys.stdout.flush()
    for scale in () if args.no_history_cost else args.scales:
        cost = in_child("child_history_cost", str(workdir / f"inputs-{scale}"), str(max(args.repeat, 3)))
        figures = {key: float(value) for key, value in cost.items()}  # type: ignore[arg-type]
        print(
            f"{scale:>5}x history per run (min of {max(args.repeat, 3)}): CPU {figures['history_cpu']:.3f} s ="
            f" {figures['history_cpu'] / figures['compute_cpu']:.1%} of compute's {figures['compute_cpu']:.2f} s;"
            f" wall {figures['history_wall']:.3f} s = {figures['history_wall'] / figures['compute_wall']:.1%}"
            f" of {figures['compute_wall']:.2f} s"
        )

    if args.steady or args.baseline:
        print_stages(measured, args.scales, kinds, [code for code, _ in codes])

    if args.history_days:
        scale = args.history_scale
        inputs, snapshots = workdir / f"inputs-{scale}", workdir / f"history-{scale}"
        if not (inputs / "horde" / "workers_text.json").exists():
            generate.generate(args.data, scale, inputs)
        if not (snapshots / "_runs").exists() or len(list((snapshots / "_runs").glob("*.json"))) < args.history_days:
            in_child("child_run", str(inputs), str(snapshots))
            started = time.perf_counter()
            files = replicate_history(snapshots, args.history_days)
            took = time.perf_counter() - started
            print(f"history: wrote {files:,} files for {args.history_days} days in {took:.0f} s")
        result = in_child("child_history", str(snapshots), str(args.history_days))
        print(
            f"history query ({args.history_days} daily snapshots of {scale}x, last 90 days without workers): "
            f"{result['seconds']:.2f} s, peak RSS {result['peak_rss_mb']:.0f} MB, {result['rows']:,} models, "
            f"max {result['max_days']} days"
        )
        probe = in_child("child_history_command", str(snapshots), "text_generation")
        alone = in_child("child_history_command_alone", str(snapshots), "text_generation", str(probe["name"]))
        print(
            f"history command ({args.history_days} daily snapshots of {scale}x, one text model): "
            f"{alone['seconds']:.2f} s, peak RSS {alone['peak_rss_mb']:.0f} MB (whole process), {alone['rows']} runs"
        )
    print(f"(generated data kept in {workdir})")


if __name__ == "__main__":
    main()
