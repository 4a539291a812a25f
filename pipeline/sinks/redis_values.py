"""A run's outputs as Redis values (SPEC §7.1), and their stored copy in the run's snapshot (SPEC §12).

Every value is built once, as the UTF-8 bytes Redis stores: redis-py sends bytes as they are (a ``str`` would be
encoded again, ~300 MB at 100x), and the stored copy holds the same bytes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

import polars as pl

from pipeline.contracts import keys
from pipeline.contracts.models import LastRun
from pipeline.contracts.settings import Settings
from pipeline.steps.audit import audit_json
from pipeline.steps.changes import changes_json
from pipeline.steps.deletion_risk_view import encoded_views

if TYPE_CHECKING:
    from pipeline.steps.outputs import RunOutputs

__all__ = [
    "STORED_SCHEMA",
    "RedisValues",
    "output_values",
    "restored_values",
    "run_values",
    "stored_values",
]

#: key -> (value, expiry seconds or None for no expiry): what one run writes to Redis.
RedisValues = dict[str, tuple[bytes, int | None]]
#: The stored copy: one row per key, the key without REDIS_KEY_PREFIX (a republish uses today's prefix).
STORED_SCHEMA: Final = pl.Schema({"key": pl.String(), "value": pl.Binary(), "expiry": pl.Int64()})


def _expiry(settings: Settings, ttl: int) -> int:
    # While hydration is enabled keys outlive their TTL so readers keep the last good data (SPEC §7.1).
    return settings.cache_hydration_stale_ttl_seconds if settings.cache_hydration_enabled else ttl


def output_values(outputs: RunOutputs, run_id: str, settings: Settings) -> RedisValues:
    """key -> (compact JSON, expiry seconds) for every object of a run."""
    prefix = settings.redis_key_prefix
    found: RedisValues = {}
    statistics_expiry = _expiry(settings, settings.statistics_cache_ttl)
    risk_expiry = _expiry(settings, settings.deletion_risk_cache_ttl)
    for (category, grouped), stats in outputs.statistics.items():
        found[keys.statistics_key(prefix, category, grouped)] = (stats.model_dump_json().encode(), statistics_expiry)
    # Each table's rows are encoded once, for all its views (SPEC §5: image grouped = ungrouped)
    for (category, grouped, variations), value in encoded_views(outputs.deletion_risk).items():
        found[keys.deletion_risk_key(prefix, category, grouped, variations)] = (value, risk_expiry)
    for (table, category), findings in outputs.tables.items():
        if table == "audit":  # SPEC §11; expires like the statistics it sits beside
            found[keys.audit_key(prefix, category)] = (
                audit_json(findings, category=category, run_id=run_id),
                statistics_expiry,
            )
    for (table, category), frame in outputs.tables.items():
        if table == "changes":  # SPEC §10: the latest run's changes, in the same transaction
            found[keys.changes_key(prefix, category)] = (
                changes_json(frame, category=category, run_id=run_id).encode(),
                risk_expiry,
            )
    return found


def run_values(outputs: RunOutputs, last_run: LastRun, settings: Settings) -> RedisValues:
    """Everything a run writes to Redis: ``output_values`` plus ``last_run`` (which never expires).

    The one place a run's outputs become Redis values: the run stores them in its snapshot before the commit,
    and both the publish and ``run --republish`` send exactly these.
    """
    found = output_values(outputs, last_run.run_id, settings)
    found[keys.last_run_key(settings.redis_key_prefix)] = (last_run.model_dump_json().encode(), None)
    return found


def stored_values(values: RedisValues, prefix: str) -> pl.DataFrame:
    """``values`` as a snapshot artifact (``STORED_SCHEMA``): keys without the prefix."""
    head = prefix + ":"
    assert all(key.startswith(head) for key in values), "a run value outside REDIS_KEY_PREFIX"
    return pl.DataFrame(
        {
            "key": [key[len(head) :] for key in values],
            "value": [value for value, _ in values.values()],
            "expiry": [expiry for _, expiry in values.values()],
        },
        schema=STORED_SCHEMA,
    )


def restored_values(stored: pl.DataFrame | dict[str, Any], prefix: str) -> RedisValues:
    """The values of a stored artifact under ``prefix``: a ``stored_values`` frame, or the JSON document runs
    stored before it (``{"run_id", "keys": {key: [value, expiry]}}``), so those can still be republished."""
    if isinstance(stored, dict):
        return {f"{prefix}:{key}": (value.encode(), expiry) for key, (value, expiry) in stored["keys"].items()}
    return {f"{prefix}:{key}": (value, expiry) for key, value, expiry in stored.select(STORED_SCHEMA.names()).rows()}
