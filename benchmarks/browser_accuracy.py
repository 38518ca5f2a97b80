"""Recognition as a person drawing on the page gets it: pen strokes replayed as mouse moves in Chromium.

    .venv/bin/python -m benchmarks.browser_accuracy ../shared/data/pendigits-train.csv [--drawings 500]

Starts its own stack (redis-server, 1 predict worker, web) with a model trained
the way a fresh install trains it, opens the page in headless Debian
Chromium and, for each of the first N pendigits rows, draws its 8 pen points
as one stroke with real mouse moves (``testkit.page_driver.draw_strokes``),
waits for the pushed answer and compares it with the label. Prints accuracy
with its 95% Wilson interval and the commonest confusions. The data file is
evaluation data: read from the path given, never copied.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from benchmarks.stack import BenchStack
from shared.images.drawing import pendigits_strokes
from swagdigits.evaluate import format_report
from testkit.page_driver import draw_strokes, launch, open_page, wait_for_new_answer


def rows(path: Path, n: int):
    with open(path) as fh:
        for i, line in enumerate(fh):
            if i >= n:
                return
            values = [int(v) for v in line.strip().split(",")]
            yield values[16], values[:16]


def draw_all(url: str, samples) -> np.ndarray:
    from playwright.sync_api import sync_playwright

    matrix = np.zeros((10, 10), dtype=np.int64)
    previous = None
    with sync_playwright() as pw:
        browser = launch(pw)
        page = open_page(browser, url)
        for label, points in samples:
            page.click("#clear")
            draw_strokes(page, pendigits_strokes(points), steps=2)
            got = wait_for_new_answer(page, previous)
            if got["state"] != "done":
                raise RuntimeError(f"no answer: {page.inner_text('#prediction')}")
            previous = got["jobId"]
            matrix[label, int(got["digit"])] += 1
        browser.close()
    return matrix


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("pendigits", type=Path)
    parser.add_argument("--drawings", type=int, default=500)
    args = parser.parse_args()
    stack = BenchStack()
    try:
        stack.start_web()
        stack.set_workers(1)
        matrix = draw_all(stack.url, rows(args.pendigits, args.drawings))
    finally:
        stack.stop()
    print(f"{args.drawings} pendigits rows drawn with the mouse on the page in headless Chromium:")
    print(format_report("page", matrix))
    return 0


if __name__ == "__main__":
    sys.exit(main())
