"""Where an input lives: a folder or an http(s) base URL (SPEC §2, §8). The one place the two are told apart."""

from __future__ import annotations

from pipeline.sources.http import HttpFetcher

_URL_SCHEMES = ("http://", "https://")


def url_fetcher(source: str, fetcher: HttpFetcher | None) -> HttpFetcher | None:
    """The fetcher to read ``source`` with when it is a base URL; None when it is a folder."""
    if not source.startswith(_URL_SCHEMES):
        return None
    if fetcher is None:
        raise ValueError(f"a URL source needs an HttpFetcher: {source}")
    return fetcher
