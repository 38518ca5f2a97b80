"""``swagdigits batch`` exit codes (README: 0 every image got a digit, 2 some could not be read,
1 the batch could not be sent or finish), against a small stand-in service in a thread.

The real service is exercised by tests/integration/test_batches.py (exit 2 there); here the
answers are chosen so that each exit path is taken on purpose.
"""
from __future__ import annotations

import argparse
import csv
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from shared.config import Config
from swagdigits import batch_client
from swagdigits.embedded_redis import free_port
from testkit.drawings import digit_png


class FakeService:
    """POST /api/batches answers ``submit``; GET of the status URL answers each of ``statuses`` in turn."""

    def __init__(self, submit: tuple[int, dict] | list[tuple], statuses: list[dict]):
        """``submit``: one answer for every POST, or a list answered in turn (with headers as a third item)."""
        self.submit, self.statuses, self.posted = submit, list(statuses), []
        service = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _send(self, status, body, headers=None):
                data = json.dumps(body).encode()
                self.send_response(status)
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self):
                service.posted.append(self.rfile.read(int(self.headers["Content-Length"])))
                self._send(*(service.submit.pop(0) if isinstance(service.submit, list) else service.submit))

            def do_GET(self):
                body = service.statuses.pop(0) if len(service.statuses) > 1 else service.statuses[0]
                self._send(200, body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


ACCEPTED = (202, {"batch_id": "b" * 32, "size": 2, "invalid": 0, "status_url": "/api/batches/" + "b" * 32})


def _result(index, digit=None, error=None):
    if error:
        return {"index": index, "error": error}
    probs = [0.0] * 10
    probs[digit] = 1.0
    return {"index": index, "digit": digit, "probabilities": probs, "model_version": "m1"}


@pytest.fixture
def folder(tmp_path):
    scans = tmp_path / "scans"
    scans.mkdir()
    (scans / "a.png").write_bytes(digit_png(3))
    (scans / "b.png").write_bytes(digit_png(8))
    return scans


def run(paths, url, out, timeout=30.0, request_mb=batch_client.REQUEST_MB) -> int:
    args = argparse.Namespace(paths=[str(p) for p in paths], url=url, out=out, timeout=timeout,
                              request_mb=request_mb)
    return batch_client.run(args, Config.from_env({}))


@pytest.fixture
def service():
    made = []

    def make(submit, statuses):
        made.append(FakeService(submit, statuses))
        return made[-1]

    yield make
    for s in made:
        s.close()


def test_exit_0_when_every_image_got_a_digit(service, folder, tmp_path):
    svc = service(ACCEPTED, [{"state": "running", "done": 1, "total": 2},
                             {"state": "finished", "done": 2, "total": 2,
                              "results": [_result(0, 3), _result(1, 8)]}])
    out = tmp_path / "out.csv"
    assert run([folder], svc.url, out) == 0
    rows = list(csv.DictReader(out.open()))
    assert [(r["file"].rsplit("/", 1)[-1], r["digit"]) for r in rows] == [("a.png", "3"), ("b.png", "8")]
    assert len(svc.posted) == 1 and digit_png(3) in svc.posted[0] and digit_png(8) in svc.posted[0]


def test_exit_2_when_some_images_could_not_be_read(service, folder, tmp_path):
    svc = service(ACCEPTED, [{"state": "finished", "done": 2, "total": 2,
                              "results": [_result(0, 3), _result(1, error="not a PNG or JPEG")]}])
    assert run([folder], svc.url, tmp_path / "out.csv") == 2


@pytest.mark.parametrize("status", [413, 429, 503])
def test_exit_1_when_the_service_refuses_the_batch(service, folder, tmp_path, status, capsys):
    svc = service((status, {"error": f"refused with {status}", "status": status}), [{}])
    assert run([folder], svc.url, tmp_path / "out.csv") == 1
    assert f"{status} refused with {status}" in capsys.readouterr().err
    assert not (tmp_path / "out.csv").exists()


def test_exit_1_when_the_batch_does_not_finish_in_time(service, folder, tmp_path, capsys):
    svc = service(ACCEPTED, [{"state": "running", "done": 1, "total": 2}])
    assert run([folder], svc.url, tmp_path / "out.csv", timeout=1.0) == 1
    assert "timed out" in capsys.readouterr().err


def test_exit_1_when_the_service_cannot_be_reached_or_there_is_nothing_to_send(folder, tmp_path, capsys):
    assert run([folder], f"http://127.0.0.1:{free_port()}", tmp_path / "out.csv") == 1
    assert "cannot reach" in capsys.readouterr().err
    empty = tmp_path / "empty"
    empty.mkdir()
    assert run([empty], "http://127.0.0.1:1", None) == 1
    assert run([tmp_path / "missing"], "http://127.0.0.1:1", None) == 1


def test_a_folder_larger_than_one_request_goes_in_several_batches_and_one_csv(service, folder, tmp_path):
    one = (202, {"batch_id": "c" * 32, "size": 1, "invalid": 0, "status_url": "/api/batches/" + "c" * 32})
    busy = (503, {"error": "this server is receiving other batches right now"}, {"Retry-After": "0"})
    svc = service([one, busy, one], [{"state": "finished", "done": 1, "total": 1, "results": [_result(0, 3)]},
                                     {"state": "finished", "done": 1, "total": 1, "results": [_result(0, 8)]}])
    out = tmp_path / "out.csv"
    assert run([folder], svc.url, out, request_mb=0.0001) == 0        # one image per request
    assert len(svc.posted) == 3                                       # the second sent again after its 503
    assert b"a.png" in svc.posted[0] and b"b.png" in svc.posted[1] and b"b.png" in svc.posted[2]
    rows = list(csv.DictReader(out.open()))
    assert [(r["index"], r["file"].endswith(n), r["digit"]) for r, n in zip(rows, ("a.png", "b.png"))] == [
        ("0", True, "3"), ("1", True, "8")]


def test_files_are_grouped_under_the_request_size_in_order(tmp_path):
    files = []
    for i, size in enumerate([400, 400, 400, 2000, 100]):
        files.append(tmp_path / f"{i}.png")
        files[-1].write_bytes(b"x" * size)
    groups = batch_client.split(files, max_bytes=1000 + 2 * batch_client.PART_OVERHEAD)
    assert [[f.name for f in g] for g in groups] == [["0.png", "1.png"], ["2.png"], ["3.png"], ["4.png"]]
