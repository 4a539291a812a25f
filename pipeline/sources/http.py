"""One pooled httpx client with timeouts, jittered exponential backoff and conditional GETs (SPEC §2.2)."""

from __future__ import annotations

import hashlib
import logging
import random
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

import httpx

log = logging.getLogger(__name__)

#: Status codes worth another attempt: rate limiting and server-side failures.
RETRYABLE_STATUS = frozenset({429, 500, 502, 503, 504})
_MAX_RETRY_AFTER_SECONDS = 30.0


class FetchError(RuntimeError):
    """A URL could not be fetched after every attempt; the message says which and why."""


class HttpFetcher:
    """GETs with retries; one instance (one connection pool) per run."""

    def __init__(
        self,
        *,
        timeout: float = 30.0,
        attempts: int = 3,
        backoff_base: float = 0.5,
        cache_dir: Path | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._client = httpx.Client(timeout=httpx.Timeout(timeout), follow_redirects=True)
        self._attempts = max(1, attempts)
        self._backoff_base = backoff_base
        self._cache_dir = cache_dir
        self._sleep = sleep

    def __enter__(self) -> HttpFetcher:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection pool."""
        self._client.close()

    def get_bytes(self, url: str, params: dict[str, str] | None = None, *, missing_ok: bool = False) -> bytes | None:
        """The body of ``url``; None for a 404 when ``missing_ok``. Conditional when a cache dir is set."""
        cached_body, cached_etag = self._cached(url, params)
        headers = {"If-None-Match": cached_etag} if cached_etag and cached_body is not None else {}
        last_problem = "no attempt made"
        for attempt in range(1, self._attempts + 1):
            try:
                response = self._client.get(url, params=params, headers=headers)
            except (httpx.TimeoutException, httpx.TransportError) as error:
                last_problem = f"{type(error).__name__}: {error or 'timed out'}"
                retry_after = None
            else:
                if response.status_code == 304 and cached_body is not None:
                    return cached_body
                if response.status_code == 404 and missing_ok:
                    return None
                if response.is_success:
                    self._store(url, params, response)
                    return response.content
                last_problem = f"HTTP {response.status_code}"
                if response.status_code not in RETRYABLE_STATUS:
                    break
                retry_after = _retry_after_seconds(response)
            if attempt < self._attempts:
                delay = retry_after if retry_after is not None else self._backoff(attempt)
                log.warning("fetch retry", extra={"url": url, "attempt": attempt, "problem": last_problem})
                self._sleep(delay)
        raise FetchError(f"GET {url} failed after {self._attempts} attempt(s): {last_problem}")

    def _backoff(self, attempt: int) -> float:
        # Full jitter: spreads retries of many clients instead of synchronizing them.
        return random.uniform(0, self._backoff_base * 2 ** (attempt - 1))

    def _cache_paths(self, url: str, params: dict[str, str] | None) -> tuple[Path, Path] | None:
        if self._cache_dir is None:
            return None
        key = hashlib.sha256(str(httpx.URL(url, params=params)).encode()).hexdigest()[:32]
        return self._cache_dir / f"{key}.body", self._cache_dir / f"{key}.etag"

    def _cached(self, url: str, params: dict[str, str] | None) -> tuple[bytes | None, str | None]:
        paths = self._cache_paths(url, params)
        if paths is None or not paths[0].exists() or not paths[1].exists():
            return None, None
        return paths[0].read_bytes(), paths[1].read_text().strip() or None

    def _store(self, url: str, params: dict[str, str] | None, response: httpx.Response) -> None:
        paths = self._cache_paths(url, params)
        etag = response.headers.get("ETag")
        if paths is None or not etag:
            return
        paths[0].parent.mkdir(parents=True, exist_ok=True)
        for path, data in ((paths[0], response.content), (paths[1], etag.encode())):
            tmp = path.with_suffix(path.suffix + ".tmp")
            tmp.write_bytes(data)
            tmp.replace(path)


def _retry_after_seconds(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    try:
        return min(max(float(value), 0.0), _MAX_RETRY_AFTER_SECONDS)
    except ValueError:
        return None
