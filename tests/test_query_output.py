"""``query`` (SPEC §6): the category total is the whole category's, limits are checked, names cannot act on the
terminal, and the order is the risk step's own."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import polars as pl
import pytest

from jobs.__main__ import main
from jobs.query import selected_rows
from pipeline.sinks.parquet_snapshot import latest_table
from tests.conftest import SAMPLE_DATA

HOSTILE = "Evil\x1b[2J\x1b[31mRed\x9b6n\u202eModel"


@pytest.fixture
def snapshots(tmp_path: Path) -> Path:
    assert main(["run"]) == 0
    return tmp_path / "snapshots"


def test_json_category_total_is_the_whole_category(snapshots: Path, capsys: pytest.CaptureFixture[str]) -> None:
    risk = latest_table(snapshots, "deletion_risk", "image_generation")
    assert risk is not None
    models = risk.filter(~pl.col("grouped"))
    whole = int(models["usage_month"].sum())
    capsys.readouterr()
    assert main(["query", "--category", "image_generation", "--json", "--limit", "1"]) == 0
    response = json.loads(capsys.readouterr().out)
    assert response["returned_count"] == 1 and response["total_count"] == models.height
    assert response["models"][0]["usage_month"] < whole  # the shown row is not the whole category
    assert response["category_total_month_usage"] == whole
    assert response["summary"]["category_total_month_usage"] == whole

    assert main(["query", "--category", "image_generation", "--json", "--preset", "zero_usage"]) == 0
    assert json.loads(capsys.readouterr().out)["category_total_month_usage"] == whole


@pytest.mark.parametrize("limit", ["1e20", "-3", "2.5", "ten", ""])
def test_a_bad_limit_exits_2_with_a_message(limit: str, snapshots: Path, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    assert main(["query", "--category", "image_generation", f"--limit={limit}"]) == 2
    assert "--limit" in capsys.readouterr().err


def test_a_huge_limit_shows_every_model(snapshots: Path, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    assert main(["query", "--category", "image_generation", "--limit", str(10**20)]) == 0
    out = capsys.readouterr().out
    assert out.rstrip().endswith("20 of 20 models")


def test_control_characters_in_names_never_reach_the_terminal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    reference = tmp_path / "reference"
    shutil.copytree(SAMPLE_DATA / "model_reference", reference)
    records = json.loads((reference / "stable_diffusion.json").read_text())
    records[HOSTILE] = {**records["Deliberate"], "name": HOSTILE}
    (reference / "stable_diffusion.json").write_text(json.dumps(records))
    monkeypatch.setenv("MODEL_REFERENCE_SOURCE", str(reference))
    assert main(["run"]) == 0
    capsys.readouterr()

    monkeypatch.setenv("POLARS_TABLE_WIDTH", "500")  # a wide table: the name is not wrapped over two lines
    assert main(["query", "--category", "image_generation"]) == 0
    table = capsys.readouterr().out
    assert "\x1b" not in table and "\x9b" not in table and "\u202e" not in table
    assert "Evil\\x1b[2J\\x1b[31mRed\\x9b6n\\u202eModel" in table

    assert main(["query", "--category", "image_generation", "--json"]) == 0
    text = capsys.readouterr().out
    assert "\x1b" not in text and "\x9b" not in text and "\u202e" not in text
    assert HOSTILE in [model["name"] for model in json.loads(text)["models"]]  # the same JSON, escaped


def test_query_orders_rows_as_the_risk_step_does() -> None:
    """Two families that share a display name and usage (GROUP_BY_VARIANT): the first member breaks the tie."""
    risk = pl.DataFrame(
        {
            "name": ["Qwen2.5-14B", "Qwen2.5-14B", "Alpha-7B", "Zeta-7B"],
            "usage_month": [10, 10, 10, 99],
            "grouped": [True] * 4,
            "members": [["Qwen2.5-14B-Instruct"], ["Qwen2.5-14B-Base"], ["Alpha-7B"], ["Zeta-7B"]],
        }
    )
    for shuffled in (risk, risk.reverse(), risk.sample(fraction=1.0, shuffle=True, seed=3)):
        rows = selected_rows(shuffled, grouped=True, preset=None)
        assert rows["members"].list.first().to_list() == [
            "Zeta-7B",
            "Alpha-7B",
            "Qwen2.5-14B-Base",
            "Qwen2.5-14B-Instruct",
        ]


def test_query_shows_the_snapshot_in_its_stored_order(snapshots: Path, capsys: pytest.CaptureFixture[str]) -> None:
    risk = latest_table(snapshots, "deletion_risk", "text_generation")
    assert risk is not None
    stored = risk.filter(pl.col("grouped"))["name"].to_list()
    capsys.readouterr()
    assert main(["query", "--category", "text_generation", "--grouped", "--json"]) == 0
    assert [model["name"] for model in json.loads(capsys.readouterr().out)["models"]] == stored
