"""What a steady run cannot go below on this machine: the work SPEC fixes, done alone by the fastest tool at hand.

    REDIS_URL=redis://127.0.0.1:PORT/0 .venv/bin/python bench/floors.py INPUTS SNAPSHOTS [--repeat 3]

INPUTS is a folder of inputs (``bench/generate.py --out``: ``model_reference/`` and ``horde/``), SNAPSHOTS a store
holding at least one committed run of the job on them (``bench/scale.py --workdir`` keeps both). A steady run
(the reference unchanged since the previous committed run, SPEC §9) must, whatever its code:

- start Python and import Polars, msgspec and redis-py (a child process, against one that imports nothing);
- decode the Horde payloads, which change every cycle (msgspec, untyped, into Python objects);
- read the reference's parsed tables back from the previous run (``records``, ``problems``, ``names``,
  ``families``: Polars' Parquet reader);
- write every table of the run at zstd level 3 (SPEC §7.2; the latest run's frames, held in memory, written by
  Polars into memory: no disk);
- encode the Redis values as JSON (the latest run's stored values, decoded to Python objects first, encoded by
  msgspec: the bytes a run must produce, by the fastest encoder here);
- send them in one MULTI/EXEC (a bare redis-py pipeline).

Each part is the minimum of ``--repeat`` rounds, in wall and CPU seconds of the process doing it. The sum of the
walls is the floor of a run doing the parts one after another; half the sum of the CPU seconds is the floor on
two cores with perfect overlap. Computing the tables (joins, group-bys) is left out: it has no such floor.
"""

from __future__ import annotations

import argparse
import io
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import msgspec
import polars as pl
import redis

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from pipeline.contracts.settings import load_settings  # noqa: E402
from pipeline.sinks.parquet_snapshot import manifests, read_artifact  # noqa: E402
from pipeline.sinks.redis_publisher import RedisPublisher  # noqa: E402

REFERENCE_TABLES = ("records", "problems", "names", "families")


def timed(work: Callable[[], object]) -> tuple[float, float]:
    """Wall and CPU seconds of ``work`` in this process."""
    wall, cpu = time.perf_counter(), time.process_time()
    work()
    return time.perf_counter() - wall, time.process_time() - cpu


def child_seconds(code: str) -> tuple[float, float]:
    """Wall seconds of a fresh interpreter running ``code``, and its CPU seconds (user + system)."""
    before = os.times()
    wall = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True)
    took = time.perf_counter() - wall
    after = os.times()
    return took, (after.children_user - before.children_user) + (after.children_system - before.children_system)


def startup() -> tuple[float, float]:
    """What importing the three libraries adds to a fresh interpreter (wall s, CPU s)."""
    (wall, cpu), (bare_wall, bare_cpu) = child_seconds("import polars, msgspec, redis"), child_seconds("pass")
    return wall - bare_wall, cpu - bare_cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("inputs", type=Path)
    parser.add_argument("snapshots", type=Path)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    settings = load_settings(snapshot_dir=str(args.snapshots))
    if not settings.redis_url:
        raise SystemExit("REDIS_URL is needed: the floor of the publish is a MULTI/EXEC")
    latest = manifests(args.snapshots)[-1]
    publisher = RedisPublisher.from_settings(settings)
    values = publisher.restored(read_artifact(args.snapshots, latest, "redis"))
    documents = {key: msgspec.json.decode(value) for key, (value, _) in values.items()}
    tables = [
        pl.read_parquet(args.snapshots / entry["path"])
        for categories in latest["tables"].values()
        for entry in categories.values()
    ]
    reference = [
        args.snapshots / entry["path"] for table in REFERENCE_TABLES for entry in latest["tables"][table].values()
    ]
    horde = sorted((args.inputs / "horde").glob("*.json"))
    client = redis.Redis.from_url(settings.redis_url)

    def write_tables() -> None:
        for frame in tables:
            frame.write_parquet(io.BytesIO(), compression="zstd", compression_level=3)

    def multi_exec() -> None:
        pipe = client.pipeline(transaction=True)
        for key, (value, expiry) in values.items():
            pipe.set(key, value, ex=expiry)
        pipe.execute()

    parts: dict[str, Callable[[], tuple[float, float]]] = {
        "start-up: import polars, msgspec, redis": startup,
        f"decode the Horde payloads ({sum(p.stat().st_size for p in horde) / 1e6:.0f} MB, msgspec)": lambda: timed(
            lambda: [msgspec.json.decode(path.read_bytes()) for path in horde]
        ),
        f"read back {', '.join(REFERENCE_TABLES)} ({len(reference)} files)": lambda: timed(
            lambda: [pl.read_parquet(path) for path in reference]
        ),
        f"write the run's {len(tables)} tables at zstd 3": lambda: timed(write_tables),
        f"encode the Redis values ({sum(len(v) for v, _ in values.values()) / 1e6:.0f} MB of JSON, msgspec)": lambda: (
            timed(lambda: [msgspec.json.encode(document) for document in documents.values()])
        ),
        "one MULTI/EXEC of them (redis-py)": lambda: timed(multi_exec),
    }
    best: dict[str, tuple[float, float]] = {}
    for _ in range(args.repeat):  # rounds interleave the parts, so a slow spell hits each alike
        for name, part in parts.items():
            wall, cpu = part()
            previous = best.get(name, (float("inf"), float("inf")))
            best[name] = (min(previous[0], wall), min(previous[1], cpu))
    print(f"floors of a steady run, min of {args.repeat} rounds, wall s / CPU s:")
    for name, (wall, cpu) in best.items():
        print(f"  {wall:6.2f} / {cpu:5.2f}  {name}")
    walls, cpus = sum(w for w, _ in best.values()), sum(c for _, c in best.values())
    print(
        f"  {walls:6.2f} / {cpus:5.2f}  in all, one after another; {cpus / 2:.2f} s on two cores, perfectly overlapped"
    )


if __name__ == "__main__":
    main()
