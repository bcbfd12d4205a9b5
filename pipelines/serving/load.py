"""Concurrent tritonclient traffic: N workers, each with its own client, bounded in count and time.

Used by the A/B analysis (:mod:`pipelines.serving.canary`) and the load benchmark
(:mod:`pipelines.serving.bench`). Workers are threads: tritonclient's gRPC and HTTP calls release
the GIL while they wait on the socket, and on a small host separate client processes would take
CPU from the server they measure. One client per worker because tritonclient's client objects are
not meant to be shared between threads.

Every request carries one job (model name + input rows); a failure (transport error, server
error, timeout, missing output) is recorded, never raised, so a run always reports its error
count. The deadline is checked before each request, so a run stops within one request timeout of
it.
"""

from __future__ import annotations

import contextlib
import itertools
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

PROTOCOLS = ("grpc", "http")
REQUEST_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class Job:
    """One inference request: ``rows`` (FP32 ``[batch, dim]``) to ``model``."""

    model: str
    rows: np.ndarray


@dataclass
class Outcome:
    """What came back for one job."""

    ok: bool
    latency_s: float
    output: np.ndarray | None = None
    error: str = ""
    sent: bool = True
    """False when the deadline passed before the request was sent."""


class InferClients:
    """``count`` tritonclient clients for one server and protocol, plus the tensor names.

    Args:
        protocol: ``grpc`` or ``http``.
        url: ``host:port`` of that protocol's endpoint.
        count: Number of clients (one per worker thread).
        input_name: Input tensor name (the same for every model this run sends to).
        output_name: Output tensor name.
        timeout_s: Per-request timeout.
    """

    def __init__(
        self,
        protocol: str,
        url: str,
        count: int,
        input_name: str,
        output_name: str,
        timeout_s: float = REQUEST_TIMEOUT_S,
    ) -> None:
        if protocol not in PROTOCOLS:
            raise ValueError(f"protocol: {protocol!r}; allowed {PROTOCOLS}")
        if count < 1:
            raise ValueError(f"concurrency: {count}; allowed >= 1")
        self.protocol = protocol
        self.module = _client_module(protocol)
        self.input_name = input_name
        self.output_name = output_name
        self.timeout_s = timeout_s
        if protocol == "http":
            self.clients = [
                self.module.InferenceServerClient(
                    url, connection_timeout=timeout_s, network_timeout=timeout_s
                )
                for _ in range(count)
            ]
        else:
            self.clients = [self.module.InferenceServerClient(url) for _ in range(count)]

    def infer(self, worker: int, model: str, rows: np.ndarray) -> np.ndarray:
        """One request from client ``worker``; returns the output tensor (raises on failure)."""
        mod = self.module
        data = np.ascontiguousarray(rows, dtype=np.float32)
        tensor = mod.InferInput(self.input_name, list(data.shape), "FP32")
        tensor.set_data_from_numpy(data)
        outputs = [mod.InferRequestedOutput(self.output_name)]
        client = self.clients[worker]
        if self.protocol == "grpc":
            result = client.infer(model, [tensor], outputs=outputs, client_timeout=self.timeout_s)
        else:
            result = client.infer(model, [tensor], outputs=outputs)
        out = result.as_numpy(self.output_name)
        if out is None:
            raise RuntimeError(f"response of {model} has no output {self.output_name!r}")
        return np.asarray(out)

    def close(self) -> None:
        """Close every client (an open HTTP connection would delay the server's shutdown)."""
        for client in self.clients:
            # Best effort: the run's results are already in.
            with contextlib.suppress(Exception):
                client.close()

    def __enter__(self) -> InferClients:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _client_module(protocol: str) -> Any:
    # Imported on use: `sovml --help` and the pure statistics must not pay for tritonclient.
    if protocol == "grpc":
        import tritonclient.grpc as module
    else:
        import tritonclient.http as module
    return module


def run_jobs(
    clients: InferClients, jobs: Sequence[Job], deadline: float | None = None
) -> list[Outcome]:
    """Send ``jobs`` with one worker thread per client; outcomes in job order.

    Args:
        clients: The clients (their count is the concurrency).
        jobs: Requests to send, each exactly once.
        deadline: ``time.monotonic()`` after which no new request is sent (those jobs come back
            with ``sent=False``).
    """
    outcomes: list[Outcome | None] = [None] * len(jobs)
    counter = itertools.count()
    lock = threading.Lock()

    def worker(slot: int) -> None:
        while True:
            with lock:
                i = next(counter)
            if i >= len(jobs):
                return
            if deadline is not None and time.monotonic() > deadline:
                outcomes[i] = Outcome(False, 0.0, error="deadline", sent=False)
                continue
            job = jobs[i]
            start = time.perf_counter()
            try:
                out = clients.infer(slot, job.model, job.rows)
                outcomes[i] = Outcome(True, time.perf_counter() - start, out)
            except Exception as exc:  # every failure is data: counted, reported, never raised
                outcomes[i] = Outcome(False, time.perf_counter() - start, error=_short(exc))

    threads = [
        threading.Thread(target=worker, args=(slot,), daemon=True)
        for slot in range(len(clients.clients))
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return [o if o is not None else Outcome(False, 0.0, error="lost", sent=False) for o in outcomes]


def _short(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}"
    return text if len(text) <= 300 else text[:297] + "..."


def percentiles_ms(latencies_s: Sequence[float] | np.ndarray) -> dict[str, float]:
    """p50/p95/p99, mean and max in milliseconds (NaN when empty)."""
    a = np.asarray(latencies_s, dtype=float) * 1000.0
    if a.size == 0:
        return {k: float("nan") for k in ("p50", "p95", "p99", "mean", "max")}
    p50, p95, p99 = np.percentile(a, [50, 95, 99])
    return {
        "p50": float(p50),
        "p95": float(p95),
        "p99": float(p99),
        "mean": float(a.mean()),
        "max": float(a.max()),
    }
