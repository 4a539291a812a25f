"""What the report shows (SPEC §9), computed from one snapshot's tables: its parts (charts, tables, one section per
category) and their limits. Pure: frames in, plain values and small frames out; ``sinks/report_files.py`` draws
and writes them.

The parts are built by ``report_bars`` (the bar charts and the sentences that stand in for sparse ones),
``report_tables`` (the at-risk, changes and audit tables) and ``report_sections`` (one section per category).
A column that older runs did not write (the history fields of §10, the ``changes`` and ``audit`` tables) is
simply not shown for them: the report of an old snapshot is smaller, never wrong.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

import polars as pl

from pipeline.steps.report_history import LineChart

#: The snapshot tables a report reads (``changes`` and ``audit`` only where the run wrote them).
REPORT_TABLES: Final = ("baselines", "buckets", "merged", "deletion_risk", "changes", "audit")
#: Shares of a month's usage the long-tail table answers for ("the busiest N models carry 90 % of it").
LONG_TAIL_SHARES: Final = (0.5, 0.9, 0.99)
#: Bars in a top-usage chart.
TOP_ROWS: Final = 25
#: Rows in one of the page's tables; the rest is a query away (the page says which).
TABLE_ROWS: Final = 300

#: (table, category) -> that table of one run.
Tables = Mapping[tuple[str, str], pl.DataFrame]


@dataclass(frozen=True)
class Chart:
    """One horizontal bar chart: a bar per label, in order."""

    key: str  # the PNG's file stem, unique within a report
    title: str
    labels: tuple[str, ...]
    values: tuple[float, ...]


@dataclass(frozen=True)
class TableView:
    """One table of the page: a heading, a sentence saying what it holds, and the rows (already cut)."""

    kind: str  # "changes" or "audit": where the page puts it
    title: str
    note: str
    rows: pl.DataFrame


@dataclass(frozen=True)
class CategorySection:
    """Everything the report shows for one category."""

    category: str
    facts: dict[str, int]
    charts: tuple[Chart | LineChart, ...]
    long_tail: pl.DataFrame | None
    at_risk: pl.DataFrame | None
    at_risk_families: pl.DataFrame | None
    #: sentences shown under the facts (distributions too sparse for a chart, what history is missing)
    notes: tuple[str, ...] = ()
    #: further tables, in page order: what changed since the last run, the audit summary and its top problems
    tables: tuple[TableView, ...] = field(default=())
