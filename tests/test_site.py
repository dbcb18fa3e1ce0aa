"""The book (`make book`): built from the notebooks that nbval executed in this session (conftest.py;
run alone, this file executes them with papermill),
then opened from disk (file://) in headless Chromium: no console errors and no network requests,
math rendered, links resolve, and the precomputed slider panels swap picture and numbers."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest
from test_browser import browser  # noqa: F401  (the Chromium fixture, skipped only without Chromium)
from test_notebooks import executed

from jointlab.book import build
from jointlab.notebooks import sequence

SLIDER_PAGES = ["01_pixel_attacks", "03_spatial_attack", "04_joint_attack"]


@pytest.fixture(scope="module")
def site(quick_runs, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("executed")
    for nb in sequence():
        shutil.copy(executed(nb.name[:2], quick_runs), folder / nb.name)
    return build(folder, tmp_path_factory.mktemp("book")).parent


def test_book_has_every_page(site):
    names = {p.stem for p in site.glob("*.html")}
    assert {"index", "explorer", "results"} | {nb.stem for nb in sequence()} <= names
    assert (site / "_static" / "mathjax" / "tex-svg-full.js").exists()
    for name in SLIDER_PAGES:  # each slider panel left its kernel-free copy in the page
        assert "jl-static-panel" in (site / f"{name}.html").read_text(), name


def local_links(page) -> list[str]:
    return page.evaluate("""() => Array.from(document.querySelectorAll('a[href]'))
        .map(a => a.href).filter(h => h.startsWith('file:'))""")


def test_book_in_a_browser_offline(browser, site, tmp_path):  # noqa: F811
    page = browser.new_page(viewport={"width": 1300, "height": 1000})
    problems: list[str] = []
    page.on("console", lambda m: m.type == "error" and problems.append(f"console error: {m.text}"))
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on("request", lambda r: None if r.url.startswith(("file:", "data:", "blob:"))
            else problems.append(f"network request: {r.url}"))
    try:
        pages = [p for p in sorted(site.glob("*.html")) if p.stem not in ("search", "genindex")]
        for path in pages:
            page.goto(path.as_uri())
            page.wait_for_load_state("load")
            # MathJax replaces the text of every math element with a rendered container
            page.wait_for_function("""() => Array.from(document.querySelectorAll('.math'))
                .every(m => m.querySelector('mjx-container'))""", timeout=60_000)
            # the text a reader sees, outside code and rendered math
            text = page.evaluate("""() => { const out = [], skip = 'pre, code, script, style, mjx-container';
                const w = document.createTreeWalker(document.querySelector('div.body'), NodeFilter.SHOW_TEXT);
                while (w.nextNode())
                    if (!w.currentNode.parentElement.closest(skip)) out.push(w.currentNode.data);
                return out.join(' '); }""")
            assert not re.search(r"\$|\\\(|\\\[", text), f"raw math left in {path.name}"
            for link in local_links(page):
                target = Path(unquote(urlparse(link).path))
                assert target.exists(), f"{path.name} links to a missing {target}"
        page.goto((site / "index.html").as_uri())
        assert page.locator("mjx-container").count() >= 8  # the paper map's equations
        page.screenshot(path=tmp_path / "book-index.png", full_page=True)

        # a reader follows the table of contents to the joint attack and moves a static slider
        page.locator('.toctree-wrapper a[href="04_joint_attack.html"]').first.click()
        page.wait_for_url("**/04_joint_attack.html")
        panel = page.locator(".jl-static-panel").last
        panel.scroll_into_view_if_needed()
        image, numbers = panel.locator(".jl-static-image"), panel.locator(".jl-static-text")
        before = image.get_attribute("src"), numbers.inner_text()
        panel.screenshot(path=tmp_path / "book-panel-before.png")
        slider = panel.locator(".jl-static-slider").first
        slider.focus()
        for _ in range(3):
            page.keyboard.press("ArrowRight")
        after = image.get_attribute("src"), numbers.inner_text()
        assert after[0] != before[0] and after[1] != before[1]
        assert after[1].startswith("accuracy ")
        page.wait_for_timeout(200)
        panel.screenshot(path=tmp_path / "book-panel-after.png")
        assert not problems, problems
    finally:
        page.close()
    print(f"screenshots: {tmp_path}")
