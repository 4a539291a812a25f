"""The environment variable names each setting is read from, and the model-reference service's names that this job
knows but does not read (SPEC §8).

A field is read under (the first one set wins): its plain name (``REDIS_URL``); the service's own name for it
where it has one (``HORDE_MODEL_REFERENCE_REDIS__URL``, ``SERVICE_NAMES``); the plain name under the service's
prefix (``HORDE_MODEL_REFERENCE_REDIS_URL``). A prefixed name that is neither ours nor the service's is worth a
warning (``settings.unknown_variables``).
"""

from __future__ import annotations

from typing import Final

from pydantic import AliasChoices

LEGACY_PREFIX: Final = "HORDE_MODEL_REFERENCE_"

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
SERVICE_ONLY: Final = frozenset(
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
#: What to say about a prefixed name that is ours in spirit but not read in that form.
HINTS: Final = {
    LEGACY_PREFIX + "REDIS": "Redis settings as one JSON value are not read here: set HORDE_MODEL_REFERENCE_REDIS__URL"
    " (and __KEY_PREFIX, __USE_REDIS)",
}


def variable_names(name: str) -> AliasChoices:
    """The variables a field is read from, in order: ``name`` (its plain name), the service's names, the prefixed
    plain name."""
    field = name.lower()
    service = [LEGACY_PREFIX + alias for alias in SERVICE_NAMES.get(field, ())]
    return AliasChoices(name, *service, LEGACY_PREFIX + name)


def is_service_only(name: str) -> bool:
    """Whether the prefixed variable ``name`` is one of the service's settings this job does not read."""
    rest = name.removeprefix(LEGACY_PREFIX)
    return rest in SERVICE_ONLY or rest in _SERVICE_JSON_GROUPS or rest.startswith(_SERVICE_GROUPS)
