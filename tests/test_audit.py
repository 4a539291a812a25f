"""The reference audit (SPEC §11): the real reference, a hand-built case per kind, the CLI and the Redis key."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import polars as pl
import pytest
import redis

from jobs.__main__ import main
from jobs.audit import format_findings
from pipeline.contracts import keys
from pipeline.contracts.rules import AnalysisRules
from pipeline.contracts.schemas import AUDIT_SCHEMA
from pipeline.contracts.settings import load_settings
from pipeline.shell.batch import run_once
from pipeline.shell.logs import terminal_safe
from pipeline.shell.reference_records import category_records, load_records
from pipeline.sources.horde import load_horde
from pipeline.sources.records import ReferenceFile
from pipeline.steps.audit import reference_audit
from pipeline.steps.audit_kinds import KINDS, SEVERITIES
from pipeline.steps.names import parse_name
from pipeline.steps.outputs import RunOutputs, run_outputs

IMAGE, TEXT = "image_generation", "text_generation"
README = Path(__file__).resolve().parent.parent / "README.md"


# --- the real reference ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def real_outputs(real_reference: Path, real_horde: Path) -> RunOutputs:
    horde, _ = load_horde(str(real_horde))
    return run_outputs(load_records(str(real_reference)), horde, AnalysisRules(), computed_at=0)


@pytest.fixture(scope="module")
def real_text_sizes(real_reference: Path) -> dict[str, tuple[int | None, Any]]:
    """Canonical text name -> (stored parameters, parsed name), read straight from the JSON file."""
    document = json.loads((real_reference / "text_generation.json").read_text())
    found = {}
    for name, record in document.items():
        if name.startswith(("aphrodite/", "koboldcpp/")):
            continue
        stored = record.get("parameters") or record.get("parameters_count") or None
        found[name] = (stored, parse_name(name))
    return found


def _is_moe(parsed: Any, name: str) -> bool:
    """An MoE name: experts (``8x7B``) or an active-parameter marker (``30B-A3B``), read independently here."""
    active = getattr(parsed, "active_b", None)
    return parsed.experts is not None or active is not None or re.search(r"(?i)\db[-_]a\d+b\b", name) is not None


def _kind(findings: pl.DataFrame, kind: str) -> pl.DataFrame:
    return findings.filter(pl.col("kind") == kind)


def test_every_moe_name_gets_the_convention_and_never_a_size_mismatch(
    real_outputs: RunOutputs, real_text_sizes: dict[str, tuple[int | None, Any]]
) -> None:
    audit = real_outputs.tables[("audit", TEXT)]
    # An MoE name that states only its active size (Qwen1.5-MoE-A2.7B) has no total to compare with.
    moe = {
        name for name, (stored, parsed) in real_text_sizes.items() if stored and parsed.size_b and _is_moe(parsed, name)
    }
    assert len(moe) == 37  # SPEC §11 / issue 16: all MoE names of the real reference that state a total
    found = _kind(audit, "moe_size_convention")
    assert set(found["name"]) == moe
    assert not moe & set(_kind(audit, "size_mismatch")["name"])
    # about half (within 10 % of half) is the convention (info); the others say they are not
    for row in found.iter_rows(named=True):
        stored, parsed = real_text_sizes[row["name"]]
        half = parsed.size_b * 1e9 / 2
        assert row["severity"] == ("info" if abs(stored - half) / half <= 0.10 else "warning"), row
    assert found.filter(pl.col("severity") == "info").height == 35


def test_dense_mismatches_are_exactly_those_off_by_more_than_10_percent(
    real_outputs: RunOutputs, real_text_sizes: dict[str, tuple[int | None, Any]]
) -> None:
    expected = {
        name
        for name, (stored, parsed) in real_text_sizes.items()
        if stored
        and parsed.size_b
        and not _is_moe(parsed, name)
        and abs(stored - parsed.size_b * 1e9) / (parsed.size_b * 1e9) > 0.10
    }
    audit = real_outputs.tables[("audit", TEXT)]
    found = _kind(audit, "size_mismatch")
    assert set(found["name"]) == expected
    assert len(expected) == 5  # README: 625 of 630 dense sized names agree
    assert "CalderaAI/30B-Epsilon" not in expected  # 33B for 30B is exactly 10 %: not "more than"
    glm = found.filter(pl.col("name") == "Darkhn/GLM-Air-4.5-106B-Animus-V12.1").row(0, named=True)
    assert (glm["value"], glm["expected"]) == ("53000000000", "106000000000")


def test_real_audit_covers_every_category_and_keeps_every_record(real_outputs: RunOutputs) -> None:
    for (table, category), records in real_outputs.tables.items():
        if table != "records":
            continue
        audit = real_outputs.tables[("audit", category)]
        assert audit.schema == AUDIT_SCHEMA
        assert set(audit["severity"]) <= set(SEVERITIES)
        assert set(audit["kind"]) <= set(KINDS)
        # findings never drop a record: the statistics still count every one
        assert real_outputs.statistics[(category, False)].total_models == records.height
    unmatched = real_outputs.tables[("unmatched", TEXT)]
    served = _kind(real_outputs.tables[("audit", TEXT)], "served_not_referenced")
    assert sorted(served["name"]) == sorted(unmatched["name"]) and served.height == 17
    # the real text file has both backend copies of every record, and they agree
    assert _kind(real_outputs.tables[("audit", TEXT)], "backend_copy_missing").is_empty()
    assert _kind(real_outputs.tables[("audit", TEXT)], "backend_copy_differs").is_empty()


def test_readme_explains_every_kind() -> None:
    text = README.read_text()
    for kind, spec in KINDS.items():
        assert re.search(rf"^\| `{kind}` \| {spec.severity}", text, re.MULTILINE), kind


# --- a hand-built case per kind: one that triggers it, one that must not --------------------------------------


def _findings(category: str, document: dict[str, Any] | bytes) -> pl.DataFrame:
    raw = document if isinstance(document, bytes) else json.dumps(document).encode()
    loaded = category_records(ReferenceFile(category, f"{category}.json", raw))
    return run_outputs({category: loaded}, None, AnalysisRules(), computed_at=0).tables[("audit", category)]


def _text(name: str, parameters: int | None = None, **fields: Any) -> dict[str, Any]:
    record: dict[str, Any] = {"name": name, "description": "a model", **fields}
    if parameters is not None:
        record["parameters"] = parameters
    return record


def _with_copies(*records: dict[str, Any]) -> dict[str, Any]:
    """Each record with its two identical backend copies, as the real file holds them."""
    document = {}
    for record in records:
        name = record["name"]
        document[name] = record
        document[f"aphrodite/{name}"] = {**record, "name": f"aphrodite/{name}"}
        short = name.split("/", 1)[-1]
        document[f"koboldcpp/{short}"] = {**record, "name": f"koboldcpp/{short}"}
    return document


def _image(name: str, url: str | None = "https://huggingface.co/a/b.safetensors", **fields: Any) -> dict[str, Any]:
    record: dict[str, Any] = {"name": name, "baseline": "SDXL", "nsfw": False, "description": "a model", **fields}
    if url is not None:
        record["config"] = {"download": [{"file_url": url}]}
    return record


def _names(findings: pl.DataFrame, kind: str) -> set[str]:
    return set(_kind(findings, kind)["name"])


def test_size_mismatch_only_above_10_percent_on_dense_names() -> None:
    found = _findings(
        TEXT,
        _with_copies(
            _text("org/Off-8B", 7_000_000_000),  # 12.5 % off
            _text("org/Close-8B", 8_500_000_000),  # 6.25 %
            _text("org/Edge-30B", 33_000_000_000),  # exactly 10 %
            _text("org/Mix-8x7B", 28_000_000_000),  # MoE: never a size mismatch
        ),
    )
    assert _names(found, "size_mismatch") == {"org/Off-8B"}
    row = _kind(found, "size_mismatch").row(0, named=True)
    assert (row["severity"], row["value"], row["expected"]) == ("warning", "7000000000", "8000000000")


def test_moe_size_convention_info_at_half_warning_otherwise() -> None:
    found = _findings(
        TEXT,
        _with_copies(
            _text("org/Mix-8x7B", 28_000_000_000),
            _text("org/Qwen-30B-A3B", 15_000_000_000),
            _text("org/Whole-8x7B", 56_000_000_000),
            _text("org/Dense-7B", 7_000_000_000),
        ),
    )
    moe = {row["name"]: row["severity"] for row in _kind(found, "moe_size_convention").iter_rows(named=True)}
    assert moe == {"org/Mix-8x7B": "info", "org/Qwen-30B-A3B": "info", "org/Whole-8x7B": "warning"}
    assert not _names(found, "size_mismatch")


def test_unsized_name() -> None:
    found = _findings(
        TEXT, _with_copies(_text("org/Mystery"), _text("org/Stored", 7_000_000_000), _text("org/Named-7B"))
    )
    assert _names(found, "unsized_name") == {"org/Mystery"}


def test_family_inconsistent_per_field() -> None:
    found = _findings(
        TEXT,
        _with_copies(
            _text("a/Fam-7B", 7_000_000_000, style="chat", nsfw=False),
            _text("b/Fam-7B-Instruct", 7_000_000_000, style="roleplay", nsfw=False),
            _text("a/Same-13B", 13_000_000_000, style="chat", instruct_format="ChatML"),
            _text("b/Same-13B-v2", 13_000_000_000, style="chat", instruct_format="ChatML"),
            _text("a/Lewd-3B", 3_000_000_000, nsfw=True),
            _text("b/Lewd-3B-Q4_K_M", 3_000_000_000, nsfw=False),
        ),
    )
    rows = _kind(found, "family_inconsistent")
    assert set(rows["name"]) == {"fam-7b", "lewd-3b"}
    fam = rows.filter(pl.col("name") == "fam-7b").row(0, named=True)
    assert fam["detail"].startswith("style differs") and "a/Fam-7B" in fam["detail"]
    assert rows.filter(pl.col("name") == "lewd-3b")["detail"].item().startswith("nsfw differs")


def test_backend_copies_missing_and_differing() -> None:
    document = _with_copies(_text("org/Full-7B", 7_000_000_000, style="chat"))
    document["aphrodite/org/Full-7B"] = {**document["aphrodite/org/Full-7B"], "parameters": 8_000_000_000}
    document["org/Lonely-7B"] = _text("org/Lonely-7B", 7_000_000_000)
    document["org/Half-7B"] = _text("org/Half-7B", 7_000_000_000)
    document["koboldcpp/Half-7B"] = {**document["org/Half-7B"], "name": "koboldcpp/Half-7B"}
    found = _findings(TEXT, document)
    missing = _kind(found, "backend_copy_missing")
    assert sorted(missing["expected"]) == ["aphrodite/org/Half-7B", "aphrodite/org/Lonely-7B", "koboldcpp/Lonely-7B"]
    differs = _kind(found, "backend_copy_differs")
    assert differs.select("name", "severity", "value", "expected").rows() == [
        ("org/Full-7B", "error", "8000000000", "7000000000")
    ]
    assert "aphrodite/org/Full-7B: parameters" in differs["detail"].item()


def test_orphan_backend_copy() -> None:
    document = _with_copies(_text("org/Real-7B", 7_000_000_000))
    document["aphrodite/org/Ghost-7B"] = _text("aphrodite/org/Ghost-7B", 7_000_000_000)
    assert _names(_findings(TEXT, document), "orphan_backend_copy") == {"aphrodite/org/Ghost-7B"}


def test_unknown_baseline() -> None:
    found = _findings(
        IMAGE, {"New": _image("New", baseline="stable diffusion 3"), "Old": _image("Old", baseline="SD1.5")}
    )
    assert _kind(found, "unknown_baseline").select("name", "value").rows() == [("New", "stable diffusion 3")]


def test_missing_description() -> None:
    found = _findings(IMAGE, {"A": _image("A", description=""), "B": _image("B", description=None), "C": _image("C")})
    assert _names(found, "missing_description") == {"A", "B"}


def test_missing_download_and_hosts() -> None:
    found = _findings(
        IMAGE,
        {
            "None": _image("None", url=None),
            "Hub": _image("Hub", url="https://huggingface.co/x/y.safetensors"),
            "Lfs": _image("Lfs", url="https://cdn-lfs.huggingface.co/x/y.safetensors"),
            "Civit": _image("Civit", url="https://civitai.com/api/download/models/1"),
            "Evil": _image("Evil", url="https://huggingface.co.evil.net/x.safetensors"),
            "Bad": _image("Bad", url="not a url"),
        },
    )
    assert _names(found, "missing_download") == {"None"}
    hosts = _kind(found, "non_preferred_host")
    assert dict(hosts.select("name", "value").rows()) == {"Civit": "civitai.com", "Evil": "huggingface.co.evil.net"}
    assert _kind(found, "invalid_download_url").select("name", "value").rows() == [("Bad", "not a url")]


def test_duplicate_download() -> None:
    shared = "https://huggingface.co/x/shared.safetensors"
    found = _findings(
        IMAGE,
        {"One": _image("One", url=shared), "Two": _image("Two", url=shared), "Own": _image("Own")},
    )
    rows = _kind(found, "duplicate_download")
    assert sorted(rows.select("name", "detail", "value").rows()) == [
        ("One", "shared by 2 models: One, Two", shared),
        ("Two", "shared by 2 models: One, Two", shared),
    ]
    many = _findings(IMAGE, {f"M{i}": _image(f"M{i}", url=shared) for i in range(8)})
    assert _kind(many, "duplicate_download")["detail"].unique().to_list() == [
        "shared by 8 models: M0, M1, M2, M3, M4 and 3 more"
    ]


def test_duplicate_and_case_duplicate_names() -> None:
    raw = (
        b'{"Model": {"name": "Model", "baseline": "SDXL", "nsfw": false},'
        b' "model": {"name": "model", "baseline": "SDXL", "nsfw": false},'
        b' "Twice": {"name": "Twice", "baseline": "SDXL", "nsfw": false},'
        b' "Twice": {"name": "Twice", "baseline": "SDXL", "nsfw": true},'
        b' "Other": {"name": "Other", "baseline": "SDXL", "nsfw": false}}'
    )
    found = _findings(IMAGE, raw)
    assert _kind(found, "case_duplicate").select("name", "expected").rows() == [("model", "Model")]
    assert _names(found, "duplicate_name") == {"Twice"}


def test_invalid_record() -> None:
    found = _findings(IMAGE, {"Bad": _image("Bad", nsfw="yes"), "Good": _image("Good")})
    rows = _kind(found, "invalid_record")
    assert rows.select("name", "severity").rows() == [("Bad", "error")]
    assert "nsfw" in rows["detail"].item()


def test_served_not_referenced() -> None:
    records = category_records(ReferenceFile(IMAGE, "stable_diffusion.json", json.dumps({"A": _image("A")}).encode()))
    unmatched = pl.DataFrame(
        {"name": ["Custom"], "type": ["image"], "workers": [2], "usage_day": [1], "usage_month": [40]},
    )
    found = reference_audit(IMAGE, records.records.lazy(), problems=records.problems, unmatched=unmatched)
    assert _kind(found, "served_not_referenced").select("name", "value").rows() == [("Custom", "40")]
    none = reference_audit(IMAGE, records.records.lazy(), problems=records.problems, unmatched=unmatched.clear())
    assert _kind(none, "served_not_referenced").is_empty()


def test_findings_are_sorted_most_urgent_first() -> None:
    found = _findings(IMAGE, {"Bad": _image("Bad", nsfw="yes"), "A": _image("A", description="")})
    assert found["severity"].to_list() == ["error", "warning"]


# --- the CLI, the run summary and the Redis key ---------------------------------------------------------------


def _hostile_reference(folder: Path) -> Path:
    """The sample reference with one image model whose name holds an escape sequence and an unknown baseline."""
    sample = Path(load_settings().model_reference_source)
    folder.mkdir()
    for path in sample.iterdir():
        (folder / path.name).write_bytes(path.read_bytes())
    images = json.loads((folder / "stable_diffusion.json").read_text())
    images["Evil\x1b[31mName"] = _image("Evil\x1b[31mName", baseline="stable diffusion 3")
    (folder / "stable_diffusion.json").write_text(json.dumps(images))
    return folder


def test_audit_cli_filters_and_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    reference = _hostile_reference(tmp_path / "reference")
    assert main(["audit"]) == 1  # nothing committed yet
    assert "run `horde-analytics run` first" in capsys.readouterr().err
    assert main(["run", "--reference", str(reference)]) == 0
    summary = capsys.readouterr().out
    assert re.search(r"^audit image_generation +error \d+, warning [1-9]\d*, info \d+$", summary, re.MULTILINE)

    assert main(["audit", "--category", IMAGE, "--kind", "unknown_baseline"]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "Evil\\x1b[31mName" in out
    lines = out.strip().splitlines()
    assert all(" unknown_baseline " in line for line in lines[:-1])
    assert lines[-1] == f"{len(lines) - 1} findings: 0 error, {len(lines) - 1} warning, 0 info"

    assert main(["audit", "--json", "--severity", "warning"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert rows and {row["severity"] for row in rows} == {"warning"}
    assert {row["category"] for row in rows} > {IMAGE}  # every category unless --category
    assert set(rows[0]) == {"run_id", *AUDIT_SCHEMA.names()}
    kinds = [row["kind"] for row in rows]
    assert kinds == sorted(kinds)  # the audit's order (one severity here): by kind, then the reference's order
    evil = [row for row in rows if row["name"] == "Evil\x1b[31mName"]
    assert [(row["kind"], row["value"]) for row in evil] == [("unknown_baseline", "stable diffusion 3")]

    assert main(["audit", "--json", "--category", TEXT, "--kind", "unknown_baseline"]) == 0
    assert capsys.readouterr().out == ""
    assert main(["audit", "--severity", "fatal"]) == 2
    assert main(["audit", "--kind", "no_such_kind"]) == 2


def test_the_audit_cli_escapes_control_and_bidi_characters_with_the_one_terminal_rule() -> None:
    finding = {"severity": "warning", "category": IMAGE, "kind": "unknown_baseline", "name": "a\x1b[2Jb\u202ec"}
    shown = format_findings(pl.DataFrame([{**finding, "detail": "x\nd"}, {**finding, "name": "Ünïcode name"}]))
    lines = shown.splitlines()
    assert lines[0].endswith(terminal_safe("a\x1b[2Jb\u202ec") + ": " + terminal_safe("x\nd"))
    assert lines[0].endswith("a\\x1b[2Jb\\u202ec: x\\x0ad") and "\x1b" not in shown
    assert lines[1].endswith("Ünïcode name: ")  # no detail: nothing after the colon


def test_a_run_publishes_the_audit_key_in_its_transaction(redis_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_URL", redis_url)
    settings = load_settings()
    from pipeline.sinks.redis_publisher import RedisPublisher

    report = run_once(settings, publisher=RedisPublisher.from_settings(settings))
    client = redis.Redis.from_url(redis_url)
    key = keys.audit_key(settings.redis_key_prefix, IMAGE)
    assert key == f"{settings.redis_key_prefix}:analytics:audit:{IMAGE}"
    assert key in report.published_keys
    document = json.loads(client.get(key))  # type: ignore[arg-type]
    findings = report.outputs.tables[("audit", IMAGE)]
    assert document["run_id"] == report.run_id and document["category"] == IMAGE
    assert len(document["findings"]) == findings.height
    assert sum(document["counts"].values()) == findings.height
    assert 0 < client.ttl(key) <= settings.statistics_cache_ttl
    for category in report.outputs.statistics:
        assert client.exists(keys.audit_key(settings.redis_key_prefix, category[0]))


def test_audit_bench_runs_at_1x(shared_data: Path, tmp_path: Path) -> None:
    bench = Path(__file__).resolve().parent.parent / "bench" / "audit.py"
    command = [sys.executable, str(bench), "--scale", "1", "--repeat", "1", "--data", str(shared_data)]
    done = subprocess.run([*command, "--workdir", str(tmp_path)], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert re.search(r"^added to compute +\d+\.\d %$", done.stdout, re.MULTILINE), done.stdout


def test_the_audit_is_a_pure_step() -> None:
    code = "import sys, pipeline.steps.audit; print(sorted(m for m in ('httpx', 'redis') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
