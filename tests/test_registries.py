"""One home per rule: the category policy, the rule values built from Settings, the risk order."""

from __future__ import annotations

from dataclasses import fields

import polars as pl
import pytest

from pipeline import AnalysisRules, RiskRules, Settings, analysis_rules, load_settings
from pipeline.contracts.categories import CATEGORY_FILES, HORDE_MODEL_TYPES, HORDE_TYPES, policy
from pipeline.steps.risk_order import in_risk_order


def test_the_policy_states_what_differs_between_categories() -> None:
    text, image, small = policy("text_generation"), policy("image_generation"), policy("controlnet")
    assert (text.has_families, text.folds_backend_copies, text.text_risk_rules, text.horde_type) == (
        True,
        True,
        True,
        "text",
    )
    assert (image.has_families, image.normalizes_baselines, image.horde_type) == (False, True, "image")
    assert small == type(small)("controlnet")  # the plain defaults: no Horde data, no special rule
    assert HORDE_TYPES == {"image_generation": "image", "text_generation": "text"}
    assert HORDE_MODEL_TYPES == ("image", "text")
    assert all(policy(category).category == category for category in CATEGORY_FILES)


def test_settings_take_their_rule_defaults_from_the_rules() -> None:
    defaults = Settings.model_fields
    for rule in fields(RiskRules):
        assert defaults[rule.name].default == getattr(RiskRules(), rule.name), rule.name
    for name in ("top_tags_limit", "group_by_variant"):
        assert defaults[name].default == getattr(AnalysisRules(), name)


def test_every_rule_value_comes_from_its_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOP_TAGS_LIMIT", "7")
    monkeypatch.setenv("GROUP_BY_VARIANT", "true")
    monkeypatch.setenv("LOW_USAGE_THRESHOLD_PERCENTAGE", "0.5")
    monkeypatch.setenv("TEXT_LOW_USAGE_THRESHOLD_PERCENTAGE", "0.25")
    monkeypatch.setenv("HIGH_USAGE_THRESHOLD_PERCENTAGE", "2")
    monkeypatch.setenv("TEXT_CRITICAL_USAGE_THRESHOLD", "3")
    monkeypatch.setenv("TEXT_CRITICAL_WORKER_THRESHOLD", "4")
    monkeypatch.setenv("PREFERRED_FILE_HOSTS", "a.example,b.example")
    monkeypatch.setenv("TEXT_IGNORE_DOWNLOAD_HOSTS", "false")
    assert analysis_rules(load_settings()) == AnalysisRules(
        top_tags_limit=7,
        group_by_variant=True,
        risk=RiskRules(
            low_usage_threshold_percentage=0.5,
            text_low_usage_threshold_percentage=0.25,
            high_usage_threshold_percentage=2.0,
            text_critical_usage_threshold=3,
            text_critical_worker_threshold=4,
            preferred_file_hosts=("a.example", "b.example"),
            text_ignore_download_hosts=False,
        ),
    )


def test_the_report_ranking_breaks_display_name_ties_by_first_member() -> None:
    rows = pl.DataFrame(
        {
            "name": ["Qwen-14B", "Qwen-14B", "Other"],
            "usage_month": [5, 5, 9],
            "risk_score": [2, 2, 1],
            "members": [["qwen-14b-instruct"], ["qwen-14b-base"], ["other"]],
        }
    )
    for shuffled in (rows, rows.reverse()):
        ranked = in_risk_order(shuffled, most_at_risk_first=True)
        assert ranked["members"].list.first().to_list() == ["qwen-14b-base", "qwen-14b-instruct", "other"]
        ordered = in_risk_order(shuffled)
        assert ordered["members"].list.first().to_list() == ["other", "qwen-14b-base", "qwen-14b-instruct"]
