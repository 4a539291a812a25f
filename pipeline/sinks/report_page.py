"""The report's HTML page (SPEC §9): plain tables and inline PNGs that read without any script, plus one small
inline script that adds a filter box to each table and sorts a column when its heading is clicked.

Nothing is fetched: the charts are ``data:`` URIs and a Content-Security-Policy allows only those images, the
inline style and exactly this script (by its hash), so even a name that escaped escaping could not run code.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import html
from typing import Any, Final

import polars as pl

from pipeline.steps.report import LONG_TAIL_SHARES, CategorySection, TableView

_STYLE: Final = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 2rem auto; max-width: 80rem; padding: 0 1rem; color: #222; }
h1 { font-size: 1.5rem; } h2 { margin-top: 2.5rem; border-bottom: 1px solid #ccc; } h3 { margin: 1.5rem 0 0.3rem; }
nav a { margin-right: 0.8rem; } p.note { color: #555; margin: 0.2rem 0 0.6rem; }
.scroll { width: fit-content; max-width: 100%; max-height: 32rem; overflow: auto; border: 1px solid #ddd;
  margin: 0.3rem 0 1rem; }
td.long { min-width: 16rem; } td.d { white-space: nowrap; }
table { border-collapse: collapse; } td, th { padding: 0.15rem 0.6rem; text-align: left; vertical-align: top; }
thead th { position: sticky; top: 0; background: #f4f4f4; border-bottom: 1px solid #999; vertical-align: bottom; }
tbody tr:nth-child(even) { background: #fafafa; } td.n { text-align: right; font-variant-numeric: tabular-nums; }
td.up { color: #1a7f37; } td.down { color: #b42318; } td.none { color: #999; }
th[aria-sort] { cursor: pointer; } th[aria-sort="ascending"]::after { content: " \\25B2"; }
th[aria-sort="descending"]::after { content: " \\25BC"; }
input.filter { margin: 0.3rem 0.6rem 0 0; padding: 0.2rem 0.4rem; width: 18rem; } span.count { color: #555; }
.charts { display: grid; grid-template-columns: repeat(auto-fill, minmax(30rem, 1fr)); gap: 0.5rem 1.5rem; }
img { max-width: 100%; display: block; margin: 0.5rem 0 1rem; }
"""

# Progressive enhancement: without it the tables read as they are. A filter box (on tables of ten rows or more)
# hides the rows that do not contain every typed word; a click (or Enter) on a heading sorts by that column,
# numbers by their data-v value, empty cells last in either direction.
_SCRIPT: Final = """
(function () {
  "use strict";
  function key(cell) {
    var value = cell.getAttribute("data-v");
    if (value !== null) { return value === "" ? null : parseFloat(value); }
    var text = cell.textContent.trim().toLowerCase();
    return text === "" || text === "\\u2014" ? null : text;
  }
  function compare(a, b) {
    if (a === null || b === null) { return (a === null) - (b === null); }
    return a < b ? -1 : (a > b ? 1 : 0);
  }
  function addFilter(table, rows) {
    var box = document.createElement("input");
    var count = document.createElement("span");
    box.type = "search";
    box.className = "filter";
    box.placeholder = "Filter " + rows.length + " rows";
    box.setAttribute("aria-label", "Filter the rows of " + (table.getAttribute("aria-label") || "this table"));
    count.className = "count";
    table.parentNode.parentNode.insertBefore(box, table.parentNode);
    table.parentNode.parentNode.insertBefore(count, table.parentNode);
    box.addEventListener("input", function () {
      var words = box.value.toLowerCase().split(/\\s+/).filter(Boolean);
      var shown = 0;
      rows.forEach(function (row) {
        var text = row.textContent.toLowerCase();
        row.hidden = !words.every(function (word) { return text.indexOf(word) >= 0; });
        shown += row.hidden ? 0 : 1;
      });
      count.textContent = words.length ? shown + " of " + rows.length + " rows" : "";
    });
  }
  Array.prototype.forEach.call(document.querySelectorAll("table.data"), function (table) {
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    var heads = Array.prototype.slice.call(table.tHead.rows[0].cells);
    if (rows.length >= 10) { addFilter(table, rows); }
    heads.forEach(function (head, index) {
      head.tabIndex = 0;
      head.setAttribute("aria-sort", "none");
      head.title = "Sort by " + head.textContent;
      function sort() {
        var direction = head.getAttribute("aria-sort") === "ascending" ? -1 : 1;
        heads.forEach(function (other) { other.setAttribute("aria-sort", "none"); });
        head.setAttribute("aria-sort", direction === 1 ? "ascending" : "descending");
        rows.slice().sort(function (a, b) {
          var x = key(a.cells[index]), y = key(b.cells[index]);
          return x === null || y === null ? compare(x, y) : direction * compare(x, y);
        }).forEach(function (row) { body.appendChild(row); });
      }
      head.addEventListener("click", sort);
      head.addEventListener("keydown", function (event) { if (event.key === "Enter") { sort(); } });
    });
  });
})();
"""
_SCRIPT_HASH: Final = base64.b64encode(hashlib.sha256(_SCRIPT.encode()).digest()).decode()
_POLICY: Final = f"default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'sha256-{_SCRIPT_HASH}'"

#: Column headings in words where the column name is not already plain.
_HEADINGS: Final = {
    "risk_score": "risk score",
    "is_critical": "critical",
    "worker_count": "workers",
    "usage_month": "usage (month)",
    "usage_month_week_before": "a week before",
    "usage_month_change": "change",
    "days_without_workers": "days w/o workers",
    "at_risk_since": "at risk since",
}
#: Columns whose numbers are changes: shown signed and coloured.
_SIGNED: Final = frozenset({"usage_month_change"})


def _cell(value: Any, column: str) -> str:
    if value is None:
        return '<td class="none">\u2014</td>'
    if isinstance(value, bool):
        return f"<td>{'yes' if value else 'no'}</td>"
    if isinstance(value, int | float):
        shown = f"{value:,.2f}".rstrip("0").rstrip(".") if isinstance(value, float) else f"{value:,}"
        css = "n"
        if column in _SIGNED:
            shown = ("+" if value > 0 else "\u2212" if value < 0 else "") + shown.lstrip("-")
            css += " up" if value > 0 else " down" if value < 0 else ""
        return f'<td class="{css}" data-v="{value}">{shown}</td>'
    if isinstance(value, dt.date | dt.datetime):
        return f'<td class="d">{value.isoformat()}</td>'
    text = str(value)
    css = ' class="long"' if len(text) > 40 else ""  # wide enough to read as lines, not a column of words
    return f"<td{css}>{html.escape(text)}</td>"


def data_table(frame: pl.DataFrame, label: str) -> str:
    """``frame`` as a sortable, filterable table (a plain one without the script), in a scrolling box."""
    head = "".join(
        f"<th>{html.escape(_HEADINGS.get(column, column.replace('_', ' ')))}</th>" for column in frame.columns
    )
    rows = "\n".join(
        "<tr>" + "".join(_cell(value, column) for value, column in zip(row, frame.columns, strict=True)) + "</tr>"
        for row in frame.iter_rows()
    )
    return (
        f'<div class="scroll"><table class="data" aria-label="{html.escape(label)}"><thead><tr>{head}</tr></thead>'
        f"<tbody>\n{rows}\n</tbody></table></div>"
    )


def _base64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _facts(facts: dict[str, int]) -> str:
    rows = "".join(
        f'<tr><td>{html.escape(name)}</td><td class="n">{count:,}</td></tr>' for name, count in facts.items()
    )
    return f"<table><tbody>{rows}</tbody></table>"


def _view(view: TableView, category: str) -> str:
    title = html.escape(view.title)
    note = f'<p class="note">{html.escape(view.note)}</p>'
    if not view.rows.columns:
        return f"<h3>{title}</h3>{note}"
    return f"<h3>{title}</h3>{note}" + data_table(view.rows, f"{view.title}, {category}")


def _section(section: CategorySection, pngs: dict[str, bytes]) -> str:
    category = html.escape(section.category)
    parts = [f'<h2 id="{category}">{category}</h2>']
    if section.facts:
        parts.append(_facts(section.facts))
    parts.extend(f'<p class="note">{html.escape(note)}</p>' for note in section.notes)
    changes = [view for view in section.tables if view.kind == "changes"]
    parts.extend(_view(view, section.category) for view in changes)
    for title, rows, total in (
        ("At-risk models", section.at_risk, section.facts.get("at risk")),
        ("At-risk families", section.at_risk_families, section.facts.get("families at risk")),
    ):
        if rows is not None:
            of = f" of {total:,}" if total is not None and total > rows.height else ""
            parts.append(
                f'<h3>{title}</h3><p class="note">{rows.height:,}{of} shown, highest risk first; the reasons are '
                "its risk flags in words (horde-analytics query --preset at_risk lists them all).</p>"
                + data_table(rows, f"{title}, {section.category}")
            )
    if section.charts:
        images = "".join(
            f'<img alt="{html.escape(chart.title)}" src="data:image/png;base64,{_base64(pngs[chart.key])}">'
            for chart in section.charts
        )
        parts.append(f'<h3>Charts</h3><div class="charts">{images}</div>')
    if section.long_tail is not None:
        shares = ", ".join(f"{share:.0%}" for share in LONG_TAIL_SHARES)
        parts.append(
            f'<h3>Usage long tail</h3><p class="note">How few of the busiest models carry {shares} of this month\'s '
            "usage.</p>" + _facts(dict(section.long_tail.iter_rows()))
        )
    parts.extend(_view(view, section.category) for view in section.tables if view.kind != "changes")
    return "\n".join(parts)


def report_html(sections: list[CategorySection], pngs: dict[str, bytes], *, run_id: str, run_at: str) -> str:
    """The whole page: every chart inline as a data: URI, one inline script, no external resource."""
    body = "\n".join(_section(section, pngs) for section in sections)
    title = f"horde-analytics report, run {html.escape(run_id)}"
    links = " ".join(f'<a href="#{html.escape(s.category)}">{html.escape(s.category)}</a>' for s in sections)
    return (
        f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{_POLICY}">'
        f'<meta name="viewport" content="width=device-width, initial-scale=1"><title>{title}</title>'
        f"<style>{_STYLE}</style></head><body>\n<h1>{title}</h1><p>Snapshot taken {html.escape(run_at)}.</p>\n"
        f"<nav>{links}</nav>\n{body}\n<script>{_SCRIPT}</script>\n</body></html>\n"
    )
