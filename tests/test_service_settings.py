"""The model-reference service's own settings names drive this job too (SPEC §8; issue 14)."""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path
from typing import Any

import pytest
import redis

from jobs.__main__ import main
from pipeline.contracts.setting_names import LEGACY_PREFIX
from pipeline.contracts.settings import (
    SERVICE_DEFAULT_REDIS_URL,
    SettingsError,
    effective_settings,
    load_settings,
    settings_log_events,
    unknown_variables,
)
from tests.conftest import RedisServer

# SPEC §8: every service name with a meaning here -> (our field, a value, what the field then holds)
SERVICE_VALUES: dict[str, tuple[str, str, Any]] = {
    "REDIS__URL": ("redis_url", "redis://cache.example:6380/2", "redis://cache.example:6380/2"),
    "REDIS__KEY_PREFIX": ("redis_key_prefix", "svc:model_ref", "svc:model_ref"),
    "REDIS__SOCKET_TIMEOUT": ("redis_socket_timeout", "7", 7.0),
    "STATISTICS_CACHE_TTL": ("statistics_cache_ttl", "111", 111),
    "DELETION_RISK_CACHE_TTL": ("deletion_risk_cache_ttl", "222", 222),
    "HORDE_API_TIMEOUT": ("horde_api_timeout", "12", 12.0),
    "PREFERRED_FILE_HOSTS": (
        "preferred_file_hosts",
        '["huggingface.co", "Civitai.com"]',
        ("huggingface.co", "civitai.com"),
    ),
    "LOW_USAGE_THRESHOLD_PERCENTAGE": ("low_usage_threshold_percentage", "0.5", 0.5),
    "TEXT_GEN_LOW_USAGE_THRESHOLD_PERCENTAGE": ("text_low_usage_threshold_percentage", "0.7", 0.7),
    "TEXT_GEN_IGNORE_DOWNLOAD_HOSTS": ("text_ignore_download_hosts", "false", False),
    "TEXT_GEN_CRITICAL_USAGE_THRESHOLD": ("text_critical_usage_threshold", "25", 25),
    "TEXT_GEN_CRITICAL_WORKER_THRESHOLD": ("text_critical_worker_threshold", "3", 3),
    "CACHE_HYDRATION_ENABLED": ("cache_hydration_enabled", "true", True),
    "CACHE_HYDRATION_INTERVAL_SECONDS": ("cache_hydration_interval_seconds", "60", 60.0),
    "CACHE_HYDRATION_STALE_TTL_SECONDS": ("cache_hydration_stale_ttl_seconds", "900", 900),
    "CACHE_HYDRATION_STARTUP_DELAY_SECONDS": ("cache_hydration_startup_delay_seconds", "1", 1.0),
}


@pytest.mark.parametrize("name", sorted(SERVICE_VALUES))
def test_each_service_name_has_its_meaning(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    field, raw, expected = SERVICE_VALUES[name]
    assert getattr(load_settings(), field) != expected  # the default is something else
    monkeypatch.setenv(LEGACY_PREFIX + name, raw)
    settings = load_settings()
    assert getattr(settings, field) == expected
    assert effective_settings(settings)[field].endswith(f"(env {LEGACY_PREFIX}{name})")
    assert unknown_variables(settings) == ()


def test_plain_names_win_then_service_names_then_prefixed_plain(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HORDE_MODEL_REFERENCE_TEXT_CRITICAL_USAGE_THRESHOLD", "1")
    assert load_settings().text_critical_usage_threshold == 1
    monkeypatch.setenv("HORDE_MODEL_REFERENCE_TEXT_GEN_CRITICAL_USAGE_THRESHOLD", "2")
    assert load_settings().text_critical_usage_threshold == 2  # the service reads this one: so do we
    monkeypatch.setenv("TEXT_CRITICAL_USAGE_THRESHOLD", "3")
    settings = load_settings()
    assert settings.text_critical_usage_threshold == 3
    assert effective_settings(settings)["text_critical_usage_threshold"] == "3 (env TEXT_CRITICAL_USAGE_THRESHOLD)"


def test_use_redis_false_turns_publishing_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:6399/0")
    monkeypatch.setenv("HORDE_MODEL_REFERENCE_REDIS__USE_REDIS", "false")
    settings = load_settings()
    assert settings.redis_url is None
    assert "off by HORDE_MODEL_REFERENCE_REDIS__USE_REDIS" in effective_settings(settings)["redis_url"]


def test_use_redis_true_without_url_means_the_service_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HORDE_MODEL_REFERENCE_REDIS__USE_REDIS", "true")
    assert load_settings().redis_url == SERVICE_DEFAULT_REDIS_URL
    monkeypatch.setenv("HORDE_MODEL_REFERENCE_REDIS__URL", "redis://elsewhere:6379/1")
    assert load_settings().redis_url == "redis://elsewhere:6379/1"


def test_a_bad_service_value_names_the_service_variable(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("HORDE_MODEL_REFERENCE_TEXT_GEN_CRITICAL_WORKER_THRESHOLD", "several")
    with pytest.raises(SettingsError, match="HORDE_MODEL_REFERENCE_TEXT_GEN_CRITICAL_WORKER_THRESHOLD"):
        load_settings()
    assert main(["run"]) == 2
    assert "HORDE_MODEL_REFERENCE_TEXT_GEN_CRITICAL_WORKER_THRESHOLD" in capsys.readouterr().err


def test_origins_cli_dotenv_env_default(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("HORDE_MODEL_REFERENCE_REDIS__KEY_PREFIX=from-dotenv\nTOP_TAGS_LIMIT=4\n")
    monkeypatch.setenv("TOP_TAGS_LIMIT", "6")  # the environment beats .env
    settings = load_settings(snapshot_dir=str(tmp_path / "cli"))
    shown = effective_settings(settings)
    assert shown["redis_key_prefix"] == "from-dotenv (.env HORDE_MODEL_REFERENCE_REDIS__KEY_PREFIX)"
    assert shown["top_tags_limit"] == "6 (env TOP_TAGS_LIMIT)"
    assert shown["snapshot_dir"] == f"{tmp_path / 'cli'} (CLI)"
    assert shown["statistics_cache_ttl"] == "300 (default)"


def _log_events(stderr: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]


def test_unknown_prefixed_variable_is_named_in_a_warning(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.setenv("HORDE_MODEL_REFERENCE_FOO", "1")
    monkeypatch.setenv("HORDE_MODEL_REFERENCE_TEXT_GEN_LOW_USAGE_TRESHOLD_PERCENTAGE", "0.5")  # a typo
    monkeypatch.setenv("HORDE_MODEL_REFERENCE_REPLICATE_MODE", "PRIMARY")  # the service's: no warning
    monkeypatch.setenv("HORDE_MODEL_REFERENCE_REDIS__POOL_SIZE", "4")  # the service's: no warning
    monkeypatch.setenv("HORDE_MODEL_REFERENCE_REDIS", '{"url": "redis://127.0.0.1:1/0"}')  # JSON: not read here
    (tmp_path / ".env").write_text("HORDE_MODEL_REFERENCE_BAR=2\n")
    assert main(["run"]) == 0
    warnings = {
        e["variable"]: e for e in _log_events(capsys.readouterr().err) if e["event"] == "unknown setting ignored"
    }
    assert set(warnings) == {
        "HORDE_MODEL_REFERENCE_FOO",
        "HORDE_MODEL_REFERENCE_BAR",
        "HORDE_MODEL_REFERENCE_TEXT_GEN_LOW_USAGE_TRESHOLD_PERCENTAGE",
        "HORDE_MODEL_REFERENCE_REDIS",
    }
    assert "HORDE_MODEL_REFERENCE_REDIS__URL" in warnings["HORDE_MODEL_REFERENCE_REDIS"]["hint"]
    typo = warnings["HORDE_MODEL_REFERENCE_TEXT_GEN_LOW_USAGE_TRESHOLD_PERCENTAGE"]
    assert typo["level"] == "warning"
    assert typo["did_you_mean"] == "HORDE_MODEL_REFERENCE_TEXT_GEN_LOW_USAGE_THRESHOLD_PERCENTAGE"


def test_effective_settings_line_masks_the_password(
    password_redis: RedisServer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert password_redis.password
    monkeypatch.setenv("HORDE_MODEL_REFERENCE_REDIS__URL", password_redis.url)
    assert main(["run"]) == 0
    err = capsys.readouterr().err
    assert password_redis.password not in err
    (line,) = [e for e in _log_events(err) if e["event"] == "effective settings"]
    assert line["settings"]["redis_url"] == (
        f"redis://default:***@127.0.0.1:{password_redis.port}/0 (env HORDE_MODEL_REFERENCE_REDIS__URL)"
    )
    # published with the service's name alone
    assert redis.Redis.from_url(password_redis.url).keys("horde:model_ref:*")
    # the pure formatter masks too, whatever the URL's origin
    events = settings_log_events(load_settings(redis_url=password_redis.url))
    assert password_redis.password not in json.dumps([fields for _, _, fields in events])


# Fields stamped with the run's own id or time (a first run's history dates are its run time, SPEC §10).
_RUN_FIELDS = {
    "run_id",
    "computed_at",
    "started_at",
    "finished_at",
    "first_seen",
    "last_seen_with_workers",
    "at_risk_since",
}


def _without_run_fields(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_run_fields(v) for k, v in value.items() if k not in _RUN_FIELDS}
    if isinstance(value, list):
        return [_without_run_fields(v) for v in value]
    return value


def _published(client: redis.Redis, prefix: str) -> dict[str, Any]:
    found = {}
    for key in client.keys(prefix + ":*"):
        name = key.decode().removeprefix(prefix)
        kind = client.type(key).decode()
        found[name] = _without_run_fields(json.loads(client.get(key) or b"null")) if kind == "string" else kind
    return found


def test_service_names_publish_what_our_names_publish(
    redis_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    client = redis.Redis.from_url(redis_url)
    ours = os.environ["REDIS_KEY_PREFIX"]  # set by the redis_url fixture
    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.setenv("TEXT_LOW_USAGE_THRESHOLD_PERCENTAGE", "30")
    monkeypatch.setenv("TEXT_CRITICAL_USAGE_THRESHOLD", "5000")
    assert main(["run", "--snapshot-dir", str(tmp_path / "ours")]) == 0
    with_ours = _published(client, ours)

    for name in (
        "REDIS_URL",
        "REDIS_KEY_PREFIX",
        "TEXT_LOW_USAGE_THRESHOLD_PERCENTAGE",
        "TEXT_CRITICAL_USAGE_THRESHOLD",
    ):
        monkeypatch.delenv(name)
    theirs = f"svc-{uuid.uuid4().hex[:8]}:horde:model_ref"
    monkeypatch.setenv("HORDE_MODEL_REFERENCE_REDIS__URL", redis_url)
    monkeypatch.setenv("HORDE_MODEL_REFERENCE_REDIS__KEY_PREFIX", theirs)
    monkeypatch.setenv("HORDE_MODEL_REFERENCE_TEXT_GEN_LOW_USAGE_THRESHOLD_PERCENTAGE", "30")
    monkeypatch.setenv("HORDE_MODEL_REFERENCE_TEXT_GEN_CRITICAL_USAGE_THRESHOLD", "5000")
    assert main(["run", "--snapshot-dir", str(tmp_path / "theirs")]) == 0
    with_theirs = _published(client, theirs)

    assert with_ours and set(with_theirs) == set(with_ours)
    assert with_theirs == with_ours
    # the thresholds took effect: every text model under 30 % of the month's usage is low-usage
    risk = with_theirs[":deletion_risk:text_generation:grouped=false"]
    assert all(
        m["deletion_risk_flags"]["low_usage"] == (m["usage_percentage_of_category"] < 30) for m in risk["models"]
    )
    assert risk["summary"]["models_critical"] == sum(
        m["usage_month"] < 5000 and m["worker_count"] < 1 for m in risk["models"]
    )
    assert risk["summary"]["models_with_low_usage"] > 0


def test_use_redis_false_publishes_nothing(redis_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    prefix = os.environ["REDIS_KEY_PREFIX"]
    monkeypatch.delenv("REDIS_KEY_PREFIX")
    monkeypatch.setenv("HORDE_MODEL_REFERENCE_REDIS__KEY_PREFIX", prefix)
    monkeypatch.setenv("HORDE_MODEL_REFERENCE_REDIS__URL", redis_url)
    monkeypatch.setenv("HORDE_MODEL_REFERENCE_REDIS__USE_REDIS", "false")
    assert main(["run"]) == 0
    assert redis.Redis.from_url(redis_url).keys(prefix + ":*") == []
    monkeypatch.setenv("HORDE_MODEL_REFERENCE_REDIS__USE_REDIS", "true")
    assert main(["run"]) == 0  # the same environment with the switch on does publish
    assert redis.Redis.from_url(redis_url).keys(prefix + ":*")
