"""Scale the real inputs by a factor: realistic new models and matching AI Horde rows (issue #6).

Copy ``i`` of a model is a new model: ``R{i}-`` goes in front of its model part (after the last "/"), and
deterministically some copies get a new author or another size (with parameters scaled to match). The same
renaming is applied to every spelling of the model (canonical, ``aphrodite/``, ``koboldcpp/``, quant-suffixed
Horde names), so the join behaves on the copies as on the real data. Usage of each copy is the original's times a
log-normal factor, which keeps the heavy tail. Output is written by streaming, so 1000x fits in memory.

    .venv/bin/python bench/generate.py --factor 10 --out /tmp/scaled10 [--data ../shared/data] [--seed 7]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

_SIZE = re.compile(r"(?<=[-_])(\d+)([Bb])(?=[-_.]|$)")
_NEW_SIZES = (3, 7, 8, 12, 13, 14, 22, 24, 27, 32, 34, 70, 72, 123)


def _unit(*parts: object) -> float:
    """A deterministic number in [0, 1) from ``parts`` (independent of PYTHONHASHSEED)."""
    digest = hashlib.blake2b(repr(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


class Renamer:
    """The deterministic renaming of copy ``i`` of every name (and of its parameters)."""

    def __init__(self, copy: int, seed: int) -> None:
        self.copy = copy
        self.seed = seed

    def _model(self, model: str) -> tuple[str, float]:
        if self.copy == 0:
            return model, 1.0
        factor, marker = 1.0, ""
        match = _SIZE.search(model)
        if match and _unit(self.seed, self.copy, model.lower(), "size") < 0.2:
            new = _NEW_SIZES[int(_unit(self.seed, self.copy, model.lower(), "pick") * len(_NEW_SIZES))]
            factor = new / max(int(match.group(1)), 1)
            model = model[: match.start()] + str(new) + match.group(2) + model[match.end() :]
            marker = f"s{match.group(1)}"  # resized copies must not collide with each other or with originals
        return f"R{self.copy}{marker}-{model}", factor

    def name(self, name: str) -> str:
        """The copy's spelling of any reference or Horde name."""
        return self.name_and_factor(name)[0]

    def name_and_factor(self, name: str) -> tuple[str, float]:
        head, slash, model = name.rpartition("/")
        renamed, factor = self._model(model)
        parts = head.split("/") if head else []
        if parts and parts[-1] not in ("aphrodite", "koboldcpp") and self.copy:
            author = parts[-1]
            if _unit(self.seed, self.copy, author.lower(), "author") < 0.3:
                parts[-1] = f"{author}{self.copy % 97}"
        return "/".join([*parts, renamed]) if slash else renamed, factor

    def usage_factor(self, name: str) -> float:
        if self.copy == 0:
            return 1.0
        u = max(_unit(self.seed, self.copy, name.lower(), "usage"), 1e-9)
        return math.exp(math.sqrt(-2 * math.log(u)) * math.cos(2 * math.pi * (u * 7919 % 1)))  # log-normal


def _write_object(path: Path, entries: Iterator[tuple[str, Any]]) -> int:
    count = 0
    with path.open("w") as out:
        out.write("{")
        for key, value in entries:
            out.write(("," if count else "") + json.dumps(key) + ":" + json.dumps(value))
            count += 1
        out.write("}")
    return count


def _write_list(path: Path, items: Iterator[Any]) -> int:
    count = 0
    with path.open("w") as out:
        out.write("[")
        for item in items:
            out.write(("," if count else "") + json.dumps(item))
            count += 1
        out.write("]")
    return count


def generate(data: Path, factor: int, out: Path, seed: int = 7) -> dict[str, int]:
    """Write ``factor`` copies of the real inputs under ``out`` (model_reference/ and horde/); returns counts."""
    (out / "model_reference").mkdir(parents=True, exist_ok=True)
    (out / "horde").mkdir(parents=True, exist_ok=True)
    source = data / "model_reference"
    counts: dict[str, int] = {}
    for small in source.glob("*.json"):
        if small.name not in ("stable_diffusion.json", "text_generation.json"):
            shutil.copy(small, out / "model_reference" / small.name)
    renamers = [Renamer(copy, seed) for copy in range(factor)]

    for file_name in ("stable_diffusion.json", "text_generation.json"):
        records = json.loads((source / file_name).read_text())

        def entries(records: dict[str, Any] = records) -> Iterator[tuple[str, Any]]:
            for renamer in renamers:
                for name, record in records.items():
                    new_name, size_factor = renamer.name_and_factor(name)
                    copy = dict(record, name=new_name)
                    if "parameters" in copy and size_factor != 1.0:
                        copy["parameters"] = int(copy["parameters"] * size_factor)
                    yield new_name, copy

        counts[file_name] = _write_object(out / "model_reference" / file_name, entries())

    horde = data / "horde"
    for model_type in ("image", "text"):
        status = json.loads((horde / f"status_{model_type}.json").read_text())
        stats = json.loads((horde / f"stats_{model_type}.json").read_text())
        workers = json.loads((horde / f"workers_{model_type}.json").read_text())
        counts[f"status_{model_type}"] = _write_list(
            out / "horde" / f"status_{model_type}.json",
            (dict(row, name=r.name(row["name"])) for r in renamers for row in status),
        )
        scaled: dict[str, dict[str, int]] = {period: {} for period in stats}
        for renamer in renamers:
            for name in stats["total"]:
                new_name = renamer.name(name)
                usage = renamer.usage_factor(name)
                for period, values in stats.items():
                    if name in values:
                        scaled[period][new_name] = int(values[name] * usage)
        (out / "horde" / f"stats_{model_type}.json").write_text(json.dumps(scaled))
        counts[f"stats_{model_type}"] = len(scaled["total"])
        counts[f"workers_{model_type}"] = _write_list(
            out / "horde" / f"workers_{model_type}.json",
            (
                dict(worker, id=f"{worker['id']}-{r.copy}", models=[r.name(m) for m in worker["models"]])
                for r in renamers
                for worker in workers
            ),
        )
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--factor", type=int, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    print(json.dumps(generate(args.data, args.factor, args.out, args.seed)))


if __name__ == "__main__":
    main()
