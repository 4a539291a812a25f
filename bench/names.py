"""Parser benchmark (issue #3): 1,000,000 names drawn from the real ones with realistic perturbations.

Each engine runs in its own child process (so peak RSS is the engine's own) on the same generated input;
times are the median of three runs (the fallback's cache is cleared before each), ratios are from this run.

    .venv/bin/python bench/names.py [--names 1000000] [--distinct 0.15] [--data ../shared/data]

Three comparisons:
  engine      vectorized parsed_names() -> frame   vs  [parse_name(n) for n in names] (lru_cached objects)
  same frame  vectorized parsed_names() -> frame   vs  parsed_name_frame(names, "python") (the same frame)
  distinct    both engines on the distinct names only (no repeats for the cache to absorb)
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

QUANTS = ["Q4_K_M", "Q5_K_M", "Q8_0", "Q6_K", "IQ4_XS", "Q4_0", "IQ3_XXS", "4bit", "8bpw", "fp16"]
FORMATS = ["GGUF", "AWQ", "GPTQ", "exl2", "MLX", "FP8"]
RUNS = 3


def perturbed(name: str, rng: random.Random) -> str:
    """A spelling the Horde could really report for ``name``."""
    short = name.split("/", 1)[-1]
    roll = rng.random()
    if roll < 0.35:
        name = "koboldcpp/" + short
    elif roll < 0.6:
        name = "aphrodite/" + name
    if rng.random() < 0.25:
        name += "-" + rng.choice(QUANTS)
    if rng.random() < 0.1:
        name += "-" + rng.choice(FORMATS)
    if rng.random() < 0.05:
        name = name.lower()
    if rng.random() < 0.05:
        name += f"-v{rng.randint(1, 4)}.{rng.randint(0, 9)}"
    return name


def generated_names(data: Path, count: int, distinct_share: float, seed: int = 20261129) -> list[str]:
    """``count`` names of which about ``distinct_share`` are distinct, heavy-tailed like real traffic."""
    rng = random.Random(seed)
    real = list(json.loads((data / "model_reference" / "text_generation.json").read_text()))
    pool: set[str] = set()
    target = max(1, int(count * distinct_share))
    while len(pool) < target:
        pool.add(perturbed(rng.choice(real), rng))
    distinct = sorted(pool)
    rng.shuffle(distinct)
    weights = [1 / (rank + 1) ** 0.6 for rank in range(len(distinct))]
    names = distinct + rng.choices(distinct, weights=weights, k=max(0, count - len(distinct)))
    rng.shuffle(names)
    return names


def _timed(run: object) -> float:
    started = time.perf_counter()
    run()  # type: ignore[operator]
    return time.perf_counter() - started


def run_engine(engine: str, path: Path) -> dict[str, float]:
    """Median seconds of RUNS runs of one engine variant, and the process's peak RSS."""
    import polars as pl

    from pipeline.steps.collect_engine import ENGINE
    from pipeline.steps.names import parsed_name_frame, parsed_names
    from pipeline.steps.names.python_engine import _parse, parse_name

    names = json.loads(path.read_text())
    frame = pl.DataFrame({"name": names}, schema={"name": pl.String})

    def fallback_objects() -> None:
        _parse.cache_clear()
        [parse_name(name) for name in names]

    def fallback_frame() -> None:
        _parse.cache_clear()
        parsed_name_frame(names, "python")

    variants = {
        "polars": lambda: parsed_names(frame).collect(engine=ENGINE),
        "python": fallback_objects,
        "python-frame": fallback_frame,
    }
    seconds = statistics.median(_timed(variants[engine]) for _ in range(RUNS))
    return {"seconds": seconds, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def measure(names: list[str], engines: tuple[str, ...]) -> dict[str, dict[str, float]]:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "names.json"
        path.write_text(json.dumps(names))
        results = {}
        for engine in engines:
            out = subprocess.run(
                [sys.executable, __file__, "--engine", engine, "--input", str(path)],
                check=True,
                capture_output=True,
                text=True,
            ).stdout
            results[engine] = json.loads(out)
    return results


#: Backtracking bait and huge names (SPEC §3.2: each must parse in under 50 ms in either engine).
HOSTILE = {
    "1 x 100,000": "1" * 100_000,
    "Q4_K_M x 20,000": "Q4_K_M" * 20_000,
    "a x 50,000 + !": "a" * 50_000 + "!",
    "a- x 50,000": "a-" * 50_000,
    "v1. x 33,000": "v1." * 33_000,
    "2024-05- x 12,500": "2024-05-" * 12_500,
    "/ x 100,000": "/" * 100_000,
    # issue 17's token shapes: shard suffixes, repacked quants, dotted numbers, glued sizes, old split files
    "00001-of- x 11,000": "00001-of-" * 11_000,
    "Q4_0_8_ x 14,000": "Q4_0_8_" * 14_000,
    "1. x 50,000": "1." * 50_000,
    "r7b x 33,000": "r7b" * 33_000,
    "split- x 16,000": "split-" * 16_000,
    "A3B-2.5-x x 11,000": "A3B-2.5-x" * 11_000,
}


def hostile_timings() -> dict[str, tuple[float, float]]:
    """Milliseconds per hostile name: (vectorized, fallback), each the best of 3 (cold cache for the fallback)."""
    from pipeline.steps.names import parsed_name_frame
    from pipeline.steps.names.python_engine import _parse

    parsed_name_frame(["warm-up-7B"], "polars")
    timings = {}
    for label, name in HOSTILE.items():
        polars = min(_timed(lambda n=name: parsed_name_frame([n], "polars")) for _ in range(3))  # type: ignore[misc]
        fallback = []
        for _ in range(3):
            _parse.cache_clear()
            fallback.append(_timed(lambda n=name: parsed_name_frame([n], "python")))  # type: ignore[misc]
        timings[label] = (polars * 1000, min(fallback) * 1000)
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--names", type=int, default=1_000_000)
    parser.add_argument("--distinct", type=float, default=0.15)
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    parser.add_argument("--engine", help=argparse.SUPPRESS)
    parser.add_argument("--input", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.engine:
        print(json.dumps(run_engine(args.engine, args.input)))
        return

    names = generated_names(args.data, args.names, args.distinct)
    results = measure(names, ("polars", "python", "python-frame"))
    distinct = sorted(set(names))
    cold = measure(distinct, ("polars", "python"))
    print(f"names: {len(names):,}  distinct: {len(distinct):,}  (median of {RUNS} runs per engine)")
    for engine, result in results.items():
        print(f"  {engine:13} {result['seconds']:7.3f} s   peak RSS {result['peak_rss_mb']:6.0f} MB")
    polars = results["polars"]["seconds"]
    print(f"engine:     vectorized {results['python']['seconds'] / polars:5.1f}x faster than the cached fallback")
    print(f"same frame: vectorized {results['python-frame']['seconds'] / polars:5.1f}x faster")
    print("hostile names (ms, vectorized / fallback; budget 50 ms):")
    for label, (polars_ms, python_ms) in hostile_timings().items():
        print(f"  {label:20} {polars_ms:6.1f} / {python_ms:6.1f}")
    print(
        f"distinct:   {len(distinct):,} names, vectorized {cold['polars']['seconds']:.3f} s, fallback "
        f"{cold['python']['seconds']:.3f} s -> {cold['python']['seconds'] / cold['polars']['seconds']:.1f}x"
    )


if __name__ == "__main__":
    main()
