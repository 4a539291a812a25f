"""The fallback parser: a pure-Python, ``lru_cache``d reading of the pattern table (SPEC §3.2)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Final

from pipeline.names import patterns as p

_BACKEND: Final = re.compile(p.BACKEND_PREFIX)
_TOKEN: Final = re.compile(p.TOKEN)
_PARSEABLE: Final = re.compile(p.PARSEABLE)
# One alternation with a group per class: a single full match per token tells the first class that fits,
# exactly like the when/then chain of the Polars engine.
_CLASSIFIER: Final = re.compile("|".join(f"(?P<{kind}>{pattern})" for kind, pattern in p.TOKEN_CLASSES))
_MOE: Final = re.compile(p.MOE_PARTS)
_SIZE: Final = re.compile(p.SIZE_PARTS)


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
    size_token = version = quant = file_format = None
    variants: list[str] = []
    base_tokens: list[str] = []
    for token in _TOKEN.findall(parts[-1])[: p.MAX_TOKENS]:
        lowered = token.lower()
        match = _CLASSIFIER.fullmatch(lowered)
        kind = match.lastgroup if match else None
        if kind is None:
            variant = p.VARIANTS.get(lowered)
            if variant is None:
                base_tokens.append(token)
            elif variant not in variants:
                variants.append(variant)
        elif kind in ("moe", "size"):
            size_token = size_token or token
        elif kind == "version":
            version = version or lowered
        elif kind == "quant_q":
            quant = quant or lowered.upper()
        elif kind == "quant":
            quant = quant or lowered
        elif kind == "format":
            file_format = file_format or lowered.upper()

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
    base = p.BASE_SEPARATOR.join(base_tokens) or None
    family_key = None
    if base is not None:
        family_key = (base + p.BASE_SEPARATOR + size_label if size_label else base).lower()
    return ParsedName(
        backend=backend_match.group(1) if backend_match else None,
        author=author,
        base=base,
        size_label=size_label,
        size_b=size_b,
        experts=experts,
        expert_size_b=expert_size_b,
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
