"""The rule values of a run (SPEC §5, §6): their defaults, stated once, and how a run builds them from Settings.

``Settings`` takes its defaults from these classes, and ``analysis_rules`` copies every field by name, so a new
rule is one field here plus its variable in ``Settings``; the pure steps take these values as arguments and never
read the environment.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from datetime import timedelta
from typing import TYPE_CHECKING, Final

__all__ = [
    "AnalysisRules",
    "RetentionPolicy",
    "RiskRules",
    "analysis_rules",
    "retention_policy",
]

if TYPE_CHECKING:
    from pipeline.contracts.settings import Settings


@dataclass(frozen=True)
class InputLimits:
    """How much of a bad or slow input a run tolerates (SPEC §2.1, §2.2): the defaults of ``MAX_BAD_RECORD_FRACTION``
    and ``HORDE_API_*``, stated once. ``Settings`` takes them from here, and the readers' keyword defaults name
    them (a run passes the configured values)."""

    #: more bad records (rows) than this share of a file (payload) fails the run
    max_bad_record_fraction: float = 0.5
    #: seconds per response, headers to last byte
    horde_api_timeout: float = 30.0
    #: attempts per URL, the first included
    horde_api_retries: int = 3
    #: the largest body read: far above the largest real payload, far below a machine's memory
    horde_api_max_bytes: int = 512 * 1024 * 1024


@dataclass(frozen=True)
class RiskRules:
    """Thresholds of SPEC §6 (defaults as there; a run passes the configured values)."""

    low_usage_threshold_percentage: float = 0.0065
    text_low_usage_threshold_percentage: float = 0.02
    high_usage_threshold_percentage: float = 1.0
    text_critical_usage_threshold: int = 10
    text_critical_worker_threshold: int = 1
    preferred_file_hosts: tuple[str, ...] = ("huggingface.co",)
    text_ignore_download_hosts: bool = True
    stale_worker_days: int = 30  # SPEC §10 preset ``stale_workers``


@dataclass(frozen=True)
class AnalysisRules:
    """The rule values a run applies (from Settings; the pure steps never read the environment)."""

    top_tags_limit: int = 20
    group_by_variant: bool = False
    risk: RiskRules = field(default_factory=RiskRules)


#: How far back ``usage_month_previous`` looks (SPEC §10: "at least 7 days older"); retention never removes the runs
#: that comparison may still pick (SPEC §13).
USAGE_COMPARISON_PERIOD: Final = timedelta(days=7)


@dataclass(frozen=True)
class RetentionPolicy:
    """What the snapshot store keeps (SPEC §13): every run for ``keep_all_days`` (``SNAPSHOT_KEEP_ALL_DAYS``), then
    the last run of each UTC day for ``keep_daily_days`` (``SNAPSHOT_KEEP_DAILY_DAYS``); 0 = forever."""

    keep_all_days: int = 7
    keep_daily_days: int = 365


def retention_policy(settings: Settings) -> RetentionPolicy:
    """The retention of a run, from settings."""
    return RetentionPolicy(settings.snapshot_keep_all_days, settings.snapshot_keep_daily_days)


def analysis_rules(settings: Settings) -> AnalysisRules:
    """The rule values of a run, from settings (each field under its own name)."""
    risk = RiskRules(**{rule.name: getattr(settings, rule.name) for rule in fields(RiskRules)})
    plain = {rule.name: getattr(settings, rule.name) for rule in fields(AnalysisRules) if rule.name != "risk"}
    return AnalysisRules(**plain, risk=risk)
