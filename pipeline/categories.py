"""The model-reference categories and the files that hold them (SPEC §2.1)."""

from __future__ import annotations

from typing import Final

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

#: Categories with AI Horde runtime data, and the Horde model type that serves each (SPEC §2.2).
HORDE_TYPES: Final[dict[str, str]] = {IMAGE_GENERATION: "image", TEXT_GENERATION: "text"}
