"""map_jobs: work in forked helpers, and no helper outlives the process that forked it."""
import os
import signal
import subprocess
import sys
import textwrap
import time

import psutil

from shared.model.training.parallel import map_jobs


def _square(n: int) -> int:
    return n * n


def test_results_come_back_in_job_order_whatever_the_number_of_processes():
    assert map_jobs(_square, list(range(20)), processes=2) == [n * n for n in range(20)]
    assert map_jobs(_square, list(range(20)), processes=1) == [n * n for n in range(20)]


def test_helpers_end_when_their_parent_is_killed_mid_work():
    """A retrain worker stopped during its warm-up left its helpers waiting for ever."""
    code = textwrap.dedent("""
        import time
        from shared.model.training.parallel import map_jobs
        map_jobs(time.sleep, [60, 60, 60, 60], processes=2)
    """)
    parent = subprocess.Popen([sys.executable, "-c", code], cwd=os.getcwd())
    try:
        deadline = time.monotonic() + 20
        helpers = []
        while time.monotonic() < deadline and len(helpers) < 2:
            helpers = psutil.Process(parent.pid).children()
            time.sleep(0.1)
        assert len(helpers) == 2, helpers
    finally:
        parent.send_signal(signal.SIGKILL)
        parent.wait()
    gone, alive = psutil.wait_procs(helpers, timeout=10)
    for proc in alive:
        proc.kill()
    assert alive == [], f"helpers left running after their parent died: {alive}"
