"""One pooled httpx client with a deadline per response, a bounded body, same-host redirects, jittered
exponential backoff and conditional GETs (SPEC §2.2).

One module on purpose: every piece serves one ``get_bytes`` call (the deadline watches its stream, the cache
answers its conditional GET, the backoff retries it), and none is used on its own.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import random
import socket
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    import httpx  # imported with the first request (``HttpFetcher._pool``): a run on folders never loads it

from pipeline.contracts.rules import InputLimits

log = logging.getLogger(__name__)

#: Status codes worth another attempt: rate limiting and server-side failures. Any other 4xx is final.
RETRYABLE_STATUS = frozenset({429, 500, 502, 503, 504})
_MAX_RETRY_AFTER_SECONDS = 30.0
MAX_REDIRECTS: Final = 5


class FetchError(RuntimeError):
    """A URL could not be fetched (after every attempt, or at once when retrying cannot help); the message says
    which and why."""


class _DeadlineExceeded(Exception):
    """An attempt ran past its deadline (retryable: the next attempt gets a deadline of its own)."""


def _shut(stream: Any) -> None:
    """Shut the socket under an httpcore network stream, waking a read blocked on it."""
    sock = stream.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):  # already closed
            sock.shutdown(socket.SHUT_RDWR)


class _Deadline:
    """The end of one attempt: at that moment the connections of the fetcher are shut, so a server that trickles
    bytes (each read within the read timeout) cannot hold a run past ``HORDE_API_TIMEOUT``.

    ``streams`` holds every connection the fetcher opened (a fetcher serves one request at a time, so the one in
    use is this attempt's; idle ones shut with it are dropped by the pool and reopened when needed). A reused
    connection is covered from its first byte, headers included."""

    def __init__(self, seconds: float, streams: weakref.WeakSet[Any]) -> None:
        self.at = time.monotonic() + seconds
        self.expired = False
        self._streams = streams
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True

    def __enter__(self) -> _Deadline:
        self._timer.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._timer.cancel()

    def remaining(self) -> float:
        return self.at - time.monotonic()

    def watch(self, stream: Any) -> None:
        """Shut ``stream`` at the deadline (at once when it has passed)."""
        with self._lock:
            self._streams.add(stream)
            if self.expired:
                _shut(stream)

    def trace(self, event: str, info: dict[str, Any]) -> None:
        """httpcore's trace hook: a new connection is watched from the moment it exists (headers included)."""
        if event == "connection.connect_tcp.complete" and info.get("return_value") is not None:
            self.watch(info["return_value"])

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            for stream in list(self._streams):
                _shut(stream)


@dataclass(frozen=True, slots=True)
class _Answer:
    status: int
    reason: str
    headers: httpx.Headers
    body: bytes


@dataclass(frozen=True, slots=True)
class _CachedCopy:
    body: bytes
    etag: str


class HttpFetcher:
    """GETs with retries; one instance (one connection pool) per run."""

    def __init__(
        self,
        *,
        timeout: float = InputLimits.horde_api_timeout,
        attempts: int = InputLimits.horde_api_retries,
        backoff_base: float = 0.5,
        cache_dir: Path | None = None,
        max_bytes: int = InputLimits.horde_api_max_bytes,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._client: httpx.Client | None = None
        self._timeout = timeout
        self._attempts = max(1, attempts)
        self._backoff_base = backoff_base
        self._cache_dir = cache_dir
        self._max_bytes = max_bytes
        self._sleep = sleep
        #: Every connection this fetcher opened and that is still alive (see ``_Deadline``).
        self._streams: weakref.WeakSet[Any] = weakref.WeakSet()

    def __enter__(self) -> HttpFetcher:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection pool."""
        if self._client is not None:
            self._client.close()

    def _pool(self) -> httpx.Client:
        """The connection pool, made for the first request (importing httpx costs a run on folders ~0.07 s)."""
        if self._client is None:
            import httpx

            # Redirects are followed by hand: only to the same host (SPEC §2.2).
            self._client = httpx.Client(timeout=httpx.Timeout(self._timeout), follow_redirects=False)
        return self._client

    def get_bytes(self, url: str, params: dict[str, str] | None = None, *, missing_ok: bool = False) -> bytes | None:
        """The body of ``url``; None for a 404 when ``missing_ok``. Conditional when a cache dir is set."""
        import httpx

        cached = self._cached(url, params)
        headers = {"If-None-Match": cached.etag} if cached is not None else {}
        last_problem = "no attempt made"
        for attempt in range(1, self._attempts + 1):
            retry_after = None
            try:
                answer = self._answer(url, params, headers)
            except _DeadlineExceeded:
                last_problem = f"timed out: no complete response within HORDE_API_TIMEOUT={self._timeout:g} s"
            except (httpx.TimeoutException, httpx.TransportError) as error:
                last_problem = f"{type(error).__name__}: {error or 'timed out'}"
            else:
                if answer.status == 304 and cached is not None:
                    return cached.body
                if answer.status == 404 and missing_ok:
                    return None
                if 200 <= answer.status < 300:
                    self._store(url, params, answer)
                    return answer.body
                if answer.status not in RETRYABLE_STATUS:
                    # Asking again gets the same answer: report it at once, with its status.
                    raise FetchError(f"GET {url}: HTTP {answer.status} {answer.reason} (not retried)".rstrip())
                last_problem = f"HTTP {answer.status}"
                retry_after = _retry_after_seconds(answer.headers)
            if attempt < self._attempts:
                delay = retry_after if retry_after is not None else self._backoff(attempt)
                log.warning("fetch retry", extra={"url": url, "attempt": attempt, "problem": last_problem})
                self._sleep(delay)
        raise FetchError(f"GET {url} failed after {self._attempts} attempt(s): {last_problem}")

    def _answer(self, url: str, params: dict[str, str] | None, headers: dict[str, str]) -> _Answer:
        """One attempt, redirects included, within one deadline; the body only for a success."""
        import httpx

        client = self._pool()
        with _Deadline(self._timeout, self._streams) as deadline:
            request = client.build_request("GET", url, params=params, headers=headers)
            request.extensions["trace"] = deadline.trace
            origin = request.url
            for _ in range(MAX_REDIRECTS + 1):
                if deadline.remaining() <= 0:
                    raise _DeadlineExceeded
                request.extensions["timeout"] = httpx.Timeout(deadline.remaining()).as_dict()
                try:
                    response = client.send(request, stream=True)
                except httpx.TransportError as error:
                    _raise_if_past(deadline, error)
                    raise
                try:
                    if response.next_request is not None:
                        request = _same_host_redirect(origin, response)
                        continue
                    body = self._body(response, deadline) if response.is_success else b""
                    return _Answer(response.status_code, response.reason_phrase, response.headers, body)
                finally:
                    response.close()
            raise FetchError(f"GET {url}: more than {MAX_REDIRECTS} redirects")

    def _body(self, response: httpx.Response, deadline: _Deadline) -> bytes:
        """The decoded body, read until the deadline and at most ``max_bytes`` (an endless or huge body stops)."""
        import httpx

        declared = response.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > self._max_bytes:
            raise self._too_large(response, f"declares {declared} bytes")
        chunks: list[bytes] = []
        size = 0
        try:
            for chunk in response.iter_bytes():
                if deadline.remaining() <= 0:
                    raise _DeadlineExceeded
                size += len(chunk)
                if size > self._max_bytes:
                    raise self._too_large(response, "is longer")
                chunks.append(chunk)
        except httpx.TransportError as error:
            _raise_if_past(deadline, error)
            raise
        return b"".join(chunks)

    def _too_large(self, response: httpx.Response, how: str) -> FetchError:
        return FetchError(
            f"GET {response.url}: the body {how} than HORDE_API_MAX_BYTES={self._max_bytes}; "
            "raise the setting if the source is trusted"
        )

    def _backoff(self, attempt: int) -> float:
        # Full jitter: spreads retries of many clients instead of synchronizing them.
        return random.uniform(0, self._backoff_base * 2 ** (attempt - 1))

    def _cache_paths(self, url: str, params: dict[str, str] | None) -> tuple[Path, Path] | None:
        if self._cache_dir is None:
            return None
        import httpx

        key = hashlib.sha256(str(httpx.URL(url, params=params)).encode()).hexdigest()[:32]
        return self._cache_dir / f"{key}.body", self._cache_dir / f"{key}.etag"

    def _cached(self, url: str, params: dict[str, str] | None) -> _CachedCopy | None:
        """The last copy of ``url`` and its ETag when both are intact; a damaged copy is dropped with a warning
        (the next response replaces it), never trusted and never fatal."""
        paths = self._cache_paths(url, params)
        if paths is None or not paths[0].exists() or not paths[1].exists():
            return None
        try:
            meta = json.loads(paths[1].read_bytes())
            body = paths[0].read_bytes()
            if not isinstance(meta, dict) or not isinstance(meta.get("etag"), str) or not meta["etag"]:
                raise ValueError("no ETag recorded")
            if hashlib.sha256(body).hexdigest() != meta.get("sha256"):
                raise ValueError("the copy does not match its recorded sha256")
        except (OSError, ValueError) as error:
            log.warning("http cache entry damaged: ignored", extra={"path": str(paths[0]), "problem": str(error)})
            for path in paths:
                with contextlib.suppress(OSError):  # a folder in its place: the store below warns instead
                    path.unlink()
            return None
        return _CachedCopy(body=body, etag=meta["etag"])

    def _store(self, url: str, params: dict[str, str] | None, answer: _Answer) -> None:
        paths = self._cache_paths(url, params)
        etag = answer.headers.get("ETag")
        if paths is None or not etag:
            return
        meta = json.dumps({"etag": etag, "sha256": hashlib.sha256(answer.body).hexdigest()}).encode()
        try:
            paths[0].parent.mkdir(parents=True, exist_ok=True)
            for path, data in ((paths[0], answer.body), (paths[1], meta)):  # the body first: meta vouches for it
                tmp = path.with_suffix(path.suffix + ".tmp")
                tmp.write_bytes(data)
                tmp.replace(path)
        except OSError as error:  # a cache that cannot be written only costs a full download next time
            log.warning("http cache not written", extra={"path": str(paths[0]), "problem": str(error)})


def _raise_if_past(deadline: _Deadline, error: httpx.TransportError) -> None:
    """``_DeadlineExceeded`` for an error the deadline caused: a timeout (every wait is given the time left) or a
    connection the deadline shut."""
    import httpx

    if deadline.expired or isinstance(error, httpx.TimeoutException):
        raise _DeadlineExceeded from None


def _same_host_redirect(origin: httpx.URL, response: httpx.Response) -> httpx.Request:
    """The redirect's request when it stays on the host asked (and does not drop TLS); FetchError otherwise."""
    target = response.next_request
    assert target is not None
    if target.url.host.lower() != origin.host.lower() or (origin.scheme == "https" and target.url.scheme != "https"):
        raise FetchError(
            f"GET {origin}: redirected to {target.url.scheme}://{target.url.host}, another host; "
            "redirects are followed only to the same host (set the source URL to the final address)"
        )
    return target


def _retry_after_seconds(headers: httpx.Headers) -> float | None:
    value = headers.get("Retry-After")
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    return min(max(seconds, 0.0), _MAX_RETRY_AFTER_SECONDS) if math.isfinite(seconds) else None
