"""The package's shape: a sorted public surface, pure steps free of I/O, schemas tied to the models."""

from __future__ import annotations

import subprocess
import sys

import pipeline
from pipeline.contracts.models import BackendVariation, CategoryStatistics, ModelDeletionRiskInfo
from pipeline.contracts.schemas import BACKEND_VARIATION_DTYPE, RISK_SCHEMA


def test_public_surface_is_sorted_and_importable() -> None:
    # sorted as ruff's RUF022 sorts it: constants, classes, then functions (isort style)
    assert pipeline.__all__ == sorted(pipeline.__all__, key=lambda n: (not n.isupper(), not n[0].isupper(), n))
    for name in pipeline.__all__:
        assert getattr(pipeline, name) is not None, name


def test_pure_steps_do_not_import_io_libraries() -> None:
    code = (
        "import importlib, pkgutil, sys, pipeline.steps as s; "
        "[importlib.import_module(m.name) for m in pkgutil.walk_packages(s.__path__, 'pipeline.steps.')]; "
        "bad = sorted(m for m in ('httpx', 'redis', 'obstore') if m in sys.modules); print(bad)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_frame_schemas_match_the_models() -> None:
    assert list(BACKEND_VARIATION_DTYPE.to_schema()) == list(BackendVariation.model_fields)
    nested = {"deletion_risk_flags", "usage_trend", "usage_hour", "usage_minute"}
    assert set(ModelDeletionRiskInfo.model_fields) - nested <= set(RISK_SCHEMA.names())
    assert "run_id" in CategoryStatistics.model_fields
