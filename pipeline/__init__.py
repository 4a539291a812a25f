"""horde-analytics: batch analytics for the AI Horde model reference.

The public surface is this module's ``__all__``; everything else is an implementation detail.
"""

from pipeline.batch import RunReport, analysis_rules, run_once
from pipeline.deletion_risk import RiskRules, deletion_risk_response, deletion_risk_table
from pipeline.merge import merged_models
from pipeline.models import (
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
from pipeline.names import ParsedName, parse_name, parsed_name_frame, parsed_names
from pipeline.outputs import AnalysisRules, RunOutputs, run_outputs
from pipeline.presets import PRESETS, preset_filter
from pipeline.settings import Settings, load_settings
from pipeline.sources.horde import load_horde
from pipeline.sources.records import load_records

__all__ = [
    "PRESETS",
    "AnalysisRules",
    "BaselineStats",
    "CategoryDeletionRiskResponse",
    "CategoryDeletionRiskSummary",
    "CategoryStatistics",
    "DeletionRiskFlags",
    "DownloadStats",
    "ModelDeletionRiskInfo",
    "ParameterBucketStats",
    "ParsedName",
    "RiskRules",
    "RunOutputs",
    "RunReport",
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
