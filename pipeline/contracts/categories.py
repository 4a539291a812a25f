"""The model-reference categories and the files that hold them (SPEC §2.1)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

__all__ = [
    "CATEGORY_FILES",
    "HORDE_MODEL_TYPES",
    "HORDE_TYPES",
    "IMAGE_GENERATION",
    "REQUIRED_CATEGORIES",
    "TEXT_GENERATION",
    "CategoryPolicy",
    "policy",
]

IMAGE_GENERATION: Final = "image_generation"
TEXT_GENERATION: Final = "text_generation"

#: category -> file name inside a model-reference folder or under a base URL.
CATEGORY_FILES: Final[dict[str, str]] = {
    IMAGE_GENERATION: "stable_diffusion.json",
    TEXT_GENERATION: "text_generation.json",
    "controlnet": "controlnet.json",
    "esrgan": "esrgan.json",
    "gfpgan": "gfpgan.json",
    "codeformer": "codeformer.json",
    "clip": "clip.json",
    "blip": "blip.json",
    "safety_checker": "safety_checker.json",
    "miscellaneous": "miscellaneous.json",
}

#: The categories that must be present: a run without them fails (the small ones are optional).
REQUIRED_CATEGORIES: Final = (IMAGE_GENERATION, TEXT_GENERATION)


@dataclass(frozen=True)
class CategoryPolicy:
    """Every rule that differs between categories, in one place (the steps ask the policy, never the name)."""

    category: str
    #: the AI Horde model type that serves the category, None when the Horde has no runtime data for it
    horde_type: str | None = None
    #: names are free text parsed into families (parsed names, family tables, the grouped view, parameter
    #: buckets, backend variations; SPEC §3, §5)
    has_families: bool = False
    #: baselines go through the alias table (SPEC §2.1); elsewhere they are kept verbatim
    normalizes_baselines: bool = False
    #: backend-prefixed copies (``koboldcpp/Model``) are folded into their canonical record (SPEC §2.1)
    folds_backend_copies: bool = False
    #: baselines are free-form repository names (no alias table to check them against)
    free_form_baselines: bool = False
    #: records carry download URLs worth auditing (text records carry none)
    has_downloads: bool = True
    #: the text thresholds of SPEC §6 (low usage, critical, ignorable download flags) apply
    text_risk_rules: bool = False
    #: record fields a record must carry, else it is bad (SPEC §2.1: an image record's baseline and nsfw)
    required_fields: tuple[str, ...] = ()


_POLICIES: Final = {
    IMAGE_GENERATION: CategoryPolicy(
        IMAGE_GENERATION, horde_type="image", normalizes_baselines=True, required_fields=("baseline", "nsfw")
    ),
    TEXT_GENERATION: CategoryPolicy(
        TEXT_GENERATION,
        horde_type="text",
        has_families=True,
        folds_backend_copies=True,
        free_form_baselines=True,
        has_downloads=False,
        text_risk_rules=True,
    ),
}


def policy(category: str) -> CategoryPolicy:
    """The rules of ``category`` (the plain defaults for the small categories)."""
    return _POLICIES.get(category) or CategoryPolicy(category)


#: Categories with AI Horde runtime data, and the Horde model type that serves each (SPEC §2.2).
HORDE_TYPES: Final[dict[str, str]] = {name: rules.horde_type for name, rules in _POLICIES.items() if rules.horde_type}
#: The AI Horde model types (SPEC §2.2), in the order the Horde data is loaded.
HORDE_MODEL_TYPES: Final = tuple(HORDE_TYPES.values())
