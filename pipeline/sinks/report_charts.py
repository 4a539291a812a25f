"""The report's charts as PNGs (matplotlib, from the ``report`` extra; imported only when a report is drawn).

Made to be read at a glance: bars in the order the chart gives (biggest first, or size order for buckets) with
their value at the end, full labels up to 60 characters with the figure widened to fit them rather than clipped,
thousands separators, and no frame lines that carry nothing.
"""

from __future__ import annotations

import io
import warnings

from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from pipeline.steps.report import Chart
from pipeline.steps.report_history import LineChart

_BAR_COLOUR = "#4a7ab0"
_LABEL_CHARACTERS = 60
_THOUSANDS = FuncFormatter(lambda value, _: f"{value:,.0f}")


def _plain(text: str) -> str:
    """``text`` as matplotlib should draw it: "$" would start mathtext (and "$$" crashes it), control characters
    draw as boxes, and a label is cut at 60 characters."""
    printable = "".join(char if char.isprintable() else " " for char in text[:_LABEL_CHARACTERS])
    return printable.replace("$", r"\$")


def _bars(chart: Chart) -> Figure:
    labels = [_plain(label) for label in chart.labels]
    longest = max((len(label) for label in labels), default=0)
    # room for the longest label at ~0.075 in. per character at 8 pt, beside a 6 in. plot
    figure = Figure(figsize=(6 + 0.075 * longest, 1.0 + 0.27 * max(len(labels), 1)), dpi=100, layout="constrained")
    axes = figure.subplots()
    positions = range(len(chart.values))
    bars = axes.barh(positions, chart.values, color=_BAR_COLOUR)
    axes.set_yticks(positions, labels, fontsize=8)
    axes.invert_yaxis()  # the chart's first bar on top
    axes.bar_label(bars, labels=[f"{value:,.0f}" for value in chart.values], padding=3, fontsize=7)
    axes.xaxis.set_major_formatter(_THOUSANDS)
    axes.margins(x=0.12)  # room for the value labels
    axes.spines[["top", "right"]].set_visible(False)
    axes.set_title(_plain(chart.title), loc="left", fontsize=11)
    return figure


def _lines(chart: LineChart) -> Figure:
    figure = Figure(figsize=(8, 3.2 + 0.22 * len(chart.series)), dpi=100, layout="constrained")
    axes = figure.subplots()
    positions = list(range(len(chart.days)))
    for name, values in chart.series:
        axes.plot(
            positions, [float("nan") if value is None else value for value in values], marker=".", label=_plain(name)
        )
    step = max(1, len(positions) // 8)  # at most ~8 date labels
    axes.set_xticks(positions[::step], [day[5:] for day in chart.days[::step]], fontsize=8)
    axes.set_xlabel(f"day ({chart.days[0][:4]}, UTC)" if chart.days else "day", fontsize=8)
    axes.set_ylabel("usage in the past month", fontsize=8)
    axes.yaxis.set_major_formatter(_THOUSANDS)
    axes.set_ylim(bottom=0)
    axes.spines[["top", "right"]].set_visible(False)
    axes.set_title(_plain(chart.title), loc="left", fontsize=11)
    figure.legend(loc="outside lower center", ncols=2, fontsize=7, frameon=False)
    return figure


def chart_png(chart: Chart | LineChart) -> bytes:
    """``chart`` drawn as PNG bytes."""
    figure = _lines(chart) if isinstance(chart, LineChart) else _bars(chart)
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        # a model name in a script the bundled font lacks draws as boxes; the page's tables spell it in full
        warnings.filterwarnings("ignore", message="Glyph .* missing from font")
        figure.savefig(buffer, format="png")
    return buffer.getvalue()
