"""DNS rebinding: requests naming a host the service does not answer to get a 400 JSON.

A page on evil.example whose name is re-pointed at 127.0.0.1 talks to the
local service as "same origin": Host and Origin both say evil.example, so
both origin checks (writes, Socket.IO) used to pass. With an allow-list of
host names (``SWAGDIGITS_ALLOWED_HOSTS``; by default, when bound to a
loopback address, the loopback names) such a request is refused before
anything else sees it.
"""
from __future__ import annotations

import base64
import dataclasses

import pytest

from shared.config import Config, ConfigError
from testkit.drawings import digit_png
from web import create_app
from web.services import Services

HANDSHAKE = "/socket.io/?EIO=4&transport=polling"
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "[::1]")


@pytest.mark.parametrize("environ, hosts", [
    ({}, LOOPBACK_NAMES),                                       # swagdigits up: 127.0.0.1
    ({"SWAGDIGITS_HOST": "localhost"}, LOOPBACK_NAMES),
    ({"SWAGDIGITS_HOST": "::1"}, LOOPBACK_NAMES),
    ({"SWAGDIGITS_HOST": "0.0.0.0"}, ()),                       # compose, Kubernetes: any
    ({"SWAGDIGITS_HOST": "0.0.0.0", "SWAGDIGITS_ALLOWED_HOSTS": "Digits.Example, b.example"},
     ("digits.example", "b.example")),
    ({"SWAGDIGITS_ALLOWED_HOSTS": "digits.example"}, ("digits.example",)),
])
def test_the_allowed_hosts_default_to_the_loopback_names_only_when_bound_to_loopback(environ, hosts):
    assert Config.from_env(environ).host_names() == hosts


def test_a_host_with_a_port_or_scheme_is_refused_at_start():
    with pytest.raises(ConfigError, match="SWAGDIGITS_ALLOWED_HOSTS"):
        Config.from_env({"SWAGDIGITS_ALLOWED_HOSTS": "digits.example:443"})
    with pytest.raises(ConfigError, match="SWAGDIGITS_ALLOWED_HOSTS"):
        Config.from_env({"SWAGDIGITS_ALLOWED_HOSTS": "https://digits.example"})


def _client(web_config, fake_conn, **changes):
    config = dataclasses.replace(web_config, **changes)
    app = create_app(config, services=Services.connect(config, conn=fake_conn))
    app.testing = True
    return app.test_client()


def _image() -> dict:
    return {"image": "data:image/png;base64," + base64.b64encode(digit_png(1)).decode()}


@pytest.fixture
def loopback(web_config, fake_conn):
    assert web_config.host == "127.0.0.1"
    return _client(web_config, fake_conn, queue_limit=100)


@pytest.mark.parametrize("host", ["localhost", "localhost:5000", "127.0.0.1:5000", "[::1]:5000", "LOCALHOST:5000"])
def test_a_loopback_server_answers_its_loopback_names(loopback, host):
    assert loopback.get("/healthz", headers={"Host": host}).status_code == 200


@pytest.mark.parametrize("path", ["/", "/healthz", "/api/jobs/" + "a" * 32, HANDSHAKE])
def test_a_rebound_name_gets_a_400_json_on_every_path(loopback, path):
    res = loopback.get(path, headers={"Host": "evil.example:5000"})
    assert res.status_code == 400 and res.json["status"] == 400
    assert "SWAGDIGITS_ALLOWED_HOSTS" in res.json["error"] and "evil" not in res.json["error"]
    assert res.headers["X-Content-Type-Options"] == "nosniff"


def test_a_rebound_page_can_neither_write_nor_open_a_socket(loopback, fake_conn):
    """The rebinding attack itself: Host and Origin agree, so only the host list stops it."""
    rebound = {"Host": "evil.example:5000", "Origin": "http://evil.example:5000"}
    assert loopback.post("/api/predict?wait=0", json=_image(), headers=rebound).status_code == 400
    assert loopback.get(HANDSHAKE, headers=rebound).status_code == 400
    own = {"Host": "127.0.0.1:5000", "Origin": "http://127.0.0.1:5000"}
    assert loopback.post("/api/predict?wait=0", json=_image(), headers=own).status_code == 202
    assert loopback.get(HANDSHAKE, headers=own).status_code == 200


def test_bound_to_every_interface_without_a_list_any_host_is_answered(web_config, fake_conn):
    client = _client(web_config, fake_conn, host="0.0.0.0")
    assert client.get("/healthz", headers={"Host": "anything.example"}).status_code == 200


def test_a_configured_list_is_enforced_and_ip_literals_still_pass(web_config, fake_conn):
    """Health checks, Prometheus and Kubernetes probes name the address, not a host name: an IP
    literal cannot be a rebound name (the browser would be talking to that address itself)."""
    client = _client(web_config, fake_conn, host="0.0.0.0", allowed_hosts="digits.example")
    assert client.get("/healthz", headers={"Host": "digits.example"}).status_code == 200
    assert client.get("/healthz", headers={"Host": "digits.example:8080"}).status_code == 200
    assert client.get("/healthz", headers={"Host": "10.1.2.3:5000"}).status_code == 200
    assert client.get("/healthz", headers={"Host": "[2001:db8::1]:5000"}).status_code == 200
    assert client.get("/healthz", headers={"Host": "localhost:5000"}).status_code == 400
    assert client.get("/healthz", headers={"Host": "digits.example.evil.example"}).status_code == 400
    socket = {"Host": "digits.example", "Origin": "http://digits.example"}
    assert client.get(HANDSHAKE, headers=socket).status_code == 200
    socket_elsewhere = {"Host": "evil.example", "Origin": "http://evil.example"}
    assert client.get(HANDSHAKE, headers=socket_elsewhere).status_code == 400


def test_bracketed_ipv6_names_are_accepted_in_the_list():
    assert Config.from_env({"SWAGDIGITS_ALLOWED_HOSTS": "[2001:db8::1],a.example"}).host_names() == (
        "[2001:db8::1]", "a.example")
