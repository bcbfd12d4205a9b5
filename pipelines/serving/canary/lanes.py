"""How the canary sends a look's traffic: one lane per variant, mirror copies best-effort.

Each variant has its own client thread(s), a lane: the baseline's lane sends the routes to the
baseline, the candidate's lane the routed and mirrored ones to the candidate, each in route
order. Why lanes, measured on this 2-core host: with one shared thread a slow candidate sets the
pace of all traffic (a 30 ms candidate held both variants to ~32 requests a second, too few for
any p99 bound in Triton's 48 s window, so it was never rolled back); with several shared threads
one model's requests queue behind the other's and the tails of two identical models drift apart
(p99 5.3 vs 2.7 ms at 4 threads). One thread per lane keeps one request in flight per model (no
model queues behind itself or the other) and ran two identical models at 1,800 requests a second
with p99s of 1.4 ms both.

A slow candidate must not hold the baseline's traffic back either: the candidate's lane drops a
mirror copy whose original the baseline's lane passed more than :data:`MIRROR_LAG` routes ago, as
a mesh mirrors best-effort; routed candidate requests (they answer users) are never dropped.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

import numpy as np

from pipelines.serving.canary.router import Route
from pipelines.serving.load import InferClients, Outcome

MIRROR_LAG = 32
"""Routes the baseline's lane may be ahead of a mirror copy before the copy is dropped."""
DROPPED = "mirror dropped"
"""The error of a dropped mirror copy (an outcome with ``sent=False``, counted nowhere)."""
DEADLINE = "deadline"
"""The error of a request not sent because the run's time bound passed."""


def send_in_lanes(
    lanes: dict[str, InferClients],
    baseline: str,
    routes: Sequence[Route],
    rows: np.ndarray,
    x: np.ndarray,
    deadline: float | None = None,
) -> list[Outcome]:
    """Send ``routes`` (row ``rows[k]`` of ``x`` each) through each model's lane; outcomes in
    route order. ``lanes`` maps each model to its clients (their count is the lane's threads)."""
    outcomes: list[Outcome | None] = [None] * len(routes)
    ahead = [-1]
    """The last route index the baseline's lane has taken."""
    lock = threading.Lock()

    def lane(model: str, indices: list[int], clients: InferClients) -> None:
        queue = iter(indices)
        is_baseline = model == baseline

        def worker(slot: int) -> None:
            while True:
                with lock:
                    k = next(queue, None)
                    if k is None:
                        return
                    if is_baseline:
                        ahead[0] = max(ahead[0], k)
                    late = routes[k].mirror and ahead[0] > k + MIRROR_LAG
                if deadline is not None and time.monotonic() > deadline:
                    outcomes[k] = Outcome(False, 0.0, error=DEADLINE, sent=False)
                    continue
                if late:
                    outcomes[k] = Outcome(False, 0.0, error=DROPPED, sent=False)
                    continue
                start = time.perf_counter()
                try:
                    out = clients.infer(slot, model, x[rows[k] : rows[k] + 1])
                    outcomes[k] = Outcome(True, time.perf_counter() - start, out)
                except Exception as exc:  # every failure is data: counted, never raised
                    error = f"{type(exc).__name__}: {exc}"[:300]
                    outcomes[k] = Outcome(False, time.perf_counter() - start, error=error)

        workers = [threading.Thread(target=worker, args=(s,)) for s in range(len(clients.clients))]
        for w in workers:
            w.start()
        for w in workers:
            w.join()

    by_model: dict[str, list[int]] = {m: [] for m in lanes}
    for k, route in enumerate(routes):
        by_model[route.model].append(k)
    threads = [
        threading.Thread(target=lane, args=(m, by_model[m], lanes[m]), daemon=True) for m in lanes
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return [o if o is not None else Outcome(False, 0.0, error="lost", sent=False) for o in outcomes]
