"""The report in a real browser (SPEC §9): Debian's Chromium, headless, driven by Playwright's Python package.

Playwright never downloads a browser here (no ``playwright install``): it launches the system Chromium. Without
Chromium or Playwright the tests skip, loudly, and fail under HORDE_ANALYTICS_STRICT (CI).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from jobs.__main__ import main
from tests.conftest import skip_or_fail

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
#: Chromium without a GPU, a sandbox (containers) or any call home.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        skip_or_fail("chromium not found on PATH (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        skip_or_fail("the playwright package is missing (pip install -e '.[test]')")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def report_page(capsys: pytest.CaptureFixture[str]) -> Path:
    """The report of one run over the sample data."""
    assert main(["run"]) == 0
    capsys.readouterr()
    assert main(["report"]) == 0
    return Path(capsys.readouterr().out.strip())


def _visible_cells(page: Any, table: str, column: int) -> list[str]:
    return page.eval_on_selector_all(
        f'table[aria-label="{table}"] tbody tr:not([hidden])',
        f"rows => rows.map(row => row.cells[{column}].textContent)",
    )


def test_report_in_chromium_filters_and_sorts_without_errors(browser: Any, report_page: Path, tmp_path: Path) -> None:
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    problems: list[str] = []
    page.on("console", lambda message: problems.append(message.text) if message.type in {"error", "warning"} else None)
    page.on("pageerror", lambda error: problems.append(str(error)))
    fetched: list[str] = []
    page.on("request", lambda request: fetched.append(request.url))
    page.goto(report_page.as_uri())

    screenshot = tmp_path / "report.png"
    page.screenshot(path=str(screenshot), full_page=True)
    assert screenshot.read_bytes().startswith(PNG_SIGNATURE)
    # every chart decoded (a blocked or broken image has no natural width), and nothing left the file
    widths = page.eval_on_selector_all("img", "images => images.map(image => image.naturalWidth)")
    assert widths and all(width > 0 for width in widths)
    assert [url for url in fetched if not url.startswith(("file:", "data:"))] == []

    table = "At-risk models, image_generation"  # the sample's table of ten rows or more: it gets a filter box
    rows = page.locator(f'table[aria-label="{table}"] tbody tr')
    texts = [text.lower() for text in rows.all_inner_texts()]
    names = _visible_cells(page, table, 0)
    assert len(names) == len(texts) >= 10
    # the filter: typing a name keeps exactly the rows that contain it and says how many are shown
    target = next(name for name in names if sum(name.lower() in text for text in texts) < len(texts))
    box = page.get_by_label(f"Filter the rows of {table}")
    box.fill(target)
    shown = _visible_cells(page, table, 0)
    expected = [name for name, text in zip(names, texts, strict=True) if target.lower() in text]
    assert target in shown and shown == expected and len(shown) < len(names)
    assert box.locator("xpath=following-sibling::span[1]").inner_text() == f"{len(shown)} of {len(names)} rows"
    box.fill("")
    assert _visible_cells(page, table, 0) == names

    # sorting: a click on a numeric heading orders by number ascending, a second click descending
    heading = page.locator(f'table[aria-label="{table}"] thead th', has_text="usage (month)")
    column = page.eval_on_selector_all(
        f'table[aria-label="{table}"] thead th', "heads => heads.map(h => h.textContent)"
    )
    index = column.index("usage (month)")
    heading.click()
    assert heading.get_attribute("aria-sort") == "ascending"
    ascending = [int(value.replace(",", "")) for value in _visible_cells(page, table, index)]
    assert ascending == sorted(ascending) and len(ascending) == len(names)
    heading.click()
    descending = [int(value.replace(",", "")) for value in _visible_cells(page, table, index)]
    assert descending == sorted(ascending, reverse=True)
    assert problems == []
    page.close()


def test_report_reads_without_its_script(browser: Any, report_page: Path) -> None:
    context = browser.new_context(java_script_enabled=False)
    page = context.new_page()
    page.goto(report_page.as_uri())
    # the plain tables are all there, every row shown; only the filter boxes (added by the script) are absent
    rows = page.locator('table[aria-label="At-risk models, text_generation"] tbody tr')
    assert rows.count() > 2 and rows.first.is_visible()
    assert page.locator("input.filter").count() == 0
    assert page.locator("h2#text_generation").is_visible()
    context.close()
