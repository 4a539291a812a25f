"""The one table of text-model-name patterns (SPEC §3). Data only: both engines are built from it.

How a name is read, in both engines:
  1. ``BACKEND_PREFIX`` takes ``aphrodite/`` or ``koboldcpp/`` off the front;
  2. the rest splits on ``/``: the first part is the author (when there is more than one), the last the model;
  3. ``TOKEN`` cuts the model into ASCII tokens; anything else (``-_ .``, unicode, punctuation) separates;
  4. each token, lower-cased, is classified by the first row of ``TOKEN_CLASSES`` whose pattern matches all of
     it; tokens of no class are the base name.

Rules that keep the two regex engines (Rust ``regex`` in Polars, Python ``re``) identical and linear:
ASCII classes only and no ``(?i)`` (the engines case-fold Unicode differently), no look-around, no
back-references, and every repetition either bounded or unambiguous, so ``re`` cannot backtrack.
"""

from __future__ import annotations

from typing import Final, Literal

#: The backends whose workers prefix model names (SPEC §2.1, §4).
BACKENDS: Final = ("aphrodite", "koboldcpp")
# aphrodite/Org/Model-12B, koboldcpp/Model-12B
BACKEND_PREFIX: Final = r"^(aphrodite|koboldcpp)/"

#: How a prefixed copy names its canonical record: ``full`` = the whole name, ``short`` = the name after its
#: first "/" (SPEC §2.1: ``aphrodite/<name>``, ``koboldcpp/<name after the first "/">``).
BACKEND_ALIAS_RULES: Final[dict[str, Literal["full", "short"]]] = {"aphrodite": "full", "koboldcpp": "short"}

# A K-/i-/legacy quant written with underscores, kept whole by the tokenizer:
# Q4_K_M, Q5_K_S, Q6_K, Q8_0, Q4_0, IQ3_XXS, IQ4_NL, IQ2_XS
_UNDERSCORE_QUANT: Final = (
    r"[Ii]?[Qq][0-9]_(?:[Kk]_(?:[Xx]{0,2}[SsLl]|[Mm])|[Kk]|[0-9]|[Xx]{0,2}[Ss]|[Mm]|[Ll]|[Nn][Ll])"
)
#: Tokens: an underscore quant, or an ASCII word that may carry dotted digits (Qwen2.5, 1.5B, v0.2, 6.5bpw).
TOKEN: Final = _UNDERSCORE_QUANT + r"|[A-Za-z0-9]+(?:\.[0-9][A-Za-z0-9]*)*"

TokenClass = Literal["quant_q", "quant", "format", "moe", "size", "version", "context", "date"]

#: (class, full-match pattern over the lower-cased token). Order matters: the first match wins. A token of
#: no class is a variant when VARIANTS lists it, else part of the base.
TOKEN_CLASSES: Final[tuple[tuple[TokenClass, str], ...]] = (
    # q4_k_m, q8_0, iq3_xxs, iq4_nl, q4 -> written upper-case: Q4_K_M
    ("quant_q", r"i?q[0-9](?:_(?:k_(?:x{0,2}[sl]|m)|k|[0-9]|x{0,2}s|m|l|nl))?"),
    # 4bit, 8bits, 8bpw, 6.5bpw, 4.0bpw, fp16, bf16, f16, fp32, int8, int4, nf4, w4a16 -> written lower-case
    ("quant", r"[0-9]{1,2}(?:\.[0-9]{1,2})?(?:bits?|bpw)|fp16|fp32|bf16|f16|f32|int[48]|nf4|w[48]a(?:8|16)"),
    # gguf, ggml, gptq, awq, exl2, exl3, fp8, mlx, onnx, hf -> written upper-case: GGUF
    ("format", r"gguf|ggml|gptq|awq|exl[23]|fp8|mlx|onnx|hf"),
    # 8x7b, 8x22b, 4x1.8b (mixture of experts: experts x expert size)
    ("moe", r"[0-9]{1,3}x[0-9]{1,4}(?:\.[0-9]{1,3})?[bmt]"),
    # 8b, 1.5b, 350m, 1t (total parameters, M / B / T)
    ("size", r"[0-9]{1,4}(?:\.[0-9]{1,3})?[bmt]"),
    # v0.2, v3, v1.1.0
    ("version", r"v[0-9]{1,6}(?:\.[0-9]{1,6}){0,4}"),
    # 4k, 32k, 128k (context length, not a size)
    ("context", r"[0-9]{1,4}k"),
    # 2407, 2501, 2024, 20240501 (release code or date, not a size)
    ("date", r"[0-9]{4,8}"),
)

#: Lower-cased variant word -> canonical spelling (SPEC §3.1). A word not listed here is part of the base.
VARIANTS: Final[dict[str, str]] = {
    "instruct": "Instruct",
    "inst": "Instruct",
    "it": "Instruct",
    "chat": "Chat",
    "code": "Code",
    "coder": "Code",
    "base": "Base",
    "uncensored": "Uncensored",
    "rp": "RP",
    "roleplay": "RP",
    "thinking": "Thinking",
    "think": "Thinking",
    "reasoning": "Reasoning",
    "preview": "Preview",
    "abliterated": "Abliterated",
    "distill": "Distill",
    "vision": "Vision",
    "math": "Math",
}

#: Classes removed from the base name (SPEC §3.1: size, version, variant, quantization, format, date).
NOT_BASE: Final = frozenset({"quant_q", "quant", "format", "moe", "size", "version", "context", "date"})

# Parts of a size token: 8x7b -> experts 8, expert size 7, unit b; 1.5b -> size 1.5, unit b.
MOE_PARTS: Final = r"^([0-9]+)x([0-9.]+)([bmt])$"
SIZE_PARTS: Final = r"^([0-9.]+)([bmt])$"
#: Billions = value * multiplier / divisor, the same two float operations in both engines (so 350m -> 0.35).
UNIT_SCALE: Final[dict[str, tuple[float, float]]] = {"m": (1.0, 1000.0), "b": (1.0, 1.0), "t": (1000.0, 1.0)}

#: Tokens read per name. Real names have fewer than 20; the cap keeps hostile 100,000-character names (tens of
#: thousands of tokens) inside the 50 ms budget of SPEC §3.2 in both engines.
MAX_TOKENS: Final = 64

#: Joins base tokens and the family key's parts.
BASE_SEPARATOR: Final = "-"
#: Only names with an ASCII letter or digit parse; anything else is an all-null parse.
PARSEABLE: Final = r"[A-Za-z0-9]"
