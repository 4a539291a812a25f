"""How well the parser reads the hand-labeled names (issue 17): per-field accuracy and pairwise family scores.

    .venv/bin/python -m tests.name_accuracy [--engine polars|python] [--labeled PATH]

prints the figures the README quotes and every name that is read wrong. Two names are one family when their
grouping keys are equal (the parsed ``family_key``, or the lower-cased name when it does not parse, as
``pipeline.steps.names.families.grouping_key`` groups them); pairwise precision = of the pairs the parser puts
together, the share the labels put together; recall = the reverse.
"""

from __future__ import annotations

import argparse
import csv
import io
import sys
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.steps.names import ENGINES, Engine, parsed_name_frame

LABELED = Path(__file__).parent / "data" / "labeled_names.tsv"
#: The labeled fields, in file order (after ``name``).
FIELDS = (
    "backend",
    "author",
    "base",
    "size_label",
    "size_b",
    "active_b",
    "variants",
    "version",
    "quant",
    "format",
    "family_key",
)
_FLOATS = ("size_b", "active_b")


def load_labeled(path: Path = LABELED) -> list[dict[str, Any]]:
    """The labeled rows, typed like the parser's output (floats, variant lists, None for empty)."""
    lines = [line for line in path.read_text().splitlines() if not line.startswith("#")]
    rows = []
    for row in csv.DictReader(io.StringIO("\n".join(lines)), delimiter="\t"):
        expected: dict[str, Any] = {key: (value or None) for key, value in row.items()}
        for field in _FLOATS:
            expected[field] = float(row[field]) if row[field] else None
        expected["variants"] = row["variants"].split(",") if row["variants"] else []
        rows.append(expected)
    return rows


def _pairs(counts: Iterable[int]) -> int:
    return sum(n * (n - 1) // 2 for n in counts)


@dataclass(frozen=True)
class PairScores:
    """Pairwise family agreement: pairs the labels join, pairs the parser joins, pairs both join."""

    expected_pairs: int
    predicted_pairs: int
    common_pairs: int

    @property
    def precision(self) -> float:
        return self.common_pairs / self.predicted_pairs if self.predicted_pairs else 1.0

    @property
    def recall(self) -> float:
        return self.common_pairs / self.expected_pairs if self.expected_pairs else 1.0

    @property
    def f1(self) -> float:
        total = self.precision + self.recall
        return 2 * self.precision * self.recall / total if total else 0.0


def pair_scores(expected: Sequence[str], predicted: Sequence[str]) -> PairScores:
    """Pairwise scores of two groupings of the same items (each a key per item)."""
    if len(expected) != len(predicted):
        raise ValueError(f"pair_scores: {len(expected)} expected keys against {len(predicted)} predicted")
    return PairScores(
        expected_pairs=_pairs(Counter(expected).values()),
        predicted_pairs=_pairs(Counter(predicted).values()),
        common_pairs=_pairs(Counter(zip(expected, predicted, strict=True)).values()),
    )


@dataclass(frozen=True)
class Report:
    """The scores of one engine on the labeled set."""

    rows: int
    field_accuracy: dict[str, float]
    families: PairScores
    #: (name, field, expected, parsed) for every field read wrong
    wrong: list[tuple[str, str, Any, Any]]
    #: (name, expected key, grouping key) for every name whose grouping key is not its labeled family key
    wrong_families: list[tuple[str, str, str]]


def grouping_key(name: str, family_key: str | None) -> str:
    """The parsed family key, or the lower-cased name for a name that does not parse (as families group)."""
    return family_key if family_key is not None else name.lower()


def score(engine: Engine, labeled: list[dict[str, Any]] | None = None) -> Report:
    """Parse the labeled names with ``engine`` and score every field and the family grouping."""
    rows = load_labeled() if labeled is None else labeled
    parsed = list(parsed_name_frame([row["name"] for row in rows], engine).iter_rows(named=True))
    wrong = [
        (row["name"], field, row[field], got[field])
        for row, got in zip(rows, parsed, strict=True)
        for field in FIELDS
        if row[field] != got[field]
    ]
    misses = Counter(field for _, field, _, _ in wrong)
    predicted = [grouping_key(got["name"], got["family_key"]) for got in parsed]
    expected = [row["family_key"] or row["name"].lower() for row in rows]
    return Report(
        rows=len(rows),
        field_accuracy={field: 1 - misses[field] / len(rows) for field in FIELDS},
        families=pair_scores(expected, predicted),
        wrong=wrong,
        wrong_families=[
            (row["name"], key, got) for row, key, got in zip(rows, expected, predicted, strict=True) if key != got
        ],
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.name_accuracy", description=__doc__.splitlines()[0])
    parser.add_argument("--engine", choices=ENGINES, default="polars")
    parser.add_argument("--labeled", type=Path, default=LABELED)
    args = parser.parse_args(argv)
    report = score(args.engine, load_labeled(args.labeled))
    families = report.families
    print(f"{report.rows} labeled names, engine {args.engine}")
    print("field accuracy: " + ", ".join(f"{field} {share:.1%}" for field, share in report.field_accuracy.items()))
    print(
        f"families (pairwise): precision {families.precision:.3f}, recall {families.recall:.3f}, "
        f"F1 {families.f1:.3f} ({families.common_pairs} of {families.predicted_pairs} predicted pairs right, "
        f"{families.common_pairs} of {families.expected_pairs} labeled pairs found)"
    )
    print("\nnames keyed to another family:")
    for name, key, got in report.wrong_families:
        print(f"  {name}: labeled {key}, parsed {got}")
    print("\nother fields read wrong:")
    for name, field, want, got in report.wrong:
        if field != "family_key":
            print(f"  {name}: {field} labeled {want!r}, parsed {got!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
