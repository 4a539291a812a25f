"""Pydantic models of the JSON the downstream model-reference API reads (SPEC §5, §6, §7.1).

Field names are the contract: they match the existing service so it reads our Redis values unchanged.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict


class _Output(BaseModel):
    # Extra fields are allowed (SPEC §5: "superset of the downstream model").
    model_config = ConfigDict(extra="allow", frozen=True)


class BaselineStats(_Output):
    """How many models of a category share one baseline."""

    baseline: str
    count: int
    percentage: float


class DownloadStats(_Output):
    """Download entries, sizes and hosts of a category."""

    total_models_with_downloads: int
    total_download_entries: int
    total_size_bytes: int
    models_with_size_info: int
    average_size_bytes: float
    hosts: dict[str, int]


class TagStats(_Output):
    """One tag (or style) and how many models carry it."""

    tag: str
    count: int
    percentage: float


class ParameterBucketStats(_Output):
    """Models whose parameter count falls in ``[min_params, max_params)``."""

    bucket_label: str
    min_params: int
    max_params: int | None
    count: int
    percentage: float


class CategoryStatistics(_Output):
    """The statistics of one category, grouped or not (SPEC §5)."""

    category: str
    total_models: int
    returned_models: int
    offset: int = 0
    limit: int | None = None
    nsfw_count: int
    baseline_distribution: dict[str, BaselineStats]
    download_stats: DownloadStats
    top_tags: list[TagStats]
    top_styles: list[TagStats]
    parameter_buckets: list[ParameterBucketStats]
    models_without_param_info: int
    models_with_trigger_words: int
    models_with_inpainting: int
    models_with_requirements: int
    models_with_showcases: int
    computed_at: int
    grouped: bool = False
    run_id: str | None = None
    #: Models left out of ``baseline_distribution`` because they name no baseline (SPEC §5; additive).
    models_without_baseline: int = 0


class DeletionRiskFlags(_Output):
    """Why a model might be deleted (SPEC §6)."""

    zero_usage_day: bool
    zero_usage_month: bool
    zero_usage_total: bool
    no_active_workers: bool
    has_multiple_hosts: bool
    has_non_preferred_host: bool
    has_unknown_host: bool
    no_download_urls: bool
    missing_description: bool
    missing_baseline: bool
    low_usage: bool


class UsageTrend(_Output):
    """Usage ratios that show whether a model is fading."""

    day_to_month_ratio: float | None
    month_to_total_ratio: float | None


class BackendVariation(_Output):
    """A text model's workers and usage under one backend spelling."""

    backend: str
    variant_name: str
    worker_count: int
    performance: float | None
    usage_day: int
    usage_month: int
    usage_total: int


class ModelDeletionRiskInfo(_Output):
    """One model (or text family) with its risk flags, usage and hosting facts."""

    name: str
    category: str
    deletion_risk_flags: DeletionRiskFlags
    at_risk: bool
    risk_score: int
    worker_count: int
    usage_day: int
    usage_month: int
    usage_total: int
    usage_hour: int | None = None
    usage_minute: int | None = None
    usage_percentage_of_category: float
    usage_trend: UsageTrend
    cost_benefit_score: float | None
    size_gb: float | None
    baseline: str | None
    nsfw: bool | None
    has_description: bool
    download_count: int
    download_hosts: list[str]
    backend_variations: list[BackendVariation] | None = None
    is_critical: bool
    has_warning: bool
    # SPEC §10, additive (the downstream service ignores them): evidence over time from committed runs.
    first_seen: datetime | None = None
    last_seen_with_workers: datetime | None = None
    days_without_workers: int | None = None
    at_risk_since: datetime | None = None
    usage_month_previous: int | None = None
    usage_month_change: int | None = None


class CategoryDeletionRiskSummary(_Output):
    """Counts over the models of one deletion-risk response."""

    total_models: int
    models_at_risk: int
    models_critical: int
    models_with_warnings: int
    models_with_zero_day_usage: int
    models_with_zero_month_usage: int
    models_with_zero_total_usage: int
    models_with_no_active_workers: int
    models_with_no_downloads: int
    models_with_non_preferred_hosts: int
    models_with_multiple_hosts: int
    models_with_low_usage: int
    average_risk_score: float
    category_total_month_usage: int


class CategoryDeletionRiskResponse(_Output):
    """Deletion risk of one category × grouped × variations view (SPEC §6)."""

    category: str
    category_total_month_usage: int
    total_count: int
    returned_count: int
    offset: int = 0
    limit: int | None = None
    models: list[ModelDeletionRiskInfo]
    summary: CategoryDeletionRiskSummary
    run_id: str | None = None


class LastRun(_Output):
    """What ``{prefix}:analytics:last_run`` holds: which run published, when, and from what."""

    run_id: str
    started_at: float
    finished_at: float
    input_hashes: dict[str, str]
    counts: dict[str, int]


class ModelChange(_Output):
    """One model's change since the previous committed run (SPEC §10); ``before``/``after`` as in CHANGES_SCHEMA."""

    name: str
    change: str
    before: int | None
    after: int | None


class CategoryChanges(_Output):
    """What ``{prefix}:analytics:changes:{category}`` holds: the latest run's changes of one category."""

    run_id: str
    category: str
    counts: dict[str, int]
    changes: list[ModelChange]
