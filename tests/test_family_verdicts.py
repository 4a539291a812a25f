"""Family rows whose verdicts agree with their own numbers (SPEC §5, §6; issue 14)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.contracts.rules import AnalysisRules, RiskRules
from pipeline.shell.reference_records import category_records, load_records
from pipeline.sources.horde import horde_frames, load_horde
from pipeline.sources.records import ReferenceFile
from pipeline.steps.deletion_risk import FLAGS, deletion_risk_table
from pipeline.steps.deletion_risk_view import deletion_risk_summary
from pipeline.steps.merge import merged_models, worker_weighted_mean, worker_weighted_mean_of_one
from pipeline.steps.names.families import parameter_count, with_family_ids, with_parsed_names
from pipeline.steps.outputs import run_outputs

GIB = 1024**3
TEXT = "text_generation"


@pytest.fixture(scope="module")
def real_outputs(real_reference: Path, real_horde: Path) -> Any:
    loaded = load_records(str(real_reference))
    horde, _ = load_horde(str(real_horde))
    return run_outputs(loaded, horde, AnalysisRules(), computed_at=0)


def test_real_family_flags_agree_with_family_numbers(real_outputs: Any) -> None:
    families = real_outputs.deletion_risk[(TEXT, True, False)].table
    assert families.height > 0
    assert families.filter(pl.col("usage_month") > 0, pl.col("zero_usage_month")).is_empty()
    assert families.filter(pl.col("worker_count") > 0, pl.col("no_active_workers")).is_empty()
    for period in ("day", "month", "total"):
        assert (families[f"zero_usage_{period}"] == (families[f"usage_{period}"] == 0)).all()
    assert (families["no_active_workers"] == (families["worker_count"] == 0)).all()
    threshold = RiskRules().text_low_usage_threshold_percentage
    assert (families["low_usage"] == (families["usage_percentage_of_category"] < threshold)).all()
    critical = (families["usage_month"] < 10) & (families["worker_count"] < 1)
    assert (families["is_critical"] == critical).all()
    assert (families["risk_score"] == families.select(pl.sum_horizontal(FLAGS)).to_series()).all()
    # the case the issue names is really there: a used family with an unused member
    members = real_outputs.deletion_risk[(TEXT, False, False)].table
    unused = set(members.filter(pl.col("usage_month") == 0)["name"])
    assert (
        families.filter(
            (pl.col("usage_month") > 0) & pl.col("members").list.eval(pl.element().is_in(list(unused))).list.any()
        ).height
        > 0
    )


def test_real_family_summary_counts_the_family_rows(real_outputs: Any) -> None:
    view = real_outputs.deletion_risk[(TEXT, True, False)]
    families, summary = view.table, view.response().summary
    assert summary.total_models == families.height
    assert summary.models_with_zero_month_usage == (families["usage_month"] == 0).sum() == 108
    assert summary.models_with_no_active_workers == (families["worker_count"] == 0).sum()
    assert summary.models_at_risk == families["at_risk"].sum()
    assert summary.models_critical == families["is_critical"].sum()
    assert summary.models_with_low_usage == families["low_usage"].sum()


def test_real_family_worker_count_is_distinct_workers(real_outputs: Any, real_horde: Path) -> None:
    workers = json.loads((real_horde / "workers_text.json").read_text())
    active = [w for w in workers if w["online"] and not w["maintenance_mode"]]
    merged = real_outputs.tables[("merged", TEXT)]
    served_as = dict(zip(merged["name"], merged["horde_names"], strict=True))
    for row in real_outputs.deletion_risk[(TEXT, True, False)].table.iter_rows(named=True):
        names = {horde_name for member in row["members"] for horde_name in served_as[member]}
        assert row["worker_count"] == len({w["id"] for w in active if names & set(w["models"])}), row["name"]


@pytest.mark.parametrize("grouped", [False, True])
def test_real_baselines_count_only_models_with_one(real_outputs: Any, grouped: bool) -> None:
    stats = real_outputs.statistics[(TEXT, grouped)]
    assert "unknown" not in stats.baseline_distribution
    counted = sum(entry.count for entry in stats.baseline_distribution.values())
    assert stats.models_without_baseline > 0
    assert counted + stats.models_without_baseline == stats.total_models
    for entry in stats.baseline_distribution.values():  # percentages stay of total_models
        assert entry.percentage == round(entry.count * 100 / stats.total_models, 2)
    # the statistics and the risk rows agree on who has no baseline
    risk = real_outputs.deletion_risk[(TEXT, grouped, False)].table
    assert risk["missing_baseline"].sum() == stats.models_without_baseline


def _horde(usage: dict[str, int], workers: dict[str, list[str]], performance: dict[str, float | None]) -> Any:
    stats = {period: dict(usage) for period in ("day", "month", "total")}
    serving: dict[str, list[str]] = {}
    for name, ids in workers.items():
        for worker in ids:
            serving.setdefault(worker, []).append(name)
    worker_rows = [
        {"id": worker, "online": True, "maintenance_mode": False, "models": models}
        for worker, models in serving.items()
    ]
    status = [
        {
            "name": name,
            "count": len(workers.get(name, [])),
            "performance": perf,
            "queued": 0.0,
            "jobs": 0.0,
            "eta": 0,
            "type": "text",
        }
        for name, perf in performance.items()
    ]
    payloads = [
        ("text", "status", "s", json.dumps(status).encode()),
        ("text", "usage", "u", json.dumps(stats).encode()),
        ("text", "workers", "w", json.dumps(worker_rows).encode()),
    ]
    return horde_frames(payloads)[0]["text"]


def _family_table(document: dict[str, Any], frames: Any) -> pl.DataFrame:
    records = category_records(ReferenceFile(TEXT, "t.json", json.dumps(document).encode())).records
    named = with_parsed_names(records.lazy()).with_columns(parameter_count().alias("parameter_count"))
    members = with_family_ids(named, group_by_variant=False).collect()
    merged, _ = merged_models(members, frames, category=TEXT)
    return deletion_risk_table(merged, category=TEXT, rules=RiskRules(text_ignore_download_hosts=False), grouped=True)


def test_family_flags_from_family_numbers_and_members() -> None:
    document = {
        "org/Gamma-8B": {"parameters": 8_000_000_000, "baseline": "llama", "config": {"download": []}},
        "org/Gamma-8B-Instruct": {
            "parameters": 8_000_000_000,
            "description": "an instruct tune",
            "config": {"download": [{"file_url": "https://example.org/g.gguf"}]},
        },
        "org/Delta-12B": {"parameters": 12_000_000_000},
    }
    # one worker serves both Gamma spellings: the family has 2 distinct workers, not 3
    frames = _horde(
        {"org/Gamma-8B-Instruct": 500, "org/Delta-12B": 0},
        {"org/Gamma-8B": ["w1"], "org/Gamma-8B-Instruct": ["w1", "w2"]},
        {"org/Gamma-8B": 2.0, "org/Gamma-8B-Instruct": 4.0},
    )
    rows = {row["name"]: row for row in _family_table(document, frames).iter_rows(named=True)}
    gamma, delta = rows["Gamma-8B"], rows["Delta-12B"]
    assert (gamma["usage_month"], gamma["worker_count"]) == (500, 2)
    assert not gamma["zero_usage_month"] and not gamma["no_active_workers"] and not gamma["low_usage"]
    assert not gamma["is_critical"]
    # description and baseline: one member has each, so the family is not missing either
    assert not gamma["missing_description"] and not gamma["missing_baseline"] and gamma["has_description"]
    # host flags: any member with the problem (one member has no download at all, the other a non-preferred host)
    assert gamma["no_download_urls"] and gamma["has_non_preferred_host"] and gamma["has_warning"]
    assert gamma["risk_score"] == sum(gamma[flag] for flag in FLAGS)
    assert delta["zero_usage_month"] and delta["no_active_workers"] and delta["is_critical"]
    assert delta["missing_description"] and delta["missing_baseline"]
    summary = deletion_risk_summary(_family_table(document, frames))
    assert summary.models_with_zero_month_usage == 1 and summary.models_with_no_active_workers == 1


def _variation(row: dict[str, Any], backend: str) -> dict[str, Any]:
    found = [entry for entry in row["backend_variations"] if entry["backend"] == backend]
    assert len(found) == 1
    return found[0]


def test_family_backend_performance_is_the_worker_weighted_mean() -> None:
    document = {
        "org/Eps-8B": {"parameters": 8_000_000_000},
        "org/Eps-8B-Instruct": {"parameters": 8_000_000_000},
        "org/Zed-8B": {"parameters": 8_000_000_000},
        "org/Zed-8B-Instruct": {"parameters": 8_000_000_000},
    }
    frames = _horde(
        {"koboldcpp/Eps-8B": 10, "koboldcpp/Eps-8B-Instruct": 30},
        {"koboldcpp/Eps-8B": ["a"], "koboldcpp/Eps-8B-Instruct": ["b", "c", "d"]},
        # Zed: both spellings are listed with a performance but no worker serves them
        {"koboldcpp/Eps-8B": 10.0, "koboldcpp/Eps-8B-Instruct": 30.0, "org/Zed-8B": 4.0, "org/Zed-8B-Instruct": 8.0},
    )
    rows = {row["name"]: row for row in _family_table(document, frames).iter_rows(named=True)}
    eps = rows["Eps-8B"]
    assert [entry["backend"] for entry in eps["backend_variations"]] == ["canonical", "aphrodite", "koboldcpp"]
    kobold = _variation(eps, "koboldcpp")
    assert kobold["performance"] == pytest.approx((1 * 10.0 + 3 * 30.0) / 4)  # not the max, 30
    assert (kobold["worker_count"], kobold["usage_month"]) == (4, 40)
    assert kobold["variant_name"] == "koboldcpp/Eps-8B-Instruct"  # the busiest member's spelling
    assert _variation(eps, "canonical")["performance"] is None  # no member has a figure there
    # no weights: the plain mean of the members' figures
    assert _variation(rows["Zed-8B"], "canonical")["performance"] == pytest.approx(6.0)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.one_of(st.none(), st.floats(allow_nan=False, allow_infinity=False, min_value=0, max_value=1e6)),
            st.one_of(st.none(), st.integers(min_value=0, max_value=10_000)),
        ),
        min_size=1,
        max_size=50,
    )
)
def test_a_one_member_family_weighs_its_performance_as_the_grouped_families_do(
    rows: list[tuple[float | None, int | None]],
) -> None:
    # the one-member families skip the group-by (family_backend_variations): the same bits as aggregating one row
    frame = pl.DataFrame(rows, schema={"performance": pl.Float64, "worker_count": pl.Int64}, orient="row")
    grouped = (
        frame.with_row_index("row")
        .group_by("row", maintain_order=True)
        .agg(worker_weighted_mean("performance", "worker_count"))["performance"]
    )
    alone = frame.select(worker_weighted_mean_of_one(pl.col("performance"), pl.col("worker_count")))["performance"]
    assert alone.to_list() == grouped.to_list()


def test_family_variations_of_one_member_and_of_several_agree(real_outputs: Any) -> None:
    # the real families mix one-member families (the member's entries) and larger ones (grouped): every family's
    # figures are its members' summed, whichever way they were computed
    merged = real_outputs.tables[("merged", TEXT)]
    families = real_outputs.deletion_risk[(TEXT, True, False)].table
    sizes = families["members"].list.len()
    assert (sizes == 1).any() and (sizes > 1).any()
    for family in families.filter(sizes <= 3).iter_rows(named=True):
        members = merged.filter(pl.col("name").is_in(family["members"]))
        for position, entry in enumerate(family["backend_variations"]):
            member_entries = [row[position] for row in members["backend_variations"]]
            assert entry["usage_month"] == sum(item["usage_month"] for item in member_entries)
            assert entry["worker_count"] == sum(item["worker_count"] for item in member_entries)
            if len(member_entries) == 1:
                assert entry == member_entries[0] or entry["performance"] == pytest.approx(
                    member_entries[0]["performance"]
                )


def test_cost_benefit_divides_by_the_exact_size() -> None:
    size = int(1.004 * GIB)  # size_gb rounds to 1.0; 1000 / 1.0 would be 1000.0
    document = {"Exact": {"baseline": "SDXL", "nsfw": False, "description": "d", "size_on_disk_bytes": size}}
    records = category_records(ReferenceFile("image_generation", "i.json", json.dumps(document).encode())).records
    frames = horde_frames(
        [
            ("image", "status", "s", b"[]"),
            ("image", "usage", "u", json.dumps({p: {"Exact": 1000} for p in ("day", "month", "total")}).encode()),
        ]
    )[0]["image"]
    merged, _ = merged_models(records, frames, category="image_generation")
    row = deletion_risk_table(merged, category="image_generation", rules=RiskRules()).row(0, named=True)
    assert row["size_gb"] == 1.0
    assert row["cost_benefit_score"] == round(1000 / (size / GIB), 2) == 996.02


def test_query_on_family_rows_agrees(
    real_reference: Path, real_horde: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from jobs.__main__ import main

    assert main(["run", "--reference", str(real_reference), "--horde", str(real_horde)]) == 0
    capsys.readouterr()
    assert main(["query", "--category", TEXT, "--grouped", "--json"]) == 0
    response = json.loads(capsys.readouterr().out)
    models = response["models"]
    assert len(models) == response["summary"]["total_models"] == 541
    for model in models:
        flags = model["deletion_risk_flags"]
        assert flags["zero_usage_month"] == (model["usage_month"] == 0), model["name"]
        assert flags["no_active_workers"] == (model["worker_count"] == 0), model["name"]
    assert response["summary"]["models_with_zero_month_usage"] == sum(m["usage_month"] == 0 for m in models) == 108
    assert main(["query", "--category", TEXT, "--grouped", "--preset", "no_workers", "--json"]) == 0
    no_workers = json.loads(capsys.readouterr().out)
    assert no_workers["models"] and all(m["deletion_risk_flags"]["no_active_workers"] for m in no_workers["models"])


def test_a_models_backend_performance_weighs_its_spellings() -> None:
    document = {"org/Eta-8B": {"parameters": 8_000_000_000}}
    frames = _horde(
        {"koboldcpp/Eta-8B": 5, "koboldcpp/Eta-8B-Q4_K_M": 7},
        {"koboldcpp/Eta-8B": ["a"], "koboldcpp/Eta-8B-Q4_K_M": ["b", "c", "d"]},
        {"koboldcpp/Eta-8B": 40.0, "koboldcpp/Eta-8B-Q4_K_M": 20.0},
    )
    records = category_records(ReferenceFile(TEXT, "t.json", json.dumps(document).encode())).records
    merged, _ = merged_models(records, frames, category=TEXT)
    (row,) = merged.iter_rows(named=True)
    kobold = _variation(row, "koboldcpp")
    assert kobold["performance"] == pytest.approx((1 * 40.0 + 3 * 20.0) / 4)  # not the fastest spelling's 40
    assert (kobold["worker_count"], kobold["usage_month"]) == (4, 12)
    assert row["performance"] == 40.0  # the model's own figure stays the maximum (README)
