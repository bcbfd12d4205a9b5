"""Latency measurement of the CPU tier's candidates: plan, timers, threads and figures.

Per batch size, every candidate is warmed up, then timed call by call in interleaved rounds
(round-robin over candidates, alternating direction), so slow drifts of a shared machine hit all
candidates alike; each block starts with a few discarded calls, which absorb the previous
candidate's still-spinning thread pool. Latency is the median (p50) and the 95th percentile of
single calls, numpy in and numpy out (what a Triton backend sees). The garbage collector is paused
while timing. The timer is injectable (:data:`Timer`) so tests can make the selection
deterministic.

Threads: torch's intra-op thread count is set to the profile's vCPUs for the measurement and
restored afterwards (:func:`torch_threads`); nothing else global is changed.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import os
import platform
import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pipelines.serving.cpu_tier.forms import Candidate


@dataclass(frozen=True)
class MeasurePlan:
    """How latency is measured (see the module docstring)."""

    batch_sizes: tuple[int, ...] = (1, 64)
    """Batch sizes to measure."""
    warmup: int = 30
    """Discarded calls per candidate and batch size before anything is timed (TorchScript
    profiles and optimises its graph during its first calls, ONNX Runtime allocates)."""
    calibration: int = 5
    """Calls timed to size the blocks."""
    rounds: int = 5
    """Interleaved rounds over all candidates."""
    block_seconds: float = 0.04
    """Target time of one candidate's block in one round."""
    min_block: int = 10
    """Fewest timed calls per block."""
    max_block: int = 2000
    """Most timed calls per block."""
    block_warmup: int = 3
    """Discarded calls at the start of every block."""
    settle_seconds: float = 0.01
    """Pause before every block. Idle thread-pool workers of the runtime timed just before
    (OpenMP in torch, ONNX Runtime's pool) spin for a while before they sleep; on a 2-vCPU
    profile a spinning worker of another runtime takes half the machine, which no single-runtime
    server has to share with."""

    def __post_init__(self) -> None:
        if not self.batch_sizes or any(b < 1 for b in self.batch_sizes):
            raise ValueError("batch sizes must be positive")
        if self.rounds < 1 or self.min_block < 1 or self.max_block < self.min_block:
            raise ValueError("need rounds >= 1 and 1 <= min_block <= max_block")


@dataclass(frozen=True)
class Latency:
    """Single-call latency of one candidate at one batch size, in microseconds."""

    p50_us: float
    """Median of the single calls."""
    p95_us: float
    """95th percentile of the single calls."""
    mean_us: float
    """Mean of the single calls."""
    calls: int
    """How many calls were timed."""

    @classmethod
    def from_seconds(cls, samples: Sequence[float]) -> Latency:
        """Statistics of per-call durations given in seconds."""
        us = np.asarray(samples, dtype=np.float64) * 1e6
        return cls(
            p50_us=float(np.median(us)),
            p95_us=float(np.percentile(us, 95)),
            mean_us=float(us.mean()),
            calls=len(us),
        )


Timer = Callable[[str, int, Callable[[], object], int], Sequence[float]]
"""``timer(candidate, batch, call, n)`` -> ``n`` per-call durations in seconds."""


def perf_timer(name: str, batch: int, call: Callable[[], object], n: int) -> list[float]:
    """The real timer: ``time.perf_counter_ns`` around each of ``n`` calls."""
    from time import perf_counter_ns

    durations = []
    for _ in range(n):
        started = perf_counter_ns()
        call()
        durations.append((perf_counter_ns() - started) / 1e9)
    return durations


@contextlib.contextmanager
def torch_threads(threads: int) -> Iterator[None]:
    """Run with ``threads`` torch intra-op threads; the previous count is restored after."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def batch_rows(sample: np.ndarray, size: int) -> np.ndarray:
    """``size`` rows taken cyclically from ``sample``, float32 and C-contiguous."""
    rows = np.asarray(sample, dtype=np.float32)
    if rows.ndim < 2 or len(rows) == 0:
        raise ValueError("sample must be a non-empty [rows, ...] array")
    return np.ascontiguousarray(rows[np.arange(size) % len(rows)])


def measure(
    candidates: Sequence[Candidate],
    sample: np.ndarray,
    plan: MeasurePlan,
    timer: Timer = perf_timer,
) -> dict[str, dict[int, Latency]]:
    """Latency of every built candidate at every batch size of ``plan`` (interleaved rounds)."""
    live = [c for c in candidates if c.predict is not None]
    results: dict[str, dict[int, Latency]] = {c.name: {} for c in live}
    collecting = gc.isenabled()
    gc.disable()  # a collection inside a timed call is noise, not the backend's cost
    try:
        for batch in plan.batch_sizes:
            x = batch_rows(sample, batch)
            calls: dict[str, Callable[[], object]] = {
                c.name: functools.partial(c.predict, x) for c in live  # type: ignore[arg-type]
            }
            blocks = _block_sizes(calls, batch, plan, timer)
            samples = _interleaved_rounds(calls, blocks, batch, plan, timer)
            for name, durations in samples.items():
                results[name][batch] = Latency.from_seconds(durations)
    finally:
        if collecting:
            gc.enable()
    return results


def _block_sizes(
    calls: dict[str, Callable[[], object]], batch: int, plan: MeasurePlan, timer: Timer
) -> dict[str, int]:
    """Warm every candidate up, then size its block from a few calibration calls."""
    blocks: dict[str, int] = {}
    for name, call in calls.items():
        timer(name, batch, call, plan.warmup)
        probe = statistics.median(timer(name, batch, call, plan.calibration))
        size = int(plan.block_seconds / max(probe, 1e-9))
        blocks[name] = min(max(size, plan.min_block), plan.max_block)
    return blocks


def _interleaved_rounds(
    calls: dict[str, Callable[[], object]],
    blocks: dict[str, int],
    batch: int,
    plan: MeasurePlan,
    timer: Timer,
) -> dict[str, list[float]]:
    """Per-call durations of every candidate, timed block by block in interleaved rounds."""
    samples: dict[str, list[float]] = {name: [] for name in calls}
    names = list(calls)
    for round_no in range(plan.rounds):
        # Alternate the direction so no candidate always follows the same neighbour.
        for name in names if round_no % 2 == 0 else reversed(names):
            if plan.settle_seconds > 0:
                time.sleep(plan.settle_seconds)
            timer(name, batch, calls[name], plan.block_warmup)
            samples[name].extend(timer(name, batch, calls[name], blocks[name]))
    return samples


def package_version(package: str) -> str | None:
    """The installed version of ``package``, None when it is not installed."""
    from importlib import metadata

    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def environment(threads: int) -> dict[str, Any]:
    """Where figures come from: CPU, core count, threads used, library versions."""
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "threads": threads,
        "python": platform.python_version(),
        "torch": package_version("torch"),
        "onnxruntime": package_version("onnxruntime"),
        "onnx": package_version("onnx"),
        "onnxscript": package_version("onnxscript"),
    }
