"""The buffering front of ``swagdigits up``: whole requests to the web tier, slow clients kept out.

Real sockets throughout: the front runs its asyncio loop in a thread, in front
of a real HTTP server that records what reaches it.
"""
import asyncio
import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer, ThreadingHTTPServer

import pytest
import requests

from swagdigits.embedded_redis import free_port
from swagdigits.front import Front


class Recorder(BaseHTTPRequestHandler):
    """Answers every request with what it received: headers and body, as JSON."""

    seen: list = []
    protocol_version = "HTTP/1.1"

    def _answer(self):
        length = int(self.headers.get("Content-Length", 0))
        body = self.rfile.read(length).decode() if length else ""
        Recorder.seen.append((self.command, self.path, dict(self.headers), body))
        if self.headers.get("Upgrade") == "echo":
            self.send_response(101)
            self.send_header("Upgrade", "echo")
            self.send_header("Connection", "Upgrade")
            self.end_headers()
            self.wfile.flush()
            while data := self.connection.recv(1024):
                self.connection.sendall(data.upper())
            self.close_connection = True
            return
        out = json.dumps({"headers": dict(self.headers), "body": body}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    do_GET = do_POST = _answer

    def log_message(self, *args):
        pass


def serve(server_class):
    Recorder.seen = []
    server = server_class(("127.0.0.1", 0), Recorder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture
def upstream():
    """A web tier stand-in with ONE thread: anything that held it would stop every other request."""
    server = serve(HTTPServer)
    yield server
    # Not joined: were a request holding its one thread (the failure these tests look for),
    # shutdown() would wait for ever.
    threading.Thread(target=server.shutdown, daemon=True).start()


@pytest.fixture
def threaded_upstream():
    server = serve(ThreadingHTTPServer)
    yield server
    server.shutdown()
    server.server_close()


def start_front(upstream_address, **kwargs) -> str:
    front = Front("127.0.0.1", 0, upstream_address, kwargs.pop("max_body", 1024 * 1024), **kwargs)
    loop = asyncio.new_event_loop()
    started = threading.Event()

    def run():
        asyncio.set_event_loop(loop)
        loop.run_until_complete(front.start())
        started.set()
        loop.run_forever()

    threading.Thread(target=run, daemon=True).start()
    assert started.wait(5)
    return f"http://127.0.0.1:{front.port}"


def raw_exchange(url: str, data: bytes, timeout: float = 5.0) -> bytes:
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=timeout) as sock:
        sock.sendall(data)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
        return b"".join(chunks)


def status_and_json(raw: bytes) -> tuple[int, dict]:
    head, _, body = raw.partition(b"\r\n\r\n")
    return int(head.split(b" ")[1]), json.loads(body)


def test_a_request_reaches_the_web_tier_whole_with_the_client_added_to_x_forwarded_for(upstream):
    url = start_front(upstream.server_address)
    res = requests.post(url + "/api/predict?x=1", data=b"hello", headers={"X-Forwarded-For": "10.0.0.9"},
                        timeout=5)
    assert res.status_code == 200
    method, path, headers, body = Recorder.seen[-1]
    assert (method, path, body) == ("POST", "/api/predict?x=1", "hello")
    assert headers["X-Forwarded-For"] == "10.0.0.9, 127.0.0.1"     # appended, as nginx does
    assert headers["Connection"] == "close"                        # one request per upstream connection
    assert res.headers["Content-Type"] == "application/json"


def test_clients_dribbling_their_headers_never_reach_the_web_tier_and_get_408(upstream):
    url = start_front(upstream.server_address, head_timeout=1.5)
    host, port = url.removeprefix("http://").split(":")
    dribblers = [socket.create_connection((host, int(port))) for _ in range(200)]
    try:
        for sock in dribblers:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")             # head never finished
        # The one-thread web tier still answers at once: no dribbler is holding it.
        started = time.monotonic()
        for _ in range(20):
            assert requests.get(url + "/ok", timeout=2).status_code == 200
        assert time.monotonic() - started < 2.0
        assert [s[1] for s in Recorder.seen] == ["/ok"] * 20
        dribblers[0].settimeout(5)
        answer = dribblers[0].recv(65536)
        assert answer.startswith(b"HTTP/1.1 408 ")
        assert "not received" in json.loads(answer.partition(b"\r\n\r\n")[2])["error"]
    finally:
        for sock in dribblers:
            sock.close()


def test_a_body_that_stops_arriving_is_refused_without_the_web_tier_seeing_it(upstream):
    url = start_front(upstream.server_address, body_grace=1.0)
    raw = raw_exchange(url, b"POST /api/predict HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nhalf")
    status, body = status_and_json(raw)
    assert status == 408 and "body" in body["error"]
    assert Recorder.seen == []


def test_a_chunked_body_is_passed_on_with_its_length(upstream):
    url = start_front(upstream.server_address)
    raw = raw_exchange(url, b"POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                            b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nTrailer: t\r\n\r\n")
    status, body = status_and_json(raw)
    assert status == 200 and body["body"] == "hello world"
    assert body["headers"]["Content-Length"] == "11" and "Transfer-Encoding" not in body["headers"]


@pytest.mark.parametrize("head, status", [
    (b"POST /a HTTP/1.1\r\nContent-Length: 2000000\r\n\r\n", 413),            # over the largest limit
    (b"POST /a HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", 400),  # smuggling
    (b"POST /a HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd", 400),
    (b"POST /a HTTP/1.1\r\nContent-Length: -1\r\n\r\n", 400),
    (b"POST /a HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n", 501),
    (b"NONSENSE\r\n\r\n", 400),
    (b"GET /a HTTP/1.1\r\n folded: header\r\n\r\n", 400),
    (b"GET /a HTTP/1.1\r\nX: " + b"y" * 70_000 + b"\r\n\r\n", 431),
])
def test_requests_the_front_refuses_get_a_json_error_and_never_reach_the_web_tier(upstream, head, status):
    url = start_front(upstream.server_address)
    got, body = status_and_json(raw_exchange(url, head))
    assert got == status and body["error"]
    assert Recorder.seen == []


def test_a_web_tier_that_is_down_gives_502_json():
    url = start_front(("127.0.0.1", free_port()))
    res = requests.get(url + "/readyz", timeout=10)
    assert res.status_code == 502 and "web tier" in res.json()["error"]


def test_expect_100_continue_gets_its_interim_answer(upstream):
    url = start_front(upstream.server_address)
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\n")
        assert sock.recv(1024) == b"HTTP/1.1 100 Continue\r\n\r\n"
        sock.sendall(b"ok")
        assert b'"body": "ok"' in sock.recv(65536)


def test_an_accepted_upgrade_is_relayed_both_ways_for_the_life_of_the_socket(threaded_upstream):
    url = start_front(threaded_upstream.server_address)
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(b"GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
        head = b""
        while b"\r\n\r\n" not in head:
            head += sock.recv(1024)
        assert head.startswith(b"HTTP/1.0 101") or head.startswith(b"HTTP/1.1 101")
        for word in (b"one", b"two"):
            sock.sendall(word)
            assert sock.recv(1024) == word.upper()
    assert Recorder.seen[-1][2]["Connection"] == "Upgrade"


def test_a_slow_reader_does_not_hold_the_web_tier(upstream):
    """The answer is read whole from the web tier before it is written to the client."""
    size = 12_000_000                         # more than the kernel's socket buffers hold on loopback
    url = start_front(upstream.server_address, max_body=16 * 1024 * 1024)
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as slow:
        slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        slow.sendall(b"POST /big HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % size + b"z" * size)
        time.sleep(1.0)                        # it reads nothing of its answer yet
        assert requests.get(url + "/next", timeout=2).status_code == 200
        got = b""
        while chunk := slow.recv(1 << 20):
            got += chunk
        assert status_and_json(got)[1]["body"] == "z" * size
