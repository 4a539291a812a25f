"""URLs and free text with their secrets masked, safe to log (SPEC §8: a log line never shows a password).

Pure string functions: every URL in a message is masked (``masked_url``), and the literal secrets of the URLs a
run was configured with (REDIS_URL, the source URLs) wherever else they appear (``masked_text``).
"""

from __future__ import annotations

import re
from typing import Final
from urllib.parse import unquote, unquote_plus

__all__ = [
    "masked_text",
    "masked_url",
]

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
