"""The drawing page in a real headless Chromium against a real stack.

Needs Debian's chromium (``.ci/run`` installs it); skipped only where
/usr/bin/chromium is missing. Screenshots go to test-artifacts/ (git-ignored)
and their paths are printed.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import redis

from shared.messaging import protocol as p
from shared.messaging.push import Pusher
from swagdigits.embedded_redis import free_port
from testkit.page_driver import (CHROMIUM, MULTI_STROKE, SocketTap, answer, draw_digit, draw_strokes, launch,
                                 open_page, wait_for_new_answer)

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium"),
]

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


@pytest.fixture
def chromium():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = launch(pw)
        yield browser
        browser.close()


def tapped_page(chromium, url: str):
    """The page, opened with a ``SocketTap`` on its Socket.IO WebSocket from the start."""
    taps = []
    page = open_page(chromium, url, before_load=lambda pg: taps.append(SocketTap(pg)))
    return page, taps[0]


def screenshot(page, name: str) -> Path:
    """Save a full-page screenshot once the bars and colours have finished moving."""
    page.wait_for_function("""() => document.getAnimations().every(
        a => a.playState !== 'running' || a.effect.getTiming().iterations === Infinity)""")
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    print(f"screenshot: {path}")
    return path


def test_drawn_digits_are_recognised_and_pushed_back_to_the_page(stack, chromium):
    stack.start("worker", "predict")
    url = stack.start_web()
    version = stack.wait_ready(url)["model_versions"][0]
    page = open_page(chromium, url)
    assert "websocket" in page.inner_text("#transport")

    right, unsure, job_ids = [], [], set()
    previous = None
    for digit in range(10):
        page.click("#clear")
        assert answer(page)["state"] == "idle"
        draw_digit(page, digit)
        got = wait_for_new_answer(page, previous)
        assert got["state"] == "done", got
        assert got["modelVersion"] == version and float(got["rttMs"]) > 0
        previous = got["jobId"]
        job_ids.add(previous)
        right.append(int(got["digit"]) == digit)
        unsure.append(got.get("unsure") == "true")
        if unsure[-1]:
            assert page.inner_text("#answer-message").startswith(f"Not sure: is it {got['digit']} or ")
        else:
            assert page.inner_text("#answer-message") == f"It's a {got['digit']}"
            assert page.is_hidden("#unsure")
    assert len(job_ids) == 10
    assert sum(right) >= 8, f"recognised {right}"
    assert sum(unsure) <= 2, f"clear drawings the model was not sure about: {unsure}"

    # A correction goes to POST /helpdata and is acknowledged in words.
    page.click("[data-correct='5']")
    page.wait_for_selector("#feedback-status[data-state=received]", timeout=10_000)
    assert "Thanks" in page.inner_text("#feedback-status")
    assert page.errors == []
    screenshot(page, "browser-wide")

    phone = open_page(chromium, url, width=390, height=844)
    draw_digit(phone, 3)
    assert wait_for_new_answer(phone, None)["digit"] == "3"
    width = phone.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"the page scrolls sideways at phone width ({width}px)"
    screenshot(phone, "browser-phone")


def test_an_answer_for_an_older_drawing_never_replaces_the_newer_one(stack, chromium, config):
    url = stack.start_web()   # no worker yet: drawings wait in the stream where we can see them
    page = open_page(chromium, url)
    conn = redis.Redis.from_url(config.redis_url)

    def queued():
        return [(f[b"id"].decode(), f[b"room"].decode()) for _, f in conn.xrange(p.PREDICT_STREAM)]

    draw_digit(page, 1)
    page.wait_for_selector("#prediction[data-state=pending]")
    stack_wait(lambda: len(queued()) == 1)
    page.click("#clear")
    draw_digit(page, 7)
    stack_wait(lambda: len(queued()) == 2)
    (old_job, room), (new_job, room2) = queued()
    assert room == room2 and room

    stack.start("worker", "predict")
    # The web tier may report a timeout first (the worker is still loading);
    # the real answer, when it comes, replaces that message.
    page.wait_for_selector("#prediction[data-state=done]", timeout=30_000)
    got = answer(page)
    assert got["jobId"] == new_job

    # The older drawing's answer turns up late, then a model change we can see:
    # events reach the page in order, so once the model line changes the stale
    # answer has been handled.
    stale = json.loads(conn.hget(p.JOB_KEY.format(old_job), "result"))
    pusher = Pusher(config.redis_url)
    pusher.emit(p.EVENT_PREDICTION, {**stale, "digit": 9}, room=room)
    pusher.emit(p.EVENT_PREDICTION_ERROR, {"job_id": old_job, "error": "late", "status": 504}, room=room)
    pusher.emit(p.EVENT_MODEL_CHANGED, {"model_version": "barrier"}, room=room)
    page.wait_for_function("() => document.getElementById('model-version').textContent.includes('barrier')")
    assert answer(page)["jobId"] == new_job and answer(page)["digit"] == got["digit"]
    assert page.errors == []


def test_a_late_real_answer_replaces_the_timeout_message(stack, chromium, config):
    """README: a drawing no worker answers in SWAGDIGITS_PREDICT_TIMEOUT gets a 504 message, and
    a late real answer replaces it. No worker runs until the page shows the timeout."""
    url = stack.start_web()
    page = open_page(chromium, url)
    conn = redis.Redis.from_url(config.redis_url)
    draw_digit(page, 4)
    page.wait_for_selector("#prediction[data-state=error]", timeout=30_000)
    assert "no worker answered" in page.inner_text("#prediction").lower() or \
        "no worker answered" in page.inner_text("#answer-message").lower(), page.inner_text("#prediction")
    job_id = conn.xrange(p.PREDICT_STREAM)[-1][1][b"id"].decode()   # the last stroke's drawing

    stack.start("worker", "predict")   # it answers the drawing still waiting in the stream
    page.wait_for_selector("#prediction[data-state=done]", timeout=60_000)
    got = answer(page)
    assert (got["jobId"], got["digit"]) == (job_id, "4")
    assert page.inner_text("#answer-message") == "It's a 4"
    assert page.errors == []


@pytest.mark.parametrize("order", ["as they come", "newest first"])
def test_multi_stroke_digits_end_on_the_answer_to_their_last_stroke(stack, chromium, order):
    """Every pen-up sends at once, and the last stroke's answer is the one left on screen.

    "newest first" holds the pushed answers back until all strokes are answered,
    then delivers the last stroke's answer first and the earlier ones after it,
    late: they must not replace it.
    """
    stack.start("worker", "predict")
    url = stack.start_web()
    stack.wait_ready(url)
    page, tap = tapped_page(chromium, url)

    previous = None
    for digit, strokes in MULTI_STROKE.items():
        page.click("#clear")
        sent_before, answers_before = len(tap.sends), len(tap.answers)
        tap.hold = order == "newest first"
        draw_strokes(page, strokes)   # stroke after stroke, no waiting for answers
        page_wait(page, lambda: len(tap.sends) - sent_before >= len(strokes), "a send per stroke")
        assert len(tap.sends) - sent_before == len(strokes), "one send per pen-up"
        if tap.hold:
            page_wait(page, lambda: len(tap.held) == len(strokes), "every stroke answered")
            tap.release(newest_first=True)
        got = wait_for_new_answer(page, previous)
        # Every answer for this digit has reached the page; a barrier event after
        # them shows the page has handled them all.
        page_wait(page, lambda: len(tap.answers) - answers_before == len(strokes), "all answers delivered")
        tap.push("model_changed", {"model_version": f"barrier-{digit}"})
        page.wait_for_function(f"() => document.getElementById('model-version').textContent.includes('barrier-{digit}')")
        seq, job_id = tap.latest_send()
        got = answer(page)
        assert got["state"] == "done", got
        assert (got["jobId"], got["seq"], got["sentSeq"]) == (job_id, str(seq), str(seq)), got
        assert got["digit"] == str(digit), f"{digit} drawn in {len(strokes)} strokes read as {got['digit']}"
        assert float(got["penUpMs"]) > 0
        previous = got["jobId"]
    assert page.errors == []


def test_an_answer_whose_push_is_lost_is_fetched_from_the_job_status(stack, chromium):
    """A pushed answer can be lost (pub/sub keeps nothing while Redis restarts): the page
    asks GET /api/jobs/{id} when none has come a moment after the ack, and shows it."""
    stack.start("worker", "predict")
    url = stack.start_web()
    stack.wait_ready(url)
    page, tap = tapped_page(chromium, url)
    tap.hold = True            # every pushed answer is swallowed, never delivered

    draw_digit(page, 2)
    got = wait_for_new_answer(page, None)
    seq, job_id = tap.latest_send()
    assert [held for held, _ in tap.held] == [job_id], "the worker's push was held back"
    assert tap.answers == [], "no pushed answer reached the page"
    assert (got["state"], got["jobId"], got["seq"], got["digit"], got["via"]) == ("done", job_id, str(seq), "2", "poll")
    assert page.inner_text("#answer-message") == "It's a 2"

    # Pushed answers still come first when they are not lost.
    tap.hold = False
    page.click("#clear")
    draw_digit(page, 7)
    got = wait_for_new_answer(page, job_id)
    assert (got["digit"], got["via"]) == ("7", "push")
    assert page.errors == []


def test_an_unsure_answer_offers_the_two_best_guesses_as_one_tap_help_data(stack, chromium, config):
    """With SWAGDIGITS_UNSURE_BELOW=1 every answer counts as unsure."""
    stack.start("worker", "predict")
    port = free_port()
    stack.start("web", env={"SWAGDIGITS_PORT": str(port), "SWAGDIGITS_UNSURE_BELOW": "1"})
    url = f"http://127.0.0.1:{port}"
    stack.wait_ready(url)
    page, tap = tapped_page(chromium, url)
    assert page.is_hidden("#unsure")

    draw_digit(page, 3)
    got = wait_for_new_answer(page, None)
    assert got["state"] == "done" and got["unsure"] == "true", got
    probabilities = tap.results[got["jobId"]]["probabilities"]
    best, second = sorted(range(10), key=lambda d: -probabilities[d])[:2]
    assert got["digit"] == str(best) and got["guesses"] == f"{best},{second}"
    assert page.is_visible("#unsure")
    guesses = page.locator("[data-guess]")
    assert [guesses.nth(i).get_attribute("data-guess") for i in range(guesses.count())] == [str(best), str(second)]
    assert page.inner_text("#answer-message") == f"Not sure: is it {best} or {second}?"
    screenshot(page, "browser-unsure")

    # The second guess, so the label cannot be the model's own answer by accident.
    guesses.nth(1).click()
    page.wait_for_selector("#feedback-status[data-state=received]", timeout=10_000)
    assert guesses.nth(1).get_attribute("aria-pressed") == "true"
    entry_id = page.get_attribute("#feedback-status", "data-id")
    record = json.loads((config.help_dir / str(second) / f"{entry_id}.json").read_text())
    assert (record["label"], record["predicted"], record["job_id"]) == (second, best, got["jobId"])

    # Clearing takes the guesses away with the answer.
    page.click("#clear")
    assert page.is_hidden("#unsure")
    assert page.errors == []


def page_wait(page, check, what: str, timeout_s: float = 10.0) -> None:
    """Wait for a condition on what the test saw, letting Playwright deliver events meanwhile."""
    import time

    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        page.wait_for_timeout(10)


def stack_wait(check, timeout: float = 10.0) -> None:
    from tests.integration.conftest import wait_for

    wait_for(check, "queued drawings", timeout=timeout)
