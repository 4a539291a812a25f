"""How Polars primitives grow on this machine from 100x-sized to 1000x-sized frames (issue #6).

    .venv/bin/python bench/primitives.py [--rows 72000 720000]

The pipeline's compute grows 12-14x from 100x to 1000x scale. This measures what its building blocks do alone
on the same row counts (72k and 720k text models): a group-by over integer and over string keys, a string
sort and a string unique, each the median of several runs. Growth well above 10x here is the machine (data that
stops fitting in cache), not the pipeline.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from itertools import pairwise

import polars as pl

OPERATIONS: dict[str, Callable[[pl.DataFrame], object]] = {
    "group_by int key": lambda frame: frame.group_by("key").agg(pl.col("value").sum()),
    "group_by string key": lambda frame: frame.group_by("name").agg(pl.col("value").sum()),
    "sort by string": lambda frame: frame.sort("name"),
    "unique strings": lambda frame: frame.select(pl.col("name").unique()),
}


def frame_of(rows: int) -> pl.DataFrame:
    index = pl.int_range(rows, eager=True)
    return pl.DataFrame(
        {
            "key": index.hash(seed=1) % max(1, rows * 5 // 6),  # ~1.2 rows per key, like models per family
            "value": index,
            "name": index.hash(seed=2).cast(pl.String) + "-Model-8B-Instruct",
        }
    )


def median_seconds(operation: Callable[[pl.DataFrame], object], frame: pl.DataFrame, runs: int = 11) -> float:
    timings = []
    for _ in range(runs):
        started = time.perf_counter()
        operation(frame)
        timings.append(time.perf_counter() - started)
    return statistics.median(timings)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, nargs="+", default=[72_000, 720_000])
    args = parser.parse_args()
    frames = {rows: frame_of(rows) for rows in args.rows}
    print(f"{'operation':22}" + "".join(f"{rows:>12,} rows" for rows in args.rows) + "   growth")
    for name, operation in OPERATIONS.items():
        seconds = [median_seconds(operation, frames[rows]) for rows in args.rows]
        growth = "  ".join(f"{later / earlier:5.1f}x" for earlier, later in pairwise(seconds))
        print(f"{name:22}" + "".join(f"{s * 1000:14.1f} ms" for s in seconds) + f"   {growth}")


if __name__ == "__main__":
    main()
