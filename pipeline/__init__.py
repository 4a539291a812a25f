"""horde-analytics: batch analytics for the AI Horde model reference.

The public surface is ``__all__``. The pure steps import eagerly; the imperative shell (sources, sinks, the run)
loads on first use, so importing the pure modules never imports httpx or redis.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from pipeline.contracts.models import (
    BaselineStats,
    CategoryDeletionRiskResponse,
    CategoryDeletionRiskSummary,
    CategoryStatistics,
    DeletionRiskFlags,
    DownloadStats,
    ModelDeletionRiskInfo,
    ParameterBucketStats,
    TagStats,
)
from pipeline.contracts.rules import AnalysisRules, RiskRules, analysis_rules
from pipeline.contracts.settings import Settings, load_settings
from pipeline.steps.deletion_risk import deletion_risk_table
from pipeline.steps.deletion_risk_view import DeletionRiskView, deletion_risk_response
from pipeline.steps.merge import merged_models
from pipeline.steps.names import ParsedName, parse_name, parsed_name_frame, parsed_names
from pipeline.steps.outputs import RunOutputs, run_outputs
from pipeline.steps.presets import PRESETS, preset_filter

if TYPE_CHECKING:
    from pipeline.shell.batch import RunResult, run_once
    from pipeline.shell.reference_records import load_records
    from pipeline.sources.horde import load_horde

_SHELL = {
    "RunResult": "pipeline.shell.batch",
    "run_once": "pipeline.shell.batch",
    "load_horde": "pipeline.sources.horde",
    "load_records": "pipeline.shell.reference_records",
}


def __getattr__(name: str) -> Any:
    if name in _SHELL:
        return getattr(importlib.import_module(_SHELL[name]), name)
    raise AttributeError(f"module 'pipeline' has no attribute {name!r}")


__all__ = [
    "PRESETS",
    "AnalysisRules",
    "BaselineStats",
    "CategoryDeletionRiskResponse",
    "CategoryDeletionRiskSummary",
    "CategoryStatistics",
    "DeletionRiskFlags",
    "DeletionRiskView",
    "DownloadStats",
    "ModelDeletionRiskInfo",
    "ParameterBucketStats",
    "ParsedName",
    "RiskRules",
    "RunOutputs",
    "RunResult",
    "Settings",
    "TagStats",
    "analysis_rules",
    "deletion_risk_response",
    "deletion_risk_table",
    "load_horde",
    "load_records",
    "load_settings",
    "merged_models",
    "parse_name",
    "parsed_name_frame",
    "parsed_names",
    "preset_filter",
    "run_once",
    "run_outputs",
]
