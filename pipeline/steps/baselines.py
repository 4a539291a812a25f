"""Image baseline normalization: the published alias table (SPEC §2.1) as data and one expression."""

from __future__ import annotations

from typing import Final

import polars as pl

CANONICAL_BASELINES: Final = (
    "stable_diffusion_1",
    "stable_diffusion_2_768",
    "stable_diffusion_2_512",
    "stable_diffusion_xl",
    "stable_cascade",
    "flux_1",
    "flux_schnell",
    "flux_dev",
    "qwen_image",
    "z_image_turbo",
    "infer",
)

# Aliases from the AI Horde reference tooling (KNOWN_IMAGE_GENERATION_BASELINE and its alternative-name
# lists); matched case-insensitively after trimming. Canonical names map to themselves.
_ALIASES: Final[dict[str, tuple[str, ...]]] = {
    "stable_diffusion_1": (
        "stable diffusion 1",
        "stable diffusion 1.4",
        "stable diffusion 1.5",
        "sd1",
        "sd14",
        "sd1.4",
        "sd15",
        "sd1.5",
        "stable_diffusion",
        "stable_diffusion_1.4",
        "stable_diffusion_1.5",
    ),
    "stable_diffusion_2_768": ("stable diffusion 2", "stable diffusion 2 768", "sd2", "sd2.1", "sd21"),
    "stable_diffusion_2_512": ("stable diffusion 2 512", "sd2 512"),
    "stable_diffusion_xl": ("stable diffusion xl", "sdxl"),
    "stable_cascade": ("stable cascade",),
    "flux_1": ("flux 1", "flux.1", "flux"),
    "flux_schnell": ("flux schnell", "flux.1 schnell"),
    "flux_dev": ("flux dev", "flux.1 dev"),
    "qwen_image": ("qwen image", "qwen-image"),
    "z_image_turbo": ("z image turbo", "z-image-turbo"),
}

#: lower-cased alias -> canonical baseline; the one lookup table both the loader and tests use.
BASELINE_ALIASES: Final[dict[str, str]] = {
    **{name: name for name in CANONICAL_BASELINES},
    **{alias: canonical for canonical, aliases in _ALIASES.items() for alias in aliases},
}


def normalized_baseline(raw: pl.Expr) -> pl.Expr:
    """The canonical baseline of ``raw``; an unknown baseline stays verbatim (the loader warns)."""
    key = raw.str.strip_chars().str.to_lowercase()
    return key.replace_strict(BASELINE_ALIASES, default=None, return_dtype=pl.String).fill_null(raw)


def is_known_baseline(raw: pl.Expr) -> pl.Expr:
    """True where ``raw`` is a canonical baseline or one of its aliases."""
    return raw.str.strip_chars().str.to_lowercase().is_in(list(BASELINE_ALIASES))
