"""The report as files (SPEC §9): one PNG per chart and ``report.html``, which embeds them and opens without
network. Written into a fresh folder that replaces the previous report only when complete, and only where an
earlier report (or nothing) was."""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

from pipeline.sinks.report_page import report_html
from pipeline.steps.report import CategorySection, Chart
from pipeline.steps.report_history import LineChart

__all__ = ["REPORT_MARKER", "ReportFolderError", "ReportUnavailableError", "report_html", "write_report"]


class ReportUnavailableError(RuntimeError):
    """The report cannot be drawn here (matplotlib, from the ``report`` extra, is missing)."""


def _png(chart: Chart | LineChart) -> bytes:
    try:
        import matplotlib.figure  # noqa: F401  (an optional extra: the batch job does not need it)
    except ImportError as error:
        raise ReportUnavailableError(
            "the report needs matplotlib: pip install -e '.[report]' (or pip install 'horde-analytics[report]')"
        ) from error
    from pipeline.sinks.report_charts import chart_png

    return chart_png(chart)


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
