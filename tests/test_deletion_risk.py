from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from jobs.__main__ import main
from pipeline.contracts.models import DeletionRiskFlags, ModelDeletionRiskInfo
from pipeline.contracts.rules import RiskRules
from pipeline.contracts.schemas import RISK_SCHEMA
from pipeline.shell.reference_records import category_records
from pipeline.sources.horde import horde_frames
from pipeline.sources.records import ReferenceFile
from pipeline.steps.deletion_risk import FLAGS, deletion_risk_table, is_preferred_host
from pipeline.steps.deletion_risk_view import deletion_risk_response
from pipeline.steps.merge import merged_models
from pipeline.steps.names.families import parameter_count, with_family_ids, with_parsed_names
from pipeline.steps.presets import PRESETS, UnknownPresetError, preset_filter

GIB = 1024**3


def _horde(model_type: str, usage: dict[str, tuple[int, int, int]], workers: dict[str, int]) -> Any:
    stats = {
        "day": {name: d for name, (d, _, _) in usage.items()},
        "month": {name: m for name, (_, m, _) in usage.items()},
        "total": {name: t for name, (_, _, t) in usage.items()},
    }
    worker_rows = [
        {"id": f"{name}-{i}", "online": True, "maintenance_mode": False, "models": [name]}
        for name, count in workers.items()
        for i in range(count)
    ]
    status = [
        {"name": name, "count": count, "performance": 1.0, "queued": 0.0, "jobs": 0.0, "eta": 0, "type": model_type}
        for name, count in workers.items()
    ]
    payloads = [
        (model_type, "status", "s", json.dumps(status).encode()),
        (model_type, "usage", "u", json.dumps(stats).encode()),
        (model_type, "workers", "w", json.dumps(worker_rows).encode()),
    ]
    return horde_frames(payloads)[0][model_type]


def _image_risk(rules: RiskRules | None = None) -> pl.DataFrame:
    def rec(urls: list[str], **extra: Any) -> dict[str, Any]:
        return {
            "baseline": "SDXL",
            "nsfw": False,
            "description": "d",
            "size_on_disk_bytes": 2 * GIB,
            "config": {"download": [{"file_url": u} for u in urls]},
            **extra,
        }

    records = category_records(
        ReferenceFile(
            "image_generation",
            "x.json",
            json.dumps(
                {
                    "Popular": rec(["https://huggingface.co/a/b.safetensors"]),
                    "Sub": rec(["https://cdn-lfs.huggingface.co/x"]),
                    "Evil": rec(["https://huggingface.co.evil.net/x"]),
                    "Two": rec(["https://huggingface.co/a", "https://civitai.com/b"]),
                    "NoUrl": rec([], description=""),
                    "Broken": rec(["not a url"]),
                    "Unused": rec(["https://huggingface.co/u"], baseline="   "),
                    "Tiny": rec(["https://huggingface.co/t"]),
                }
            ).encode(),
        )
    ).records
    horde = _horde(
        "image",
        {
            "Popular": (100, 1_000_000, 5_000_000),
            "Sub": (0, 500, 9000),
            "Two": (1, 30, 30),
            "Tiny": (0, 10, 10),
            "Evil": (3, 300, 600),
        },
        {"Popular": 5, "Sub": 1, "Evil": 1},
    )
    merged, _ = merged_models(records, horde, category="image_generation")
    return deletion_risk_table(merged, category="image_generation", rules=rules or RiskRules())


def _by_name(table: pl.DataFrame) -> dict[str, dict[str, Any]]:
    return {row["name"]: row for row in table.iter_rows(named=True)}


def test_flags_and_scores() -> None:
    table = _image_risk()
    rows = _by_name(table)
    assert table["name"].to_list()[:3] == ["Popular", "Sub", "Evil"]  # usage_month descending
    assert table["name"].to_list()[-3:] == ["Broken", "NoUrl", "Unused"]  # ties by name ascending
    popular = rows["Popular"]
    assert not popular["at_risk"] and popular["risk_score"] == 0 and not popular["has_warning"]
    assert rows["Sub"]["has_non_preferred_host"] is False  # a subdomain of a preferred host is preferred
    assert rows["Evil"]["has_non_preferred_host"] is True  # huggingface.co.evil.net is not huggingface.co
    assert rows["Two"]["has_multiple_hosts"] and rows["Two"]["download_hosts"] == ["civitai.com", "huggingface.co"]
    assert rows["NoUrl"]["no_download_urls"] and rows["NoUrl"]["missing_description"]
    assert rows["Broken"]["has_unknown_host"] and rows["Broken"]["has_warning"]
    assert rows["Unused"]["missing_baseline"]  # blank counts as missing
    unused = rows["Unused"]
    assert unused["zero_usage_day"] and unused["zero_usage_month"] and unused["zero_usage_total"]
    assert unused["no_active_workers"] and unused["is_critical"]  # image: month usage 0 and no workers
    assert unused["risk_score"] == sum(unused[f] for f in FLAGS) == 6
    assert not rows["Tiny"]["is_critical"]  # used this month
    total = 1_000_000 + 500 + 30 + 10 + 300
    assert popular["category_total_month_usage"] == total
    assert popular["usage_percentage_of_category"] == round(1_000_000 * 100 / total, 4) <= 100
    assert rows["Tiny"]["usage_percentage_of_category"] == round(10 * 100 / total, 4)
    # low_usage: share below 0.0065 % for images
    assert rows["Tiny"]["low_usage"] == (10 * 100 / total < 0.0065)
    assert rows["Sub"]["low_usage"] is False
    assert popular["size_gb"] == 2.0 and popular["cost_benefit_score"] == 500_000.0
    assert popular["day_to_month_ratio"] == 0.0001 and popular["month_to_total_ratio"] == 0.2
    assert unused["day_to_month_ratio"] is None


def test_thresholds_and_hosts_come_from_the_rules() -> None:
    rules = RiskRules(low_usage_threshold_percentage=1.0, preferred_file_hosts=("huggingface.co", "civitai.com"))
    rows = _by_name(_image_risk(rules))
    assert rows["Sub"]["low_usage"] is True  # 0.05 % < 1 %
    assert rows["Two"]["has_non_preferred_host"] is False


def test_preferred_host_expression() -> None:
    hosts = pl.Series(["huggingface.co", "cdn.huggingface.co", "huggingface.co.evil.net", "evilhuggingface.co", None])
    result = pl.select(is_preferred_host(pl.lit(hosts), ("huggingface.co",))).to_series().to_list()
    assert result == [True, True, False, False, None]


def _text_risk(rules: RiskRules, grouped: bool = False) -> pl.DataFrame:
    records = category_records(
        ReferenceFile(
            "text_generation",
            "t.json",
            json.dumps(
                {
                    "org/Alpha-8B": {
                        "parameters": 8_000_000_000,
                        "description": "a",
                        "config": {"download": [{"file_url": "https://b.example.org/w.gguf"}]},
                    },
                    "org/Alpha-8B-Instruct": {
                        "parameters": 8_000_000_000,
                        "description": "a",
                        "config": {
                            "download": [
                                {"file_url": "https://huggingface.co/x.gguf"},
                                {"file_url": "https://b.example.org/y.gguf"},
                            ]
                        },
                    },
                    "org/Alpha-70B": {"parameters": 70_000_000_000},
                    "org/Beta-12B": {"parameters": 12_000_000_000, "url": "https://example.org/x"},
                }
            ).encode(),
        )
    ).records
    named = with_family_ids(
        with_parsed_names(records.lazy()).with_columns(parameter_count().alias("parameter_count")),
        group_by_variant=False,
    ).collect()
    horde = _horde(
        "text",
        {
            "koboldcpp/Alpha-8B": (5, 5000, 9000),
            "koboldcpp/Alpha-8B-Instruct-Q4_K_M": (1, 9, 9),
            "org/Alpha-70B": (0, 0, 50),
        },
        {"koboldcpp/Alpha-8B": 2, "koboldcpp/Alpha-8B-Instruct-Q4_K_M": 1},
    )
    merged, _ = merged_models(named, horde, category="text_generation")
    return deletion_risk_table(merged, category="text_generation", rules=rules, grouped=grouped)


def test_text_rules() -> None:
    rows = _by_name(_text_risk(RiskRules()))
    instruct = rows["org/Alpha-8B-Instruct"]
    assert instruct["usage_month"] == 9 and instruct["worker_count"] == 1
    assert instruct["is_critical"] is False  # 9 < 10 but one worker
    assert rows["org/Alpha-70B"]["is_critical"] is True  # 0 < 10 and no worker
    assert rows["org/Beta-12B"]["no_download_urls"] is False  # text download flags are off by default
    assert not any(row["has_warning"] for row in rows.values())
    loose = _by_name(_text_risk(RiskRules(text_ignore_download_hosts=False, text_critical_worker_threshold=2)))
    assert loose["org/Beta-12B"]["no_download_urls"] is True and loose["org/Beta-12B"]["has_warning"]
    assert loose["org/Alpha-8B-Instruct"]["is_critical"] is True


def test_grouped_text_rows_sum_usage_and_or_flags() -> None:
    table = _text_risk(RiskRules(), grouped=True)
    rows = _by_name(table)
    assert set(rows) == {"Alpha-8B", "Alpha-70B", "Beta-12B"}  # 8B and 70B never merge
    alpha = rows["Alpha-8B"]
    assert alpha["members"] == ["org/Alpha-8B", "org/Alpha-8B-Instruct"]
    assert (alpha["usage_month"], alpha["worker_count"]) == (5009, 3)
    assert alpha["missing_baseline"]  # no member names a baseline
    assert alpha["risk_score"] == sum(alpha[f] for f in FLAGS)
    assert alpha["usage_percentage_of_category"] == round(5009 * 100 / 5009, 4)
    # the union of the members' hosts, sorted; a family with no downloads has an empty list
    assert alpha["download_hosts"] == ["b.example.org", "huggingface.co"] and alpha["download_count"] == 3
    assert rows["Alpha-70B"]["download_hosts"] == []


def test_families_sharing_a_display_name_keep_one_order() -> None:
    # Under GROUP_BY_VARIANT each variant is its own family, and every one of them shows as "Zeta-8B". Records are
    # listed against the order of their names, so an order left to the group-by would come out reversed.
    variants = ["Uncensored", "Thinking", "RP", "Reasoning", "Preview", "Math", "Instruct", "Code", "Chat", "Base"]
    names = [f"org{i}/Zeta-8B-{variant}" for i, variant in enumerate(variants)] + ["org/Zeta-8B"]
    records = category_records(
        ReferenceFile(
            "text_generation", "t.json", json.dumps({name: {"parameters": 8_000_000_000} for name in names}).encode()
        )
    ).records
    named = with_parsed_names(records.lazy()).with_columns(parameter_count().alias("parameter_count")).collect()
    members = with_family_ids(named.lazy(), group_by_variant=True).collect()
    merged, _ = merged_models(members, _horde("text", {}, {}), category="text_generation")
    table = deletion_risk_table(merged, category="text_generation", rules=RiskRules(), grouped=True)
    assert table.height == len(names) and set(table["name"]) == {"Zeta-8B"}
    assert table["members"].list.first().to_list() == sorted(names)


def test_response_and_summary() -> None:
    table = _image_risk()
    view = deletion_risk_response(table, category="image_generation")
    assert json.loads(view.json()) == view.response().model_dump(mode="json")
    response = view.response()
    assert response.total_count == response.returned_count == 8 and response.offset == 0 and response.limit is None
    summary = response.summary
    assert summary.total_models == 8
    assert summary.models_at_risk == table["at_risk"].sum()
    assert summary.models_with_warnings == 4  # Evil, Two, NoUrl, Broken
    assert summary.average_risk_score == round(table["risk_score"].mean(), 2)  # type: ignore[arg-type]
    first = response.models[0]
    assert isinstance(first, ModelDeletionRiskInfo) and first.usage_hour is None and first.usage_minute is None
    assert first.backend_variations is None
    dumped = json.loads(response.model_dump_json())
    assert set(dumped["models"][0]["deletion_risk_flags"]) == set(DeletionRiskFlags.model_fields)


def test_risk_columns_match_the_models() -> None:
    flat_fields = set(ModelDeletionRiskInfo.model_fields) - {
        "deletion_risk_flags",
        "usage_trend",
        "usage_hour",
        "usage_minute",
    }
    assert flat_fields <= set(RISK_SCHEMA.names())
    assert set(FLAGS) <= set(RISK_SCHEMA.names())
    assert set(FLAGS) == set(DeletionRiskFlags.model_fields)


# --- presets and the query command ----------------------------------------------------------------------


def test_every_preset_filters_as_named() -> None:
    table = _image_risk()
    expected = {
        "zero_usage": {"Broken", "NoUrl", "Unused"},
        "no_workers": {"Two", "Tiny", "NoUrl", "Broken", "Unused"},
        "missing_data": {"NoUrl", "Unused"},
        "host_issues": {"Evil", "Two", "NoUrl", "Broken"},
        "critical": {"Broken", "NoUrl", "Unused"},
        "high_usage": {"Popular"},
    }
    for name, members in expected.items():
        assert set(table.filter(preset_filter(name))["name"]) == members, name
    assert set(table.filter(preset_filter("at_risk"))["name"]) == set(table.filter(pl.col("at_risk"))["name"])
    assert set(table.filter(preset_filter("low_usage"))["name"]) == set(table.filter(pl.col("low_usage"))["name"])
    candidates = set(table.filter(preset_filter("deletion_candidates"))["name"])
    assert candidates >= expected["no_workers"] and "Popular" not in candidates
    assert set(PRESETS) == {
        "deletion_candidates",
        "zero_usage",
        "no_workers",
        "missing_data",
        "host_issues",
        "critical",
        "low_usage",
        "at_risk",
        "high_usage",
        "stale_workers",
    }


def test_unknown_preset_lists_the_valid_ones() -> None:
    with pytest.raises(UnknownPresetError, match="valid presets: at_risk, critical, deletion_candidates"):
        preset_filter("zombies")


def test_query_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["query", "--category", "image_generation"]) == 1
    assert "run `horde-analytics run` first" in capsys.readouterr().err
    assert main(["run"]) == 0
    capsys.readouterr()
    assert main(["query", "--category", "text_generation", "--preset", "no_workers", "--json"]) == 0
    response = json.loads(capsys.readouterr().out)
    names = [m["name"] for m in response["models"]]
    assert names and all(m["worker_count"] == 0 for m in response["models"])
    assert response["total_count"] == response["returned_count"] == len(names)
    assert main(["query", "--category", "text_generation", "--grouped", "--json", "--limit", "2"]) == 0
    grouped = json.loads(capsys.readouterr().out)
    assert grouped["returned_count"] == 2 and grouped["total_count"] == 9 and grouped["limit"] == 2
    usage = [m["usage_month"] for m in grouped["models"]]
    assert usage == sorted(usage, reverse=True)
    assert main(["query", "--category", "image_generation", "--preset", "host_issues"]) == 0
    out = capsys.readouterr().out
    assert "Hentai Diffusion" in out and "(preset host_issues)" in out
    assert main(["query", "--category", "image_generation", "--preset", "nope"]) == 2
    assert "valid presets" in capsys.readouterr().err
    assert main(["query", "--category", "image_generation", "--limit", "-1"]) == 2
    assert "--limit: must be 0 or more" in capsys.readouterr().err
    assert main(["query", "--category", "nonsense"]) == 2
