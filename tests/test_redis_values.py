"""A run's Redis values (SPEC §7.1): built once, as bytes, exactly as the Pydantic models and ``json`` write them;
stored with the run and restored byte for byte; published in one MULTI/EXEC (SPEC §12)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import polars as pl
import pytest
import redis

from pipeline.contracts import keys
from pipeline.contracts.models import CategoryChanges, CategoryDeletionRiskResponse, CategoryStatistics, LastRun
from pipeline.contracts.rules import AnalysisRules
from pipeline.contracts.schemas import AUDIT_SCHEMA
from pipeline.contracts.settings import load_settings
from pipeline.shell.reference_records import load_records
from pipeline.sinks.parquet_snapshot import SnapshotWriter, read_artifact
from pipeline.sinks.redis_publisher import RedisPublisher
from pipeline.sinks.redis_values import restored_values, run_values, stored_values
from pipeline.sinks.uncommitted import sweep_uncommitted
from pipeline.sources.horde import load_horde
from pipeline.steps.audit import audit_json
from pipeline.steps.deletion_risk_view import encoded_views
from pipeline.steps.history import with_history
from pipeline.steps.outputs import RunOutputs, run_outputs

RUN_AT = dt.datetime(2026, 2, 2, 6, tzinfo=dt.UTC)
#: Strings JSON must escape, or must not: quotes, backslashes, control characters, separators, non-ASCII.
HOSTILE = [
    'a"b',
    "back\\slash",
    "tab\tnew\nline\r",
    "nul\x00bell\x07esc\x1b del\x7f",
    "comma, [bracket]",
    "Ünï 中文 😀",
    "\u2028\u2029",
]


@pytest.fixture(scope="module")
def real_outputs(shared_data: Path) -> RunOutputs:
    """A real run's outputs with a previous state (history fields and changes filled), run id ``r2``."""
    loaded = load_records(str(shared_data / "model_reference"))
    horde, _ = load_horde(str(shared_data / "horde"))
    first = with_history(run_outputs(loaded, horde, AnalysisRules(), computed_at=1, run_id="r1"), {}, RUN_AT)
    previous = {category: frame for (table, category), frame in first.tables.items() if table == "model_state"}
    second = run_outputs(loaded, horde, AnalysisRules(), computed_at=2, run_id="r2")
    return with_history(second, previous, RUN_AT + dt.timedelta(days=1))


def _values(outputs: RunOutputs) -> dict[str, tuple[bytes, int | None]]:
    last = LastRun(run_id="r2", started_at=1.0, finished_at=2.0, input_hashes={"records:x": "h"}, counts={"a": 1})
    return run_values(outputs, last, load_settings())


def test_every_value_is_exactly_what_its_model_writes(real_outputs: RunOutputs) -> None:
    """Each value is bytes and equals the Pydantic model's own compact JSON of itself, byte for byte: the risk
    views (built from shared row parts), statistics, changes and last_run."""
    values = _values(real_outputs)
    models: dict[str, Any] = {
        ":deletion_risk:": CategoryDeletionRiskResponse,
        ":stats:": CategoryStatistics,
        ":analytics:changes:": CategoryChanges,
        ":analytics:last_run": LastRun,
    }
    checked = 0
    for key, (value, _) in values.items():
        assert isinstance(value, bytes), key
        model = next((model for part, model in models.items() if part in key), None)
        if model is not None:
            assert model.model_validate_json(value).model_dump_json().encode() == value, key
            checked += 1
    assert checked == len(values) - len([key for key in values if ":analytics:audit:" in key])
    variations = json.loads(values[keys.deletion_risk_key("horde:model_ref", "text_generation", False, True)][0])
    assert variations["models"] and all(model["backend_variations"] for model in variations["models"])


def test_views_of_one_table_share_their_encoding(real_outputs: RunOutputs) -> None:
    """Image grouped and ungrouped are one table (SPEC §5): one value; the variations view differs from the
    plain one only in ``backend_variations``."""
    encoded = encoded_views(real_outputs.deletion_risk)
    assert encoded[("image_generation", False, False)] is encoded[("image_generation", True, False)]
    plain = json.loads(encoded[("text_generation", False, False)])
    variations = json.loads(encoded[("text_generation", False, True)])
    assert all(model["backend_variations"] is None for model in plain["models"])
    for model in variations["models"]:
        model["backend_variations"] = None
    assert variations == plain
    for key, view in real_outputs.deletion_risk.items():
        assert view.json().encode() == encoded[key]  # one path for a single view and for a run's views


def test_hostile_strings_encode_as_pydantic_and_json_write_them(real_outputs: RunOutputs) -> None:
    view = real_outputs.deletion_risk[("text_generation", False, True)]
    table = view.table.head(len(HOSTILE)).with_columns(pl.Series("name", HOSTILE), pl.Series("baseline", HOSTILE))
    (value,) = encoded_views(
        {"view": type(view)(category="text_generation", table=table, with_variations=True)}
    ).values()
    assert CategoryDeletionRiskResponse.model_validate_json(value).model_dump_json().encode() == value
    assert [model["name"] for model in json.loads(value)["models"]] == HOSTILE

    findings = pl.DataFrame(
        {name: HOSTILE if dtype == pl.String() else None for name, dtype in AUDIT_SCHEMA.items()}, schema=AUDIT_SCHEMA
    ).with_columns(pl.lit("error").alias("severity"), pl.lit(None, pl.String).alias("expected"))
    for frame in (findings, findings.clear()):
        document = {
            "category": "text_generation",
            "run_id": "r",
            "counts": {"error": frame.height, "warning": 0, "info": 0},
            "findings": frame.select(AUDIT_SCHEMA.names()[1:]).to_dicts(),
        }
        expected = json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode()
        assert audit_json(frame, category="text_generation", run_id="r") == expected


def test_stored_values_come_back_byte_for_byte(real_outputs: RunOutputs, tmp_path: Path) -> None:
    """The snapshot's copy of the values (compressed Arrow IPC) restores the same bytes, under today's prefix;
    a JSON copy written by earlier runs restores too, and the sweep keeps both kinds of a committed run."""
    values = _values(real_outputs)
    writer = SnapshotWriter(root=tmp_path, run_id="20260203T060000Z-abc", run_at=RUN_AT)
    key = writer.write_artifact("redis", stored_values(values, "horde:model_ref"))
    assert key == "_redis/20260203T060000Z-abc.arrow"
    assert (tmp_path / key).stat().st_size * 10 < sum(len(value) for value, _ in values.values())  # compressed
    manifest_key = writer.commit(input_hashes={}, counts={})
    manifest = json.loads((tmp_path / manifest_key).read_text())
    stored = read_artifact(tmp_path, manifest, "redis")
    assert isinstance(stored, pl.DataFrame)
    assert restored_values(stored, "horde:model_ref") == values
    renamed = restored_values(stored, "other")
    assert {key.replace("other:", "horde:model_ref:", 1): value for key, value in renamed.items()} == values

    legacy = {"run_id": "old", "keys": {key.split(":", 2)[2]: [v.decode(), e] for key, (v, e) in values.items()}}
    (tmp_path / "_redis" / "20260202T060000Z-old.json").write_text(json.dumps(legacy))
    old = {"run_id": "20260202T060000Z-old", "artifacts": {"redis": "_redis/20260202T060000Z-old.json"}}
    document = read_artifact(tmp_path, old, "redis")
    assert isinstance(document, dict) and restored_values(document, "horde:model_ref") == values
    (tmp_path / "_redis" / "20260204T060000Z-orphan.arrow").write_bytes(b"no manifest")
    assert sweep_uncommitted(tmp_path) == ["_redis/20260202T060000Z-old.json", "_redis/20260204T060000Z-orphan.arrow"]
    assert (tmp_path / key).exists()
    with pytest.raises(ValueError, match="expected one of"):
        read_artifact(tmp_path, {"run_id": "x", "artifacts": {"redis": "../elsewhere.arrow"}}, "redis")


def test_a_publish_is_one_multi_exec_of_every_value(
    real_outputs: RunOutputs, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every key of a run goes out in one MULTI/EXEC (counted by the server), stored as the bytes built."""
    monkeypatch.setenv("REDIS_URL", redis_url)
    settings = load_settings()
    publisher = RedisPublisher.from_settings(settings)
    last = LastRun(run_id="r2", started_at=1.0, finished_at=2.0, input_hashes={}, counts={})
    values = run_values(real_outputs, last, settings)
    client = redis.Redis.from_url(redis_url)
    with publisher.run_lock() as fence:
        assert fence is not None
        client.config_resetstat()
        publisher.publish(values, fence)
        stats = client.info("commandstats")
    assert stats["cmdstat_multi"]["calls"] == 1 and stats["cmdstat_exec"]["calls"] == 1
    assert stats["cmdstat_set"]["calls"] == len(values)
    assert {key: client.get(key) for key in values} == {key: value for key, (value, _) in values.items()}
