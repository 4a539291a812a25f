"""Settings: the only reader of the environment (SPEC §8).

Every variable is accepted under its plain name and under the ``HORDE_MODEL_REFERENCE_`` prefix, so an
existing deployment's environment works unchanged. The plain name wins when both are set.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AliasChoices, Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

LEGACY_PREFIX = "HORDE_MODEL_REFERENCE_"
LIVE_HORDE_API = "https://aihorde.net/api"


def _env(name: str) -> AliasChoices:
    return AliasChoices(name, LEGACY_PREFIX + name)


class SettingsError(ValueError):
    """A setting has a bad value; the message names the variable and the reason."""


class Settings(BaseSettings):
    """Every knob of a run, read once from the environment (and an optional ``.env``)."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", populate_by_name=True, frozen=True)

    # Inputs. The Horde default is the bundled sample (issue #4) so that `run` works offline on a fresh
    # machine; a deployment sets HORDE_SOURCE to the live API (LIVE_HORDE_API).
    model_reference_source: str = Field("sample_data/model_reference", validation_alias=_env("MODEL_REFERENCE_SOURCE"))
    horde_source: str = Field("sample_data/horde", validation_alias=_env("HORDE_SOURCE"))
    horde_api_timeout: float = Field(30.0, gt=0, validation_alias=_env("HORDE_API_TIMEOUT"))
    horde_api_retries: int = Field(3, ge=1, le=20, validation_alias=_env("HORDE_API_RETRIES"))
    max_bad_record_fraction: float = Field(0.5, ge=0, le=1, validation_alias=_env("MAX_BAD_RECORD_FRACTION"))

    # Outputs.
    redis_url: str | None = Field(None, validation_alias=_env("REDIS_URL"))
    redis_key_prefix: str = Field("horde:model_ref", min_length=1, validation_alias=_env("REDIS_KEY_PREFIX"))
    redis_socket_timeout: float = Field(2.0, gt=0, validation_alias=_env("REDIS_SOCKET_TIMEOUT"))
    snapshot_dir: str = Field("./snapshots", validation_alias=_env("SNAPSHOT_DIR"))

    # Cache lifetimes (seconds).
    statistics_cache_ttl: int = Field(300, gt=0, validation_alias=_env("STATISTICS_CACHE_TTL"))
    deletion_risk_cache_ttl: int = Field(300, gt=0, validation_alias=_env("DELETION_RISK_CACHE_TTL"))
    cache_hydration_enabled: bool = Field(False, validation_alias=_env("CACHE_HYDRATION_ENABLED"))
    cache_hydration_interval_seconds: float = Field(
        240, gt=0, validation_alias=_env("CACHE_HYDRATION_INTERVAL_SECONDS")
    )
    cache_hydration_stale_ttl_seconds: int = Field(
        3600, gt=0, validation_alias=_env("CACHE_HYDRATION_STALE_TTL_SECONDS")
    )
    cache_hydration_startup_delay_seconds: float = Field(
        5, ge=0, validation_alias=_env("CACHE_HYDRATION_STARTUP_DELAY_SECONDS")
    )

    # Analysis rules (SPEC §5, §6).
    top_tags_limit: int = Field(20, ge=1, validation_alias=_env("TOP_TAGS_LIMIT"))
    group_by_variant: bool = Field(False, validation_alias=_env("GROUP_BY_VARIANT"))
    low_usage_threshold_percentage: float = Field(
        0.0065, ge=0, le=100, validation_alias=_env("LOW_USAGE_THRESHOLD_PERCENTAGE")
    )
    text_low_usage_threshold_percentage: float = Field(
        0.02, ge=0, le=100, validation_alias=_env("TEXT_LOW_USAGE_THRESHOLD_PERCENTAGE")
    )
    high_usage_threshold_percentage: float = Field(
        1.0, ge=0, le=100, validation_alias=_env("HIGH_USAGE_THRESHOLD_PERCENTAGE")
    )
    text_critical_usage_threshold: int = Field(10, ge=0, validation_alias=_env("TEXT_CRITICAL_USAGE_THRESHOLD"))
    text_critical_worker_threshold: int = Field(1, ge=0, validation_alias=_env("TEXT_CRITICAL_WORKER_THRESHOLD"))
    preferred_file_hosts: Annotated[tuple[str, ...], NoDecode] = Field(
        ("huggingface.co",), validation_alias=_env("PREFERRED_FILE_HOSTS")
    )
    text_ignore_download_hosts: bool = Field(True, validation_alias=_env("TEXT_IGNORE_DOWNLOAD_HOSTS"))
    stale_worker_days: int = Field(30, ge=0, validation_alias=_env("STALE_WORKER_DAYS"))

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


def _variable_name(field_name: str) -> str:
    return field_name.upper()


def load_settings(**overrides: Any) -> Settings:
    """Settings from the environment; a bad value raises SettingsError naming the variable."""
    try:
        return Settings(**overrides)
    except ValidationError as error:
        problems = []
        for item in error.errors():
            field = str(item["loc"][0]) if item["loc"] else "?"
            problems.append(f"{_variable_name(field)}: {item['msg']} (got {item.get('input')!r})")
        raise SettingsError("bad configuration: " + "; ".join(problems)) from None


def masked_url(url: str | None) -> str | None:
    """The URL with any password replaced by ``***`` (safe to log)."""
    if not url or "@" not in url:
        return url
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    credentials, _, host = rest.rpartition("@")
    user, has_password, _ = credentials.partition(":")
    return f"{scheme}://{user}{':***' if has_password else ''}@{host}" if has_password else url


def masked_text(text: str, url: str | None) -> str:
    """``text`` with the password of ``url`` (if any) replaced by ``***``."""
    if not url or "@" not in url:
        return text
    credentials = url.partition("://")[2].rpartition("@")[0]
    password = credentials.partition(":")[2]
    return text.replace(password, "***") if password else text
