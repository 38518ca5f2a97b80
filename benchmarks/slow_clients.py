"""Slow clients (slowloris) against the web tier, with and without ``swagdigits up``'s buffering front.

    .venv/bin/python -m benchmarks.slow_clients [--slow 200] [--drawings 300]

One private stack (redis-server, one predict worker, the web tier: gunicorn
gthread, 64 threads) and a front (``swagdigits front``) before it. For each way
in (the front, then gunicorn's own port), ``--slow`` connections send a request
head one byte per second and never finish it (a connection the server closes
is opened again, so the number stays up), while a normal client posts
``--drawings`` drawings one after another (5 s timeout each, at most 60 s a case). Baselines with
no slow clients (both ways in) come first. Prints p50/p99 of the normal client's answers,
how many failed, and the ratio to the baseline, all from this one run.
"""
from __future__ import annotations

import argparse
import socket
import statistics
import subprocess
import sys
import threading
import time

import requests

from benchmarks.stack import BenchStack
from swagdigits.embedded_redis import free_port
from testkit.drawings import digit_png


class SlowClients:
    """``n`` connections that keep a request head unfinished, one byte a second each."""

    def __init__(self, port: int, n: int):
        self.port, self.n = port, n
        self.socks: list[socket.socket | None] = [None] * n
        self.stop = threading.Event()
        self.reopened = 0
        self.thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self):
        for i in range(self.n):
            self._open(i)
        self.thread.start()
        time.sleep(2.0)                      # let the server hand them to whatever will hold them
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()
        for sock in self.socks:
            if sock:
                sock.close()

    def _open(self, i: int) -> None:
        try:
            sock = socket.create_connection(("127.0.0.1", self.port), timeout=1)
            sock.sendall(b"POST /api/predict HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            self.socks[i] = sock
        except OSError:
            self.socks[i] = None

    def _run(self) -> None:
        while not self.stop.wait(1.0):
            for i, sock in enumerate(self.socks):
                try:
                    if sock is None:
                        raise OSError
                    sock.sendall(b"X")
                except OSError:
                    if sock:
                        sock.close()
                    self.reopened += 1
                    self._open(i)


def normal_client(url: str, drawings: int, budget_s: float = 60.0) -> dict:
    """``drawings`` posted one after another, or as many as ``budget_s`` allows (failures take 5 s)."""
    png = digit_png(3)
    times, failed = [], 0
    ends = time.monotonic() + budget_s
    with requests.Session() as session:
        for _ in range(drawings):
            if time.monotonic() > ends:
                break
            started = time.perf_counter()
            try:
                res = session.post(url + "/api/predict", files={"file": ("d.png", png, "image/png")}, timeout=5)
                ok = res.status_code == 200
            except requests.RequestException:
                ok = False
            took = (time.perf_counter() - started) * 1000
            if ok:
                times.append(took)
            else:
                failed += 1
    times.sort()
    pct = (lambda q: times[min(len(times) - 1, int(q * len(times)))]) if times else (lambda q: float("nan"))
    return {"p50": statistics.median(times) if times else float("nan"), "p99": pct(0.99),
            "answered": len(times), "failed": failed}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--slow", type=int, default=200, help="slow connections held open")
    parser.add_argument("--drawings", type=int, default=300, help="normal client's drawings per case")
    args = parser.parse_args()

    stack = BenchStack()
    front = None
    try:
        stack.start_web()
        stack.set_workers(1)
        stack.wait_ready(workers=1)
        front_port = free_port()
        front = subprocess.Popen([sys.executable, "-m", "swagdigits", "front", "--port", str(front_port),
                                  "--upstream", f"127.0.0.1:{stack.port}"], env=stack.env)
        front_url = f"http://127.0.0.1:{front_port}"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if requests.get(front_url + "/readyz", timeout=2).ok:
                    break
            except requests.RequestException:
                time.sleep(0.2)
        normal_client(front_url, 20)                                     # warm-up
        print(f"stack: redis-server + 1 predict worker + web (gunicorn gthread, 64 threads); "
              f"{args.slow} slow clients; {args.drawings} drawings per case, one after another")
        rows = [("no slow clients, through the front", normal_client(front_url, args.drawings), 0),
                ("no slow clients, straight to gunicorn", normal_client(stack.url, args.drawings), 0)]
        for name, port, url in (("through the front", front_port, front_url),
                                ("straight to gunicorn", stack.port, stack.url)):
            with SlowClients(port, args.slow) as slow:
                rows.append((f"{args.slow} slow clients, {name}", normal_client(url, args.drawings),
                             slow.reopened))
            time.sleep(1.0)
        base = rows[0][1]["p99"]
        print(f"{'case':<45} {'p50 ms':>8} {'p99 ms':>8} {'x p99':>7} {'answered':>9} {'failed':>7} "
              f"{'slow reopened':>14}")
        for name, r, reopened in rows:
            print(f"{name:<45} {r['p50']:8.1f} {r['p99']:8.1f} {r['p99'] / base:7.2f} {r['answered']:9d} "
                  f"{r['failed']:7d} {reopened:14d}")
        return 0
    finally:
        if front:
            front.terminate()
            front.wait(10)
        stack.stop()


if __name__ == "__main__":
    sys.exit(main())
