"""The drawing page: its stable test hooks, its Content-Security-Policy, its assets."""
from __future__ import annotations

import json
from html.parser import HTMLParser
from pathlib import Path

import pytest

from shared.config import Config, ConfigError
from shared.images.drawing import BRUSH_WIDTH, CANVAS_SIZE
from web import create_app
from web.services import Services

ROOT = Path(__file__).resolve().parents[2]


class Page(HTMLParser):
    """Every element's attributes, and the text of every inline script or style."""

    def __init__(self, html: str):
        super().__init__()
        self.elements: list[tuple[str, dict]] = []
        self.inline_code: list[str] = []
        self._in_code = False
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.elements.append((tag, attrs))
        self._in_code = tag == "style" or (tag == "script" and "src" not in attrs)

    def handle_endtag(self, tag):
        self._in_code = False

    def handle_data(self, data):
        if self._in_code and data.strip():
            self.inline_code.append(data)

    def by_id(self, element_id: str) -> tuple[str, dict]:
        [found] = [(t, a) for t, a in self.elements if a.get("id") == element_id]
        return found


@pytest.fixture
def page(client):
    res = client.get("/")
    assert res.status_code == 200
    return res, Page(res.get_data(as_text=True))


def test_the_page_has_the_hooks_browser_tests_rely_on(page):
    _, html = page
    tag, canvas = html.by_id("canvas")
    assert (tag, canvas["width"], canvas["height"]) == ("canvas", str(CANVAS_SIZE), str(CANVAS_SIZE))
    assert canvas["data-brush"] == str(BRUSH_WIDTH)
    assert html.by_id("prediction")[1]["data-state"] == "idle"
    assert html.by_id("clear")[0] == "button"
    html.by_id("feedback-status")
    corrections = sorted(int(a["data-correct"]) for t, a in html.elements if t == "button" and "data-correct" in a)
    assert corrections == list(range(10))
    html.by_id("unsure")
    assert len([a for t, a in html.elements if t == "button" and "data-guess" in a]) == 2


@pytest.mark.parametrize("env, expected", [({}, 0.6), ({"SWAGDIGITS_UNSURE_BELOW": "1"}, 1.0),
                                           ({"SWAGDIGITS_UNSURE_BELOW": "0.45"}, 0.45)])
def test_the_page_gets_the_unsure_threshold_from_the_configuration(tmp_path, fake_conn, env, expected):
    """SWAGDIGITS_UNSURE_BELOW reaches the page, so operators tune it without a release."""
    config = Config.from_env(env, data_dir=tmp_path)
    app = create_app(config, services=Services.connect(config, conn=fake_conn))
    _, canvas = Page(app.test_client().get("/").get_data(as_text=True)).by_id("canvas")
    assert float(canvas["data-unsure-below"]) == expected
    assert "data-predict-delay-ms" not in canvas, "the page sends as the pen lifts"


@pytest.mark.parametrize("value", ["-0.1", "1.5", "nan", "often"])
def test_an_unsure_threshold_outside_0_to_1_fails_at_start(value):
    with pytest.raises(ConfigError, match="SWAGDIGITS_UNSURE_BELOW"):
        Config.from_env({"SWAGDIGITS_UNSURE_BELOW": value})


def test_no_inline_script_or_style_and_a_csp_that_forbids_them(page):
    res, html = page
    csp = dict(part.strip().split(" ", 1) for part in res.headers["Content-Security-Policy"].split(";"))
    assert csp["script-src"] == "'self'" and csp["style-src"] == "'self'"
    assert "unsafe-inline" not in res.headers["Content-Security-Policy"]
    assert html.inline_code == []
    handlers = [(t, k) for t, a in html.elements for k in a if k.startswith("on") or k == "style"]
    assert handlers == []
    scripts = [a["src"] for t, a in html.elements if t == "script"]
    assert scripts and all(src.startswith("/") for src in scripts), "every script from this origin"


def test_the_pages_scripts_and_styles_are_served(client, page):
    _, html = page
    urls = [a["src"] for t, a in html.elements if t == "script"]
    urls += [a["href"] for t, a in html.elements if t == "link"]
    for url in urls:
        res = client.get(url)
        assert res.status_code == 200, url
        assert res.data


def test_the_socketio_client_comes_from_the_lockfile_install(client):
    lock = json.loads((ROOT / "package-lock.json").read_text())
    version = lock["packages"]["node_modules/socket.io-client"]["version"]
    assert version.startswith("4."), "Socket.IO protocol v5 needs socket.io-client 4.x"
    res = client.get("/vendor/socket.io.min.js")
    assert res.status_code == 200 and "javascript" in res.mimetype
    assert f"Socket.IO v{version}" in res.get_data(as_text=True)[:300]


@pytest.mark.parametrize("name", ["package.json", "..%2Fpackage.json", "socket.io.js"])
def test_only_the_client_bundle_is_served_from_node_modules(client, name):
    res = client.get(f"/vendor/{name}")
    assert res.status_code == 404 and res.is_json
