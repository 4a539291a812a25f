"""Settings: the only reader of the environment (SPEC §8).

Every variable is read, in this order (the first one set wins; the process environment before ``.env``):
1. its plain name (``REDIS_URL``);
2. the model-reference service's own name for it, where the service has one (pydantic-settings, prefix
   ``HORDE_MODEL_REFERENCE_``, nested delimiter ``__``: ``HORDE_MODEL_REFERENCE_REDIS__URL``; see
   ``setting_names.SERVICE_NAMES``), so the environment that drives the service drives this job too;
3. the plain name under the service's prefix (``HORDE_MODEL_REFERENCE_REDIS_URL``), which this job has always
   accepted and which is also how the service spelled its nested names before it switched to ``__``.

The names themselves are ``setting_names``; masking secrets for the log is ``masking``.
"""

from __future__ import annotations

import difflib
import logging
import os
from pathlib import Path
from typing import Annotated, Any, Final

from pydantic import AliasChoices, Field, PrivateAttr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from pipeline.contracts.masking import masked_text, masked_url
from pipeline.contracts.rules import AnalysisRules, InputLimits, RetentionPolicy, RiskRules
from pipeline.contracts.setting_names import (
    HINTS,
    LEGACY_PREFIX,
    SERVICE_NAMES,
    SERVICE_ONLY,
    is_service_only,
    variable_names,
)

__all__ = [
    "SERVICE_DEFAULT_REDIS_URL",
    "Settings",
    "SettingsError",
    "effective_settings",
    "load_settings",
    "secret_urls",
    "settings_log_events",
    "unknown_variables",
]

#: The Redis URL the service uses when ``..._REDIS__USE_REDIS`` is true and no URL is given.
SERVICE_DEFAULT_REDIS_URL: Final = "redis://localhost:6379/0"


class SettingsError(ValueError):
    """A setting has a bad value; the message names the variable and the reason."""


class Settings(BaseSettings):
    """Every knob of a run, read once from the environment (and an optional ``.env``)."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", populate_by_name=True, frozen=True)

    # Inputs. The Horde default is the bundled sample (issue #4) so that `run` works offline on a fresh
    # machine; a deployment sets HORDE_SOURCE to the live API (https://aihorde.net/api).
    model_reference_source: str = Field(
        "sample_data/model_reference", validation_alias=variable_names("MODEL_REFERENCE_SOURCE")
    )
    horde_source: str = Field("sample_data/horde", validation_alias=variable_names("HORDE_SOURCE"))
    # Input limits. Defaults: pipeline.contracts.rules.InputLimits, where they are stated once.
    # A deadline per response (SPEC §2.2): inf or nan would be none at all.
    horde_api_timeout: float = Field(
        InputLimits.horde_api_timeout, gt=0, allow_inf_nan=False, validation_alias=variable_names("HORDE_API_TIMEOUT")
    )
    horde_api_max_bytes: int = Field(
        InputLimits.horde_api_max_bytes, gt=0, validation_alias=variable_names("HORDE_API_MAX_BYTES")
    )
    horde_api_retries: int = Field(
        InputLimits.horde_api_retries, ge=1, le=20, validation_alias=variable_names("HORDE_API_RETRIES")
    )
    max_bad_record_fraction: float = Field(
        InputLimits.max_bad_record_fraction, ge=0, le=1, validation_alias=variable_names("MAX_BAD_RECORD_FRACTION")
    )

    # Outputs.
    redis_url: str | None = Field(None, validation_alias=variable_names("REDIS_URL"))
    # The service's switch (it has no plain name): false means publish nothing even when a URL is set; true
    # without a URL means the service's default URL. Unset: publish when a URL is set.
    use_redis: bool | None = Field(
        None, validation_alias=AliasChoices(*[LEGACY_PREFIX + n for n in SERVICE_NAMES["use_redis"]])
    )
    redis_key_prefix: str = Field("horde:model_ref", min_length=1, validation_alias=variable_names("REDIS_KEY_PREFIX"))
    redis_socket_timeout: float = Field(2.0, gt=0, validation_alias=variable_names("REDIS_SOCKET_TIMEOUT"))
    snapshot_dir: str = Field("./snapshots", validation_alias=variable_names("SNAPSHOT_DIR"))
    # Retention (SPEC §13): every run for this many days, then one run per UTC day for this many; 0 = forever.
    # Defaults: pipeline.contracts.rules.RetentionPolicy, where they are stated once.
    snapshot_keep_all_days: int = Field(
        RetentionPolicy.keep_all_days, ge=0, validation_alias=variable_names("SNAPSHOT_KEEP_ALL_DAYS")
    )
    snapshot_keep_daily_days: int = Field(
        RetentionPolicy.keep_daily_days, ge=0, validation_alias=variable_names("SNAPSHOT_KEEP_DAILY_DAYS")
    )
    # The run lock's expiry: renewed every third of it while the run is alive, so it only runs out for a run
    # that stopped (paused, hung, killed); such a run then commits and publishes nothing (SPEC §12).
    redis_lock_ttl_seconds: float = Field(
        60.0, ge=0.5, le=3600, validation_alias=variable_names("REDIS_LOCK_TTL_SECONDS")
    )

    # Cache lifetimes (seconds).
    statistics_cache_ttl: int = Field(300, gt=0, validation_alias=variable_names("STATISTICS_CACHE_TTL"))
    deletion_risk_cache_ttl: int = Field(300, gt=0, validation_alias=variable_names("DELETION_RISK_CACHE_TTL"))
    cache_hydration_enabled: bool = Field(False, validation_alias=variable_names("CACHE_HYDRATION_ENABLED"))
    cache_hydration_interval_seconds: float = Field(
        240, gt=0, validation_alias=variable_names("CACHE_HYDRATION_INTERVAL_SECONDS")
    )
    cache_hydration_stale_ttl_seconds: int = Field(
        3600, gt=0, validation_alias=variable_names("CACHE_HYDRATION_STALE_TTL_SECONDS")
    )
    cache_hydration_startup_delay_seconds: float = Field(
        5, ge=0, validation_alias=variable_names("CACHE_HYDRATION_STARTUP_DELAY_SECONDS")
    )

    # Analysis rules (SPEC §5, §6).
    # Defaults: pipeline.contracts.rules, where they are stated once.
    top_tags_limit: int = Field(AnalysisRules.top_tags_limit, ge=1, validation_alias=variable_names("TOP_TAGS_LIMIT"))
    group_by_variant: bool = Field(AnalysisRules.group_by_variant, validation_alias=variable_names("GROUP_BY_VARIANT"))
    low_usage_threshold_percentage: float = Field(
        RiskRules.low_usage_threshold_percentage,
        ge=0,
        le=100,
        validation_alias=variable_names("LOW_USAGE_THRESHOLD_PERCENTAGE"),
    )
    text_low_usage_threshold_percentage: float = Field(
        RiskRules.text_low_usage_threshold_percentage,
        ge=0,
        le=100,
        validation_alias=variable_names("TEXT_LOW_USAGE_THRESHOLD_PERCENTAGE"),
    )
    high_usage_threshold_percentage: float = Field(
        RiskRules.high_usage_threshold_percentage,
        ge=0,
        le=100,
        validation_alias=variable_names("HIGH_USAGE_THRESHOLD_PERCENTAGE"),
    )
    text_critical_usage_threshold: int = Field(
        RiskRules.text_critical_usage_threshold, ge=0, validation_alias=variable_names("TEXT_CRITICAL_USAGE_THRESHOLD")
    )
    text_critical_worker_threshold: int = Field(
        RiskRules.text_critical_worker_threshold,
        ge=0,
        validation_alias=variable_names("TEXT_CRITICAL_WORKER_THRESHOLD"),
    )
    preferred_file_hosts: Annotated[tuple[str, ...], NoDecode] = Field(
        RiskRules.preferred_file_hosts, validation_alias=variable_names("PREFERRED_FILE_HOSTS")
    )
    text_ignore_download_hosts: bool = Field(
        RiskRules.text_ignore_download_hosts, validation_alias=variable_names("TEXT_IGNORE_DOWNLOAD_HOSTS")
    )
    stale_worker_days: int = Field(
        RiskRules.stale_worker_days, ge=0, validation_alias=variable_names("STALE_WORKER_DAYS")
    )

    # Where each value came from and the unknown HORDE_MODEL_REFERENCE_* names seen (set by load_settings).
    _origins: dict[str, str] = PrivateAttr(default_factory=dict)
    _unknown: tuple[str, ...] = PrivateAttr(default=())

    @model_validator(mode="after")
    def _apply_use_redis(self) -> Settings:
        # The service's meaning of REDIS__USE_REDIS (SPEC §8). The model is frozen; this runs while it is built.
        if self.use_redis is False and self.redis_url is not None:
            object.__setattr__(self, "redis_url", None)
        elif self.use_redis is True and self.redis_url is None:
            object.__setattr__(self, "redis_url", SERVICE_DEFAULT_REDIS_URL)
        return self

    @field_validator("preferred_file_hosts", mode="before")
    @classmethod
    def _split_hosts(cls, value: Any) -> Any:
        # Accept "a.com,b.org" and a JSON list alike; hosts compare lower-cased.
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                import json

                value = json.loads(text)
            else:
                value = [part for part in text.split(",") if part.strip()]
        if isinstance(value, list | tuple):
            return tuple(str(host).strip().lower() for host in value)
        return value


def _variables(field: str) -> tuple[str, ...]:
    """The variable names of one field, in the order they are tried."""
    alias = Settings.model_fields[field].validation_alias
    return tuple(str(choice) for choice in alias.choices) if isinstance(alias, AliasChoices) else (field.upper(),)


def _dotenv() -> dict[str, str]:
    """``.env`` (as pydantic-settings reads it: from the working directory), names upper-cased."""
    from dotenv import dotenv_values

    path = Path(str(Settings.model_config.get("env_file") or ".env"))
    if not path.is_file():
        return {}
    return {name.upper(): value for name, value in dotenv_values(path).items() if value is not None}


def _value_origins(overrides: dict[str, Any], environ: dict[str, str], dotenv: dict[str, str]) -> dict[str, str]:
    """Per field, where its value comes from: ``CLI``, ``env NAME``, ``.env NAME`` or ``default`` (the precedence
    pydantic-settings applies: arguments, then the environment, then ``.env``; within each the first name)."""
    found = {}
    for field in Settings.model_fields:
        names = _variables(field)
        origin = "default"
        if field in overrides:
            origin = "CLI"
        elif hit := next((n for n in names if n in environ), None):
            origin = f"env {hit}"
        elif hit := next((n for n in names if n in dotenv), None):
            origin = f".env {hit}"
        found[field] = origin
    return found


def _unknown_names(names: set[str]) -> tuple[str, ...]:
    """The ``HORDE_MODEL_REFERENCE_*`` names that are neither ours nor the service's, sorted."""
    ours = {name for field in Settings.model_fields for name in _variables(field)}
    unknown = []
    for name in names:
        if not name.startswith(LEGACY_PREFIX) or name in ours:
            continue
        if is_service_only(name):
            continue
        unknown.append(name)
    return tuple(sorted(unknown))


def load_settings(**overrides: Any) -> Settings:
    """Settings from the environment; a bad value raises SettingsError naming the variable."""
    environ = {name.upper(): value for name, value in os.environ.items()}
    dotenv = _dotenv()
    origins = _value_origins(overrides, environ, dotenv)
    try:
        settings = Settings(**overrides)
    except ValidationError as error:
        problems = []
        for item in error.errors():
            located = str(item["loc"][0]) if item["loc"] else "?"
            field = next((f for f in Settings.model_fields if f == located or located in _variables(f)), None)
            origin = origins.get(field, "") if field else ""
            variable = origin.partition(" ")[2] or (field or located).upper()
            # a bad REDIS_URL must not print its password
            got = masked_text(repr(item.get("input")), str(item.get("input")))
            problems.append(f"{variable}: {item['msg']} (got {got})")
        raise SettingsError("bad configuration: " + "; ".join(problems)) from None
    settings._origins = origins
    settings._unknown = _unknown_names(set(environ) | set(dotenv))
    return settings


def _shown(value: Any) -> str:
    if isinstance(value, tuple):
        return ",".join(str(item) for item in value)
    return str(value)


def effective_settings(settings: Settings) -> dict[str, str]:
    """``{field: "value (origin)"}`` for every setting, secrets masked: what the run-start log line shows."""
    origins = settings._origins
    shown = {}
    for field in Settings.model_fields:
        value = getattr(settings, field)
        text = _shown(value)
        if "://" in text:
            text = masked_url(text) or text
        text = masked_text(text, settings.redis_url)
        # Settings built directly (not by load_settings) did not record where their values came from.
        origin = origins.get(field, "origin not recorded")
        if field == "redis_url" and settings.use_redis is not None and origins.get("use_redis", "default") != "default":
            origin += f"; {'on' if settings.use_redis else 'off'} by {origins['use_redis'].partition(' ')[2]}"
        shown[field] = f"{text} ({origin})"
    return shown


def unknown_variables(settings: Settings) -> tuple[str, ...]:
    """``HORDE_MODEL_REFERENCE_*`` variables set at load time that neither this job nor the service defines."""
    return settings._unknown


def settings_log_events(settings: Settings) -> list[tuple[int, str, dict[str, Any]]]:
    """``(level, event, fields)`` to log at the start of a run: one warning per unknown variable (with the closest
    known name, a typo's likely fix), then the effective settings."""
    known = sorted(
        {name for field in Settings.model_fields for name in _variables(field) if name.startswith(LEGACY_PREFIX)}
        | {LEGACY_PREFIX + name for name in SERVICE_ONLY}
    )
    events: list[tuple[int, str, dict[str, Any]]] = []
    for name in unknown_variables(settings):
        close = difflib.get_close_matches(name, known, n=1)
        events.append(
            (
                logging.WARNING,
                "unknown setting ignored",
                {"variable": name, "did_you_mean": close[0] if close else None, "hint": HINTS.get(name)},
            )
        )
    events.append((logging.INFO, "effective settings", {"settings": effective_settings(settings)}))
    return events


def secret_urls(settings: Settings) -> tuple[str, ...]:
    """The settings that may carry credentials (masked wherever their secrets appear in a log)."""
    values = (settings.redis_url, settings.model_reference_source, settings.horde_source, settings.snapshot_dir)
    return tuple(value for value in values if value)
