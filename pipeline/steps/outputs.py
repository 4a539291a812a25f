"""Composes the pure steps: a run's inputs -> every table and model it publishes."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import polars as pl

from pipeline.contracts.categories import policy
from pipeline.contracts.models import CategoryStatistics
from pipeline.contracts.rules import AnalysisRules
from pipeline.contracts.schemas import MERGED_SCHEMA, RISK_SCHEMA, HordeFrames, LoadedCategory, conformed
from pipeline.steps.audit import audit_table, reference_findings
from pipeline.steps.collect_engine import ENGINE
from pipeline.steps.deletion_risk import deletion_risk_table
from pipeline.steps.deletion_risk_view import DeletionRiskView, deletion_risk_response
from pipeline.steps.merge import merged_models
from pipeline.steps.names.families import (
    families,
    family_records,
    parameter_count,
    parsed_records,
    text_names,
    with_family_ids,
)
from pipeline.steps.statistics import StatisticsTables, category_statistics, statistics_tables, stored_statistics

#: (category, grouped) and (category, grouped, variations): the keys of a run's published objects.
StatisticsKey = tuple[str, bool]
RiskKey = tuple[str, bool, bool]


@dataclass
class RunOutputs:
    """Everything one run computed: published models and snapshot tables."""

    statistics: dict[StatisticsKey, CategoryStatistics] = field(default_factory=dict)
    deletion_risk: dict[RiskKey, DeletionRiskView] = field(default_factory=dict)
    tables: dict[tuple[str, str], pl.DataFrame] = field(default_factory=dict)
    #: the counts behind each statistics object (``StatisticsTables.counts``): a run stores them, so the next one
    #: can read its statistics back with unchanged records (SPEC §9)
    statistics_counts: dict[StatisticsKey, dict[str, int]] = field(default_factory=dict)


def _stats_rows(tables: StatisticsTables, grouped: bool) -> dict[str, pl.DataFrame]:
    flag = pl.lit(grouped).alias("grouped")
    return {name: frame.with_columns(flag) for name, frame in tables.frames().items()}


def _add_tables(outputs: RunOutputs, category: str, per_variant: list[dict[str, pl.DataFrame]]) -> None:
    for name in per_variant[0]:
        outputs.tables[(name, category)] = pl.concat([variant[name] for variant in per_variant])


def run_outputs(
    loaded: Mapping[str, LoadedCategory],
    horde: Mapping[str, HordeFrames] | None,
    rules: AnalysisRules,
    computed_at: int,
    run_id: str | None = None,
) -> RunOutputs:
    """Statistics for every category, deletion risk where Horde data exists, and every snapshot table."""
    outputs = RunOutputs()
    audited: dict[str, pl.LazyFrame] = {}  # per category, the frame the reference audit reads (SPEC §11)
    for category, item in loaded.items():
        records = item.records
        outputs.tables[("records", category)] = records
        category_rules = policy(category)
        # parsed names, families, parameter buckets, the grouped and the variations views (CategoryPolicy)
        has_families = category_rules.has_families
        # With unchanged records, code and rules, the tables derived from the records alone are the previous
        # run's (SPEC §9): read back with the records, never computed twice.
        if has_families:
            # Every text name is parsed once; every table below reads these collected frames.
            names = item.names if item.names is not None else text_names(records.lazy()).collect(engine=ENGINE)
            parsed = parsed_records(records, names).lazy().with_columns(parameter_count().alias("parameter_count"))
            # Family ids once, for the families table, the family rows and the grouped risk view; in one chunk per
            # column, as every table below gathers these rows (across chunks, 0.1 s more at 100x).
            named = (
                with_family_ids(parsed, group_by_variant=rules.group_by_variant).collect(engine=ENGINE).rechunk().lazy()
            )
            outputs.tables[("names", category)] = names
            outputs.tables[("families", category)] = (
                item.families if item.families is not None else families(named, names.lazy()).collect(engine=ENGINE)
            )
        else:
            named = records.lazy().with_columns(pl.col("parameters").alias("parameter_count"))
        audited[category] = named
        stored = [
            stored_statistics(item.statistics, grouped=flag, with_parameter_buckets=has_families)
            for flag in (False, True)
            if item.statistics is not None
        ]
        if stored and stored[0] is not None and stored[1] is not None:
            ungrouped, grouped = stored[0], stored[1]
        else:
            ungrouped = statistics_tables(
                named, top_tags_limit=rules.top_tags_limit, with_parameter_buckets=has_families
            )
            # grouping only changes text (SPEC §5)
            grouped = (
                statistics_tables(
                    family_records(named).collect(engine=ENGINE).lazy(),
                    top_tags_limit=rules.top_tags_limit,
                    with_parameter_buckets=True,
                )
                if has_families
                else ungrouped
            )
        for flag, tables in ((False, ungrouped), (True, grouped)):
            outputs.statistics[(category, flag)] = category_statistics(
                category, tables, computed_at=computed_at, grouped=flag, run_id=run_id
            )
            outputs.statistics_counts[(category, flag)] = tables.counts
        _add_tables(outputs, category, [_stats_rows(ungrouped, False), _stats_rows(grouped, True)])

        horde_type = category_rules.horde_type
        if horde is None or horde_type is None or horde_type not in horde:
            continue
        frames = horde[horde_type]
        merged, unmatched = merged_models(named.collect(engine=ENGINE), frames, category=category)
        outputs.tables[("merged", category)] = conformed(merged, MERGED_SCHEMA)
        outputs.tables[("unmatched", category)] = unmatched
        outputs.tables[("horde_status", category)] = frames.status
        outputs.tables[("horde_usage", category)] = frames.usage
        # Each table is computed once: the variations view differs from the plain one only in its JSON, and
        # grouping only changes text (SPEC §5, §6).
        plain = deletion_risk_table(merged, category=category, rules=rules.risk)
        by_family = (
            deletion_risk_table(merged, category=category, rules=rules.risk, grouped=True) if has_families else plain
        )
        views = [(False, False, plain), (True, False, by_family)] + ([(False, True, plain)] if has_families else [])
        for grouped_flag, variations, table in views:
            outputs.deletion_risk[(category, grouped_flag, variations)] = deletion_risk_response(
                table, category=category, with_variations=variations, run_id=run_id
            )
        outputs.tables[("deletion_risk", category)] = pl.concat(
            conformed(table.with_columns(pl.lit(flag).alias("grouped")), RISK_SCHEMA)
            for flag, table in ((False, plain), (True, by_family))
        )
    for category, item in loaded.items():
        found = (
            item.audit
            if item.audit is not None
            else reference_findings(
                category,
                audited[category],
                problems=item.problems,
                preferred_file_hosts=rules.risk.preferred_file_hosts,
            )
        )
        outputs.tables[("audit", category)] = audit_table(category, found, outputs.tables.get(("unmatched", category)))
    return outputs
