"""Settings: the only reader of the environment (SPEC §8).

Every variable is read, in this order (the first one set wins; the process environment before ``.env``):
1. its plain name (``REDIS_URL``);
2. the model-reference service's own name for it, where the service has one (pydantic-settings, prefix
   ``HORDE_MODEL_REFERENCE_``, nested delimiter ``__``: ``HORDE_MODEL_REFERENCE_REDIS__URL``; see
   ``SERVICE_NAMES``), so the environment that drives the service drives this job too;
3. the plain name under the service's prefix (``HORDE_MODEL_REFERENCE_REDIS_URL``), which this job has always
   accepted and which is also how the service spelled its nested names before it switched to ``__``.
"""

from __future__ import annotations

import difflib
import logging
import os
import re
from pathlib import Path
from typing import Annotated, Any, Final
from urllib.parse import unquote, unquote_plus

from pydantic import AliasChoices, Field, PrivateAttr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from pipeline.contracts.rules import AnalysisRules, RetentionPolicy, RiskRules

LEGACY_PREFIX = "HORDE_MODEL_REFERENCE_"
#: The Redis URL the service uses when ``..._REDIS__USE_REDIS`` is true and no URL is given.
SERVICE_DEFAULT_REDIS_URL: Final = "redis://localhost:6379/0"

#: Our field -> the service's names for it (after the prefix) where they differ from our plain name. The service
#: also reads ``STATISTICS_CACHE_TTL``, ``DELETION_RISK_CACHE_TTL``, ``HORDE_API_TIMEOUT``, ``PREFERRED_FILE_HOSTS``,
#: ``LOW_USAGE_THRESHOLD_PERCENTAGE`` and the four ``CACHE_HYDRATION_*`` under its prefix, which rule 3 covers.
#: ``REDIS_*`` with one underscore is the service's older delimiter (its .env.example still shows it).
SERVICE_NAMES: Final[dict[str, tuple[str, ...]]] = {
    "redis_url": ("REDIS__URL",),
    "use_redis": ("REDIS__USE_REDIS", "REDIS_USE_REDIS"),
    "redis_key_prefix": ("REDIS__KEY_PREFIX",),
    "redis_socket_timeout": ("REDIS__SOCKET_TIMEOUT",),
    "text_low_usage_threshold_percentage": ("TEXT_GEN_LOW_USAGE_THRESHOLD_PERCENTAGE",),
    "text_ignore_download_hosts": ("TEXT_GEN_IGNORE_DOWNLOAD_HOSTS",),
    "text_critical_usage_threshold": ("TEXT_GEN_CRITICAL_USAGE_THRESHOLD",),
    "text_critical_worker_threshold": ("TEXT_GEN_CRITICAL_WORKER_THRESHOLD",),
}

#: The service's other settings (after the prefix): this job has no use for them, and seeing them is no reason
#: to warn. Nested groups are listed as ``GROUP__`` (any field under it); Redis fields are listed one by one so a
#: typo there is still caught.
_SERVICE_ONLY: Final = frozenset(
    {
        "REPLICATE_MODE",
        "MAKE_FOLDERS",
        "CACHE_TTL_SECONDS",
        "LEGACY_DOWNLOAD_RETRY_MAX_ATTEMPTS",
        "LEGACY_DOWNLOAD_RETRY_BACKOFF_SECONDS",
        "PRIMARY_API_URL",
        "PRIMARY_API_TIMEOUT",
        "ENABLE_GITHUB_FALLBACK",
        "GITHUB_SEED_ENABLED",
        "GITHUB_BRANCH",
        "CANONICAL_FORMAT",
        "HORDE_API_CACHE_TTL",
        "ENABLE_STATISTICS_PRECOMPUTE",
        "CORS_ALLOWED_ORIGINS",
        "PUBLISH_LOCK_SECONDS",
        *(
            f"REDIS{delimiter}{field}"
            for delimiter in ("__", "_")
            for field in (
                "POOL_SIZE",
                "SOCKET_CONNECT_TIMEOUT",
                "RETRY_MAX_ATTEMPTS",
                "RETRY_BACKOFF_SECONDS",
                "TTL_SECONDS",
                "USE_PUBSUB",
            )
        ),
    }
)
_SERVICE_GROUPS: Final = tuple(
    group + delimiter
    for group in ("IMAGE_GITHUB_REPO", "TEXT_GITHUB_REPO", "AUDIT", "PENDING_QUEUE", "R2")
    for delimiter in ("__", "_")
)
#: Whole nested models as JSON (``HORDE_MODEL_REFERENCE_AUDIT={...}``): the service's, not read here. The Redis
#: one is not listed: this job would silently not publish, so it gets the unknown-variable warning with a hint.
_SERVICE_JSON_GROUPS: Final = frozenset({"IMAGE_GITHUB_REPO", "TEXT_GITHUB_REPO", "AUDIT", "PENDING_QUEUE"})
_HINTS: Final = {
    LEGACY_PREFIX + "REDIS": "Redis settings as one JSON value are not read here: set HORDE_MODEL_REFERENCE_REDIS__URL"
    " (and __KEY_PREFIX, __USE_REDIS)",
}


def _env(name: str) -> AliasChoices:
    field = name.lower()
    service = [LEGACY_PREFIX + alias for alias in SERVICE_NAMES.get(field, ())]
    return AliasChoices(name, *service, LEGACY_PREFIX + name)


class SettingsError(ValueError):
    """A setting has a bad value; the message names the variable and the reason."""


class Settings(BaseSettings):
    """Every knob of a run, read once from the environment (and an optional ``.env``)."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", populate_by_name=True, frozen=True)

    # Inputs. The Horde default is the bundled sample (issue #4) so that `run` works offline on a fresh
    # machine; a deployment sets HORDE_SOURCE to the live API (https://aihorde.net/api).
    model_reference_source: str = Field("sample_data/model_reference", validation_alias=_env("MODEL_REFERENCE_SOURCE"))
    horde_source: str = Field("sample_data/horde", validation_alias=_env("HORDE_SOURCE"))
    # A deadline per response (SPEC §2.2): inf or nan would be none at all.
    horde_api_timeout: float = Field(30.0, gt=0, allow_inf_nan=False, validation_alias=_env("HORDE_API_TIMEOUT"))
    horde_api_max_bytes: int = Field(512 * 1024 * 1024, gt=0, validation_alias=_env("HORDE_API_MAX_BYTES"))
    horde_api_retries: int = Field(3, ge=1, le=20, validation_alias=_env("HORDE_API_RETRIES"))
    max_bad_record_fraction: float = Field(0.5, ge=0, le=1, validation_alias=_env("MAX_BAD_RECORD_FRACTION"))

    # Outputs.
    redis_url: str | None = Field(None, validation_alias=_env("REDIS_URL"))
    # The service's switch (it has no plain name): false means publish nothing even when a URL is set; true
    # without a URL means the service's default URL. Unset: publish when a URL is set.
    use_redis: bool | None = Field(
        None, validation_alias=AliasChoices(*[LEGACY_PREFIX + n for n in SERVICE_NAMES["use_redis"]])
    )
    redis_key_prefix: str = Field("horde:model_ref", min_length=1, validation_alias=_env("REDIS_KEY_PREFIX"))
    redis_socket_timeout: float = Field(2.0, gt=0, validation_alias=_env("REDIS_SOCKET_TIMEOUT"))
    snapshot_dir: str = Field("./snapshots", validation_alias=_env("SNAPSHOT_DIR"))
    # Retention (SPEC §13): every run for this many days, then one run per UTC day for this many; 0 = forever.
    # Defaults: pipeline.contracts.rules.RetentionPolicy, where they are stated once.
    snapshot_keep_all_days: int = Field(
        RetentionPolicy.keep_all_days, ge=0, validation_alias=_env("SNAPSHOT_KEEP_ALL_DAYS")
    )
    snapshot_keep_daily_days: int = Field(
        RetentionPolicy.keep_daily_days, ge=0, validation_alias=_env("SNAPSHOT_KEEP_DAILY_DAYS")
    )
    # The run lock's expiry: renewed every third of it while the run is alive, so it only runs out for a run
    # that stopped (paused, hung, killed); such a run then commits and publishes nothing (SPEC §12).
    redis_lock_ttl_seconds: float = Field(60.0, ge=0.5, le=3600, validation_alias=_env("REDIS_LOCK_TTL_SECONDS"))

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
    # Defaults: pipeline.contracts.rules, where they are stated once.
    top_tags_limit: int = Field(AnalysisRules.top_tags_limit, ge=1, validation_alias=_env("TOP_TAGS_LIMIT"))
    group_by_variant: bool = Field(AnalysisRules.group_by_variant, validation_alias=_env("GROUP_BY_VARIANT"))
    low_usage_threshold_percentage: float = Field(
        RiskRules.low_usage_threshold_percentage, ge=0, le=100, validation_alias=_env("LOW_USAGE_THRESHOLD_PERCENTAGE")
    )
    text_low_usage_threshold_percentage: float = Field(
        RiskRules.text_low_usage_threshold_percentage,
        ge=0,
        le=100,
        validation_alias=_env("TEXT_LOW_USAGE_THRESHOLD_PERCENTAGE"),
    )
    high_usage_threshold_percentage: float = Field(
        RiskRules.high_usage_threshold_percentage,
        ge=0,
        le=100,
        validation_alias=_env("HIGH_USAGE_THRESHOLD_PERCENTAGE"),
    )
    text_critical_usage_threshold: int = Field(
        RiskRules.text_critical_usage_threshold, ge=0, validation_alias=_env("TEXT_CRITICAL_USAGE_THRESHOLD")
    )
    text_critical_worker_threshold: int = Field(
        RiskRules.text_critical_worker_threshold, ge=0, validation_alias=_env("TEXT_CRITICAL_WORKER_THRESHOLD")
    )
    preferred_file_hosts: Annotated[tuple[str, ...], NoDecode] = Field(
        RiskRules.preferred_file_hosts, validation_alias=_env("PREFERRED_FILE_HOSTS")
    )
    text_ignore_download_hosts: bool = Field(
        RiskRules.text_ignore_download_hosts, validation_alias=_env("TEXT_IGNORE_DOWNLOAD_HOSTS")
    )
    stale_worker_days: int = Field(RiskRules.stale_worker_days, ge=0, validation_alias=_env("STALE_WORKER_DAYS"))

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
        rest = name.removeprefix(LEGACY_PREFIX)
        if rest in _SERVICE_ONLY or rest in _SERVICE_JSON_GROUPS or rest.startswith(_SERVICE_GROUPS):
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
        | {LEGACY_PREFIX + name for name in _SERVICE_ONLY}
    )
    events: list[tuple[int, str, dict[str, Any]]] = []
    for name in unknown_variables(settings):
        close = difflib.get_close_matches(name, known, n=1)
        events.append(
            (
                logging.WARNING,
                "unknown setting ignored",
                {"variable": name, "did_you_mean": close[0] if close else None, "hint": _HINTS.get(name)},
            )
        )
    events.append((logging.INFO, "effective settings", {"settings": effective_settings(settings)}))
    return events


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
