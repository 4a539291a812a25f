"""The report over several days of history (SPEC §9, §10): runs backfilled with ``run --as-of`` over the sample
data, one model losing its workers and usage falling, then the page's history columns, changes and usage over
time."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import polars as pl
import pytest

from jobs.__main__ import main
from pipeline.sinks.parquet_snapshot import latest_table
from tests.conftest import SAMPLE_DATA

#: The sample's text model whose every worker goes away on the last day (all its Horde spellings).
LOST = "cydonia-24b-v2.1"


def _horde_day(folder: Path, *, usage_factor: float, lose_workers: bool) -> Path:
    """The sample's Horde data with every usage figure scaled and, when asked, LOST's workers gone."""
    shutil.copytree(SAMPLE_DATA / "horde", folder)
    for kind in ("text", "image"):
        stats = json.loads((folder / f"stats_{kind}.json").read_text())
        for period in ("day", "month"):
            stats[period] = {name: int(value * usage_factor) for name, value in stats[period].items()}
        (folder / f"stats_{kind}.json").write_text(json.dumps(stats))
    if lose_workers:
        status = json.loads((folder / "status_text.json").read_text())
        kept = [row for row in status if LOST not in row["name"].lower()]
        assert len(kept) < len(status)
        (folder / "status_text.json").write_text(json.dumps(kept))
        workers = json.loads((folder / "workers_text.json").read_text())
        for worker in workers:
            worker["models"] = [model for model in worker["models"] if LOST not in model.lower()]
        (folder / "workers_text.json").write_text(json.dumps(workers))
    return folder


def _section(page: str, category: str) -> str:
    return page.split(f'<h2 id="{category}">', 1)[1].split("<h2", 1)[0]


def test_report_shows_history_changes_and_usage_over_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    days = [("2026-03-01", 1.0, False), ("2026-03-02", 1.0, False), ("2026-03-09", 0.4, True)]
    for index, (day, factor, lose) in enumerate(days):
        monkeypatch.setenv(
            "HORDE_SOURCE", str(_horde_day(tmp_path / f"horde{index}", usage_factor=factor, lose_workers=lose))
        )
        assert main(["run", "--as-of", f"{day}T06:00:00Z"]) == 0
    capsys.readouterr()
    assert main(["report"]) == 0
    page_path = Path(capsys.readouterr().out.strip())
    page = page_path.read_text()
    text = _section(page, "text_generation")

    # usage over time: one point per day, drawn for both categories; no "too short" note any more
    pngs = {path.stem for path in page_path.parent.glob("*.png")}
    assert {"text_generation-usage-over-time", "image_generation-usage-over-time"} <= pngs
    assert "Usage over time appears once" not in page

    # the at-risk tables carry the history columns, with the snapshot's values
    for heading in ("days w/o workers", "at risk since", "a week before", "change"):
        assert f"<th>{heading}</th>" in text
    risk = latest_table(tmp_path / "snapshots", "deletion_risk", "text_generation")
    assert risk is not None
    lost = risk.filter(~pl.col("grouped") & pl.col("name").str.to_lowercase().str.contains(LOST, literal=True))
    assert lost.height >= 1 and lost["worker_count"].to_list() == [0] * lost.height
    # usage fell to 40 % against the run a week before: the change is shown signed, in red
    assert '<td class="n down"' in text

    # what changed since the last run, in words, naming the model that lost its workers
    assert "Changed since the last run" in text
    changes = latest_table(tmp_path / "snapshots", "changes", "text_generation")
    assert changes is not None
    lost_rows = changes.filter(pl.col("change") == "lost_all_workers")
    assert lost_rows.height >= 1
    assert "lost all its workers" in text
    for name in lost_rows["name"].to_list():
        assert f"<td>{name}</td>" in text


def test_report_reads_only_the_manifests_of_the_days_it_draws(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # SPEC §13: the report finds the newest run of each day through the run index; the other runs' manifests are
    # never read, so breaking one of them changes nothing (reading every manifest would report it)
    monkeypatch.setenv("HORDE_SOURCE", str(_horde_day(tmp_path / "horde", usage_factor=1.0, lose_workers=False)))
    for when in ("2026-03-01T06:00:00Z", "2026-03-01T12:00:00Z", "2026-03-02T06:00:00Z"):
        assert main(["run", "--as-of", when]) == 0
    manifests_dir = tmp_path / "snapshots" / "_runs"
    runs_at = {path: json.loads(path.read_text())["run_at"] for path in manifests_dir.glob("*.json")}
    (first,) = [path for path, run_at in runs_at.items() if run_at.startswith("2026-03-01T06")]
    first.write_text("{ not json")
    capsys.readouterr()
    assert main(["report"]) == 0
    out, err = capsys.readouterr()
    assert "manifest ignored" not in err
    page = Path(out.strip()).read_text()
    assert "Usage over time appears once" not in page  # two days drawn: 03-01 (its 12:00 run) and 03-02
