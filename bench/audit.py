"""What the reference audit (SPEC §11) adds to compute, at one scale (issue 16: under 10 % at 100x).

    .venv/bin/python bench/audit.py                    # 100x, median of 3
    .venv/bin/python bench/audit.py --scale 10 --repeat 5

Generates the scaled inputs with bench/generate.py (not timed), loads them once, then per round times
``run_outputs`` (the whole compute stage, audit included) and the audit alone: ``reference_audit`` for every
category on the same frames ``run_outputs`` hands it (parsed text names with family ids, problems, unmatched).
The share printed is audit / (compute - audit): what the audit adds to the compute of a run without it.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--data", type=Path, default=HERE.parents[1] / "shared" / "data")
    parser.add_argument("--workdir", type=Path, default=None, help="keep generated data here (default: a temp dir)")
    args = parser.parse_args()

    import generate
    import polars as pl

    from pipeline import load_records
    from pipeline.contracts.categories import TEXT_GENERATION
    from pipeline.contracts.rules import AnalysisRules
    from pipeline.sources.horde import load_horde
    from pipeline.steps.audit import reference_audit
    from pipeline.steps.collect_engine import ENGINE
    from pipeline.steps.names.families import text_names, with_family_ids, with_parsed_names
    from pipeline.steps.outputs import run_outputs

    inputs = (args.workdir or Path(tempfile.mkdtemp(prefix="horde-audit-bench-"))) / f"inputs-{args.scale}"
    if not (inputs / "horde" / "workers_text.json").exists():
        generate.generate(args.data, args.scale, inputs)
    records = load_records(str(inputs / "model_reference"))
    horde, _ = load_horde(str(inputs / "horde"))
    rules = AnalysisRules()

    # The frames run_outputs gives the audit, built once outside the timings.
    outputs = run_outputs(records, horde, rules, computed_at=0)
    audited: dict[str, pl.LazyFrame] = {}
    for category, item in records.items():
        if category == TEXT_GENERATION:
            names = text_names(item.records.lazy()).collect(engine=ENGINE)
            parsed = with_parsed_names(item.records.lazy(), names.lazy())
            audited[category] = with_family_ids(parsed, group_by_variant=rules.group_by_variant).collect().lazy()
        else:
            audited[category] = item.records.lazy()

    computes, audits = [], []
    for _ in range(args.repeat):
        started = time.perf_counter()
        run_outputs(records, horde, rules, computed_at=0)
        computes.append(time.perf_counter() - started)
        started = time.perf_counter()
        for category, item in records.items():
            reference_audit(
                category,
                audited[category],
                problems=item.problems,
                unmatched=outputs.tables.get(("unmatched", category)),
                preferred_file_hosts=rules.risk.preferred_file_hosts,
            )
        audits.append(time.perf_counter() - started)
    compute, audit = statistics.median(computes), statistics.median(audits)
    findings = sum(frame.height for (table, _), frame in outputs.tables.items() if table == "audit")
    models = sum(item.records.height for item in records.values())
    print(f"scale {args.scale}x: {models:,} models, {findings:,} findings, median of {args.repeat}")
    print(f"compute with the audit {compute:.2f} s ({min(computes):.2f}-{max(computes):.2f})")
    print(f"the audit alone       {audit:.3f} s ({min(audits):.3f}-{max(audits):.3f})")
    print(f"added to compute      {audit / (compute - audit) * 100:.1f} %")


if __name__ == "__main__":
    main()
