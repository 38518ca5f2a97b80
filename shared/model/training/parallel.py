"""Running independent chunks of training work in a few forked processes.

Drawing synthetic digits and computing the scans' features are pure CPU work
on data the parent already holds: forked workers inherit it without pickling,
and the results come back in job order, so the outcome never depends on how
many processes did the work.
"""
from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from typing import Callable, Sequence, TypeVar

Job = TypeVar("Job")
Result = TypeVar("Result")


def map_jobs(func: Callable[[Job], Result], jobs: Sequence[Job], processes: int) -> list[Result]:
    """``[func(job) for job in jobs]``, in ``processes`` forked processes when that helps."""
    if processes > 1 and len(jobs) > 1:
        with ProcessPoolExecutor(processes, mp_context=get_context("fork")) as pool:
            return list(pool.map(func, jobs))
    return [func(job) for job in jobs]
