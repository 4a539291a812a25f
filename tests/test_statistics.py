from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from pipeline.contracts.models import BaselineStats, CategoryStatistics, DownloadStats, ParameterBucketStats, TagStats
from pipeline.contracts.rules import AnalysisRules
from pipeline.shell.reference_records import category_records, load_records
from pipeline.sources.records import ReferenceFile
from pipeline.steps.outputs import run_outputs
from pipeline.steps.statistics import PARAMETER_BUCKETS, category_statistics, statistics_tables

B = 1_000_000_000


def _stats(category: str, document: dict[str, Any], *, limit: int = 20) -> CategoryStatistics:
    loaded = {category: category_records(ReferenceFile(category, "x.json", json.dumps(document).encode()))}
    return run_outputs(loaded, None, AnalysisRules(top_tags_limit=limit), computed_at=1).statistics[(category, False)]


def test_spec_field_names_are_exact() -> None:
    # the downstream fields, in order; grouped, run_id and models_without_baseline are our additive extras
    assert list(CategoryStatistics.model_fields) == [
        "category",
        "total_models",
        "returned_models",
        "offset",
        "limit",
        "nsfw_count",
        "baseline_distribution",
        "download_stats",
        "top_tags",
        "top_styles",
        "parameter_buckets",
        "models_without_param_info",
        "models_with_trigger_words",
        "models_with_inpainting",
        "models_with_requirements",
        "models_with_showcases",
        "computed_at",
        "grouped",
        "run_id",
        "models_without_baseline",
    ]
    assert set(BaselineStats.model_fields) == {"baseline", "count", "percentage"}
    assert set(TagStats.model_fields) == {"tag", "count", "percentage"}
    assert set(DownloadStats.model_fields) == {
        "total_models_with_downloads",
        "total_download_entries",
        "total_size_bytes",
        "models_with_size_info",
        "average_size_bytes",
        "hosts",
    }
    assert set(ParameterBucketStats.model_fields) == {"bucket_label", "min_params", "max_params", "count", "percentage"}


def _img(baseline: str, **fields: object) -> dict[str, object]:
    return {"baseline": baseline, "nsfw": False, **fields}


def test_image_statistics_counts_percentages_and_order() -> None:
    stats = _stats(
        "image_generation",
        {
            "a": _img("SDXL", nsfw=True, tags=["anime", "anime", "cute"], style="anime", trigger=["t"]),
            "b": _img("stable diffusion 1", tags=["anime"], style="anime", inpainting=True),
            "c": _img("stable_diffusion_xl", tags=["cute", "zz"], style="realistic", showcases=["s"]),
            "d": _img("flux_1", style="realistic", requirements={"steps": 4}),
            "e": _img("mystery", style="b-style"),
            "f": _img("stable_diffusion_1"),
        },
    )
    assert stats.total_models == stats.returned_models == 6
    assert (stats.offset, stats.limit, stats.computed_at) == (0, None, 1)
    assert stats.nsfw_count == 1
    assert list(stats.baseline_distribution) == ["stable_diffusion_1", "stable_diffusion_xl", "flux_1", "mystery"]
    assert stats.baseline_distribution["stable_diffusion_xl"].percentage == 33.33
    # a tag counts once per model; ties sort by name
    assert [(t.tag, t.count, t.percentage) for t in stats.top_tags] == [
        ("anime", 2, 33.33),
        ("cute", 2, 33.33),
        ("zz", 1, 16.67),
    ]
    assert [(s.tag, s.count) for s in stats.top_styles] == [("anime", 2), ("realistic", 2), ("b-style", 1)]
    assert (stats.models_with_trigger_words, stats.models_with_inpainting) == (1, 1)
    assert (stats.models_with_showcases, stats.models_with_requirements) == (1, 1)
    assert stats.parameter_buckets == [] and stats.models_without_param_info == 0


def test_top_tags_limit_applies_to_tags_and_styles() -> None:
    document = {f"m{i}": _img("SDXL", tags=[f"t{i}"], style=f"s{i}") for i in range(5)}
    stats = _stats("image_generation", document, limit=3)
    assert len(stats.top_tags) == len(stats.top_styles) == 3


def test_hosts_sizes_and_download_fallback() -> None:
    def downloads(*urls_sizes: tuple[str, int | None]) -> dict[str, object]:
        return {"download": [{"file_url": u} | ({"size_bytes": s} if s is not None else {}) for u, s in urls_sizes]}

    stats = _stats(
        "image_generation",
        {
            "a": _img("SDXL", size_on_disk_bytes=100, config=downloads(("https://HuggingFace.co/a", None))),
            "b": _img("SDXL", config=downloads(("https://huggingface.co/b", 30), ("https://civitai.com/b", 20))),
            "c": _img(
                "SDXL", config=downloads(("https://user@cdn.example.org:8443/c?x=1", 5), ("https://x.org/c", None))
            ),
            "d": _img("SDXL"),
        },
    )
    download = stats.download_stats
    assert download.hosts == {"huggingface.co": 2, "cdn.example.org": 1, "civitai.com": 1, "x.org": 1}
    assert download.total_models_with_downloads == 3
    assert download.total_download_entries == 5
    # a: on-disk size; b: every download declares a size (30+20); c: one download lacks a size -> unknown
    assert download.models_with_size_info == 2
    assert download.total_size_bytes == 150
    assert download.average_size_bytes == 75.0


@pytest.mark.parametrize(
    ("parameters", "label"),
    [
        (2_999_999_999, "< 3B"),
        (3 * B, "3B-6B"),
        (9 * B, "9B-13B"),
        (69_999_999_999, "35B-70B"),
        (70 * B, "70B-100B"),
        (99 * B, "70B-100B"),
        (100 * B, "100B+"),
        (405 * B, "100B+"),
    ],
)
def test_parameter_buckets_are_half_open(parameters: int, label: str) -> None:
    stats = _stats("text_generation", {"org/Model": {"parameters": parameters}})
    assert [(b.bucket_label, b.count, b.percentage) for b in stats.parameter_buckets] == [(label, 1, 100.0)]


def test_bucket_edges_and_order_come_from_one_table() -> None:
    labels = [label for label, _, _ in PARAMETER_BUCKETS]
    assert labels == ["< 3B", "3B-6B", "6B-9B", "9B-13B", "13B-20B", "20B-35B", "35B-70B", "70B-100B", "100B+"]
    assert PARAMETER_BUCKETS[-1][2] is None
    assert all(PARAMETER_BUCKETS[i][2] == PARAMETER_BUCKETS[i + 1][1] for i in range(len(PARAMETER_BUCKETS) - 1))


def test_parameters_fall_back_to_the_name_and_empty_buckets_are_omitted() -> None:
    stats = _stats(
        "text_generation",
        {
            "org/Known": {"parameters": 8 * B},
            "org/Named-13B": {"parameters": 0},
            "org/Mystery": {},
        },
    )
    assert [(b.bucket_label, b.count, b.min_params, b.max_params) for b in stats.parameter_buckets] == [
        ("6B-9B", 1, 6 * B, 9 * B),
        ("13B-20B", 1, 13 * B, 20 * B),
    ]
    assert stats.models_without_param_info == 1


def test_real_text_statistics_fill_the_buckets(real_reference: Path) -> None:
    loaded = load_records(str(real_reference))
    outputs = run_outputs(loaded, None, AnalysisRules(), computed_at=0)
    text = outputs.statistics[("text_generation", False)]
    assert text.total_models == 719
    assert sum(bucket.count for bucket in text.parameter_buckets) == 719
    assert text.models_without_param_info == 0
    labels = [bucket.bucket_label for bucket in text.parameter_buckets]
    assert {"70B-100B", "100B+"} <= set(labels)
    raw = json.loads((real_reference / "text_generation.json").read_text())
    canonical = [r for name, r in raw.items() if not name.startswith(("aphrodite/", "koboldcpp/"))]
    over_100 = sum(1 for r in canonical if r["parameters"] >= 100 * B)
    assert next(b.count for b in text.parameter_buckets if b.bucket_label == "100B+") == over_100
    image = outputs.statistics[("image_generation", False)]
    assert image.total_models == 161
    assert image.baseline_distribution["stable_diffusion_1"].count == 106
    assert image.baseline_distribution["stable_diffusion_1"].percentage == 65.84
    assert sum(image.download_stats.hosts.values()) == image.download_stats.total_download_entries
    # Statistics run on every category present, grouped or not.
    assert {key[0] for key in outputs.statistics} == set(loaded)
    assert all((category, True) in outputs.statistics for category in loaded)


def test_statistics_tables_are_plain_frames() -> None:
    frame = pl.LazyFrame(
        {
            "name": ["a"],
            "baseline": [None],
            "nsfw": [None],
            "tags": [[]],
            "style": [None],
            "trigger": [[]],
            "inpainting": [None],
            "requirement_count": [0],
            "showcase_count": [0],
            "download_urls": [[]],
            "download_sizes": [[]],
            "size_on_disk_bytes": [None],
            "parameter_count": [None],
        },
        schema_overrides={
            "tags": pl.List(pl.String),
            "trigger": pl.List(pl.String),
            "download_urls": pl.List(pl.String),
            "download_sizes": pl.List(pl.Int64),
            "size_on_disk_bytes": pl.Int64,
            "parameter_count": pl.Int64,
            "baseline": pl.String,
            "style": pl.String,
            "nsfw": pl.Boolean,
            "inpainting": pl.Boolean,
        },
    )
    stats = category_statistics("x", statistics_tables(frame, top_tags_limit=5), computed_at=0)
    assert stats.baseline_distribution == {}  # SPEC §5: no "unknown" bucket
    assert stats.models_without_baseline == 1
    assert stats.download_stats.average_size_bytes == 0.0
