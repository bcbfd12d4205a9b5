"""The checkov worker's serial executor: a thread pool's contract, run in the submitting thread.

Its equivalence on real scans is ``tests/test_fleet_gate.py``'s comparison of the fleet (whose
workers use it) with the per-stack command (whose checkov runs its threads)."""

from __future__ import annotations

import concurrent.futures
import inspect
import threading

import pytest

from infra.gate import checkov_worker
from infra.gate.checkov_worker import SerialExecutor


def test_each_job_runs_at_submission_in_the_callers_thread() -> None:
    ran: list[tuple[int, str]] = []
    pool = SerialExecutor(max_workers=4, thread_name_prefix="ignored")
    futures = [
        pool.submit(lambda i: ran.append((i, threading.current_thread().name)) or i * i, i)
        for i in range(5)
    ]
    assert ran == [(i, threading.current_thread().name) for i in range(5)]
    assert all(f.done() for f in futures)
    assert [f.result() for f in futures] == [0, 1, 4, 9, 16]


def test_a_jobs_exception_is_held_by_its_future_as_a_pools_would_be() -> None:
    def job(x: int) -> int:
        if x == 2:
            raise ValueError("vertex 2")
        return x

    with SerialExecutor() as pool:
        futures = [pool.submit(job, x) for x in range(4)]
    done, not_done = concurrent.futures.wait(futures)
    assert len(done) == 4 and not not_done
    assert isinstance(futures[2].exception(), ValueError)
    with pytest.raises(ValueError, match="vertex 2"):
        futures[2].result()
    assert [f.result() for i, f in enumerate(futures) if i != 2] == [0, 1, 3]
    # A BaseException, such as an interrupt, is stored too: a pool's worker thread stores it.
    held = SerialExecutor().submit(lambda: (_ for _ in ()).throw(KeyboardInterrupt()))
    assert isinstance(held.exception(), KeyboardInterrupt)


def test_map_keeps_the_order_and_keyword_arguments_reach_the_job() -> None:
    pool = SerialExecutor()
    assert list(pool.map(lambda a, b: a - b, [5, 7], [1, 2])) == [4, 5]
    assert pool.submit(dict, a=1).result() == {"a": 1}


def test_the_worker_makes_every_thread_pool_serial_before_checkov_binds_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(
        concurrent.futures, "ThreadPoolExecutor", concurrent.futures.ThreadPoolExecutor
    )
    checkov_worker._serial_thread_pools()
    from concurrent.futures import ThreadPoolExecutor  # as checkov's solvers import it

    assert ThreadPoolExecutor is SerialExecutor
    assert concurrent.futures.ThreadPoolExecutor is SerialExecutor
    # main() installs it before checkov is imported, so checkov's own imports bind it.
    source = inspect.getsource(checkov_worker.main)
    assert 0 <= source.index("_serial_thread_pools()") < source.index("from checkov.main import")
