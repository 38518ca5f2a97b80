"""Log lines one client can cause are bounded: at most N warnings a minute, then one "suppressed".

A malformed Engine.IO payload in a long-polling POST leaves its session open
and writes a line each time; a malformed Socket.IO packet disconnects, but the
client may connect again at once. Either way one client used to choose how
fast the log grew.
"""
from __future__ import annotations

import dataclasses
import json
import logging

import pytest

from web import create_app
from web.log_limit import ALLOW, DROP, NOTICE, PerClientLogLimit
from web.services import Services

POLLING = "/socket.io/?EIO=4&transport=polling"


def test_each_client_gets_its_lines_then_one_notice_then_nothing_until_the_next_minute():
    clock = [1000.0]
    limit = PerClientLogLimit(3, window_s=60, clock=lambda: clock[0])
    assert [limit.check("a") for _ in range(6)] == [ALLOW, ALLOW, ALLOW, NOTICE, DROP, DROP]
    assert limit.check("b") == ALLOW
    clock[0] += 60
    assert limit.check("a") == ALLOW


def test_the_clients_it_remembers_are_bounded():
    limit = PerClientLogLimit(1, window_s=60, clock=lambda: 0.0, max_clients=10)
    for i in range(1000):
        limit.check(f"10.0.{i // 256}.{i % 256}")
    assert len(limit._counts) <= 11   # ten clients and the bucket for everyone past them


def test_zero_turns_the_limit_off():
    limit = PerClientLogLimit(0, window_s=60)
    assert {limit.check("a") for _ in range(100)} == {ALLOW}


@pytest.fixture
def app(web_config, fake_conn):
    config = dataclasses.replace(web_config, log_lines_per_client=5, sockets_per_client=0)
    app = create_app(config, services=Services.connect(config, conn=fake_conn))
    app.testing = True
    return app


def _session(client, address: str) -> str:
    env = {"REMOTE_ADDR": address}
    sid = json.loads(client.get(POLLING, environ_base=env).get_data(as_text=True)[1:])["sid"]
    assert client.post(f"{POLLING}&sid={sid}", data="40", environ_base=env).status_code == 200
    return f"{POLLING}&sid={sid}"


def _lines(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


def test_malformed_polling_payloads_from_one_client_write_at_most_n_lines_and_one_notice(app, caplog):
    client = app.test_client()
    url = _session(client, "192.0.2.1")
    caplog.clear()
    for _ in range(40):
        client.post(url, data="Z", environ_base={"REMOTE_ADDR": "192.0.2.1"})
    lines = _lines(caplog)
    assert len(lines) == 6, lines
    assert all("malformed" in line for line in lines[:5]) and "suppress" in lines[5]
    # Another client still has its own lines.
    other = _session(client, "192.0.2.2")
    caplog.clear()
    client.post(other, data="Z", environ_base={"REMOTE_ADDR": "192.0.2.2"})
    assert len(_lines(caplog)) == 1


def test_reconnecting_to_send_malformed_packets_again_is_bounded_too(app, caplog):
    client = app.test_client()
    caplog.clear()
    for _ in range(30):
        url = _session(client, "2001:db8::7")
        client.post(url, data="4Z", environ_base={"REMOTE_ADDR": "2001:db8::7"})
    lines = _lines(caplog)
    assert len(lines) == 6 and "suppress" in lines[-1], lines
    # Counted per client (an IPv6 one by its /64), not for everyone at once.
    caplog.clear()
    client.post(_session(client, "2001:db8::8"), data="4Z", environ_base={"REMOTE_ADDR": "2001:db8::8"})
    assert _lines(caplog) == []
    client.post(_session(client, "192.0.2.3"), data="4Z", environ_base={"REMOTE_ADDR": "192.0.2.3"})
    assert len(_lines(caplog)) == 1
