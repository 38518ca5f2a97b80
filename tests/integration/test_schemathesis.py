"""The standard OpenAPI tester against a real stack: every check, the stateful phase, 0 failures.

Why: ``tests/web/test_fuzz.py`` checks answers against the document with our
own generator; schemathesis is what a new user would point at
``/openapi.json``, and it also checks what ours does not (``Allow`` on 405s,
401 + ``WWW-Authenticate`` without credentials, undeclared content types,
schema-valid requests the service refuses, links between operations). It
runs here against a real web process, predict worker and redis-server, with
the operator token supplied, bounded by ``MAX_EXAMPLES`` per operation so the
run stays well under two minutes on the 2-core machine.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from tests.integration.conftest import Stack

TOKEN = "schemathesis-token-7d21"
MAX_EXAMPLES = 30
CONFIG = Path(__file__).with_name("schemathesis.toml")
RUN_TIMEOUT_S = 240
SEED = 1515


def test_schemathesis_finds_nothing_with_every_check_and_the_stateful_phase(stack_env, tmp_path):
    env = {**stack_env, "SWAGDIGITS_ADMIN_TOKEN": TOKEN,
           # generated requests come fast from one address: no 429s in the way of the checks
           "SWAGDIGITS_RATE_LIMIT_PREDICT": "0", "SWAGDIGITS_RATE_LIMIT_HELP": "0",
           # bounded waits: a generated drawing that cannot be answered costs 2 s, not 5
           "SWAGDIGITS_PREDICT_TIMEOUT": "2", "SWAGDIGITS_INFER_TIMEOUT": "5"}
    stack = Stack(env, tmp_path)
    try:
        stack.start("worker", "predict")
        url = stack.start_web()
        stack.wait_ready(url)
        report = tmp_path / "schemathesis.xml"
        st = Path(sys.executable).with_name("st")
        cmd = [str(st), "--config-file", str(CONFIG), "run", f"{url}/openapi.json",
               "--checks", "all",
               "--phases", "examples,coverage,fuzzing,stateful",
               "--max-examples", str(MAX_EXAMPLES), "--seed", str(SEED),
               "--workers", "1", "--request-timeout", "10",
               "--generation-database", "none",
               "--header", f"Authorization: Bearer {TOKEN}",
               "--report", "junit", "--report-junit-path", str(report),
               "--no-color"]
        t0 = time.monotonic()
        run = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=RUN_TIMEOUT_S,
                             env={**os.environ, "SCHEMATHESIS_HOOKS": ""})
        elapsed = time.monotonic() - t0
        output = run.stdout[-12000:] + run.stderr[-3000:]
        assert run.returncode == 0, f"schemathesis failed (exit {run.returncode}, {elapsed:.0f}s):\n{output}"
        # It really ran every phase, and the stateful phase followed the document's links.
        for phase in ("Examples", "Coverage", "Fuzzing", "Stateful"):
            assert f"✅  {phase}" in run.stdout, (phase, output)
        assert "Scenarios:" in run.stdout and "API Links:" in run.stdout, output
        assert elapsed < 120, f"schemathesis took {elapsed:.0f}s"
        for proc in stack.procs:
            assert proc.popen.poll() is None, proc.log()[-3000:]
    finally:
        stack.stop()
