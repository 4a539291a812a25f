"""Horde numbers and rows are validated, never trusted (SPEC §2.2): a bad row is reported with the file and the
name, then dropped, under MAX_BAD_RECORD_FRACTION; a payload of the wrong shape fails the run naming the file."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from jobs.__main__ import main
from pipeline.sources.horde import HordeInputError, load_horde
from pipeline.sources.horde_tables import status_frame, usage_frame, workers_frame
from tests.conftest import SAMPLE_DATA

BAD_NUMBERS = {
    "negative": -1,
    "fractional": 1.5,
    "a string": "5",
    "2^63-1": 2**63 - 1,
    "above 2^63": 2**64 + 5,
    "2^53": 2**53,
    "a boolean": True,
    "null": None,
}


def _status(name: Any, count: Any = 1) -> dict[str, Any]:
    return {"name": name, "count": count, "performance": 1.0, "queued": 0.0, "jobs": 0.0, "eta": 0, "type": "image"}


def _worker(worker_id: Any, **more: Any) -> dict[str, Any]:
    worker = {"id": worker_id, "name": "w", "online": True, "maintenance_mode": False, "trusted": True, "threads": 1}
    return worker | {"models": ["m1"]} | more


def _problems(caplog: pytest.LogCaptureFixture) -> list[tuple[str, str, str]]:
    return [(r.file, r.entry, r.reason) for r in caplog.records if r.getMessage() == "input problem"]  # type: ignore[attr-defined]


GOOD_STATUS = [_status(f"m{i}", i) for i in range(5)]


@pytest.mark.parametrize("value", BAD_NUMBERS.values(), ids=BAD_NUMBERS)
def test_a_bad_status_count_makes_that_row_bad(value: Any, caplog: pytest.LogCaptureFixture) -> None:
    frame = status_frame("status_image.json", json.dumps([*GOOD_STATUS, _status("bad", value)]).encode())
    assert frame["name"].to_list() == [f"m{i}" for i in range(5)]
    ((file, name, reason),) = _problems(caplog)
    assert (file, name) == ("status_image.json", "bad")
    assert "'count'" in reason


@pytest.mark.parametrize("name", [5, 1.5, True, ["m"]])
def test_a_name_that_is_not_a_string_is_a_bad_row(name: Any, caplog: pytest.LogCaptureFixture) -> None:
    frame = status_frame("status_text.json", json.dumps([*GOOD_STATUS, _status(name)]).encode())
    assert frame.height == 5
    ((file, shown, reason),) = _problems(caplog)
    assert file == "status_text.json" and shown.startswith("item 5") and "'name' must be a string" in reason


def test_a_repeated_status_name_keeps_the_first_and_is_reported(caplog: pytest.LogCaptureFixture) -> None:
    rows = [*GOOD_STATUS, _status("m1", 40)]
    frame = status_frame("status_image.json", json.dumps(rows).encode())
    assert dict(frame.select("name", "count").iter_rows())["m1"] == 1
    assert _problems(caplog) == [("status_image.json", "m1", "repeated name; the first is kept")]


def test_a_case_only_variant_is_no_repeat() -> None:  # SPEC §4 sums those
    frame = status_frame("status_image.json", json.dumps([*GOOD_STATUS, _status("M1", 3)]).encode())
    assert frame.height == 6


@pytest.mark.parametrize("value", BAD_NUMBERS.values(), ids=BAD_NUMBERS)
@pytest.mark.parametrize("period", ["day", "month", "total"])
def test_a_bad_usage_drops_that_name_in_every_period(value: Any, period: str, caplog: pytest.LogCaptureFixture) -> None:
    usage: dict[str, dict[str, Any]] = {p: {"a": 1, "b": 2, "c": 3} for p in ("day", "month", "total")}
    usage[period]["b"] = value
    frame = usage_frame("stats_text.json", json.dumps(usage).encode())
    assert sorted(frame["name"]) == ["a", "c"]
    assert frame["usage_month"].min() >= 0  # never negative, never wrapped
    ((file, name, reason),) = _problems(caplog)
    assert (file, name) == ("stats_text.json", "b") and f"'{period}' must be an integer in [0, 2^53)" in reason


def test_a_repeated_usage_name_keeps_the_first_and_is_reported(caplog: pytest.LogCaptureFixture) -> None:
    text = b'{"day": {"a": 1, "b": 2, "c": 3, "a": 500}, "month": {"a": 10, "b": 20, "c": 30}, "total": {}}'
    frame = usage_frame("stats_image.json", text)
    assert dict(frame.select("name", "usage_day").iter_rows()) == {"a": 1, "b": 2, "c": 3}
    assert _problems(caplog) == [("stats_image.json", "a", "repeated in 'day'; the first is kept")]


def test_a_clean_usage_payload_takes_the_typed_path(caplog: pytest.LogCaptureFixture) -> None:
    text = b'{"day": {"a": 1}, "month": {"a": 10, "b": 2}, "total": {"a": 100, "b": 3}}'
    assert usage_frame("stats_image.json", text).sort("name").rows() == [("a", 1, 10, 100), ("b", 0, 2, 3)]
    assert not _problems(caplog)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (b'{"day": {}, "total": {}}', "'month' is missing"),
        (b'{"day": {}, "month": {}}', "'total' is missing"),
        (b'{"month": {}, "total": {}}', "'day' is missing"),
        (b'{"day": {}, "month": [], "total": {}}', "'month' is a list"),
        (b'{"day": {}, "day": {}, "month": {}, "total": {}}', "a period appears twice"),
        (b"[]", "got list"),
    ],
)
def test_a_usage_payload_of_the_wrong_shape_fails_naming_the_file(text: bytes, message: str) -> None:
    with pytest.raises(HordeInputError, match=f"stats_image.json: expected .*{message}"):
        usage_frame("stats_image.json", text)


@pytest.mark.parametrize(
    ("kind", "text"),
    [("status", b'{"name": "x"}'), ("workers", b'{"id": "x"}'), ("workers", b'"workers"')],
)
def test_a_list_payload_that_is_no_list_fails_naming_the_file(kind: str, text: bytes) -> None:
    read = status_frame if kind == "status" else workers_frame
    with pytest.raises(HordeInputError, match=f"{kind}_text.json: expected a JSON list of objects"):
        read(f"{kind}_text.json", text)


GOOD_WORKERS = [_worker(f"w{i}") for i in range(5)]
BAD_WORKERS = {
    "no id": (_worker(None), "'id' is missing"),
    "blank id": (_worker("  "), "'id' must be a non-blank string"),
    "numeric id": (_worker(7), "'id' must be a non-blank string"),
    "online yes": (_worker("x", online="yes"), "'online' must be true or false"),
    "online 1": (_worker("x", online=1), "'online' must be true or false"),
    "no online": ({k: v for k, v in _worker("x").items() if k != "online"}, "'online' is missing"),
    "maintenance null": (_worker("x", maintenance_mode=None), "'maintenance_mode' is missing"),
    "maintenance string": (_worker("x", maintenance_mode="false"), "'maintenance_mode' must be true or false"),
    "negative threads": (_worker("x", threads=-2), "'threads' must be an integer"),
    "numeric model name": (_worker("x", models=["m1", 5]), "'models' must be a list of strings"),
    "models not a list": (_worker("x", models="m1"), "'models' must be a list of strings"),
    "repeated id": (_worker("w2", models=["other"]), "repeated worker_id; the first is kept"),
}


@pytest.mark.parametrize("case", BAD_WORKERS)
def test_a_bad_worker_is_reported_and_dropped(case: str, caplog: pytest.LogCaptureFixture) -> None:
    worker, reason = BAD_WORKERS[case]
    frame = workers_frame("workers_image.json", json.dumps([*GOOD_WORKERS, worker]).encode())
    assert frame.select("worker_id", "model").rows() == [(f"w{i}", "m1") for i in range(5)]
    ((file, _, found),) = _problems(caplog)
    assert file == "workers_image.json" and reason in found


def test_too_many_bad_rows_fail_the_payload_under_the_fraction_rule() -> None:
    rows = [_status("ok", 1), _status("bad1", -1), _status("bad2", "2")]
    with pytest.raises(HordeInputError, match=r"status_image.json: 2 of 3 rows are bad.*first: 'bad1'"):
        status_frame("status_image.json", json.dumps(rows).encode())
    assert status_frame("status_image.json", json.dumps(rows).encode(), max_bad_fraction=0.7).height == 1


# --- the cases the issue found, through a real run ------------------------------------------------------


@pytest.fixture
def horde(tmp_path: Path) -> Path:
    return Path(shutil.copytree(SAMPLE_DATA / "horde", tmp_path / "horde"))


def _edit(path: Path, change: Any) -> None:
    payload = json.loads(path.read_text())
    change(payload)
    path.write_text(json.dumps(payload))


def test_a_negative_month_usage_is_dropped_not_summed(horde: Path, caplog: pytest.LogCaptureFixture) -> None:
    usage = json.loads((horde / "stats_image.json").read_text())
    victim = sorted(usage["month"])[0]
    _edit(horde / "stats_image.json", lambda stats: stats["month"].__setitem__(victim, -(10**12)))
    frames, _ = load_horde(str(horde))
    image_usage = frames["image"].usage
    assert victim not in image_usage["name"].to_list()
    assert image_usage["usage_month"].sum() == sum(v for k, v in usage["month"].items() if k != victim)
    assert [(file, name) for file, name, _ in _problems(caplog)] == [(str(horde / "stats_image.json"), victim)]


def test_a_stats_file_without_month_fails_the_run_naming_it(horde: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _edit(horde / "stats_text.json", lambda stats: stats.pop("month"))
    assert main(["run", "--horde", str(horde)]) == 1
    assert f"{horde / 'stats_text.json'}: expected" in capsys.readouterr().err


def test_workers_with_online_yes_do_not_make_every_model_workerless(horde: Path) -> None:
    clean, _ = load_horde(str(horde))
    workers = json.loads((horde / "workers_image.json").read_text())
    workers[0]["online"] = "yes"
    (horde / "workers_image.json").write_text(json.dumps(workers))
    frames, _ = load_horde(str(horde))
    assert frames["image"].workers is not None and clean["image"].workers is not None
    dropped = set(clean["image"].workers["worker_id"]) - set(frames["image"].workers["worker_id"])
    assert dropped == {workers[0]["id"]}  # only that worker, every other one still counts


def test_the_real_snapshot_has_no_bad_rows(real_horde: Path, caplog: pytest.LogCaptureFixture) -> None:
    frames, _ = load_horde(str(real_horde))
    assert not _problems(caplog)
    assert frames["text"].usage["usage_total"].max() < 2**53
