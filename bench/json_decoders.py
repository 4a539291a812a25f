"""The checked path's entry reader against library decoders: CPU seconds and peak RSS, one decoder per process.

``sources/json_entries.top_level_entries`` walks a ``{name: record}`` file one entry at a time; its docstring says
why it is hand-written. This measures that choice against ``ijson`` (an event-based streaming decoder on yajl2_c;
not a dependency: ``pip install ijson`` into your own venv to measure it) and ``json.loads`` of the whole file.
Each decoder runs in a fresh process (peak RSS is per process); each reads the file and consumes every entry.

    .venv/bin/python bench/json_decoders.py ../shared/data/model_reference/text_generation.json
    python3 bench/generate.py --factor 100 --out /tmp/data100
    .venv/bin/python bench/json_decoders.py /tmp/data100/model_reference/text_generation.json --repeat 3
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
from pathlib import Path

DECODERS = ("checked", "ijson", "json")


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def measure(decoder: str, path: Path) -> dict[str, float | int | str]:
    """Decode every entry of ``path`` with ``decoder`` in this process: entries, CPU seconds, peak RSS."""
    if decoder == "checked":
        from pipeline.sources.json_entries import top_level_entries
        from pipeline.sources.untrusted_json import checked_text
    elif decoder == "ijson":
        import ijson  # type: ignore[import-not-found,unused-ignore]
    baseline = _rss_mib()
    started = _cpu()
    entries = 0
    if decoder == "checked":
        for _ in top_level_entries(checked_text(path.read_bytes()), path.name):
            entries += 1
    elif decoder == "ijson":
        with path.open("rb") as handle:
            for _ in ijson.kvitems(handle, "", use_float=True):
                entries += 1
    else:
        entries = len(json.loads(path.read_bytes()))
    return {
        "decoder": decoder,
        "entries": entries,
        "cpu_s": round(_cpu() - started, 3),
        "peak_rss_mib": round(_rss_mib(), 1),
        "rss_after_imports_mib": round(baseline, 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("file", type=Path, help="a {name: record} JSON file")
    parser.add_argument("--decoders", nargs="+", choices=DECODERS, default=list(DECODERS))
    parser.add_argument("--repeat", type=int, default=1, help="rounds, the decoders interleaved in each")
    parser.add_argument("--one", choices=DECODERS, help=argparse.SUPPRESS)  # the child process
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(measure(args.one, args.file)))
        return 0
    size = args.file.stat().st_size
    print(f"{args.file} ({size / 2**20:.1f} MiB), load average {' '.join(f'{x:.2f}' for x in _loadavg())}")
    for round_ in range(args.repeat):
        for decoder in args.decoders:
            done = subprocess.run(
                [sys.executable, __file__, str(args.file), "--one", decoder],
                capture_output=True,
                text=True,
                check=False,
            )
            if done.returncode:
                print(f"round {round_ + 1} {decoder:8} failed: {done.stderr.strip().splitlines()[-1:]}")
                continue
            result = json.loads(done.stdout)
            print(
                f"round {round_ + 1} {decoder:8} {result['entries']:>9} entries  cpu {result['cpu_s']:7.3f} s  "
                f"peak RSS {result['peak_rss_mib']:7.1f} MiB (after imports {result['rss_after_imports_mib']:.1f})"
            )
    return 0


def _loadavg() -> tuple[float, float, float]:
    with open("/proc/loadavg") as handle:
        first, second, third = handle.read().split()[:3]
    return float(first), float(second), float(third)


if __name__ == "__main__":
    sys.exit(main())
