"""Time to the first answer on a fresh machine: ``swagdigits up`` on an empty data folder.

    .venv/bin/python -m benchmarks.first_start [--workers 2] [--runs 1]

Starts the real command (private redis-server, web, predict workers, retrain
worker) on an empty ``SWAGDIGITS_DATA_DIR``: a predict worker finds no model,
trains one from the shipped digits and publishes it. Prints the seconds until
``/readyz`` says ready and until the first drawing is answered (target: a
model within 60 s), then stops everything with SIGTERM.
"""
from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

from swagdigits.embedded_redis import free_port
from testkit.drawings import digit_png

TIMEOUT_S = 300


def one_run(workers: int) -> tuple[float, float]:
    data = Path(tempfile.mkdtemp(prefix="swagdigits-first-start-"))
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SWAGDIGITS_", "REDIS_URL"))}
    env.update({"SWAGDIGITS_DATA_DIR": str(data), "SWAGDIGITS_LOG_LEVEL": "WARNING"})
    url = f"http://127.0.0.1:{port}"
    started = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "swagdigits", "up", "--port", str(port),
                             "--workers", str(workers)], env=env, stdout=subprocess.DEVNULL,
                            stderr=open(data / "up.log", "wb"), start_new_session=True)
    try:
        ready = _wait(lambda: requests.get(url + "/readyz", timeout=1).json().get("ready"), started)
        res = requests.post(url + "/api/predict", files={"file": ("d.png", digit_png(3), "image/png")}, timeout=10)
        res.raise_for_status()
        return ready, time.monotonic() - started
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=60)


def _wait(check, started: float) -> float:
    while time.monotonic() - started < TIMEOUT_S:
        try:
            if check():
                return time.monotonic() - started
        except (requests.RequestException, ValueError):
            pass
        time.sleep(0.2)
    raise RuntimeError(f"not ready within {TIMEOUT_S}s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--runs", type=int, default=1)
    args = parser.parse_args()
    for run in range(args.runs):
        ready, answered = one_run(args.workers)
        print(f"run {run + 1}: ready after {ready:.1f} s, first drawing answered after {answered:.1f} s "
              f"(target: a model within 60 s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
