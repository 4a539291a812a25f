from __future__ import annotations

import pytest

from jobs.__main__ import main
from pipeline.contracts.masking import masked_url
from pipeline.contracts.settings import SettingsError, load_settings


def test_defaults_match_the_spec() -> None:
    settings = load_settings()
    assert settings.statistics_cache_ttl == 300
    assert settings.deletion_risk_cache_ttl == 300
    assert settings.cache_hydration_interval_seconds == 240
    assert settings.cache_hydration_stale_ttl_seconds == 3600
    assert settings.low_usage_threshold_percentage == 0.0065
    assert settings.text_low_usage_threshold_percentage == 0.02
    assert settings.preferred_file_hosts == ("huggingface.co",)
    assert settings.redis_key_prefix == "horde:model_ref"
    assert settings.max_bad_record_fraction == 0.5


def test_plain_and_legacy_prefixed_names_are_both_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HORDE_MODEL_REFERENCE_STATISTICS_CACHE_TTL", "120")
    monkeypatch.setenv("TOP_TAGS_LIMIT", "7")
    monkeypatch.setenv("HORDE_MODEL_REFERENCE_PREFERRED_FILE_HOSTS", "HuggingFace.co, civitai.com")
    settings = load_settings()
    assert settings.statistics_cache_ttl == 120
    assert settings.top_tags_limit == 7
    assert settings.preferred_file_hosts == ("huggingface.co", "civitai.com")


def test_plain_name_wins_over_legacy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HORDE_MODEL_REFERENCE_TOP_TAGS_LIMIT", "5")
    monkeypatch.setenv("TOP_TAGS_LIMIT", "9")
    assert load_settings().top_tags_limit == 9


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("STATISTICS_CACHE_TTL", "soon"),
        ("HORDE_MODEL_REFERENCE_MAX_BAD_RECORD_FRACTION", "1.5"),
        ("TOP_TAGS_LIMIT", "0"),
    ],
)
def test_bad_value_names_the_variable(monkeypatch: pytest.MonkeyPatch, variable: str, value: str) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError) as caught:
        load_settings()
    plain = variable.removeprefix("HORDE_MODEL_REFERENCE_")
    assert plain in str(caught.value)
    assert repr(value) in str(caught.value)


def test_bad_value_exits_2_with_the_name(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("HORDE_API_RETRIES", "many")
    assert main(["run"]) == 2
    assert "HORDE_API_RETRIES" in capsys.readouterr().err


def test_bad_usage_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--no-such-flag"]) == 2
    assert main(["frobnicate"]) == 2
    assert "unknown command" in capsys.readouterr().err


def test_passwords_are_masked() -> None:
    assert masked_url("redis://user:s3cret@host:6379/0") == "redis://user:***@host:6379/0"
    assert masked_url("redis://:s3cret@host:6379") == "redis://:***@host:6379"
    assert masked_url("redis://host:6379") == "redis://host:6379"
