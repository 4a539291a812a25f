"""Settings: the only reader of the environment (SPEC §8).

Every variable is accepted under its plain name and under the ``HORDE_MODEL_REFERENCE_`` prefix, so an
existing deployment's environment works unchanged. The plain name wins when both are set.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Final
from urllib.parse import unquote, unquote_plus

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
            # a bad REDIS_URL must not print its password
            got = masked_text(repr(item.get("input")), str(item.get("input")))
            problems.append(f"{_variable_name(field)}: {item['msg']} (got {got})")
        raise SettingsError("bad configuration: " + "; ".join(problems)) from None


#: A URL inside free text: a scheme, "://", then everything up to whitespace or a quote/bracket that ends it.
_URL_IN_TEXT: Final = re.compile(r"""[A-Za-z][A-Za-z0-9+.-]*://[^\s'"<>`]+""")
#: Query (or fragment) parameter names whose values are secrets: ``?password=``, ``token``, ``api_key``,
#: ``X-Amz-Signature``, ``X-Amz-Credential``, ``X-Amz-Security-Token``, ``sig`` (Azure SAS), ``auth``...
_SECRET_PARAMETER: Final = re.compile(
    r"pass|pwd|token|secret|key|signature|credential|auth|session|^sig$|^code$", re.IGNORECASE
)
_MASK: Final = "***"


def _masked_parameters(query: str) -> str:
    """``a=1&token=abc`` -> ``a=1&token=***`` (names compared after percent-decoding)."""
    parts = []
    for part in query.split("&"):
        name, has_value, value = part.partition("=")
        secret = has_value and value and _SECRET_PARAMETER.search(unquote_plus(name))
        parts.append(f"{name}={_MASK}" if secret else part)
    return "&".join(parts)


def masked_url(url: str | None) -> str | None:
    """The URL with its secrets replaced by ``***`` (safe to log).

    Masked: the password of the userinfo (``redis://:pw@host``, ``redis://user:pw@host``, a password holding an
    unencoded ``@``), a user name given without a password (``https://TOKEN@host``, a token by convention), and
    the values of secret-looking query or fragment parameters (``?password=``, ``?token=``, ``X-Amz-Signature``).
    The authority ends at the first ``/``, ``?`` or ``#``, as URL parsers (and so redis-py and httpx) read it.
    """
    if not url:
        return url
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    end = min((index for index in (rest.find(c) for c in "/?#") if index >= 0), default=len(rest))
    authority, tail = rest[:end], rest[end:]
    credentials, at, host = authority.rpartition("@")
    if at:
        user, has_password, _ = credentials.partition(":")
        authority = f"{user}:{_MASK}@{host}" if has_password else f"{_MASK}@{host}"
    path, has_fragment, fragment = tail.partition("#")
    path, has_query, query = path.partition("?")
    masked_tail = path + (f"?{_masked_parameters(query)}" if has_query else "")
    masked_tail += f"#{_masked_parameters(fragment)}" if has_fragment else ""
    return f"{scheme}://{authority}{masked_tail}"


def _literal_secrets(url: str) -> set[str]:
    """The password (raw and percent-decoded) of ``url``'s userinfo and the values of its secret parameters."""
    rest = url.partition("://")[2]
    end = min((index for index in (rest.find(c) for c in "/?#") if index >= 0), default=len(rest))
    credentials, at, _ = rest[:end].rpartition("@")
    # without a scheme or with the authority cut short (an unencoded "/" in the password) fall back to the
    # text before the last "@": the literal is masked even where the URL cannot be parsed
    if not at:
        credentials = rest.rpartition("@")[0] if "@" in rest else ""
    user, has_password, password = credentials.partition(":")
    found = {password, unquote(password)} if has_password else {user, unquote(user)}
    for part in re.split(r"[?&#]", rest[end:]):
        name, _, value = part.partition("=")
        if value and _SECRET_PARAMETER.search(unquote_plus(name)):
            found |= {value, unquote_plus(value)}
    # a one-character "secret" would mask every such letter of the message
    return {secret for secret in found if len(secret) >= 3}


def masked_text(text: str, *urls: str | None) -> str:
    """``text`` with every URL in it masked (``masked_url``) and the secrets of each of ``urls`` (REDIS_URL, the
    source URLs) replaced by ``***`` wherever they appear, also outside a URL (a message that quotes a password)."""
    masked = _URL_IN_TEXT.sub(lambda match: masked_url(match.group(0)) or "", text)
    secrets = {secret for url in urls if url for secret in _literal_secrets(url)}
    for secret in sorted(secrets, key=len, reverse=True):
        masked = masked.replace(secret, _MASK)
    return masked


def secret_urls(settings: Settings) -> tuple[str, ...]:
    """The settings that may carry credentials (masked wherever their secrets appear in a log)."""
    values = (settings.redis_url, settings.model_reference_source, settings.horde_source, settings.snapshot_dir)
    return tuple(value for value in values if value)
