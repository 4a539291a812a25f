"""The Redis client every part of the job uses: fail fast, never retry in a storm (SPEC §7.1)."""

from __future__ import annotations

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from pipeline.contracts.masking import masked_url

__all__ = [
    "CONFIG_ERRORS",
    "REDIS_RETRY_AFTER_SECONDS",
    "RedisConfigError",
    "redis_client",
]

#: How long a cache stops asking Redis after it failed (no retry storm against a dead server).
REDIS_RETRY_AFTER_SECONDS = 5.0
#: Server replies that mean the configuration is wrong, not that Redis is away (SPEC §1: exit 2).
CONFIG_ERRORS = (redis.AuthenticationError, redis.exceptions.AuthorizationError, redis.ResponseError)


class RedisConfigError(RuntimeError):
    """Redis refused this configuration (bad URL, credentials or database): exit 2, before any work."""


def redis_client(url: str, socket_timeout: float = 2.0) -> redis.Redis:
    """A client that fails fast: short timeouts and no retries (redis-py would otherwise retry with backoff)."""
    try:
        return redis.Redis.from_url(
            url,
            socket_timeout=socket_timeout,
            socket_connect_timeout=socket_timeout,
            retry=Retry(NoBackoff(), 0),
            retry_on_timeout=False,
            health_check_interval=0,
        )
    except ValueError as error:
        raise RedisConfigError(
            f"REDIS_URL {masked_url(url)!r} is not a Redis URL ({error}); e.g. redis://:password@host:6379/0"
        ) from None
