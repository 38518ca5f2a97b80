"""Running independent chunks of training work in a few forked processes.

Drawing synthetic digits and computing the scans' features are pure CPU work
on data the parent already holds: forked workers inherit it without pickling,
and the results come back in job order, so the outcome never depends on how
many processes did the work.
"""
from __future__ import annotations

import ctypes
import os
import signal
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from typing import Callable, Sequence, TypeVar

Job = TypeVar("Job")
Result = TypeVar("Result")


def map_jobs(func: Callable[[Job], Result], jobs: Sequence[Job], processes: int) -> list[Result]:
    """``[func(job) for job in jobs]``, in ``processes`` forked processes when that helps."""
    if processes > 1 and len(jobs) > 1:
        with ProcessPoolExecutor(processes, mp_context=get_context("fork"), initializer=die_with_parent,
                                 initargs=(os.getpid(),)) as pool:
            return list(pool.map(func, jobs))
    return [func(job) for job in jobs]


def die_with_parent(parent: int) -> None:
    """A forked helper ends when its parent dies, however it dies.

    Why: a helper waits on a queue whose write end it inherited, so it never sees
    the parent go. A retrain worker stopped by SIGTERM during its warm-up left both
    its helpers waiting for ever (found after `swagdigits up` stopped in a test).
    """
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)   # PR_SET_PDEATHSIG
    except OSError:
        return
    if os.getppid() != parent:          # it died before the line above took effect
        os._exit(0)
