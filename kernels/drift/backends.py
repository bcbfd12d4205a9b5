"""Where the drift arithmetic runs: numpy on CPU (sorted copies, a thread pool) or torch (CUDA).

Both backends expose the same small set of array operations (:class:`NumpyOps`,
:class:`TorchOps`), so the statistics in :mod:`kernels.drift.statistics` are written once.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import torch

from kernels.drift.conventions import DriftError
from kernels.drift.statistics import w1_plan

_BLOCK = 1 << 16
"""Elements per block of the CPU W1 passes: every temporary stays in cache (fresh 8 MB
temporaries cost more in page faults than the arithmetic)."""


def default_threads() -> int:
    """The CPUs this process may use (at least 1)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def compute_dtype(*dtypes: np.dtype) -> np.dtype:
    """float32 when every input fits it exactly (float16/32), float64 otherwise."""
    if all(dt in (np.float16, np.float32) for dt in dtypes):
        return np.dtype(np.float32)
    return np.dtype(np.float64)


def as_matrix(x: Any, what: str) -> np.ndarray | torch.Tensor:
    """A 2-D float array or tensor; pandas frames and lists go through numpy."""
    if isinstance(x, torch.Tensor):
        if x.ndim != 2:
            raise DriftError(f"{what} must be 2-D (rows x features), got shape {tuple(x.shape)}")
        if not x.is_floating_point():
            x = x.to(torch.float64)
        elif x.dtype == torch.bfloat16:
            # bfloat16 has no numpy twin; float32 holds it exactly.
            x = x.to(torch.float32)
        return x
    arr = np.asarray(x)
    if arr.ndim != 2:
        raise DriftError(f"{what} must be 2-D (rows x features), got shape {arr.shape}")
    if arr.dtype.kind != "f":
        arr = arr.astype(np.float64)
    return arr


def ceil_edges(edges: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Edges in ``dtype`` such that ``x < out`` iff ``x < edges`` for every ``x`` of ``dtype``.

    Bin counts must compare the data with the float64 quantile edges exactly (as np.histogram
    does after upcasting); searching a float32 array with the smallest float32 at or above each
    edge gives the same answer without upcasting the whole window.
    """
    if dtype == np.float64:
        return edges.astype(np.float64)
    out = edges.astype(np.float32)
    low = out.astype(np.float64) < edges
    out[low] = np.nextafter(out[low], np.float32(np.inf))
    return out


# --------------------------------------------------------------------------------------------
# The two backends: the same operations over numpy arrays (fast CPU sort) or torch tensors.


class NumpyOps:
    """Array operations for CPU windows held as numpy arrays."""

    def searchsorted(self, a: np.ndarray, v: np.ndarray, right: bool) -> np.ndarray:
        """Insertion points of ``v`` in sorted ``a`` (after equal values when ``right``)."""
        return np.searchsorted(a, v, side="right" if right else "left")

    def to_numpy(self, x: np.ndarray) -> np.ndarray:
        """``x`` as a numpy array."""
        return np.asarray(x)

    def from_numpy(self, x: np.ndarray) -> np.ndarray:
        """A numpy array in this backend's form (itself)."""
        return x

    def take(self, a: np.ndarray, idx: np.ndarray) -> np.ndarray:
        """``a[idx]``."""
        return a[idx]

    def equal(self, a: np.ndarray, b: np.ndarray) -> bool:
        """Whether two sorted arrays of the same size hold the same values."""
        return bool(a[0] == b[0] and a[-1] == b[-1] and np.array_equal(a, b))

    def cat(self, xs: Sequence[np.ndarray]) -> np.ndarray:
        """The arrays one after the other."""
        return np.concatenate(xs)

    def w1(self, r: np.ndarray, c: np.ndarray) -> float:
        """Wasserstein-1 distance of two sorted samples (sizes may differ)."""
        n, m = r.size, c.size
        if n == m:
            return _sum_abs_diff(r, c) / n
        big, small = (r, c) if n >= m else (c, r)
        size_b, size_s = big.size, small.size
        total = 0.0
        # Blocks of the smaller sample's steps, for the same cache reason as _sum_abs_diff.
        for j0 in range(0, size_s, _BLOCK):
            j1 = min(size_s, j0 + _BLOCK)
            counts, last, len1, e = w1_plan(size_b, size_s, j0, j1)
            i0, i1 = int(e[0]), int(e[-1])
            total += _sum_abs_diff(big[i0:i1], np.repeat(small[j0:j1], counts)) * size_s
            k = min(j1, size_s - 1) - j0  # the last step of the smaller sample never splits
            if k > 0:
                at = big[last[:k]].astype(np.float64)
                corr = np.abs(at - small[j0 + 1 : j0 + 1 + k]) - np.abs(at - small[j0 : j0 + k])
                # Not np.dot or @: BLAS threads spin against the worker threads.
                total += float((corr * len1[:k]).sum())
        return total / (float(n) * float(m))


def _sum_abs_diff(a: np.ndarray, b: np.ndarray) -> float:
    """sum(|a - b|) in float64, in blocks that keep the float64 temporary in cache."""
    total = 0.0
    for i in range(0, a.size, _BLOCK):
        d = np.subtract(a[i : i + _BLOCK], b[i : i + _BLOCK], dtype=np.float64)
        np.abs(d, out=d)
        total += float(d.sum())
    return total


class TorchOps:
    """The same operations on torch tensors, on whatever device they live."""

    def __init__(self, device: torch.device) -> None:
        self.device = device

    def searchsorted(self, a: torch.Tensor, v: torch.Tensor, right: bool) -> torch.Tensor:
        """Insertion points of ``v`` in sorted ``a`` (after equal values when ``right``)."""
        return torch.searchsorted(a, v, right=right)

    def to_numpy(self, x: torch.Tensor) -> np.ndarray:
        """``x`` copied to a numpy array on the host."""
        return x.detach().cpu().numpy()

    def from_numpy(self, x: np.ndarray) -> torch.Tensor:
        """A numpy array as a tensor on this backend's device."""
        return torch.from_numpy(np.ascontiguousarray(x)).to(self.device)

    def take(self, a: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        """``a[idx]``."""
        return a[idx]

    def equal(self, a: torch.Tensor, b: torch.Tensor) -> bool:
        """Whether two tensors hold the same values."""
        return bool(torch.equal(a, b))

    def cat(self, xs: Sequence[torch.Tensor]) -> torch.Tensor:
        """The tensors one after the other."""
        return torch.cat(list(xs))

    def w1(self, r: torch.Tensor, c: torch.Tensor) -> float:
        """Wasserstein-1 distance of two sorted samples (sizes may differ)."""
        n, m = r.numel(), c.numel()
        if n == m:
            return float((r.double() - c.double()).abs().sum().item() / n)
        big, small = (r, c) if n >= m else (c, r)
        plan = w1_plan(big.numel(), small.numel())[:3]
        counts, last, len1 = (torch.from_numpy(a).to(self.device) for a in plan)
        main = (big.double() - torch.repeat_interleave(small, counts).double()).abs().sum()
        # The smaller sample's last step never splits: its len1 is 0 and it has no successor.
        at = big[last[:-1]].double()
        sd = small.double()
        corr = (at - sd[1:]).abs() - (at - sd[:-1]).abs()
        total = main * small.numel() + torch.dot(corr, len1[:-1])
        return float(total.item() / (float(n) * float(m)))


# --------------------------------------------------------------------------------------------
# CPU layout and threading


def transpose_sorted(src: np.ndarray, out: np.ndarray) -> np.ndarray:
    """Copy ``src`` (rows x k) feature-major into ``out`` (k x rows), each row sorted ascending.

    numpy's sort puts -inf first and +inf, then NaN, last. ``out`` is a reused buffer: touching
    fresh memory costs more than the copy itself on this class of machine.
    """
    rows, k = src.shape
    if src.strides[0] == src.itemsize:
        out[...] = src.T  # columns already contiguous: a straight copy
    else:
        # Row blocks keep the strided reads and the scattered writes inside the cache; a plain
        # ascontiguousarray(src.T) of a wide row-major matrix is several times slower.
        step = max(4096, (1 << 18) // max(k, 1))
        for i in range(0, rows, step):
            out[:, i : i + step] = src[i : i + step].T
    out.sort(axis=1)
    return out


def finite_span(sorted_row: np.ndarray) -> tuple[int, int]:
    """``[lo, hi)`` of the finite values in a numpy-sorted row (-inf first, +inf then NaN last)."""
    lo = int(np.searchsorted(sorted_row, -np.inf, side="right"))
    hi = int(np.searchsorted(sorted_row, np.inf, side="left"))
    return lo, hi


def chunk_size(d: int, threads: int) -> int:
    """Features per chunk of work."""
    # A few chunks per thread balance the pool; each chunk's sorted copy stays small.
    return max(1, min(16, math.ceil(d / (4 * threads))))


def run_chunks(fn: Callable[[int, int], Any], d: int, threads: int) -> None:
    """Call ``fn(j0, j1)`` for every chunk of the ``d`` features, on up to ``threads`` threads."""
    size = chunk_size(d, threads)
    chunks = [(j0, min(d, j0 + size)) for j0 in range(0, d, size)]
    if threads <= 1 or len(chunks) == 1:
        for j0, j1 in chunks:
            fn(j0, j1)
        return
    with ThreadPoolExecutor(max_workers=threads) as pool:
        for _ in pool.map(lambda c: fn(*c), chunks):
            pass
