"""The one table of text-model-name patterns (SPEC §3). Data only: both engines are built from it.

How a name is read, in both engines:
  1. ``BACKEND_PREFIX`` takes ``aphrodite/`` or ``koboldcpp/`` off the front;
  2. the rest splits on ``/``: the first part is the author (when there is more than one), the last the model;
  3. ``TOKEN`` cuts the model into ASCII tokens; anything else (``-_ .``, unicode, punctuation) separates;
  4. each token, lower-cased, is classified by the first row of ``TOKEN_CLASSES`` whose pattern matches all of
     it; tokens of no class are variants (``VARIANTS``) or the base name;
  5. a few classes read their neighbours (a dotted number, an integer after a version: see TOKEN_CLASSES);
  6. ``family_key`` = base (numbers glued to the word before: ``KEY_GLUE``) + size, or + major version when
     there is no size (``VERSION_MAJOR``), lower-cased.

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

# A K-/i-/legacy/ternary quant written with underscores, kept whole by the tokenizer, with llama.cpp's ARM
# repacks and the MoE-only MXFP4 type: Q4_K_M, Q5_K_S, Q6_K, Q8_0, Q4_0, IQ3_XXS, IQ4_NL, IQ2_XS, Q4_K_XL,
# IQ4_KS, Q4_0_8_8, Q4_0_4_4, TQ1_0, MXFP4_MOE
_UNDERSCORE_QUANT: Final = (
    r"[Ii]?[Qq][0-9]_(?:[Kk](?:_(?:[Xx]{0,2}[SsLl]|[Mm])|[SsTtLl]{1,3})?|[0-9](?:_[0-9]_[0-9])?|[Xx]{0,2}[Ss]|[Mm]|[Ll]|[Nn][Ll])"
    r"|[Tt][Qq][0-9]_[0-9]|[Mm][Xx][Ff][Pp]4_[Mm][Oo][Ee]"
)
# Bits per weight with an underscore for the decimal point (exl2 repos): 6_5bpw, 4_25bpw
_UNDERSCORE_BPW: Final = r"[0-9]{1,2}_[0-9]{1,2}[Bb][Pp][Ww]"
# A llama.cpp shard suffix, kept whole so neither number reads as a date nor "of" as a word:
# Llama-3.3-70B-Instruct-Q4_K_M-00002-of-00004.gguf
_SHARD: Final = r"[0-9]{5}-[Oo][Ff]-[0-9]{5}"
# A small size with an underscore for the decimal point: Qwen-1_8B (1.8B), stablelm-2-1_6b (1.6B). Only after
# 0 or 1: LLAMA-3_8B is Llama 3 at 8B, so "_" otherwise separates.
_UNDERSCORE_SIZE: Final = r"[01]_[0-9]{1,2}[BbMm]"
# A date written with dashes, with the separator after it (there is no look-ahead to require one):
# Yi-9B-200K-2024-05-06, c4ai-command-r-08-2024. "2024-12B" is not a date: the 12B stays a size.
_SEP: Final = r"(?:[-_ ./\n]|$)"
_DASHED_DATE: Final = rf"20[0-9]{{2}}-[01][0-9](?:-[0-3][0-9])?{_SEP}|[01][0-9]-20[0-9]{{2}}{_SEP}"
# An old split file's suffix: goliath-120b.Q4_K_M.gguf-split-a
_SPLIT: Final = r"[Ss][Pp][Ll][Ii][Tt]-[A-Za-z](?:[-_ ./\n]|$)"
#: Tokens: a shard suffix, an underscore quant, bpw or size, a dashed date, or an ASCII word that may carry
#: dotted digits (Qwen2.5, 1.5B, v0.2, 6.5bpw). The first alternative that matches at a position wins (both
#: engines are leftmost-first).
TOKEN: Final = "|".join(
    (
        _SHARD,
        _SPLIT,
        _UNDERSCORE_QUANT,
        _UNDERSCORE_BPW,
        _UNDERSCORE_SIZE,
        _DASHED_DATE,
        r"[A-Za-z0-9]+(?:\.[0-9][A-Za-z0-9]*)*",
    )
)

TokenClass = Literal[
    "quant_q",
    "quant",
    "format",
    "noise",
    "moe",
    "active",
    "size",
    "glued",
    "version",
    "integer",
    "context",
    "date",
    "dotted",
    "extension",
]

#: Lower-cased format token -> canonical format (SPEC §3.1). The file format's own revision is not a format of
#: its own: ggmlv2 and ggmlv3 are GGML.
FORMATS: Final[dict[str, str]] = {
    "gguf": "GGUF",  # Qwen2.5-14B-Instruct-GGUF, model.Q4_K_M.gguf
    "ggml": "GGML",  # TheBloke/Wizard-Vicuna-13B-Uncensored-GGML
    "ggmlv0": "GGML",  # mpt-7b-chat.ggmlv0.q4_0.bin
    "ggmlv1": "GGML",  # pygmalion-6b.ggmlv1.q4_0.bin
    "ggmlv2": "GGML",  # koala-7B.ggmlv2.q5_0.bin
    "ggmlv3": "GGML",  # llama-2-13b-chat.ggmlv3.q4_0.bin
    "gptq": "GPTQ",  # TheBloke/Llama-2-13B-chat-GPTQ
    "awq": "AWQ",  # Qwen/Qwen2.5-32B-Instruct-AWQ
    "exl2": "EXL2",  # turboderp/Llama-3-70B-Instruct-exl2
    "exl3": "EXL3",  # turboderp/Qwen3-8B-exl3
    "fp8": "FP8",  # neuralmagic/Meta-Llama-3.1-70B-Instruct-FP8
    "mlx": "MLX",  # mlx-community/Qwen3-8B-MLX-4bit
    "onnx": "ONNX",  # microsoft/Phi-3-mini-4k-instruct-onnx
    "bnb": "BNB",  # unsloth/Llama-3.3-70B-Instruct-bnb-4bit (bitsandbytes)
    "hf": "HF",  # meta-llama/Llama-2-7b-hf
    "hqq": "HQQ",  # mobiuslabsgmbh/Llama-2-7b-chat-hf-4bit_g64-HQQ
    "autoround": "AUTOROUND",  # Intel/Qwen2-7B-int4-AutoRound
    "llamafile": "LLAMAFILE",  # Mozilla/Meta-Llama-3-8B-Instruct-llamafile
}

#: Formats that say least: a name with another format as well has that one (Nemotron-70B-Instruct-HF-Q4_K_M.gguf
#: is GGUF).
WEAK_FORMATS: Final = ("HF",)

#: (class, full-match pattern over the lower-cased token). Order matters: the first match wins. A token of
#: no class is a variant when VARIANTS lists it, else part of the base. How each class is used:
#:   quant_q, quant -> ``quant`` (the first of either); format -> ``format`` (its FORMATS spelling; the first
#:   one not in WEAK_FORMATS, else the first); noise, extension -> dropped; moe, size -> the size (the first of
#:   moe, size, glued); active -> ``active_b``; glued -> its letters to the base, the rest is a size;
#:   version -> ``version``; dotted -> ``version`` when the token before it is no base word or the next base
#:   word or size after it is a base word (a release: ``vicuna-13b-1.1``, ``hermes-2.5-mistral-7b``), else part
#:   of the base (a generation: ``Llama-3.1-8B``, ``Llama-3.1-8B-Lexi``); integer -> part of the base, or
#:   dropped right after a version token (``v3-1``).
TOKEN_CLASSES: Final[tuple[tuple[TokenClass, str], ...]] = (
    # q4_k_m, q8_0, iq3_xxs, iq4_nl, q4_k_xl, iq4_ks, q4, q4_0_8_8 (ARM repack), tq1_0 (ternary), mxfp4_moe
    # -> written upper-case: Q4_K_M
    (
        "quant_q",
        r"i?q[0-9](?:_(?:k(?:_(?:x{0,2}[sl]|m)|[stl]{1,3})?|[0-9](?:_[0-9]_[0-9])?|x{0,2}s|m|l|nl))?"
        r"|tq[0-9]_[0-9]|mxfp4_moe",
    ),
    # 4bit, 8bits, 8bpw, 6.5bpw, 6_5bpw, 4.0bpw, fp16, bf16, f16, fp32, int8, int4, nf4, fp4, nvfp4, mxfp4,
    # w4a16, w8a8; exl2 head bits h6, h8 -> written lower-case
    (
        "quant",
        r"[0-9]{1,2}(?:[._][0-9]{1,2})?(?:bits?|bpw)|fp16|fp32|bf16|f16|f32|int[48]|nf4|fp4|nvfp4|mxfp4"
        r"|w[48]a(?:8|16)|h[468]",
    ),
    # gguf, ggmlv3, gptq, awq, exl2, ... (FORMATS) -> its canonical spelling: GGML for ggmlv3
    ("format", "|".join(FORMATS)),
    # File and quantization noise, never base: 00002-of-00004 (shard), split-a, part1of2, i1 (imatrix repos),
    # imatrix, imat, ud (unsloth dynamic), unsloth, dynamic, unquantized, 128g / g128 / gs128 (GPTQ group size),
    # actorder_True (a GPTQ branch), meta (Meta-Llama-3 is Llama-3)
    (
        "noise",
        r"[0-9]{5}-of-[0-9]{5}|split-[a-z][-_ ./\n]?|part[0-9]{1,2}of[0-9]{1,2}"
        r"|i1|imatrix|imat|ud|unsloth|dynamic|unquantized|(?:32|64|128|256)g|gs?(?:32|64|128|256)|actorder|true|false|meta",
    ),
    # 8x7b, 8x22b, 4x1.8b (mixture of experts: experts x expert size)
    ("moe", r"[0-9]{1,3}x[0-9]{1,4}(?:\.[0-9]{1,3})?[bmt]"),
    # a3b, a22b, a2.7b, a400m (active parameters of an MoE: Qwen3-30B-A3B, granite-3.0-3b-a800m)
    ("active", r"a[0-9]{1,4}(?:\.[0-9]{1,3})?[bm]"),
    # 8b, 1.5b, 350m, 1t (total parameters, M / B / T); 1_8b (1.8B); 1b7, 7b1 (BLOOM: 1.7B, 7.1B)
    ("size", r"[0-9]{1,4}(?:\.[0-9]{1,3})?[bmt]|[01]_[0-9]{1,2}[bm]|[0-9]{1,3}[bm][0-9]{1,2}"),
    # r7b, mistral7b, smollm135m: a size glued to a word (c4ai-command-r7b-12-2024). Not after a single a
    # (active, above), e (gemma-3n-E4B: an "effective" size that names the model) or v (a version).
    ("glued", r"(?:[b-df-uw-z]|[a-z]{2,12})[0-9]{1,4}(?:\.[0-9]{1,3})?[bm]"),
    # v0.2, v3, v1.1.0, v2c (Cydonia-24B-v2c)
    ("version", r"v[0-9]{1,6}(?:\.[0-9]{1,6}){0,4}[a-z]?"),
    # 4k, 32k, 128k (context length, not a size)
    ("context", r"[0-9]{1,4}k"),
    # 2407, 2501, 2024, 20240501; 2024-05-06, 08-2024 (release code or date, not a size)
    ("date", r"[0-9]{4,8}|20[0-9]{2}-[01][0-9](?:-[0-3][0-9])?[-_ ./\n]?|[01][0-9]-20[0-9]{2}[-_ ./\n]?"),
    # 2.5, 3.1, 1.10 (hermes-2.5-mistral-7b, vicuna-13b-1.1: release numbers; Llama-3.1-8B: a generation)
    ("dotted", r"[0-9]{1,4}(?:\.[0-9]{1,4}){1,3}"),
    # 3, 23, 1 (Llama-3, aya-23: part of the base; after a version token it continues it: neural-chat-7b-v3-1)
    ("integer", r"[0-9]{1,3}"),
    # .bin, .safetensors, .pth, .ckpt (a file extension; "pt" is gemma's pretrained variant)
    ("extension", r"bin|safetensors|pth|ckpt"),
)

#: Lower-cased variant word -> canonical spelling (SPEC §3.1). A word not listed here is part of the base.
#: Variants are words that describe how one model was tuned or released; words that name a different model
#: (Lite, Mini, Air, Flash, Nano, Pro, VL, MoE) stay in the base.
VARIANTS: Final[dict[str, str]] = {
    "instruct": "Instruct",  # Llama-3.1-8B-Instruct
    "inst": "Instruct",  # Mistral-7B-Inst
    "it": "Instruct",  # gemma-2-9b-it
    "chat": "Chat",  # Llama-2-13b-chat-hf
    "code": "Code",  # Llama-2-7b-code
    "coder": "Code",  # Qwen2.5-Coder-7B
    "base": "Base",  # Mistral-Small-3.1-24B-Base-2503
    "pt": "Base",  # gemma-3-4b-pt (pretrained)
    "uncensored": "Uncensored",  # Wizard-Vicuna-13B-Uncensored
    "rp": "RP",  # Pantheon-RP-1.8-24b
    "roleplay": "RP",  # Llama-3-8B-Roleplay
    "thinking": "Thinking",  # Qwen3-30B-A3B-Thinking-2507
    "think": "Thinking",  # Qwen3-8B-Think
    "reasoning": "Reasoning",  # phi-4-mini-reasoning
    "preview": "Preview",  # QwQ-32B-Preview
    "alpha": "Alpha",  # zephyr-7b-alpha
    "beta": "Beta",  # zephyr-7b-beta
    "abliterated": "Abliterated",  # NeuralDaredevil-8B-abliterated
    "heretic": "Heretic",  # gemma-4-31B-it-heretic
    "distill": "Distill",  # DeepSeek-R1-Distill-Qwen-14B
    "vision": "Vision",  # Llama-3.2-11B-Vision-Instruct
    "math": "Math",  # Qwen2.5-Math-7B
    "qat": "QAT",  # gemma-3-27b-it-qat
    "deduped": "Deduped",  # pythia-12b-deduped (trained on the deduplicated Pile)
    "sft": "SFT",  # Nous-Hermes-2-Mixtral-8x7B-SFT
    "dpo": "DPO",  # Nous-Hermes-2-Mixtral-8x7B-DPO
    "orpo": "ORPO",  # zephyr-orpo-141b-A35b-v0.1
}


# A trailing quantization/format token after its separator, e.g. "-Q4_K_M", "-GGUF", ".q8_0" (matched
# lower-case; the classes' patterns are TOKEN_CLASSES' own).
_SUFFIX_SEPARATOR: Final = "[-_. ]"
_SUFFIX_TOKEN: Final = (
    _SUFFIX_SEPARATOR
    + "(?:"
    + "|".join(pattern for kind, pattern in TOKEN_CLASSES if kind in ("quant_q", "quant", "format"))
    + ")"
)
#: How the merge strips a Horde name's quant/format suffix, tried in order (SPEC §4 step 3): the last such token,
#: then every trailing one. One token first, because a format can be part of the name:
#: koboldcpp/CodeLlama-34b-hf-Q4_K_S is CodeLlama-34b-hf.
SUFFIX_STRIPS: Final = (_SUFFIX_TOKEN + "$", "(?:" + _SUFFIX_TOKEN + ")+$")

# Parts of a size token: 8x7b -> experts 8, expert size 7, unit b.
MOE_PARTS: Final = r"^([0-9]+)x([0-9.]+)([bmt])$"
# Parts of an active-parameter token: a3b -> (3, b); a2.7b -> (2.7, b).
ACTIVE_PARTS: Final = r"^a([0-9.]+)([bm])$"
# Parts of a glued token: letters (to the base, as written) and a size: r7B -> (r, 7B).
GLUED_PARTS: Final = r"^([A-Za-z]+)([0-9].*)$"
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
#: A name without a size keys its family by its major version too (SPEC §3.3 leaves such names to their base):
#: DeepSeek-V3 (671B) and DeepSeek-V2 (236B) are different models with the same base, and without a size
#: nothing else tells them apart. v3.1 -> v3; a version not written with "v" (GLM-4.5-Air) adds nothing.
VERSION_MAJOR: Final = r"^v[0-9]+"
#: The family key glues a number to the word before it (Llama-3.1 and Llama3.1, Qwen-2.5 and Qwen2.5 are one
#: spelling): a letter, the separator, a digit -> the letter and the digit. Both replacement spellings (Polars'
#: ``$1``, Python's ``\1``) say the same.
KEY_GLUE: Final = r"([A-Za-z])-([0-9])"
KEY_GLUE_POLARS: Final = "${1}${2}"
KEY_GLUE_PYTHON: Final = r"\1\2"
#: Only names with an ASCII letter or digit parse; anything else is an all-null parse.
PARSEABLE: Final = r"[A-Za-z0-9]"
