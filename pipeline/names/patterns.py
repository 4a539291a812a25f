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
BACKEND_PREFIX: Final = rf"^({'|'.join(BACKENDS)})/"
#: A text model's backend variations in their fixed order (SPEC §4): "canonical" (the unprefixed name), then each
#: backend.
CANONICAL: Final = "canonical"
VARIATION_BACKENDS: Final = (CANONICAL, *BACKENDS)

#: How a prefixed copy names its canonical record: ``full`` = the whole name, ``short`` = the name after its
#: first "/" (SPEC §2.1: ``aphrodite/<name>``, ``koboldcpp/<name after the first "/">``).
BACKEND_ALIAS_RULES: Final[dict[str, Literal["full", "short"]]] = {"aphrodite": "full", "koboldcpp": "short"}

# A K-/i-/legacy quant written with underscores, kept whole by the tokenizer:
# Q4_K_M, Q5_K_S, Q6_K, Q8_0, Q4_0, IQ3_XXS, IQ4_NL, IQ2_XS
_UNDERSCORE_QUANT: Final = (
    r"[Ii]?[Qq][0-9]_(?:[Kk]_(?:[Xx]{0,2}[SsLl]|[Mm])|[Kk]|[0-9]|[Xx]{0,2}[Ss]|[Mm]|[Ll]|[Nn][Ll])"
)
# A small size with an underscore for the decimal point: Qwen-1_8B (1.8B), stablelm-2-1_6b (1.6B). Only after
# 0 or 1: LLAMA-3_8B is Llama 3 at 8B, so "_" otherwise separates.
_UNDERSCORE_SIZE: Final = r"[01]_[0-9]{1,2}[BbMm]"
# A date written with dashes, with the separator after it (there is no look-ahead to require one):
# Yi-9B-200K-2024-05-06, c4ai-command-r-08-2024. "2024-12B" is not a date: the 12B stays a size.
_SEP: Final = r"(?:[-_ ./\n]|$)"
_DASHED_DATE: Final = rf"20[0-9]{{2}}-[01][0-9](?:-[0-3][0-9])?{_SEP}|[01][0-9]-20[0-9]{{2}}{_SEP}"
#: Tokens: an underscore quant or size, a dashed date, or an ASCII word that may carry dotted digits
#: (Qwen2.5, 1.5B, v0.2, 6.5bpw).
TOKEN: Final = "|".join((_UNDERSCORE_QUANT, _UNDERSCORE_SIZE, _DASHED_DATE, r"[A-Za-z0-9]+(?:\.[0-9][A-Za-z0-9]*)*"))

TokenClass = Literal["quant_q", "quant", "format", "moe", "size", "version", "context", "date", "extension"]

#: (class, full-match pattern over the lower-cased token). Order matters: the first match wins. A token of
#: no class is a variant when VARIANTS lists it, else part of the base.
TOKEN_CLASSES: Final[tuple[tuple[TokenClass, str], ...]] = (
    # q4_k_m, q8_0, iq3_xxs, iq4_nl, q4 -> written upper-case: Q4_K_M
    ("quant_q", r"i?q[0-9](?:_(?:k_(?:x{0,2}[sl]|m)|k|[0-9]|x{0,2}s|m|l|nl))?"),
    # 4bit, 8bits, 8bpw, 6.5bpw, 4.0bpw, fp16, bf16, f16, fp32, int8, int4, nf4, w4a16; exl2 head bits h6, h8;
    # imatrix i1 -> written lower-case
    ("quant", r"[0-9]{1,2}(?:\.[0-9]{1,2})?(?:bits?|bpw)|fp16|fp32|bf16|f16|f32|int[48]|nf4|w[48]a(?:8|16)|h[468]|i1"),
    # gguf, ggml, ggmlv3, gptq, awq, exl2, exl3, fp8, mlx, onnx, bnb (bitsandbytes), hf -> written upper-case
    ("format", r"gguf|ggml(?:v[0-9])?|gptq|awq|exl[23]|fp8|mlx|onnx|bnb|hf"),
    # 8x7b, 8x22b, 4x1.8b (mixture of experts: experts x expert size)
    ("moe", r"[0-9]{1,3}x[0-9]{1,4}(?:\.[0-9]{1,3})?[bmt]"),
    # 8b, 1.5b, 350m, 1t (total parameters, M / B / T); 1_8b (1.8B); 1b7, 7b1 (BLOOM: 1.7B, 7.1B)
    ("size", r"[0-9]{1,4}(?:\.[0-9]{1,3})?[bmt]|[01]_[0-9]{1,2}[bm]|[0-9]{1,3}[bm][0-9]{1,2}"),
    # v0.2, v3, v1.1.0
    ("version", r"v[0-9]{1,6}(?:\.[0-9]{1,6}){0,4}"),
    # 4k, 32k, 128k (context length, not a size)
    ("context", r"[0-9]{1,4}k"),
    # 2407, 2501, 2024, 20240501; 2024-05-06, 08-2024 (release code or date, not a size)
    ("date", r"[0-9]{4,8}|20[0-9]{2}-[01][0-9](?:-[0-3][0-9])?[-_ ./\n]?|[01][0-9]-20[0-9]{2}[-_ ./\n]?"),
    # .bin, .safetensors, .pth, .ckpt (a file extension)
    ("extension", r"bin|safetensors|pth|ckpt"),
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
    "qat": "QAT",
}


# Parts of a size token: 8x7b -> experts 8, expert size 7, unit b.
MOE_PARTS: Final = r"^([0-9]+)x([0-9.]+)([bmt])$"
# Parts of a size token: whole number, decimals (after "." or "_", or after the unit as in 1b7), unit.
# 1.5b -> (1, 5, b, ""); 1_8b -> (1, 8, b, ""); 1b7 -> (1, "", b, 7); 8b -> (8, "", b, "").
SIZE_PARTS: Final = r"^([0-9]+)(?:[._]([0-9]+))?([bmt])([0-9]*)$"
#: Billions = value * multiplier / divisor, the same two float operations in both engines (so 350m -> 0.35).
UNIT_SCALE: Final[dict[str, tuple[float, float]]] = {"m": (1.0, 1000.0), "b": (1.0, 1.0), "t": (1000.0, 1.0)}

#: Tokens read per name. Real names have fewer than 20; the cap keeps hostile 100,000-character names (tens of
#: thousands of tokens) inside the 50 ms budget of SPEC §3.2 in both engines.
MAX_TOKENS: Final = 64

#: Joins base tokens and the family key's parts.
BASE_SEPARATOR: Final = "-"
#: Only names with an ASCII letter or digit parse; anything else is an all-null parse.
PARSEABLE: Final = r"[A-Za-z0-9]"
