"""The fallback parser: a pure-Python, ``lru_cache``d reading of the pattern table (SPEC §3.2)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from itertools import islice
from typing import Any, Final

from pipeline.steps.names import patterns as p

_BACKEND: Final = re.compile(p.BACKEND_PREFIX)
_TOKEN: Final = re.compile(p.TOKEN)
_PARSEABLE: Final = re.compile(p.PARSEABLE)
# One alternation with a group per class: a single full match per token tells the first class that fits,
# exactly like the when/then chain of the Polars engine.
_CLASSIFIER: Final = re.compile("|".join(f"(?P<{kind}>{pattern})" for kind, pattern in p.TOKEN_CLASSES))
_MOE: Final = re.compile(p.MOE_PARTS)
_SIZE: Final = re.compile(p.SIZE_PARTS)
_ACTIVE: Final = re.compile(p.ACTIVE_PARTS)
_GLUED: Final = re.compile(p.GLUED_PARTS)
_KEY_GLUE: Final = re.compile(p.KEY_GLUE)
_VERSION_MAJOR: Final = re.compile(p.VERSION_MAJOR)
_SIZE_KINDS: Final = ("moe", "size", "glued")


@dataclass(frozen=True, slots=True)
class ParsedName:
    """The fields of one parsed text model name (SPEC §3.1); all None for an unparseable name."""

    backend: str | None = None
    author: str | None = None
    base: str | None = None
    size_label: str | None = None
    size_b: float | None = None
    experts: int | None = None
    expert_size_b: float | None = None
    active_b: float | None = None
    variants: tuple[str, ...] | None = None
    version: str | None = None
    quant: str | None = None
    format: str | None = None
    family_key: str | None = None


UNPARSED: Final = ParsedName()


def _billions(value: str, unit: str) -> float:
    multiplier, divisor = p.UNIT_SCALE[unit]
    return float(value) * multiplier / divisor


@lru_cache(maxsize=1 << 18)
def _parse(name: str) -> ParsedName:
    if _PARSEABLE.search(name) is None:
        return UNPARSED
    backend_match = _BACKEND.match(name)
    rest = name[backend_match.end() :] if backend_match else name
    parts = rest.split("/")
    author = (parts[0] or None) if len(parts) > 1 else None
    # First pass: each token's class.
    # finditer stops after MAX_TOKENS: a hostile name of 50,000 tokens is not cut into all of them first
    tokens = [match.group() for match in islice(_TOKEN.finditer(parts[-1]), p.MAX_TOKENS)]
    lowers = [token.lower() for token in tokens]
    kinds: list[str | None] = []
    for lowered in lowers:
        match = _CLASSIFIER.fullmatch(lowered)
        kinds.append(match.lastgroup if match else None)
    # Context, as the vectorized engine reads it from neighbouring rows: an integer right after a version token
    # continues it (neural-chat-7b-v3-1). A dotted number is a release version when no base word stands right
    # before it (vicuna-13b-1.1, Pantheon-RP-1.8-24b) or when the next base word or size after it is a base word
    # (hermes-2.5-mistral-7b); else it names a generation (Llama-3.1-8B, Llama-3.1-8B-Lexi, Mistral-Small-3.1).
    continues_version = [kind == "integer" and i > 0 and kinds[i - 1] == "version" for i, kind in enumerate(kinds)]
    base_word = [
        kind == "glued"
        or (kind is None and lowered not in p.VARIANTS)
        or (kind == "integer" and not continues_version[i])
        for i, (lowered, kind) in enumerate(zip(lowers, kinds, strict=True))
    ]
    base_next = [False] * len(kinds)
    following = False  # whether the next base word or size (after the token) is a base word
    for index in range(len(kinds) - 1, -1, -1):
        base_next[index] = following
        if base_word[index]:
            following = True
        elif kinds[index] in _SIZE_KINDS:
            following = False
    release = [
        kind == "dotted" and (index == 0 or not base_word[index - 1] or base_next[index])
        for index, kind in enumerate(kinds)
    ]
    size_token = active_token = version = quant = file_format = None
    variants: list[str] = []
    base_tokens: list[str] = []
    variant_tokens: list[str] = []
    for index, (token, lowered, kind) in enumerate(zip(tokens, lowers, kinds, strict=True)):
        if kind is None:
            variant = p.VARIANTS.get(lowered)
            if variant is None:
                base_tokens.append(token)
            else:
                variant_tokens.append(token)
                if variant not in variants:
                    variants.append(variant)
        elif kind in ("moe", "size"):
            size_token = size_token or token
        elif kind == "glued":
            glued = _GLUED.match(token)
            assert glued is not None  # the "glued" class guarantees the shape
            base_tokens.append(glued.group(1))
            size_token = size_token or glued.group(2)
        elif kind == "integer":
            if base_word[index]:
                base_tokens.append(token)
        elif kind == "active":
            active_token = active_token or lowered
        elif kind == "version" or release[index]:
            version = version or lowered
        elif kind == "dotted":
            base_tokens.append(token)
        elif kind == "quant_q":
            quant = quant or lowered.upper()
        elif kind == "quant":
            quant = quant or lowered
        elif kind == "format":
            spelled = p.FORMATS[lowered]
            if file_format is None or (file_format in p.WEAK_FORMATS and spelled not in p.WEAK_FORMATS):
                file_format = spelled

    size_label = size_b = experts = expert_size_b = None
    if size_token is not None:
        lowered = size_token.lower()
        size_label = size_token.upper()
        moe = _MOE.match(lowered)
        if moe is not None:
            experts = int(moe.group(1))
            expert_size_b = _billions(moe.group(2), moe.group(3))
            size_b = experts * expert_size_b
        else:
            plain = _SIZE.match(lowered)
            assert plain is not None  # the "size" class guarantees the shape
            whole, decimals, unit, trailing = plain.groups()
            size_b = _billions(f"{whole}.{decimals or trailing or '0'}", unit)
    active_b = None
    if active_token is not None:
        active = _ACTIVE.match(active_token)
        assert active is not None  # the "active" class guarantees the shape
        active_b = _billions(active.group(1), active.group(2))
    if not base_tokens and variant_tokens:
        # a name of variant words only (Alpha-8B, Chat-7B-Instruct): the first is its name, the rest its variants
        base_tokens = variant_tokens[:1]
        variants = list(dict.fromkeys(p.VARIANTS[token.lower()] for token in variant_tokens[1:]))
    base = p.BASE_SEPARATOR.join(base_tokens) or None
    family_key = None
    if base is not None:
        key_base = _KEY_GLUE.sub(p.KEY_GLUE_PYTHON, base)
        major = _VERSION_MAJOR.match(version) if version is not None else None
        if size_label:
            family_key = (key_base + p.BASE_SEPARATOR + size_label).lower()
        elif major is not None:
            family_key = (key_base + p.BASE_SEPARATOR + major.group()).lower()
        else:
            family_key = key_base.lower()
    return ParsedName(
        backend=backend_match.group(1) if backend_match else None,
        author=author,
        base=base,
        size_label=size_label,
        size_b=size_b,
        experts=experts,
        expert_size_b=expert_size_b,
        active_b=active_b,
        variants=tuple(variants),
        version=version,
        quant=quant,
        format=file_format,
        family_key=family_key,
    )


def parse_name(name: object) -> ParsedName:
    """The parsed fields of ``name``; empty, blank and non-string names give an all-null parse."""
    if not isinstance(name, str):
        return UNPARSED
    return _parse(name)


def fallback_cache_info() -> Any:
    """The ``lru_cache`` statistics of the fallback parser (hits, misses, size), e.g. to see that it caches."""
    return _parse.cache_info()


def clear_fallback_cache() -> None:
    """Forget every cached parse (the cache holds at most 2^18 names; a long-lived process may want it empty)."""
    _parse.cache_clear()
