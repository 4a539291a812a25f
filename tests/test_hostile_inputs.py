"""Hostile JSON and text: bad input named with its file (and record), never an unhandled exception (SPEC §2.2)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from jobs.__main__ import main
from pipeline.shell.reference_records import category_records, load_records
from pipeline.sources.horde import HordeInputError, load_horde
from pipeline.sources.horde_tables import status_frame, usage_frame, workers_frame
from pipeline.sources.records import ReferenceFile, ReferenceInputError
from tests.conftest import SAMPLE_DATA

DEEP = 100_000


def _image(name: str, **more: Any) -> dict[str, Any]:
    return {"name": name, "baseline": "stable_diffusion_xl", "nsfw": False} | more


def _document(*entries: str) -> bytes:
    good = [f'"good{i}": {json.dumps(_image(f"good{i}"))}' for i in range(4)]
    return ("{" + ", ".join([*good, *entries]) + "}").encode()


def _reasons(loaded: Any) -> dict[str, str]:
    return dict(loaded.problems.filter(pl.col("severity") == "error").select("name", "reason").iter_rows())


def _problems(caplog: pytest.LogCaptureFixture) -> list[tuple[str, str, str]]:
    return [(r.file, r.entry, r.reason) for r in caplog.records if r.getMessage() == "input problem"]  # type: ignore[attr-defined]


# --- reference records ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("entry", "name", "reason"),
    [
        ('"deep": {"name": "deep", "requirements": ' + "[" * DEEP + "]" * DEEP + "}", "deep", "nested deeper"),
        ('"deep": ' + "[" * DEEP + "]" * DEEP, "deep", "nested deeper than 64 levels"),
        ('"bad\\ud800": ' + json.dumps(_image("x")), "bad\\ud800", "name holds text that is not valid UTF-8"),
        ('"bad": ' + json.dumps(_image("bad", description="a\\udc00b")).replace("\\\\", "\\"), "bad", "not valid"),
        ('"lone": {"name": "lone", "baseline": "x", "nsfw": false, "tags": ["\\udfff"]}', "lone", "lone surrogate"),
    ],
    ids=["100k levels in a field", "100k levels as the record", "lone surrogate name", "in a field", "in a tag"],
)
def test_a_hostile_record_is_reported_by_name_and_the_rest_load(entry: str, name: str, reason: str) -> None:
    loaded = category_records(ReferenceFile("image_generation", "stable_diffusion.json", _document(entry)))
    assert loaded.records["name"].to_list() == [f"good{i}" for i in range(4)]
    assert reason in _reasons(loaded)[name]


def test_nesting_past_the_limit_is_bad_on_the_checked_path() -> None:
    deep = "[" * 65 + "]" * 65
    entries = ['"deep": {"name": "deep", "baseline": "x", "nsfw": false, "showcases": ' + deep + "}", '"bad": 7']
    loaded = category_records(ReferenceFile("image_generation", "f.json", _document(*entries)))
    assert _reasons(loaded)["deep"] == "nested deeper than 64 levels"
    shallow = "[" * 60 + "]" * 60
    entries[0] = '"ok": {"name": "ok", "baseline": "x", "nsfw": false, "showcases": [' + shallow + "]}"
    assert (
        "ok"
        in category_records(ReferenceFile("image_generation", "f.json", _document(*entries))).records["name"].to_list()
    )


def test_bytes_that_are_not_utf8_make_only_their_record_bad() -> None:
    raw = _document('"latin": {"name": "latin", "baseline": "x", "nsfw": false, "description": "caf@"}')
    loaded = category_records(
        ReferenceFile("image_generation", "stable_diffusion.json", raw.replace(b"caf@", b"caf\xe9"))
    )
    assert loaded.records.height == 4
    assert "not valid UTF-8" in _reasons(loaded)["latin"]
    named = category_records(
        ReferenceFile("image_generation", "f", _document('"caf@": {"nsfw": true}').replace(b"caf@", b"caf\xe9"))
    )
    assert "caf\\udce9" in _reasons(named)


def test_nan_and_infinity_are_malformed_json_with_a_position() -> None:
    raw = _document('"n": {"name": "n", "baseline": "x", "nsfw": false, "version": NaN}')
    with pytest.raises(ReferenceInputError, match=r"stable_diffusion.json: malformed JSON at line 1 .*NaN is not JSON"):
        category_records(ReferenceFile("image_generation", "stable_diffusion.json", raw))


def test_a_run_with_hostile_reference_files_names_them_and_keeps_the_rest(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    reference = Path(shutil.copytree(SAMPLE_DATA / "model_reference", tmp_path / "reference"))
    path = reference / "stable_diffusion.json"
    document = json.loads(path.read_text())
    text = json.dumps(document)[:-1] + ', "evil\\ud800": {"nsfw": true}, "deep": ' + "[" * DEEP + "]" * DEEP + "}"
    path.write_text(text)
    assert main(["run", "--reference", str(reference)]) == 0
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    loaded = load_records(str(reference))["image_generation"]
    assert loaded.records.height == len(document)
    assert set(_reasons(loaded)) == {"evil\\ud800", "deep"}


def test_a_reference_that_is_nested_too_deep_at_the_top_fails_naming_the_file() -> None:
    with pytest.raises(ReferenceInputError, match=r"f.json: expected a JSON object \{name: record\}"):
        category_records(ReferenceFile("image_generation", "f.json", b"[" * DEEP + b"]" * DEEP))


# --- Horde data -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("read", [status_frame, workers_frame, usage_frame])
def test_horde_payloads_nested_100k_levels_fail_naming_the_file(read: Any) -> None:
    for raw in (b"[" * DEEP + b"]" * DEEP, b'{"day": ' + b'{"a": ' * DEEP + b"1" + b"}" * DEEP + b"}"):
        with pytest.raises(HordeInputError, match=r"workers_text\.json: malformed JSON \(nested deeper than 64"):
            read("workers_text.json", raw)


def test_a_lone_surrogate_in_a_horde_name_makes_that_row_bad(caplog: pytest.LogCaptureFixture) -> None:
    rows = [{"name": f"m{i}", "count": 1} for i in range(3)] + [{"name": "evil\ud800", "count": 9}]
    frame = status_frame("status_image.json", json.dumps(rows).encode())
    assert frame["name"].to_list() == ["m0", "m1", "m2"]
    ((file, name, reason),) = _problems(caplog)
    assert (file, name) == ("status_image.json", "evil\\ud800") and "not valid UTF-8" in reason
    usage = b'{"day": {"a": 1, "b": 2, "x\\udc00": 5}, "month": {}, "total": {}}'
    assert usage_frame("stats_image.json", usage)["name"].to_list() == ["a", "b"]


def test_bytes_that_are_not_utf8_in_a_worker_make_that_worker_bad(caplog: pytest.LogCaptureFixture) -> None:
    workers = [{"id": f"w{i}", "online": True, "maintenance_mode": False, "models": ["m"]} for i in range(3)]
    workers.append({"id": "w@", "online": True, "maintenance_mode": False, "models": ["m"]})
    raw = json.dumps(workers).encode().replace(b"w@", b"w\xe9")
    assert workers_frame("workers_text.json", raw)["worker_id"].to_list() == ["w0", "w1", "w2"]
    ((file, name, reason),) = _problems(caplog)
    assert (file, name) == ("workers_text.json", "w\\udce9") and "not valid UTF-8" in reason


def test_a_run_against_a_hostile_horde_file_fails_naming_it_without_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    horde = Path(shutil.copytree(SAMPLE_DATA / "horde", tmp_path / "horde"))
    (horde / "status_text.json").write_bytes(b"[" * DEEP + b"]" * DEEP)
    assert main(["run", "--horde", str(horde)]) == 1
    err = capsys.readouterr().err
    assert f"{horde / 'status_text.json'}: malformed JSON (nested deeper than 64 levels)" in err
    assert "Traceback" not in err
    assert load_horde(str(SAMPLE_DATA / "horde"))[0]["text"].status.height > 0


# --- parse on input that is not UTF-8 -------------------------------------------------------------------


def _parse(stdin: bytes, *names: bytes) -> subprocess.CompletedProcess[bytes]:
    command: list[str | bytes] = [sys.executable, "-m", "jobs", "parse", *names]
    return subprocess.run(command, input=stdin, capture_output=True, check=False)


def test_parse_reads_latin1_input_reports_the_line_and_parses_every_line() -> None:
    done = _parse(b"Llama-3-8B\ncaf\xe9-7B\nMistral-7B-Instruct\n")
    assert done.returncode == 0
    lines = [json.loads(line) for line in done.stdout.decode().splitlines()]
    assert [line["size_label"] for line in lines] == ["8B", "7B", "7B"]  # one output line per input line
    assert lines[2]["variants"] == ["Instruct"]
    assert b"line 2: not UTF-8 (byte 0xe9" in done.stderr and b"Traceback" not in done.stderr


def test_parse_takes_undecodable_arguments() -> None:
    done = _parse(b"", b"Qwen\xff-14B", b"Llama-3-8B")
    assert done.returncode == 0 and b"Traceback" not in done.stderr
    assert [json.loads(line)["size_b"] for line in done.stdout.decode().splitlines()] == [14.0, 8.0]
    assert b"argument 1: not UTF-8" in done.stderr


def test_records_after_a_record_too_deep_to_decode_still_load() -> None:
    deep_list = "[" * DEEP + "]" * DEEP
    deep_object = '{"a": ' * DEEP + "1" + "}" * DEEP
    entries = [
        '"deep": {"text": "]]\\"[{", "r": ' + deep_list + "}",  # brackets and an escaped quote in a string first
        f'"after": {json.dumps(_image("after"))}',
        f'"deep2": {deep_object}',
        f'"last": {json.dumps(_image("last"))}',
    ]
    loaded = category_records(ReferenceFile("image_generation", "f.json", _document(*entries)))
    assert loaded.records["name"].to_list() == [*(f"good{i}" for i in range(4)), "after", "last"]
    assert _reasons(loaded) == {"deep": "nested deeper than 64 levels", "deep2": "nested deeper than 64 levels"}
