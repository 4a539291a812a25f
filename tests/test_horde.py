from __future__ import annotations

import gc
import json
import logging
import re
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from jobs.__main__ import main
from pipeline import load_records
from pipeline.contracts.rules import AnalysisRules
from pipeline.contracts.settings import load_settings
from pipeline.shell.batch import load_inputs
from pipeline.sinks.parquet_snapshot import manifests
from pipeline.sources.horde import HordeInputError, horde_frames, horde_payloads, load_horde
from pipeline.sources.horde_tables import status_frame, usage_frame, workers_frame
from pipeline.sources.http import FetchError, HttpFetcher
from pipeline.sources.records import ReferenceInputError
from pipeline.steps.merge import merged_models
from pipeline.steps.names import parse_name
from pipeline.steps.outputs import run_outputs
from tests.conftest import HORDE_API_FILES, SAMPLE_DATA


def serve_snapshot(httpserver: HTTPServer, folder: Path, fault: Any = None) -> list[str]:
    """Serve a Horde snapshot folder at the live API's paths; ``fault(request, attempt)`` may answer first."""
    attempts: dict[str, int] = defaultdict(int)
    log: list[str] = []

    def handler(request: Request) -> Response:
        key = (
            request.path,
            request.args.get("type") if "status" in request.path or "workers" in request.path else None,
        )
        attempts[request.full_path] += 1
        log.append(request.full_path)
        if fault is not None:
            answer = fault(request, attempts[request.full_path])
            if answer is not None:
                return answer
        if key not in HORDE_API_FILES:
            return Response("not found", status=404)
        return Response((folder / HORDE_API_FILES[key]).read_bytes(), content_type="application/json")

    httpserver.expect_request(re.compile("/api/.*")).respond_with_handler(handler)
    return log


def frames_equal(a: dict[str, Any], b: dict[str, Any]) -> None:
    assert set(a) == set(b)
    for model_type in a:
        assert a[model_type].status.equals(b[model_type].status)
        assert a[model_type].usage.sort("name").equals(b[model_type].usage.sort("name"))
        assert a[model_type].workers.equals(b[model_type].workers)


# --- the typed path and the checked path ----------------------------------------------------------------


def test_typed_and_checked_paths_agree_on_the_real_snapshot(caplog: pytest.LogCaptureFixture, real_horde: Path) -> None:
    with caplog.at_level(logging.DEBUG, logger="pipeline.sources"):
        typed, typed_hashes = horde_frames(horde_payloads(str(real_horde)))
    # the real payloads are clean: each takes the typed path (a silent fallback would only be slower), and no
    # usage name is written twice, which the typed path cannot see by itself
    assert not [r for r in caplog.records if r.getMessage() == "horde payload read on the checked path"]
    with caplog.at_level(logging.DEBUG, logger="pipeline.sources"):
        checked, checked_hashes = horde_frames(horde_payloads(str(real_horde)), typed=False)
    checked_path = [r for r in caplog.records if r.getMessage() == "horde payload read on the checked path"]
    assert len(checked_path) == len(checked_hashes) == 6
    frames_equal(typed, checked)
    assert typed_hashes == checked_hashes
    assert typed["text"].workers is not None and typed["text"].workers.height > 100


def test_a_mistyped_worker_is_reported_and_dropped(caplog: pytest.LogCaptureFixture) -> None:
    workers = [
        {"id": "w1", "name": "a", "online": True, "maintenance_mode": False, "threads": "two", "models": ["m1"]},
        {"id": "w2", "name": "b", "online": True, "maintenance_mode": False, "threads": 1, "models": ["m2", "m3"]},
        {"id": "w3", "name": "c", "online": False, "maintenance_mode": False, "threads": 4, "models": []},
    ]
    frame = workers_frame("workers_text.json", json.dumps(workers).encode())
    assert frame.select("worker_id", "threads", "model").rows() == [("w2", 1, "m2"), ("w2", 1, "m3")]
    (record,) = [r for r in caplog.records if r.getMessage() == "input problem"]
    assert (record.file, record.entry) == ("workers_text.json", "w1")  # type: ignore[attr-defined]
    assert "'threads' must be an integer in [0, 2^53), got \"two\"" in record.reason  # type: ignore[attr-defined]


# --- the HTTP source against a real local server -------------------------------------------------------


def test_http_and_folder_sources_give_the_same_frames(httpserver: HTTPServer, real_horde: Path) -> None:
    log = serve_snapshot(httpserver, real_horde)
    with HttpFetcher(attempts=1) as fetcher:
        by_http, hashes = load_horde(httpserver.url_for("/api"), fetcher)
    frames_equal(by_http, load_horde(str(real_horde))[0])
    assert "/api/v2/status/models?type=image&model_state=known" in log
    assert "/api/v2/stats/img/models?model_state=known" in log
    assert "/api/v2/workers?type=text" in log
    assert len(hashes) == 6


def test_500_then_200_is_retried(httpserver: HTTPServer) -> None:
    sleeps: list[float] = []

    def fault(request: Request, attempt: int) -> Response | None:
        return Response("boom", status=500) if attempt == 1 else None

    log = serve_snapshot(httpserver, SAMPLE_DATA / "horde", fault)
    with HttpFetcher(attempts=3, sleep=sleeps.append) as fetcher:
        frames, _ = load_horde(httpserver.url_for("/api"), fetcher)
    assert frames["image"].status.height == 11
    assert len(log) == 12 and len(sleeps) == 6  # each of the six requests failed once
    assert all(0 <= s <= 0.5 for s in sleeps)  # jittered backoff below the first step


def test_429_honours_retry_after(httpserver: HTTPServer) -> None:
    sleeps: list[float] = []

    def fault(request: Request, attempt: int) -> Response | None:
        if "workers" in request.path and attempt == 1:
            return Response("slow down", status=429, headers={"Retry-After": "2"})
        return None

    serve_snapshot(httpserver, SAMPLE_DATA / "horde", fault)
    with HttpFetcher(attempts=3, sleep=sleeps.append) as fetcher:
        load_horde(httpserver.url_for("/api"), fetcher)
    assert sleeps == [2.0, 2.0]


def test_persistent_503_fails_with_a_clear_error(httpserver: HTTPServer) -> None:
    serve_snapshot(httpserver, SAMPLE_DATA / "horde", lambda request, attempt: Response("down", status=503))
    with HttpFetcher(attempts=3, sleep=lambda _: None) as fetcher, pytest.raises(FetchError) as caught:
        load_horde(httpserver.url_for("/api"), fetcher)
    assert "v2/status/models" in str(caught.value)
    assert "failed after 3 attempt(s): HTTP 503" in str(caught.value)


def test_a_run_whose_horde_fetch_fails_publishes_nothing(
    httpserver: HTTPServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["run"]) == 0  # a good run first
    serve_snapshot(httpserver, SAMPLE_DATA / "horde", lambda request, attempt: Response("down", status=503))
    monkeypatch.setenv("HORDE_API_RETRIES", "2")
    assert main(["run", "--horde", httpserver.url_for("/api")]) == 1
    assert "HTTP 503" in capsys.readouterr().err
    assert len(manifests(tmp_path / "snapshots")) == 1


def test_a_hung_response_times_out(httpserver: HTTPServer) -> None:
    def fault(request: Request, attempt: int) -> Response | None:
        time.sleep(1.5)
        return None

    serve_snapshot(httpserver, SAMPLE_DATA / "horde", fault)
    with HttpFetcher(timeout=0.3, attempts=2, sleep=lambda _: None) as fetcher, pytest.raises(FetchError) as caught:
        load_horde(httpserver.url_for("/api"), fetcher)
    assert "timed out" in str(caught.value) and "2 attempt(s)" in str(caught.value)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'[{"name": "x", "count": 1', "malformed JSON"),  # truncated
        (b"<html>oops</html>", "malformed JSON"),
        (b'{"name": "x"}', "expected a JSON list of objects, got dict"),
        (b'[{"name": "x"}, 7]', "item 1 is not an object"),
    ],
)
def test_bad_status_payloads_are_clear_errors(httpserver: HTTPServer, body: bytes, message: str) -> None:
    def fault(request: Request, attempt: int) -> Response | None:
        return Response(body) if request.path.endswith("status/models") else None

    serve_snapshot(httpserver, SAMPLE_DATA / "horde", fault)
    with HttpFetcher(attempts=1) as fetcher, pytest.raises(HordeInputError, match=message):
        load_horde(httpserver.url_for("/api"), fetcher)


def test_horde_and_records_load_together_and_a_horde_error_comes_first(tmp_path: Path) -> None:
    """The Horde payloads load on a second thread beside the records: when both are unusable the Horde error is
    raised (as when they loaded one after the other), and the collector's pause ends with the load."""
    empty = tmp_path / "empty"
    empty.mkdir()
    both_bad = load_settings(model_reference_source=str(empty), horde_source=str(tmp_path / "nowhere"))
    with HttpFetcher() as fetcher, pytest.raises(HordeInputError, match="neither a folder"):
        load_inputs(both_bad, fetcher)
    records_bad = load_settings(model_reference_source=str(empty), horde_source=str(SAMPLE_DATA / "horde"))
    with HttpFetcher() as fetcher, pytest.raises(ReferenceInputError, match="required file is missing"):
        load_inputs(records_bad, fetcher)
    good = load_settings(
        model_reference_source=str(SAMPLE_DATA / "model_reference"), horde_source=str(SAMPLE_DATA / "horde")
    )
    with HttpFetcher() as fetcher:
        loaded = load_inputs(good, fetcher)
    assert set(loaded.horde) == {"image", "text"} and "text_generation" in loaded.records
    assert gc.isenabled()


def test_bad_usage_shape_is_a_clear_error() -> None:
    with pytest.raises(HordeInputError, match="expected"):
        usage_frame("stats_text.json", b'[{"day": 1}]')
    with pytest.raises(HordeInputError, match="expected"):
        usage_frame("stats_text.json", b'{"day": [], "month": {}, "total": {}}')


def test_empty_and_huge_names_are_handled() -> None:
    long_name = "koboldcpp/" + "x" * 10_000
    status = status_frame(
        "status",
        json.dumps(
            [
                {"name": "", "count": 1, "performance": 1.0, "queued": 0.0, "jobs": 0.0, "eta": 0, "type": "text"},
                {
                    "name": long_name,
                    "count": 2,
                    "performance": 1.0,
                    "queued": 0.0,
                    "jobs": 0.0,
                    "eta": 0,
                    "type": "text",
                },
                {"name": None, "count": 2},
            ]
        ).encode(),
    )
    assert status["name"].to_list() == [long_name]
    usage = usage_frame(
        "stats", json.dumps({"day": {"": 5, long_name: 1}, "month": {long_name: 3}, "total": {}}).encode()
    )
    assert usage.rows() == [(long_name, 1, 3, 0)]
    worker = {"id": "w1", "online": True, "maintenance_mode": False, "models": ["", long_name]}
    workers = workers_frame("workers", json.dumps([worker]).encode())
    assert workers["model"].to_list() == [long_name]
    records = load_records(str(SAMPLE_DATA / "model_reference"))["text_generation"].records
    frames, _ = horde_frames(
        [("text", "status", "s", b"[]"), ("text", "usage", "u", b'{"day": {}, "month": {}, "total": {}}')]
    )
    merged, unmatched = merged_models(records, frames["text"], category="text_generation")
    assert merged["usage_month"].sum() == 0 and unmatched.height == 0


# --- the join on the sample ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sample_outputs() -> Any:
    loaded = load_records(str(SAMPLE_DATA / "model_reference"))
    horde, _ = load_horde(str(SAMPLE_DATA / "horde"))
    return run_outputs(loaded, horde, AnalysisRules(), computed_at=0), horde


def _rows(outputs: Any, table: str, category: str) -> dict[str, dict[str, Any]]:
    return {row["name"]: row for row in outputs.tables[(table, category)].iter_rows(named=True)}


def test_sample_text_join(sample_outputs: Any) -> None:
    outputs, _ = sample_outputs
    merged = _rows(outputs, "merged", "text_generation")
    llama = merged["meta-llama/Meta-Llama-3-8B-Instruct"]
    # exact-less: koboldcpp short name, its -Q4_K_M quant copy, the aphrodite copy; the offline worker is not counted
    assert llama["horde_names"] == [
        "aphrodite/meta-llama/Meta-Llama-3-8B-Instruct",
        "koboldcpp/Meta-Llama-3-8B-Instruct",
        "koboldcpp/Meta-Llama-3-8B-Instruct-Q4_K_M",
    ]
    assert (llama["usage_month"], llama["worker_count"]) == (52000 + 9000 + 14000, 3)
    cydonia = merged["TheDrummer/Cydonia-24B-v2.1"]
    assert cydonia["usage_month"] == 21000 + 1500 + 4000  # the case-only duplicate is summed
    assert merged["TheDrummer/Cydonia-24B-v2"]["usage_month"] == 0  # never credited with v2.1's usage
    assert merged["NeverSleep/Lumimaid-v0.2-12B"]["worker_count"] == 0  # only a worker in maintenance
    variations = {v["backend"]: v for v in llama["backend_variations"]}
    assert [v["backend"] for v in llama["backend_variations"]] == ["canonical", "aphrodite", "koboldcpp"]
    assert variations["koboldcpp"]["usage_month"] == 61000 and variations["koboldcpp"]["worker_count"] == 2
    assert variations["koboldcpp"]["variant_name"] == "koboldcpp/Meta-Llama-3-8B-Instruct"
    assert variations["canonical"] == {
        "backend": "canonical",
        "variant_name": "meta-llama/Meta-Llama-3-8B-Instruct",
        "worker_count": 0,
        "performance": None,
        "usage_day": 0,
        "usage_month": 0,
        "usage_total": 0,
    }
    unmatched = _rows(outputs, "unmatched", "text_generation")
    # a 405B of a family whose reference has only 8B and 70B, and a custom model, stay unmatched
    assert set(unmatched) == {"koboldcpp/Meta-Llama-3-405B-Instruct", "koboldcpp/MyRoleplayMerge-13B"}
    assert unmatched["koboldcpp/Meta-Llama-3-405B-Instruct"]["usage_month"] == 2500


def test_sample_image_join(sample_outputs: Any) -> None:
    outputs, _ = sample_outputs
    merged = _rows(outputs, "merged", "image_generation")
    assert merged["Realistic Vision"]["usage_month"] == 2500 + 40  # "realistic vision" matches case-insensitively
    assert merged["Deliberate"]["worker_count"] == 3 + 4  # its own workers and the AAM XL workers that also serve it
    assert merged["Counterfeit"]["worker_count"] == 0  # maintenance
    assert merged["Stable Cascade 1.0"]["worker_count"] == 0 and merged["Stable Cascade 1.0"]["queued"] == 2097152.0
    assert merged["Stable Cascade 1.0"]["eta"] == 10000
    assert set(_rows(outputs, "unmatched", "image_generation")) == {"MyCustomMerge_v3"}


def test_worker_count_falls_back_to_status_counts() -> None:
    loaded = load_records(str(SAMPLE_DATA / "model_reference"))
    horde, _ = load_horde(str(SAMPLE_DATA / "horde"))
    without_workers = type(horde["image"])(status=horde["image"].status, usage=horde["image"].usage, workers=None)
    merged, _ = merged_models(loaded["image_generation"].records, without_workers, category="image_generation")
    counts = dict(merged.select("name", "worker_count").iter_rows())
    status = dict(horde["image"].status.select("name", "count").iter_rows())
    assert counts["AAM XL"] == status["AAM XL"]
    assert counts["Counterfeit"] == 0


# --- the join on the real snapshot ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def real_run(shared_data: Path) -> Any:
    loaded = load_records(str(shared_data / "model_reference"))
    horde, _ = load_horde(str(shared_data / "horde"))
    manifest = json.loads((shared_data / "horde" / "snapshot_manifest.json").read_text())
    return loaded, horde, run_outputs(loaded, horde, AnalysisRules(), computed_at=0), manifest


@pytest.mark.parametrize(("category", "horde_type"), [("image_generation", "image"), ("text_generation", "text")])
def test_usage_is_conserved(real_run: Any, real_horde: Path, category: str, horde_type: str) -> None:
    _, _, outputs, _ = real_run
    raw = json.loads((real_horde / f"stats_{horde_type}.json").read_text())  # an oracle that shares no code
    merged = outputs.tables[("merged", category)]
    unmatched = outputs.tables[("unmatched", category)]
    for period in ("day", "month", "total"):
        attributed = merged[f"usage_{period}"].sum()
        assert attributed + unmatched[f"usage_{period}"].sum() == sum(raw[period].values())
        assert attributed > 0


@pytest.mark.parametrize(("category", "horde_type"), [("image_generation", "image"), ("text_generation", "text")])
def test_each_horde_name_belongs_to_at_most_one_model(real_run: Any, category: str, horde_type: str) -> None:
    _, horde, outputs, _ = real_run
    claimed = _attribution(outputs, category)["horde_name"]
    assert claimed.len() > 0 and claimed.is_unique().all()
    assert set(claimed) <= set(horde[horde_type].usage["name"]) | set(horde[horde_type].status["name"])
    assert not set(claimed) & set(outputs.tables[("unmatched", category)]["spellings"].list.explode())


def _attribution(outputs: Any, category: str) -> pl.DataFrame:
    """``horde_name -> model`` as the merged table publishes it (``horde_names`` of each model)."""
    merged = outputs.tables[("merged", category)]
    return (
        merged.select(pl.col("horde_names").alias("horde_name"), pl.col("name").alias("model"))
        .explode("horde_name")
        .drop_nulls("horde_name")
    )


def test_usage_never_moves_across_sizes(real_run: Any) -> None:
    _, _, outputs, manifest = real_run
    for horde_name, model in _attribution(outputs, "text_generation").iter_rows():
        served, reference = parse_name(horde_name).size_label, parse_name(model).size_label
        assert served is None or reference is None or served == reference, (horde_name, model)
    other_sizes = [
        v["other_size_unknown_variant"]
        for v in manifest["text_generation"]["reference_models"].values()
        if "other_size_unknown_variant" in v
    ]
    unmatched = set(outputs.tables[("unmatched", "text_generation")]["name"])
    assert len(other_sizes) == 6 and set(other_sizes) <= unmatched


def test_every_name_a_model_serves_is_credited_to_it(real_run: Any) -> None:
    _, _, outputs, manifest = real_run
    merged = {row["name"]: row for row in outputs.tables[("merged", "text_generation")].iter_rows(named=True)}
    for name, facts in manifest["text_generation"]["reference_models"].items():
        assert set(facts.get("reported_names", [])) <= set(merged[name]["horde_names"]), name


def test_worker_counts_are_distinct_active_workers(real_run: Any, real_horde: Path) -> None:
    _, _, outputs, _ = real_run
    workers = json.loads((real_horde / "workers_text.json").read_text())
    for row in outputs.tables[("merged", "text_generation")].iter_rows(named=True):
        names = set(row["horde_names"])
        expected = {w["id"] for w in workers if w["online"] and not w["maintenance_mode"] and names & set(w["models"])}
        assert row["worker_count"] == len(expected), row["name"]


def test_real_image_risk(real_run: Any) -> None:
    _, _, outputs, manifest = real_run
    risk = outputs.deletion_risk[("image_generation", False, False)].response()
    assert risk.total_count == 161
    assert risk.summary.models_with_no_active_workers == 49
    assert risk.summary.category_total_month_usage == sum(m.usage_month for m in risk.models)
    absent = {
        name
        for name, v in manifest["image_generation"]["reference_models"].items()
        if v.get("kind") == "absent_from_stats"
    }
    by_name = {m.name: m for m in risk.models}
    assert absent  # models with no Horde data at all still get the zero-usage flags
    for name in absent:
        flags = by_name[name].deletion_risk_flags
        assert flags.zero_usage_day and flags.zero_usage_month and flags.zero_usage_total and by_name[name].at_risk
    assert by_name["Yiffy"].worker_count == 0  # offered only by a worker in maintenance


def test_real_text_risk_views(real_run: Any) -> None:
    _, _, outputs, _ = real_run
    plain = outputs.deletion_risk[("text_generation", False, False)].response()
    grouped = outputs.deletion_risk[("text_generation", True, False)].response()
    variations = outputs.deletion_risk[("text_generation", False, True)]
    assert json.loads(variations.json()) == variations.response().model_dump(mode="json")
    variations = variations.response()
    assert plain.total_count == variations.total_count == 719
    assert grouped.total_count == outputs.tables[("families", "text_generation")].height
    assert sum(m.usage_month for m in grouped.models) == sum(m.usage_month for m in plain.models)
    assert all(len(m.backend_variations or []) == 3 for m in variations.models)
    for model in variations.models:
        assert sum(v.usage_month for v in model.backend_variations or []) == model.usage_month
    assert ("image_generation", False, True) not in outputs.deletion_risk
    print(
        "\nreal data, at risk / critical:",
        {
            f"{c}{' grouped' if g else ''}": (r.summary().models_at_risk, r.summary().models_critical)
            for (c, g, v), r in outputs.deletion_risk.items()
            if not v
        },
    )


def test_a_key_claimed_twice_goes_to_the_exact_name_then_the_first_record() -> None:
    from pipeline.steps.merge import match_keys

    # Many records, so the unique() runs over several partitions and threads.
    filler = [f"org{i}/Filler-{i}B" for i in range(20_000)]
    names = [*filler, "orgA/Model-7B", "orgB/Model-7B", "koboldcpp/Other-3B", "Other-3B"]
    aliases: list[list[str]] = [[] for _ in filler] + [[], [], [], ["koboldcpp/Other-3B"]]
    records = pl.DataFrame(
        {"name": names, "aliases": aliases}, schema={"name": pl.String, "aliases": pl.List(pl.String)}
    )
    keys = {key: names[model_id] for key, model_id in match_keys(records, text=True).iter_rows()}
    assert keys["koboldcpp/model-7b"] == "orgA/Model-7B"  # two short-name spellings: the first record wins
    assert keys["aphrodite/orgb/model-7b"] == "orgB/Model-7B"
    assert keys["koboldcpp/other-3b"] == "koboldcpp/Other-3B"  # an exact name beats an alias
    assert keys["other-3b"] == "Other-3B"
