from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pytest_httpserver import HTTPServer

from jobs.__main__ import main
from pipeline.contracts.schemas import LoadedCategory
from pipeline.shell.reference_records import category_records, load_records
from pipeline.sources.http import FetchError, HttpFetcher
from pipeline.sources.record_columns import Decoding
from pipeline.sources.records import ReferenceFile, ReferenceInputError


def _image(name: str, **fields: object) -> dict[str, object]:
    record: dict[str, object] = {"name": name, "baseline": "stable diffusion 1", "nsfw": False}
    record.update(fields)
    return record


def _frame(category: str, document: dict[str, Any], *, max_bad_record_fraction: float = 0.5) -> LoadedCategory:
    raw = json.dumps(document).encode()
    return category_records(
        ReferenceFile(category, f"{category}.json", raw), max_bad_record_fraction=max_bad_record_fraction
    )


# --- real data -------------------------------------------------------------------------------------------


def test_real_image_file_totals_and_normalized_baselines(real_reference: Path) -> None:
    image = load_records(str(real_reference))["image_generation"]
    assert image.records.height == 161
    assert image.problems.filter(pl.col("severity") == "error").height == 0
    counts = dict(image.records.group_by("baseline").len().iter_rows())
    # SOURCE.md: stable diffusion 1: 106, stable_diffusion_xl: 49, stable diffusion 2: 4, stable_cascade 1, flux_1 1.
    assert counts == {
        "stable_diffusion_1": 106,
        "stable_diffusion_xl": 49,
        "stable_diffusion_2_768": 4,
        "stable_cascade": 1,
        "flux_1": 1,
    }


def test_real_download_hosts_match_an_independent_count(real_reference: Path) -> None:
    raw = json.loads((real_reference / "stable_diffusion.json").read_text())
    expected = Counter(
        urlsplit(download["file_url"]).hostname
        for record in raw.values()
        for download in record.get("config", {}).get("download", [])
        if download.get("file_url")
    )
    records = load_records(str(real_reference))["image_generation"].records
    urls = records.select(pl.col("download_urls").list.explode()).drop_nulls().to_series().to_list()
    assert Counter(urlsplit(url).hostname for url in urls) == expected
    assert sum(expected.values()) == len(urls) > 161


def test_real_text_file_folds_2157_entries_into_719_models(real_reference: Path) -> None:
    text = load_records(str(real_reference))["text_generation"]
    assert text.entries == 2157
    assert text.records.height == 719
    assert text.records["aliases"].list.len().unique().to_list() == [2]
    first = text.records.filter(pl.col("name") == "acrastt/Marx-3B-V3").row(0, named=True)
    assert sorted(first["aliases"]) == ["aphrodite/acrastt/Marx-3B-V3", "koboldcpp/Marx-3B-V3"]
    assert first["parameters"] == 3_000_000_000
    assert text.problems.height == 0


def test_every_small_category_present_is_loaded(real_reference: Path) -> None:
    loaded = load_records(str(real_reference))
    assert set(loaded) == {
        "image_generation",
        "text_generation",
        "controlnet",
        "esrgan",
        "gfpgan",
        "codeformer",
        "clip",
        "blip",
        "safety_checker",
        "miscellaneous",
    }
    assert loaded["controlnet"].records.height == 18


# --- bad input -----------------------------------------------------------------------------------------


def test_malformed_json_names_file_and_position() -> None:
    with pytest.raises(ReferenceInputError, match=r"stable_diffusion\.json: malformed JSON at line 2 column"):
        category_records(
            ReferenceFile("image_generation", "stable_diffusion.json", b'{"a": {"name": "a",\n "nsfw": tru}}')
        )


def test_malformed_json_fails_the_run_with_exit_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "ref"
    folder.mkdir()
    (folder / "stable_diffusion.json").write_text('{"x": ')
    (folder / "text_generation.json").write_text("{}")
    assert main(["run", "--reference", str(folder)]) == 1
    err = capsys.readouterr().err
    assert "stable_diffusion.json" in err and "line 1 column 7" in err
    assert not (tmp_path / "snapshots" / "_runs").exists() or not list((tmp_path / "snapshots" / "_runs").iterdir())


def test_missing_required_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ReferenceInputError, match=r"stable_diffusion\.json: required file is missing"):
        load_records(str(tmp_path))


def test_bad_records_are_reported_by_name_and_skipped() -> None:
    loaded = _frame(
        "image_generation",
        {
            "good": _image("good"),
            "no-baseline": {"name": "no-baseline", "nsfw": True},
            "wrong-nsfw": _image("wrong-nsfw", nsfw="yes"),
            "not-an-object": [1, 2],
            "bad-tags": _image("bad-tags", tags=["ok", 3]),
            "bad-download": _image("bad-download", config={"download": [{"file_url": 5}]}),
            "good-2": _image("good-2", tags=["x"]),
            "good-3": _image("good-3"),
            "good-4": _image("good-4"),
        },
        max_bad_record_fraction=0.9,
    )
    assert loaded.records["name"].to_list() == ["good", "good-2", "good-3", "good-4"]
    reasons = dict(loaded.problems.select("name", "reason").iter_rows())
    assert reasons["no-baseline"] == "required field 'baseline' is missing"
    assert reasons["wrong-nsfw"] == "field 'nsfw' must be bool, got str"
    assert reasons["not-an-object"] == "record is not a JSON object"
    assert reasons["bad-tags"] == "field 'tags' must be a list of strings"
    assert "config.download" in reasons["bad-download"]
    assert set(loaded.problems["severity"]) == {"error"}


def test_too_many_bad_records_fail_the_category() -> None:
    document = {f"bad-{i}": {"name": f"bad-{i}"} for i in range(3)} | {"good": _image("good")}
    with pytest.raises(ReferenceInputError, match=r"3 of 4 records are bad, more than MAX_BAD_RECORD_FRACTION=0\.5"):
        _frame("image_generation", document)


def test_too_many_bad_records_publish_nothing(tmp_path: Path) -> None:
    folder = tmp_path / "ref"
    folder.mkdir()
    (folder / "stable_diffusion.json").write_text(json.dumps({f"m{i}": {"name": f"m{i}"} for i in range(4)}))
    (folder / "text_generation.json").write_text("{}")
    assert main(["run", "--reference", str(folder)]) == 1
    assert not list((tmp_path / "snapshots").glob("**/*.parquet"))


def test_duplicate_and_case_only_duplicate_names_first_wins() -> None:
    raw = (
        b'{"Alpha": {"baseline": "SDXL", "nsfw": false, "description": "first"},'
        b' "Alpha": {"baseline": "SDXL", "nsfw": true, "description": "second"},'
        b' "ALPHA": {"baseline": "SDXL", "nsfw": true, "description": "third"},'
        b' "Beta": {"baseline": "SDXL", "nsfw": false}}'
    )
    loaded = category_records(ReferenceFile("image_generation", "stable_diffusion.json", raw))
    assert loaded.records["name"].to_list() == ["Alpha", "Beta"]
    assert loaded.records.row(0, named=True)["description"] == "first"
    reasons = loaded.problems.select("name", "reason").rows()
    assert ("Alpha", "duplicate name; the first wins") in reasons
    assert ("ALPHA", "case-only duplicate name; the first wins") in reasons


def test_unknown_baseline_is_kept_and_warned() -> None:
    loaded = _frame(
        "image_generation",
        {"a": _image("a", baseline="SD 9000"), "b": _image("b", baseline="SDXL"), "c": _image("c", baseline="SD1.5")},
    )
    assert loaded.records["baseline"].to_list() == ["SD 9000", "stable_diffusion_xl", "stable_diffusion_1"]
    warning = loaded.problems.row(0, named=True)
    assert (warning["name"], warning["severity"]) == ("a", "warning")
    assert "SD 9000" in warning["reason"]


def test_text_parameters_count_alias_and_zero() -> None:
    loaded = _frame(
        "text_generation",
        {
            "org/A-7B": {"name": "org/A-7B", "parameters_count": 7_000_000_000},
            "org/B-13B": {"name": "org/B-13B", "parameters": 0},
            "koboldcpp/A-7B": {"name": "koboldcpp/A-7B", "parameters": 7_000_000_000},
            "aphrodite/org/B-13B": {"name": "aphrodite/org/B-13B"},
            "koboldcpp/Orphan-3B": {"name": "koboldcpp/Orphan-3B"},
        },
    )
    rows = {row["name"]: row for row in loaded.records.iter_rows(named=True)}
    assert set(rows) == {"org/A-7B", "org/B-13B", "koboldcpp/Orphan-3B"}
    assert rows["org/A-7B"]["parameters"] == 7_000_000_000
    assert rows["org/B-13B"]["parameters"] is None  # 0 means unknown: statistics take the name's size
    assert rows["org/A-7B"]["aliases"] == ["koboldcpp/A-7B"]
    assert rows["org/B-13B"]["aliases"] == ["aphrodite/org/B-13B"]
    assert "without a canonical record" in loaded.problems.row(0, named=True)["reason"]


def test_hostile_strings_do_not_break_loading() -> None:
    huge = "x" * 200_000
    loaded = _frame(
        "image_generation",
        {huge: _image(huge, description="\u0000\ud7ff" * 10), "é🙂": _image("é🙂", tags=["🙂"] * 3), "": _image("")},
    )
    assert loaded.records.height == 2
    assert dict(loaded.problems.select("name", "reason").iter_rows())[""] == "empty model name"


# --- URL source ------------------------------------------------------------------------------------------


def test_url_source_uses_etag_and_reuses_the_copy_on_304(httpserver: HTTPServer, tmp_path: Path) -> None:
    from werkzeug import Request, Response

    bodies = {
        "/ref/stable_diffusion.json": json.dumps({"a": _image("a")}).encode(),
        "/ref/text_generation.json": json.dumps(
            {"org/M-8B": {"name": "org/M-8B", "parameters": 8_000_000_000}}
        ).encode(),
    }
    seen: list[tuple[str, str | None, int]] = []

    def conditional(request: Request) -> Response:
        if request.path not in bodies:
            response = Response("", status=404)
        elif request.headers.get("If-None-Match") == '"v1"':
            response = Response("", status=304)
        else:
            response = Response(bodies[request.path], headers={"ETag": '"v1"'})
        seen.append((request.path, request.headers.get("If-None-Match"), response.status_code))
        return response

    httpserver.expect_request(re.compile("/ref/.*")).respond_with_handler(conditional)
    base = httpserver.url_for("/ref")
    with HttpFetcher(cache_dir=tmp_path / "cache", attempts=1) as fetcher:
        first = load_records(base, fetcher=fetcher)
    with HttpFetcher(cache_dir=tmp_path / "cache", attempts=1) as fetcher:
        second = load_records(base, fetcher=fetcher)
    assert set(first) == set(second) == {"image_generation", "text_generation"}
    assert first["image_generation"].records.equals(second["image_generation"].records)
    assert second["text_generation"].records["name"].to_list() == ["org/M-8B"]
    image_calls = [(etag, status) for path, etag, status in seen if path == "/ref/stable_diffusion.json"]
    assert image_calls == [(None, 200), ('"v1"', 304)]


def test_a_required_file_missing_at_a_url_fails_with_its_404(httpserver: HTTPServer) -> None:
    httpserver.expect_request(re.compile("/ref/.*")).respond_with_data("", status=404)
    with HttpFetcher(attempts=1) as fetcher, pytest.raises(FetchError, match=r"stable_diffusion\.json: HTTP 404"):
        load_records(httpserver.url_for("/ref"), fetcher=fetcher)


def test_folder_and_url_give_the_same_frames(httpserver: HTTPServer, tmp_path: Path) -> None:
    from tests.conftest import SAMPLE_DATA

    folder = SAMPLE_DATA / "model_reference"
    for path in folder.glob("*.json"):
        httpserver.expect_request(f"/ref/{path.name}").respond_with_data(path.read_bytes())
    for file in ("gfpgan", "codeformer", "clip", "blip", "safety_checker", "miscellaneous"):
        httpserver.expect_request(f"/ref/{file}.json").respond_with_data("", status=404)
    with HttpFetcher(attempts=1) as fetcher:
        by_url = load_records(httpserver.url_for("/ref"), fetcher=fetcher)
    by_folder = load_records(str(folder))
    assert set(by_url) == set(by_folder)
    for category in by_folder:
        assert by_url[category].records.equals(by_folder[category].records)


# --- the incremental decoder -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "document",
    [
        "{}",
        " \n{ } \n",
        '{"a": {"x": 1}}',
        '{"a": {"t": "}{\\"\\\\", "n": [1, {"b": null}]}, "b": [], "c": "s", "d": 1.5e3, "e": true}',
        '{"é🙂": {"k": "\\u00e9"}, "a\\"b": {}}',
        json.dumps({f"m{i}": {"tags": ["x", "}"], "i": i} for i in range(200)}, indent=2),
    ],
)
def test_incremental_decoder_agrees_with_json_loads(document: str) -> None:
    from pipeline.sources.json_entries import top_level_entries

    assert dict(top_level_entries(document, "f.json")) == json.loads(document)


@pytest.mark.parametrize(
    ("document", "where"),
    [
        ('{"a": 1,}', "line 1 column 9"),
        ('{"a" 1}', "line 1 column 6"),
        ('{"a": 1} x', "line 1 column 10"),
        ('{\n"a": {"b": }\n}', "line 2 column 12"),
        ('{"a": 1', "line 1 column 8"),
        ("", "line 1 column 1"),
    ],
)
def test_incremental_decoder_reports_positions(document: str, where: str) -> None:
    from pipeline.sources.json_entries import top_level_entries

    with pytest.raises(ReferenceInputError, match=f"f.json: malformed JSON at {where}"):
        list(top_level_entries(document, "f.json"))
    with pytest.raises(json.JSONDecodeError) as reference:
        json.loads(document)
    assert f"line {reference.value.lineno} column {reference.value.colno}" == where


def test_top_level_must_be_an_object() -> None:
    with pytest.raises(ReferenceInputError, match=r"expected a JSON object .* got list"):
        category_records(ReferenceFile("image_generation", "x.json", b"[1, 2]"))


@pytest.mark.parametrize("typed", [True, False])
def test_chunks_keep_order_and_positions(typed: bool) -> None:
    document = {f"m{i}": _image(f"m{i}", tags=[f"t{i}"]) for i in range(10)} | {"bad": {"name": "bad"}}
    raw = json.dumps(document).encode()
    decoding = Decoding(chunk_entries=3, typed=typed)  # 11 entries: four chunks, the last one short
    loaded = category_records(ReferenceFile("image_generation", "f.json", raw), decoding=decoding)
    assert loaded.records["name"].to_list() == [f"m{i}" for i in range(10)]
    assert loaded.records["tags"].to_list() == [[f"t{i}"] for i in range(10)]
    assert loaded.problems["name"].to_list() == ["bad"]


# --- the typed path and the checked path ----------------------------------------------------------------


def _both_paths(load: Callable[[Decoding], dict[str, Any]]) -> tuple[Any, Any]:
    """``load(decoding)`` through the typed decoder, then again on the checked path only."""
    return load(Decoding()), load(Decoding(typed=False))


def _assert_same_categories(typed: dict[str, Any], checked: dict[str, Any]) -> None:
    assert typed.keys() == checked.keys()
    for category in typed:
        assert typed[category].records.equals(checked[category].records), category
        assert typed[category].problems.equals(checked[category].problems), category
        assert (typed[category].entries, typed[category].input_hash) == (
            checked[category].entries,
            checked[category].input_hash,
        )


def test_typed_and_checked_paths_agree_on_real_data(real_reference: Path) -> None:
    from pipeline.sources.record_fields import typed_entries

    for path in real_reference.glob("*.json"):  # the real files are clean: each takes the typed path
        assert typed_entries(path.read_bytes()) is not None, path.name
    typed, checked = _both_paths(lambda decoding: load_records(str(real_reference), decoding=decoding))
    _assert_same_categories(typed, checked)


def test_typed_and_checked_paths_agree_on_the_sample() -> None:
    sample = Path(__file__).parent.parent / "sample_data" / "model_reference"
    typed, checked = _both_paths(lambda decoding: load_records(str(sample), decoding=decoding))
    _assert_same_categories(typed, checked)


_TEXT = st.text(alphabet=st.characters(codec="utf-8"), max_size=12)
_OPTIONAL = st.none() | st.just("absent")
_VALID_RECORD = st.fixed_dictionaries(
    {},
    optional={
        "baseline": _TEXT,
        "nsfw": st.booleans(),
        "style": _TEXT,
        "tags": st.lists(_TEXT, max_size=3),
        "version": _TEXT | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False, allow_infinity=False),
        "inpainting": st.booleans() | st.none(),
        "trigger": st.lists(_TEXT, max_size=2),
        "requirements": st.dictionaries(_TEXT, st.integers() | _TEXT, max_size=3),
        "showcases": st.lists(_TEXT | st.integers(), max_size=3),
        "size_on_disk_bytes": st.integers(-(2**70), 2**70),
        "config": st.fixed_dictionaries(
            {},
            optional={
                "download": st.lists(
                    st.fixed_dictionaries(
                        {}, optional={"file_url": _TEXT, "size_bytes": st.integers(0, 2**40) | st.none()}
                    ),
                    max_size=3,
                ),
                "files": st.lists(st.dictionaries(_TEXT, _TEXT, max_size=2), max_size=2),
            },
        ),
        "parameters": st.integers(-5, 2**40) | st.none(),
        "parameters_count": st.integers(0, 2**40),
        "display_name": _TEXT | st.none(),
        "settings": st.dictionaries(
            _TEXT, st.floats(allow_nan=False, allow_infinity=False) | st.integers(), max_size=2
        ),
    },
)


@settings(max_examples=80, deadline=None)
@given(
    document=st.dictionaries(_TEXT, _VALID_RECORD, max_size=8),
    category=st.sampled_from(["image_generation", "text_generation", "controlnet"]),
)
def test_typed_and_checked_paths_agree_on_generated_records(document: dict[str, Any], category: str) -> None:
    from pipeline.sources.record_fields import typed_entries

    raw = json.dumps(document).encode()
    assert typed_entries(raw) is not None  # every generated record is well-typed: the typed path takes it
    typed, checked = _both_paths(
        lambda decoding: {
            category: category_records(
                ReferenceFile(category, "x.json", raw), max_bad_record_fraction=1.0, decoding=decoding
            )
        }
    )
    _assert_same_categories(typed, checked)


@pytest.mark.parametrize(
    "document",
    [
        b'{"a": {"nsfw": false}, "b": {}, "a": {"nsfw": true}}',  # a repeated name: the first must win
        b'{"a": {"nsfw": "no"}}',  # mistyped
        b'{"a": {"tags": ["x", 1]}}',
        b'{"a": {"config": {"download": [{"file_url": null}]}}}',
        b'{"a": {"parameters": 1.5}}',
        b'{"a": {"parameters": true}}',
        b'{"a": 5}',
        b'{"a": {"version": NaN}}',
        b'{"a": {}',
        b"[1]",
        b'\xef\xbb\xbf{"a": {}}',
    ],
)
def test_the_typed_path_refuses_what_the_checked_path_must_report(document: bytes) -> None:
    from pipeline.sources.record_fields import typed_entries

    assert typed_entries(document) is None


def test_a_repeated_name_keeps_the_first_record_and_is_reported() -> None:
    raw = b'{"a": {"baseline": "stable diffusion 1", "nsfw": false}, "a": {"baseline": "x", "nsfw": true}}'
    loaded = category_records(ReferenceFile("image_generation", "x.json", raw))
    assert loaded.records.select("name", "nsfw").rows() == [("a", False)]
    assert loaded.problems.select("name", "reason").rows() == [("a", "duplicate name; the first wins")]


def test_loading_pauses_the_cyclic_collector_and_restores_it() -> None:
    import gc

    from pipeline.sources.gc_pause import collector_paused

    states: list[bool] = []
    with collector_paused():
        states.append(gc.isenabled())
        with collector_paused():
            states.append(gc.isenabled())
        states.append(gc.isenabled())
    assert states == [False, False, False] and gc.isenabled()
    gc.disable()
    try:
        with collector_paused():
            pass
        assert not gc.isenabled()  # a caller that had it off keeps it off
    finally:
        gc.enable()


def test_input_hashes_are_the_sha256_of_the_bytes_read() -> None:
    import hashlib

    from pipeline.contracts.categories import CATEGORY_FILES
    from pipeline.sources.horde import load_horde
    from tests.conftest import SAMPLE_DATA

    def sha256(path: Path) -> str:
        return hashlib.sha256(path.read_bytes()).hexdigest()

    typed, checked = _both_paths(lambda decoding: load_records(str(SAMPLE_DATA / "model_reference"), decoding=decoding))
    for loaded in (typed, checked):
        for category, item in loaded.items():
            assert item.input_hash == sha256(SAMPLE_DATA / "model_reference" / CATEGORY_FILES[category]), category
    _, hashes = load_horde(str(SAMPLE_DATA / "horde"))
    assert hashes["horde:text:workers"] == sha256(SAMPLE_DATA / "horde" / "workers_text.json")
    assert hashes["horde:image:usage"] == sha256(SAMPLE_DATA / "horde" / "stats_image.json")


def test_a_decoding_error_wins_over_the_hash_beside_it() -> None:
    from pipeline.sources.input_hash import sha256_while

    def broken() -> None:
        raise ReferenceInputError("bad input")

    with pytest.raises(ReferenceInputError, match="bad input"):
        sha256_while(b"x" * 1_000_000, broken)
    assert sha256_while(b"abc", lambda: 1) == ("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", 1)


def test_a_file_is_decoded_with_the_hash_of_the_bytes_decoded(tmp_path: Path) -> None:
    import hashlib

    def sha256(raw: bytes) -> str:
        return hashlib.sha256(raw).hexdigest()

    first, second = (json.dumps({name: _image(name)}).encode() for name in ("A", "B"))
    held = ReferenceFile("image_generation", "stable_diffusion.json", first)  # bytes already read (a URL's body)
    assert held.sha256() == sha256(first)
    assert category_records(held).input_hash == sha256(first)
    # A file in a folder is hashed in pieces and read only when decoded: when it is replaced in between (after the
    # check for an unchanged file, SPEC §9), the run records the hash of what it decoded.
    path = tmp_path / "stable_diffusion.json"
    path.write_bytes(first)
    stored = ReferenceFile("image_generation", str(path), path)
    assert stored.sha256() == sha256(first)
    path.write_bytes(second)
    loaded = category_records(stored)
    assert loaded.input_hash == sha256(second)
    assert loaded.records["name"].to_list() == ["B"]
