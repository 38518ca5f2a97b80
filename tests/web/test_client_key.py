"""Which client an address is: IPv4 as is, IPv6 by its /64 (what one subscriber is given).

Every per-address rule (rate limits, help quotas, the help store's client
hash the retraining caps use, Socket.IO caps) counts ``client_key``: two
addresses of one /64 share one allowance, two /64s have one each.
"""
from __future__ import annotations

import base64
import dataclasses

import pytest

from testkit.drawings import digit_png
from web import create_app
from web.client_key import client_key
from web.services import Services

SAME_64 = ("2001:db8:1:2::1", "2001:db8:1:2:ffff:ffff:ffff:fffe")
OTHER_64 = "2001:db8:1:3::1"


@pytest.mark.parametrize("address, key", [
    ("192.0.2.7", "192.0.2.7"),
    ("2001:db8:1:2:a:b:c:d", "2001:db8:1:2::/64"),
    ("2001:DB8:1:2::1", "2001:db8:1:2::/64"),
    ("::ffff:192.0.2.7", "192.0.2.7"),
    ("fe80::1%eth0", "fe80::/64"),
    ("::1", "::/64"),
    ("", "unknown"),
    (None, "unknown"),
    ("not-an-address", "not-an-address"),
])
def test_an_address_maps_to_its_client_key(address, key):
    assert client_key(address) == key


def _app(web_config, fake_conn, **changes):
    config = dataclasses.replace(web_config, **changes)
    app = create_app(config, services=Services.connect(config, conn=fake_conn))
    app.testing = True
    return app


def _image(d: int = 1) -> str:
    return "data:image/png;base64," + base64.b64encode(digit_png(d)).decode()


@pytest.mark.usefixtures("frozen_rate_clock")
def test_addresses_of_one_ipv6_64_share_one_rate_limit(web_config, fake_conn):
    client = _app(web_config, fake_conn, rate_limit_predict=2, queue_limit=100).test_client()

    def send(address):
        return client.post("/api/predict?wait=0", json={"image": _image()},
                           environ_base={"REMOTE_ADDR": address}).status_code

    assert [send(SAME_64[0]), send(SAME_64[1]), send(SAME_64[0])] == [202, 202, 429]
    assert send(OTHER_64) == 202


@pytest.mark.usefixtures("frozen_rate_clock")
def test_an_ipv4_mapped_address_is_its_ipv4_client(web_config, fake_conn):
    client = _app(web_config, fake_conn, rate_limit_predict=1, queue_limit=100).test_client()
    send = lambda address: client.post("/api/predict?wait=0", json={"image": _image()},  # noqa: E731
                                       environ_base={"REMOTE_ADDR": address}).status_code
    assert [send("192.0.2.7"), send("::ffff:192.0.2.7")] == [202, 429]


def test_one_ipv6_64_has_one_daily_help_quota_and_one_client_hash(web_config, fake_conn):
    app = _app(web_config, fake_conn, help_client_quota=2)
    client = app.test_client()

    def send(d, address):
        return client.post("/helpdata", json={"image": _image(d), "label": d},
                           environ_base={"REMOTE_ADDR": address}).status_code

    assert [send(1, SAME_64[0]), send(2, SAME_64[1]), send(3, SAME_64[0])] == [201, 201, 429]
    assert send(4, OTHER_64) == 201
    # The retraining's per-client cap groups by the stored hash: one per /64.
    clients = [e.client for e in app.extensions["swagdigits"].help_store.entries()]
    assert len(clients) == 3 and len(set(clients)) == 2


def test_one_ipv6_64_has_one_socket_cap(web_config, fake_conn):
    app = _app(web_config, fake_conn, sockets_per_client=2, web_threads=8, http_threads=4)

    def handshake(address):
        return app.test_client().get("/socket.io/?EIO=4&transport=polling",
                                     environ_base={"REMOTE_ADDR": address}).status_code

    assert [handshake(SAME_64[0]), handshake(SAME_64[1]), handshake(SAME_64[0])] == [200, 200, 429]
    assert handshake(OTHER_64) == 200
