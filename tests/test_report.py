"""The report (SPEC §9): its figures, and the page and PNGs written from a real snapshot of the sample run."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import warnings
from pathlib import Path

import polars as pl
import pytest

from jobs.__main__ import main
from pipeline.sinks.parquet_snapshot import latest_table
from pipeline.sinks.report_files import report_html, write_report
from pipeline.steps.deletion_risk import FLAGS
from pipeline.steps.report import TOP_ROWS, CategorySection, Chart
from pipeline.steps.report_bars import family_charts
from pipeline.steps.report_sections import usage_long_tail
from pipeline.steps.report_tables import most_at_risk

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def test_usage_long_tail_counts_the_busiest_models_that_carry_each_share() -> None:
    tail = usage_long_tail(pl.Series([10, 0, 50, 10, 30]))
    # sorted: 50, 30, 10, 10, 0 -> cumulative 50, 80, 90, 100: 50 % needs 1 model, 90 % needs 3, 99 % needs 4
    assert tail.rows() == [("50%", 1), ("90%", 3), ("99%", 4)]
    assert usage_long_tail(pl.Series([0, 0], dtype=pl.Int64))["models"].to_list() == [0, 0, 0]
    assert usage_long_tail(pl.Series([], dtype=pl.Int64))["models"].to_list() == [0, 0, 0]


def test_most_at_risk_orders_by_score_then_least_used() -> None:
    risk = pl.DataFrame(
        {
            "name": ["a", "b", "c", "d", "fam"],
            "grouped": [False, False, False, False, True],
            "at_risk": [True, True, True, False, True],
            "risk_score": [2, 3, 2, 0, 5],
            "is_critical": [False, True, False, False, True],
            "usage_month": [5, 9, 1, 0, 0],
            "worker_count": [1, 0, 1, 3, 0],
            **{flag: [False] * 5 for flag in FLAGS},
        }
    )
    assert most_at_risk(risk, grouped=False)["name"].to_list() == ["b", "c", "a"]
    assert most_at_risk(risk, grouped=True)["name"].to_list() == ["fam"]
    many = pl.concat([risk.head(1).with_columns(pl.lit(f"m{i}").alias("name")) for i in range(TOP_ROWS + 5)])
    assert most_at_risk(many, grouped=False, limit=TOP_ROWS).height == TOP_ROWS


def test_busiest_families_keep_one_order_when_two_share_a_name() -> None:
    # GROUP_BY_VARIANT: the Instruct and the Base family both show "Qwen2.5-14B" with the same usage. Their bars
    # say which is which (the first member), and come in one order (the first member breaks the tie) whatever
    # order the risk table holds them in.
    families = pl.DataFrame(
        {
            "name": ["Qwen2.5-14B", "Qwen2.5-14B", "Llama-3-8B"],
            "grouped": [True, True, True],
            "usage_month": [40, 40, 90],
            "members": [
                ["Qwen/Qwen2.5-14B-Instruct", "Qwen2.5-14B-Instruct-GGUF"],
                ["Qwen/Qwen2.5-14B", "Qwen2.5-14B-GGUF"],
                ["meta-llama/Meta-Llama-3-8B", "Llama-3-8B-GGUF"],
            ],
        }
    )
    expected = ("Llama-3-8B", "Qwen2.5-14B (Qwen/Qwen2.5-14B)", "Qwen2.5-14B (Qwen/Qwen2.5-14B-Instruct)")
    for order in ([0, 1, 2], [1, 0, 2], [2, 0, 1], [2, 1, 0]):
        charts, notes = family_charts("text_generation", families[order])
        busiest = next(chart for chart in charts if chart.key == "text_generation-usage-families")
        assert busiest.labels == expected
        assert notes == [
            "Largest families (members): Llama-3-8B (2), Qwen2.5-14B (Qwen/Qwen2.5-14B) (2), "
            "Qwen2.5-14B (Qwen/Qwen2.5-14B-Instruct) (2)."
        ]


def test_report_escapes_hostile_names() -> None:
    hostile = '<script>alert("x")</script>'
    rows = pl.DataFrame({"name": [hostile], "risk_score": [3]})
    section = CategorySection(
        category="text_generation", facts={}, charts=(), long_tail=None, at_risk=rows, at_risk_families=None
    )
    page = report_html([section], {}, run_id="r<1>", run_at="now")
    assert hostile not in page and "&lt;script&gt;alert(" in page and "r&lt;1&gt;" in page
    assert page.count("<script") == 1  # the page's own inline script only


def test_charts_draw_hostile_names(tmp_path: Path) -> None:
    # "$$" once crashed matplotlib's mathtext; control characters, unknown glyphs and huge names must draw too
    labels = ("$$", "cost $5 and $\\foo{$", "a\x00b\nc", "模型-7B 🚀", "x" * 100_000, "")
    chart = Chart(key="hostile", title="$x$ $$", labels=labels, values=tuple(range(len(labels))))
    section = CategorySection(
        category="text_generation", facts={}, charts=(chart,), long_tail=None, at_risk=None, at_risk_families=None
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        page = write_report([section], tmp_path / "report", run_id="r", run_at="now")
    assert (tmp_path / "report" / "hostile.png").read_bytes().startswith(PNG_SIGNATURE)
    assert page.read_text().count("data:image/png;base64,") == 1


def test_report_command_writes_a_self_contained_page(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report"]) == 1
    assert "run `horde-analytics run` first" in capsys.readouterr().err
    assert main(["run"]) == 0
    capsys.readouterr()
    assert main(["report"]) == 0
    page_path = Path(capsys.readouterr().out.strip())
    assert page_path == tmp_path / "snapshots" / "report" / "report.html"
    page = page_path.read_text()

    pngs = sorted(page_path.parent.glob("*.png"))
    assert {p.stem for p in pngs} >= {"text_generation-buckets", "text_generation-usage"}
    for png in pngs:
        assert png.read_bytes().startswith(PNG_SIGNATURE)
    # every chart is embedded, and nothing is fetched: one inline script, no external source or stylesheet
    assert page.count('src="data:image/png;base64,') == len(pngs)
    assert page.count("<script>") == page.count("<script") == 1
    # one run is no history yet: the page says once why there is no usage over time
    assert page.count("Usage over time appears once committed runs span two or more days") == 1
    assert not re.search(r"<link|src=\"(?!data:)|url\(", page)

    # the figures are the snapshot's: at-risk and critical counts, and the at-risk table's first row
    risk = latest_table(tmp_path / "snapshots", "deletion_risk", "image_generation")
    assert risk is not None
    models = risk.filter(~pl.col("grouped"))
    image = page.split('<h2 id="image_generation">image_generation</h2>', 1)[1].split("<h2", 1)[0]
    # baselines as a chart where most baselines have several models, else as a sentence
    assert "image_generation-baselines" in {p.stem for p in pngs} or "Baselines: " in image
    assert f'<td>at risk</td><td class="n">{int(models["at_risk"].sum()):,}</td>' in image
    assert f'<td>critical</td><td class="n">{int(models["is_critical"].sum()):,}</td>' in image
    top = most_at_risk(risk, grouped=False).row(0, named=True)
    assert f"<td>{top['name']}</td>" in image.split("At-risk models", 1)[1]
    assert "At-risk families" in page.split('<h2 id="text_generation">', 1)[1]

    # a second report replaces the first whole (a chart the earlier report listed in its marker goes too),
    # leaving no staging folder behind
    marker = page_path.parent / ".horde-analytics-report"
    listed = json.loads(marker.read_text())
    (page_path.parent / "stale.png").write_bytes(b"old")
    marker.write_text(json.dumps({**listed, "files": [*listed["files"], "stale.png"]}))
    assert main(["report"]) == 0
    assert not (page_path.parent / "stale.png").exists()
    assert [p.name for p in page_path.parent.parent.iterdir() if p.name.startswith(".report")] == []


#: A child process in which matplotlib cannot be imported, as if the report extra were not installed: an import
#: blocker in front of every finder, then the CLI's ``report``.
_REPORT_WITHOUT_MATPLOTLIB = """
import sys

class NoMatplotlib:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] == "matplotlib":
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, NoMatplotlib())
from jobs.__main__ import main
sys.exit(main(["report"]))
"""


def test_report_without_matplotlib_says_how_to_install_it() -> None:
    assert main(["run"]) == 0
    # the child inherits this test's working directory and environment (its snapshot folder and settings)
    child = subprocess.run(
        [sys.executable, "-c", _REPORT_WITHOUT_MATPLOTLIB], capture_output=True, text=True, timeout=300
    )
    assert child.returncode == 2, child.stderr
    assert "pip install -e '.[report]'" in child.stderr
    assert not (Path("snapshots") / "report").exists()
