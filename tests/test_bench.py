"""Keep the benchmark tools working (issue #6): the generator and the scale command at 1x. No timings asserted."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from pipeline import load_records
from pipeline.sources.horde import load_horde
from tests.conftest import REPO, RedisServer

sys.path.insert(0, str(REPO / "bench"))


def test_generator_scales_names_records_and_horde_rows(shared_data: Path, tmp_path: Path) -> None:
    import generate

    counts = generate.generate(shared_data, 2, tmp_path / "x2")
    assert counts["text_generation.json"] == 2 * 2157 and counts["stable_diffusion.json"] == 2 * 161
    records = load_records(str(tmp_path / "x2" / "model_reference"))
    assert records["text_generation"].records.height == 2 * 719  # copies are new models, not duplicates
    assert records["text_generation"].problems.height == 0
    horde, _ = load_horde(str(tmp_path / "x2" / "horde"))
    real_usage = json.loads((shared_data / "horde" / "stats_text.json").read_text())
    assert horde["text"].usage.height == 2 * len(real_usage["total"])
    # deterministic: the same seed writes the same bytes
    generate.generate(shared_data, 2, tmp_path / "again")
    for name in ("model_reference/text_generation.json", "horde/workers_text.json"):
        assert (tmp_path / "x2" / name).read_bytes() == (tmp_path / "again" / name).read_bytes()


def test_scale_bench_runs_at_1x(shared_data: Path, tmp_path: Path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            str(REPO / "bench" / "scale.py"),
            "--scales",
            "1",
            "--history-days",
            "3",
            "--history-scale",
            "1",
            "--data",
            str(shared_data),
            "--workdir",
            str(tmp_path),
            "--repeat",
            "2",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "    1x " in done.stdout and "history query (3 daily snapshots" in done.stdout
    assert "over 2 runs" in done.stdout
    assert "history command (3 daily snapshots" in done.stdout and "of the rest of compute" in done.stdout


def test_primitives_bench_runs() -> None:
    done = subprocess.run(
        [sys.executable, str(REPO / "bench" / "primitives.py"), "--rows", "1000", "10000"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "group_by string key" in done.stdout and done.stdout.count("x\n") == 4


def test_scale_bench_compares_a_baseline_checkout_per_stage(shared_data: Path, tmp_path: Path) -> None:
    """``--steady --baseline``: cold and steady runs of both checkouts, wall and CPU per stage, and the ratios."""
    done = subprocess.run(
        [
            sys.executable,
            str(REPO / "bench" / "scale.py"),
            "--scales",
            "1",
            "--history-days",
            "0",
            "--no-history-cost",
            "--steady",
            "--baseline",
            str(REPO),
            "--data",
            str(shared_data),
            "--workdir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "cold: medians per stage" in done.stdout and "steady: medians per stage" in done.stdout
    assert "baseline/this CPU: process" in done.stdout and "history per run" not in done.stdout


def test_floor_benches_run_against_a_real_redis(shared_data: Path, tmp_path: Path, own_redis: RedisServer) -> None:
    environment = {**os.environ, "REDIS_URL": own_redis.url}
    scale = [sys.executable, str(REPO / "bench" / "scale.py"), "--scales", "1", "--history-days", "0"]
    options = ["--no-history-cost", "--steady", "--floors", "--repeat", "1"]
    done = subprocess.run(
        [*scale, *options, "--data", str(shared_data), "--workdir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=600,
        env=environment,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "floors (min of 3" in done.stdout and "steady:" in done.stdout
    snapshots = str(tmp_path / "snapshots-1-this")
    floors = subprocess.run(
        [sys.executable, str(REPO / "bench" / "floors.py"), str(tmp_path / "inputs-1"), snapshots, "--repeat", "1"],
        capture_output=True,
        text=True,
        timeout=600,
        env=environment,
    )
    assert floors.returncode == 0, floors.stderr[-2000:]
    lines = floors.stdout.splitlines()
    assert any("write the run's 87 tables at zstd 3" in line for line in lines), floors.stdout
    total = next(line for line in lines if "in all, one after another" in line)
    wall, cpu = (float(part) for part in total.split()[:3:2])
    assert wall > 0 and cpu > 0
