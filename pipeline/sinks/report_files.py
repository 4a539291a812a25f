"""The report as files (SPEC §9): one PNG per chart and ``report.html``, which embeds them and opens without
network. Written into a fresh folder that replaces the previous report only when complete."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from pipeline.report import CategorySection, Chart
from pipeline.report_history import LineChart
from pipeline.sinks.report_page import report_html

__all__ = ["ReportUnavailableError", "report_html", "write_report"]


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


def write_report(sections: list[CategorySection], out_dir: Path, *, run_id: str, run_at: str) -> Path:
    """Draw and write the report into ``out_dir`` (replacing what was there); returns the HTML file's path."""
    pngs = {chart.key: _png(chart) for section in sections for chart in section.charts}
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}-", dir=out_dir.parent))
    try:
        staging.chmod(0o755)  # mkdtemp makes it private; a report is for reading
        for key, data in pngs.items():
            (staging / f"{key}.png").write_bytes(data)
        (staging / "report.html").write_text(report_html(sections, pngs, run_id=run_id, run_at=run_at))
        if out_dir.exists():
            retired = out_dir.with_name(f".{out_dir.name}-old")
            shutil.rmtree(retired, ignore_errors=True)
            out_dir.rename(retired)
            staging.rename(out_dir)
            shutil.rmtree(retired, ignore_errors=True)
        else:
            staging.rename(out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return out_dir / "report.html"
