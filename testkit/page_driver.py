"""Driving the drawing page in headless Debian Chromium, for browser tests and benchmarks.

Uses the system's /usr/bin/chromium through Playwright (never ``playwright
install``), and draws the digits of testkit/drawings.py with real mouse moves,
so the page's pointer-event code is what turns them into a PNG.
"""
from __future__ import annotations

from pathlib import Path

from testkit.drawings import STROKES

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
CANVAS = 280   # the coordinate space STROKES are written in


def launch(playwright):
    return playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)


def open_page(browser, url: str, width: int = 1100, height: int = 820):
    """The page, loaded and connected; JS errors are collected in ``page.errors``."""
    page = browser.new_page(viewport={"width": width, "height": height})
    page.errors = []
    page.on("pageerror", lambda exc: page.errors.append(str(exc)))
    page.goto(url)
    page.wait_for_selector("#connection[data-state=connected]", timeout=15_000)
    return page


def draw_digit(page, digit: int, steps: int = 2) -> None:
    """Draw ``digit`` stroke by stroke: press, move through the points, release."""
    box = page.locator("#canvas").bounding_box()
    scale = box["width"] / CANVAS
    for stroke in STROKES[digit]:
        x0, y0 = stroke[0]
        page.mouse.move(box["x"] + x0 * scale, box["y"] + y0 * scale)
        page.mouse.down()
        for x, y in stroke[1:]:
            page.mouse.move(box["x"] + x * scale, box["y"] + y * scale, steps=steps)
        page.mouse.up()


def answer(page) -> dict:
    """#prediction's data attributes: state, and when done digit, jobId, modelVersion, rttMs."""
    return page.eval_on_selector("#prediction", "e => ({...e.dataset})")


def wait_for_new_answer(page, previous_job_id: str | None, timeout_ms: int = 10_000) -> dict:
    """Wait until #prediction is done with a job id other than ``previous_job_id``."""
    page.wait_for_function(
        """prev => { const d = document.getElementById('prediction').dataset;
                     return d.state === 'error' || (d.state === 'done' && d.jobId !== prev); }""",
        arg=previous_job_id or "", timeout=timeout_ms)
    return answer(page)
