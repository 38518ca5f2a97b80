"""swagdigits eval: data sets read as canvas drawings, argument checks, report."""
import argparse
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from shared.images.upload import ImageLimits
from shared.images.ink import decode_ink
from swagdigits import evaluate

LIMITS = ImageLimits(4 * 1024 * 1024, 4096 * 4096, 8192)


def parse(*argv):
    parser = argparse.ArgumentParser()
    evaluate.register(parser.add_subparsers())
    return parser.parse_args(["eval", *argv])


@pytest.fixture
def pendigits_csv(tmp_path):
    """Two pendigits-format rows made here: a vertical "1" and a "7"."""
    one = [x for y in np.linspace(100, 0, 8) for x in (50, int(y))] + [1]
    seven = [0, 100, 50, 100, 100, 100, 85, 75, 70, 50, 55, 25, 45, 10, 40, 0, 7]
    path = tmp_path / "pen.csv"
    path.write_text("\n".join(",".join(str(v) for v in row) for row in (one, seven)) + "\n")
    return path


def test_pendigits_rows_become_canvas_drawings_with_the_chosen_brush(pendigits_csv):
    thin = list(evaluate.pendigits_drawings(pendigits_csv, brush=6))
    thick = list(evaluate.pendigits_drawings(pendigits_csv, brush=30))
    assert [label for label, _ in thin] == [1, 7]
    for (_, png_thin), (_, png_thick) in zip(thin, thick):
        ink_thin, ink_thick = decode_ink(png_thin, LIMITS), decode_ink(png_thick, LIMITS)
        assert ink_thin.shape == (280, 280)
        assert 3.5 < ink_thick.sum() / ink_thin.sum() < 6.0   # ~ 30 / 6 times the ink
    assert len(list(evaluate.pendigits_drawings(pendigits_csv, limit=1))) == 1


def test_bad_arguments_are_refused_before_any_work(pendigits_csv, tmp_path):
    assert evaluate.run(parse("--pendigits", str(pendigits_csv), "--brush", "0"), None) == 2
    assert evaluate.run(parse("--pendigits", str(pendigits_csv), "--limit", "0"), None) == 2
    assert evaluate.run(parse("--pendigits", str(tmp_path / "missing.csv")), None) == 2
    assert evaluate.run(parse(), None) == 2


def test_report_names_accuracy_recall_and_confusions():
    matrix = np.zeros((10, 10), dtype=np.int64)
    np.fill_diagonal(matrix, 9)
    matrix[1, 7] = 3
    matrix[4, 9] = 1
    report = evaluate.format_report("pendigits", matrix)
    assert "accuracy 0.9574 (90/94), 95% CI [0.8956, 0.9833]" in report
    assert "1:0.750" in report and "0:1.000" in report
    assert report.index("1->7 x3") < report.index("4->9 x1")


def test_the_confidence_interval_is_wilsons():
    assert evaluate.wilson_interval(50, 100) == pytest.approx((0.4038, 0.5962), abs=1e-4)
    low, high = evaluate.wilson_interval(100, 100)
    assert high == 1.0 and low == pytest.approx(0.9630, abs=1e-4)


def test_the_unsure_report_counts_questions_and_whether_the_two_guesses_hold_the_answer():
    probabilities = np.full((4, 10), 0.01)
    probabilities[0, 3], probabilities[1, 5], probabilities[2, 7], probabilities[3, 2] = 0.9, 0.5, 0.5, 0.5
    probabilities[1, 6], probabilities[2, 1], probabilities[3, 8] = 0.4, 0.4, 0.4
    result = evaluate.SetResult(np.array([3, 6, 7, 9]), probabilities)
    report = evaluate.unsure_report(result, 0.6)
    assert "75.0% asked" in report and "right 100.0% when sure" in report
    assert "33.3% when unsure" in report and "answer 66.7% of the time" in report


class PredictStub:
    """A /api/predict that answers each of ``answers`` (status, headers) in turn, then the last for ever."""

    def __init__(self, answers):
        self.answers, self.posts = list(answers), 0
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                self.rfile.read(int(self.headers["Content-Length"]))
                stub.posts += 1
                status, headers = stub.answers.pop(0) if len(stub.answers) > 1 else stub.answers[0]
                probs = [0.0] * 10
                probs[7] = 1.0
                body = json.dumps({"digit": 7, "probabilities": probs} if status == 200
                                  else {"error": "no", "status": status}).encode()
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def stub():
    made = []
    yield lambda answers: made.append(PredictStub(answers)) or made[-1]
    for s in made:
        s.server.shutdown()
        s.server.server_close()


def test_a_rate_limited_evaluation_waits_as_the_server_asks_and_goes_on(stub, caplog):
    server = stub([(429, {"Retry-After": "7"}), (503, {"Retry-After": "1"}), (200, {})])
    slept = []
    remote = evaluate.Remote(server.url, sleep=slept.append)
    assert int(np.argmax(remote(b"png"))) == 7
    assert slept == [7.0, 1.0] and server.posts == 3
    assert len(remote.timings.predict) == 1, "one timing per drawing, the waits left out"
    assert "SWAGDIGITS_RATE_LIMIT_PREDICT=0" in caplog.text


def test_a_refusal_without_retry_after_or_without_end_is_an_error(stub):
    with pytest.raises(RuntimeError, match="answered 400"):
        evaluate.Remote(stub([(400, {})]).url, sleep=lambda s: None)(b"png")
    forever = stub([(429, {"Retry-After": "1"})])
    with pytest.raises(RuntimeError, match="still refused"):
        evaluate.Remote(forever.url, sleep=lambda s: None)(b"png")
    assert forever.posts == evaluate.Remote.MAX_WAITS
