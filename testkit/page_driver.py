"""Driving the drawing page in headless Debian Chromium, for browser tests and benchmarks.

Uses the system's /usr/bin/chromium through Playwright (never ``playwright
install``), and draws the digits of testkit/drawings.py with real mouse moves,
so the page's pointer-event code is what turns them into a PNG.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

from testkit.drawings import STROKES, _arc

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
CANVAS = 280   # the coordinate space STROKES are written in

# Digits people draw in several strokes, in the order they draw them. Each
# stroke's pen-up sends the drawing so far, whose answer is often another digit
# (the first stroke of a 4 or a 7 reads as a 1): only the last one must stay.
MULTI_STROKE = {
    4: STROKES[4],                                                    # the angle, then the down stroke
    5: [[(105, 50), (95, 130)] + _arc(140, 175, 60, 55, 230, 500),    # down and round, then the flag
        [(105, 50), (190, 50)]],
    7: [[(85, 55), (200, 55)], [(200, 55), (120, 240)], [(115, 150), (195, 150)]],   # crossed 7
}


def launch(playwright):
    return playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)


def open_page(browser, url: str, width: int = 1100, height: int = 820, before_load=None):
    """The page, loaded and connected; JS errors are collected in ``page.errors``.

    ``before_load(page)`` runs before the page is loaded (to route its WebSocket, say).
    """
    page = browser.new_page(viewport={"width": width, "height": height})
    page.errors = []
    page.on("pageerror", lambda exc: page.errors.append(str(exc)))
    if before_load:
        before_load(page)
    page.goto(url)
    page.wait_for_selector("#connection[data-state=connected]", timeout=15_000)
    return page


def draw_digit(page, digit: int, steps: int = 2) -> None:
    """Draw ``digit`` stroke by stroke: press, move through the points, release."""
    draw_strokes(page, STROKES[digit], steps)


def draw_strokes(page, strokes, steps: int = 2) -> None:
    """Draw polylines (in 280x280 canvas pixels) one after the other, with no pause between."""
    box = page.locator("#canvas").bounding_box()
    scale = box["width"] / CANVAS
    for stroke in strokes:
        x0, y0 = stroke[0]
        page.mouse.move(box["x"] + x0 * scale, box["y"] + y0 * scale)
        page.mouse.down()
        for x, y in stroke[1:]:
            page.mouse.move(box["x"] + x * scale, box["y"] + y * scale, steps=steps)
        page.mouse.up()


def answer(page) -> dict:
    """#prediction's data attributes: state, sentSeq, and when done digit, jobId, modelVersion,
    seq, rttMs, penUpMs."""
    return page.eval_on_selector("#prediction", "e => ({...e.dataset})")


def wait_for_new_answer(page, previous_job_id: str | None, timeout_ms: int = 10_000) -> dict:
    """Wait until #prediction shows the answer to the page's latest send (an error, or done
    with a job id other than ``previous_job_id``): a multi-stroke digit's earlier answers
    do not count."""
    page.wait_for_function(
        """prev => { const d = document.getElementById('prediction').dataset;
                     return d.state === 'error' ||
                            (d.state === 'done' && d.jobId !== prev && d.seq === d.sentSeq); }""",
        arg=previous_job_id or "", timeout=timeout_ms)
    return answer(page)


class SocketTap:
    """Sits on the page's Socket.IO WebSocket (Playwright's ``route_web_socket``).

    Records every ``predict`` the page sends (its seq) and the job id its ack
    names, so a test knows the page's latest send independently of the page;
    counts the answers pushed to the page; and, with ``hold`` set, holds the
    pushed answers back for ``release`` to deliver in an order of the test's
    choosing. Create it before the page loads: ``open_page(..., before_load=...)``.
    """

    def __init__(self, page):
        self.sends: list[tuple[int, int]] = []      # (ack id, seq) in the order sent
        self.job_ids: dict[int, str] = {}           # ack id -> job id
        self.answers: list[str] = []                # job ids of answers delivered to the page
        self.results: dict[str, dict] = {}          # job id -> the pushed answer
        self.held: list[tuple[str, str]] = []       # (job id, raw frame) held back
        self.hold = False
        self.ws = None
        page.route_web_socket(re.compile(r"/socket\.io/"), self._route)

    def _route(self, ws) -> None:
        self.ws = ws
        server = ws.connect_to_server()

        def outgoing(message):
            found = isinstance(message, str) and re.match(r'42(\d+)(\["predict",.*)', message, re.S)
            if found:
                self.sends.append((int(found[1]), json.loads(found[2])[1]["seq"]))
            server.send(message)

        def incoming(message):
            if isinstance(message, str):
                ack = re.match(r"43(\d+)(\[.*)", message, re.S)
                if ack:
                    self.job_ids[int(ack[1])] = (json.loads(ack[2])[0] or {}).get("job_id")
                event = re.match(r'42(\["prediction(_error)?",.*)', message, re.S)
                if event:
                    job_id = json.loads(event[1])[1].get("job_id")
                    self.results[job_id] = json.loads(event[1])[1]
                    if self.hold:
                        self.held.append((job_id, message))
                        return
                    self.answers.append(job_id)
            ws.send(message)

        ws.on_message(outgoing)
        server.on_message(incoming)

    def latest_send(self) -> tuple[int, str | None]:
        """(seq, job id) of the last drawing the page sent."""
        ack_id, seq = self.sends[-1]
        return seq, self.job_ids.get(ack_id)

    def job_seq(self, job_id: str | None) -> int:
        seqs = {self.job_ids.get(ack_id): seq for ack_id, seq in self.sends}
        return seqs.get(job_id, 0)

    def release(self, newest_first: bool = True) -> None:
        """Deliver the held answers, the newest drawing's first (the older ones then arrive late)."""
        held = sorted(self.held, key=lambda h: self.job_seq(h[0]), reverse=newest_first)
        self.held, self.hold = [], False
        for job_id, message in held:
            self.answers.append(job_id)
            self.ws.send(message)

    def push(self, event: str, data: dict) -> None:
        """Deliver a Socket.IO event to the page as if the server had sent it."""
        self.ws.send("42" + json.dumps([event, data]))
