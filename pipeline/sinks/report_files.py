"""The report as files (SPEC §9): one PNG per chart and ``report.html``, which embeds them and opens without
network. Written into a fresh folder that replaces the previous report only when complete, and only where an
earlier report (or nothing) was."""

from __future__ import annotations

import base64
import html
import io
import json
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any

import polars as pl

from pipeline.report import LONG_TAIL_SHARES, CategorySection, Chart

_STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 2rem auto; max-width: 60rem; color: #222; }
h1 { font-size: 1.5rem; } h2 { margin-top: 2.5rem; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; margin: 0.5rem 0 1rem; } td, th { padding: 0.15rem 0.6rem; text-align: left; }
th { border-bottom: 1px solid #999; } td.n { text-align: right; font-variant-numeric: tabular-nums; }
img { max-width: 100%; display: block; margin: 0.5rem 0 1.5rem; }
"""


class ReportUnavailableError(RuntimeError):
    """The report cannot be drawn here (matplotlib, from the ``report`` extra, is missing)."""


def _plain(text: str) -> str:
    """``text`` as matplotlib should draw it: "$" would start mathtext (and "$$" crashes it), control characters
    draw as boxes, and a label is cut at 60 characters."""
    printable = "".join(char if char.isprintable() else " " for char in text[:60])
    return printable.replace("$", r"\$")


def _png(chart: Chart) -> bytes:
    try:
        from matplotlib.figure import Figure
    except ImportError as error:  # an optional extra: the batch job does not need it
        raise ReportUnavailableError(
            "the report needs matplotlib: pip install -e '.[report]' (or pip install 'horde-analytics[report]')"
        ) from error
    figure = Figure(figsize=(8, 1.2 + 0.28 * max(len(chart.labels), 1)), dpi=100)
    axes = figure.subplots()
    # top to bottom in the chart's order
    axes.barh(range(len(chart.values)), chart.values[::-1], color="#4a7ab0")
    axes.set_yticks(range(len(chart.labels)), [_plain(label) for label in chart.labels[::-1]], fontsize=8)
    axes.set_title(_plain(chart.title))
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        # a model name in a script the bundled font lacks draws as boxes; the page's tables spell it in full
        warnings.filterwarnings("ignore", message="Glyph .* missing from font")
        figure.tight_layout()
        figure.savefig(buffer, format="png")
    return buffer.getvalue()


def _cell(value: Any) -> str:
    numeric = isinstance(value, int | float) and not isinstance(value, bool)
    return f'<td class="n">{value:,}</td>' if numeric else f"<td>{html.escape(str(value))}</td>"


def _table(frame: pl.DataFrame) -> str:
    head = "".join(f"<th>{html.escape(column)}</th>" for column in frame.columns)
    rows = "".join("<tr>" + "".join(_cell(value) for value in row) + "</tr>" for row in frame.iter_rows())
    return f"<table><tr>{head}</tr>{rows}</table>"


def _section(section: CategorySection, pngs: dict[str, bytes]) -> str:
    parts = [f"<h2>{html.escape(section.category)}</h2>"]
    if section.facts:
        parts.append(_table(pl.DataFrame({"": list(section.facts), "count": list(section.facts.values())})))
    for chart in section.charts:
        encoded = base64.b64encode(pngs[chart.key]).decode()
        parts.append(f'<img alt="{html.escape(chart.title)}" src="data:image/png;base64,{encoded}">')
    if section.long_tail is not None:
        shares = ", ".join(f"{share:.0%}" for share in LONG_TAIL_SHARES)
        parts.append(
            f"<h3>Usage long tail</h3><p>How few of the busiest models carry {shares} of this month's usage.</p>"
        )
        parts.append(_table(section.long_tail))
    for title, rows in (("At-risk models", section.at_risk), ("At-risk families", section.at_risk_families)):
        if rows is not None:
            parts.append(f"<h3>{title} (highest risk first, {rows.height} shown)</h3>" + _table(rows))
    return "\n".join(parts)


def report_html(sections: list[CategorySection], pngs: dict[str, bytes], *, run_id: str, run_at: str) -> str:
    """The whole page: every chart inline as a data: URI, no script, no external resource."""
    body = "\n".join(_section(section, pngs) for section in sections)
    title = f"horde-analytics report, run {html.escape(run_id)}"
    return (
        f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>{title}</title>'
        f"<style>{_STYLE}</style></head><body>\n<h1>{title}</h1><p>Snapshot taken {html.escape(run_at)}.</p>\n"
        f"{body}\n</body></html>\n"
    )


#: Says "this folder holds a report written by horde-analytics" and lists its files: ``report --out`` replaces a
#: folder only when it holds this marker and nothing but the files the marker lists (SPEC §9).
REPORT_MARKER = ".horde-analytics-report"


class ReportFolderError(ValueError):
    """``--out`` names a folder that is neither empty nor an earlier report: nothing is written or deleted."""


def _refusal(out_dir: Path) -> str | None:
    """Why ``out_dir`` must not be replaced by a report, or None when it is absent, empty or an earlier report."""
    if not out_dir.exists() and not out_dir.is_symlink():
        return None
    if out_dir.is_symlink() or not out_dir.is_dir():
        return f"{out_dir} exists and is not a folder"
    present = {path.name for path in out_dir.iterdir()}
    if not present:
        return None
    marker = out_dir / REPORT_MARKER
    if not marker.is_file() or marker.is_symlink():
        return f"{out_dir} is not empty and holds no earlier report (no {REPORT_MARKER} file)"
    try:
        listed = set(json.loads(marker.read_text())["files"])
    except (OSError, ValueError, KeyError, TypeError):
        return f"{marker} cannot be read"
    unknown = sorted(present - listed - {REPORT_MARKER})
    if unknown:
        return f"{out_dir} holds an earlier report and files it did not write ({', '.join(unknown[:3])})"
    return None


def write_report(sections: list[CategorySection], out_dir: Path, *, run_id: str, run_at: str) -> Path:
    """Draw and write the report into ``out_dir``, replacing an earlier report there; returns the HTML file's path.

    ``out_dir`` must be absent, empty, or an earlier report (its marker lists every file in it); anything else
    raises ReportFolderError before a file is touched: the report never deletes what it did not write.
    """
    refusal = _refusal(out_dir)
    if refusal is not None:
        raise ReportFolderError(f"{refusal}; choose an empty folder or a new one for --out")
    pngs = {chart.key: _png(chart) for section in sections for chart in section.charts}
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}-", dir=out_dir.parent))
    try:
        staging.chmod(0o755)  # mkdtemp makes it private; a report is for reading
        for key, data in pngs.items():
            (staging / f"{key}.png").write_bytes(data)
        (staging / "report.html").write_text(report_html(sections, pngs, run_id=run_id, run_at=run_at))
        files = sorted(path.name for path in staging.iterdir())
        (staging / REPORT_MARKER).write_text(json.dumps({"run_id": run_id, "files": files}, indent=1) + "\n")
        if out_dir.exists():
            # a fresh private folder to retire the old report into: nothing of the user's can be in the way
            retired = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}-old-", dir=out_dir.parent))
            out_dir.rename(retired / out_dir.name)
            staging.rename(out_dir)
            shutil.rmtree(retired, ignore_errors=True)
        else:
            staging.rename(out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return out_dir / "report.html"
