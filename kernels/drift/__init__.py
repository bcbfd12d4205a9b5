"""Exact, fast drift statistics between a stored reference profile and a window of current data.

Statistics (per numeric feature, all returned as float64):

* **PSI** over ``bins`` bins whose edges are the reference quantiles,
  ``np.quantile(ref_j, np.linspace(0, 1, bins + 1))`` in float64 (numpy's default ``'linear'``
  interpolation). The two outer edges are treated as open, so values outside the reference range
  land in the first or last bin; this is ``np.histogram(x, [-inf, *edges[1:-1], inf])``. Bin
  fractions ``p`` (reference) and ``q`` (current) are clipped below at ``psi_eps`` (default
  :data:`PSI_EPS` = 1e-6, no renormalisation) before ``sum((q - p) * ln(q / p))``, so an empty bin
  contributes a large but finite term.
* **KS**: the two-sample Kolmogorov-Smirnov statistic ``max_x |F_ref(x) - F_cur(x)|`` over all
  data values, ties included. The maximum is found in exact integer arithmetic and rounded to a
  float the way ``scipy.stats.ks_2samp`` rounds it, so the two agree bit for bit.
* **JS**: the Jensen-Shannon *distance* between the (unclipped) bin fractions of the PSI bins,
  natural-log base, i.e. ``scipy.spatial.distance.jensenshannon(p, q)``; it lies in
  ``[0, sqrt(ln 2)]``.
* **W1**: the Wasserstein-1 distance between the two empirical distributions (sizes may differ),
  ``scipy.stats.wasserstein_distance(ref_j, cur_j)``, computed exactly as the integral of
  ``|Q_ref(u) - Q_cur(u)|`` over the merged quantile grid with float64 accumulation.

Missing values: NaN and +-inf are *missing*. They are dropped per feature before any statistic,
and the missing fraction is reported per feature for the reference (``nan_fraction_ref``) and the
window (``nan_fraction_cur``); ``nan_rate_drift`` is their difference, its own drift signal.

Errors (:class:`DriftError`, a ``ValueError``):

* a window with 0 rows, or a reference with 0 rows;
* a reference feature with no finite value (no distribution to compare against);
* a window feature with no finite value, unless ``drift(..., allow_empty_features=True)``: then its
  four statistics are NaN and ``DriftResult.empty`` flags it (its ``nan_fraction_cur`` is 1.0);
* a schema mismatch: a different number of features, or different feature names; the message
  names what was expected and what was got.

Speed: the reference is sorted once, in the profile. A window pays for one transpose and one sort
of its own data (numpy's SIMD sort on CPU, ``torch.sort`` on CUDA) plus linear-time work per
feature: PSI/JS bin counts are ``bins - 1`` binary searches into the sorted window; W1 is one pass
over the two sorted arrays; KS evaluates both CDFs on a grid of reference quantiles, bounds
``|F_ref - F_cur|`` inside every grid interval from the counts at its ends, and evaluates exactly
only the data points of intervals whose bound reaches the best value found (refining the grid
first while many remain), instead of merging the two samples. CPU work is spread over feature
chunks in a thread pool (numpy releases the GIL in sort and search). Tensors on a CUDA device run
the same algorithm with torch operations there.

Costs and limits: results are exact whatever the data. The KS search costs more when many points
cannot be ruled out (a window that nearly repeats the reference: it then refines its grid a few
times; an identical window is short-cut). W1 between unequal sizes (features with different
missing counts) costs several times the equal-size pass. Heavily tied features get duplicate
quantile edges, hence bins empty on both sides, which add 0 to PSI and JS. The profile holds the
sorted reference, as large as the reference itself.

Categorical features: :func:`categorical_drift` (chi-square against the reference proportions,
plus PSI over categories); see its docstring for how categories unseen in the reference count.
"""

from __future__ import annotations

import math
import os
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from scipy import special, stats

__all__ = [
    "DEFAULT_BINS",
    "KS_GRID",
    "PSI_EPS",
    "STATISTICS",
    "CategoricalDrift",
    "DriftError",
    "DriftResult",
    "ReferenceProfile",
    "build_profile",
    "categorical_drift",
    "drift",
    "psi_from_fractions",
]

DEFAULT_BINS = 10
PSI_EPS = 1e-6
KS_GRID = 16384
STATISTICS = ("psi", "ks", "js", "w1")
# scipy.stats.ks_2samp's method='auto' rounds D to h/lcm(n, m) at or below this size.
_SCIPY_EXACT_KS_MAX_N = 10_000
_PROFILE_FORMAT = 1
# KS search: evaluate the remaining points directly once at most this many are left; otherwise
# promote every _KS_REFINE-th of them to grid points and prune again, at most _KS_LEVELS times.
_KS_DIRECT = 1 << 16
_KS_REFINE = 16
_KS_LEVELS = 4
_NEG = np.iinfo(np.int64).min // 4

Backend = Literal["auto", "numpy", "torch"]


class DriftError(ValueError):
    """Drift cannot be computed: empty data, a schema mismatch or an unusable profile."""


# --------------------------------------------------------------------------------------------
# Small helpers


def _default_threads() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def _compute_dtype(*dtypes: np.dtype) -> np.dtype:
    """float32 when every input fits it exactly (float16/32), float64 otherwise."""
    if all(dt in (np.float16, np.float32) for dt in dtypes):
        return np.dtype(np.float32)
    return np.dtype(np.float64)


def _as_matrix(x: Any, what: str) -> np.ndarray | torch.Tensor:
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


def _ceil_edges(edges: np.ndarray, dtype: np.dtype) -> np.ndarray:
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


def _ranges(starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Concatenation of ``arange(s, e)`` for each pair, without a Python loop."""
    lens = ends - starts
    total = int(lens.sum())
    if total == 0:
        return np.empty(0, dtype=np.int64)
    shift = starts - (np.cumsum(lens) - lens)
    return np.arange(total, dtype=np.int64) + np.repeat(shift, lens)


def _bin_counts(cum_lt: np.ndarray, n: int) -> np.ndarray:
    """Counts per bin from ``#(x < inner edge)`` for each inner edge."""
    return np.diff(np.concatenate(([0], cum_lt.astype(np.int64), [n])))


def psi_from_fractions(p: np.ndarray, q: np.ndarray, eps: float = PSI_EPS) -> float:
    """PSI of current fractions ``q`` against reference fractions ``p``, both clipped at ``eps``."""
    p_ = np.clip(np.asarray(p, dtype=np.float64), eps, None)
    q_ = np.clip(np.asarray(q, dtype=np.float64), eps, None)
    return float(np.sum((q_ - p_) * np.log(q_ / p_)))


def _js_distance(p: np.ndarray, q: np.ndarray) -> float:
    # The same operations, in the same order, as scipy.spatial.distance.jensenshannon(p, q).
    p = p / np.sum(p)
    q = q / np.sum(q)
    mid = (p + q) / 2.0
    js = np.sum(special.rel_entr(p, mid)) + np.sum(special.rel_entr(q, mid))
    return float(np.sqrt(js / 2.0))


def _ks_float(best: int, ref_le: np.ndarray, cur_le: np.ndarray, n: int, m: int) -> float:
    """Round the exact KS maximum ``best / (n * m)`` to the float scipy reports.

    ``ref_le``/``cur_le`` are the CDF counts of every evaluated point that attains the maximum.
    """
    if max(n, m) <= _SCIPY_EXACT_KS_MAX_N:
        # ks_2samp's exact mode returns h / lcm(n, m).
        g = math.gcd(n, m)
        return (best // g) * 1.0 / ((n // g) * m)
    # Its asymptotic mode returns the largest float difference of the two CDF floats; pairs
    # with the same rational value may differ in the last bit, so take the max over all of them.
    return float(np.max(np.abs(ref_le / n - cur_le / m)))


# --------------------------------------------------------------------------------------------
# Backends: the same algorithm over numpy arrays (fast CPU sort) or torch tensors (CUDA).


class _NumpyOps:
    """Array operations for CPU windows held as numpy arrays."""

    def searchsorted(self, a: np.ndarray, v: np.ndarray, right: bool) -> np.ndarray:
        return np.searchsorted(a, v, side="right" if right else "left")

    def to_numpy(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(x)

    def from_numpy(self, x: np.ndarray) -> np.ndarray:
        return x

    def take(self, a: np.ndarray, idx: np.ndarray) -> np.ndarray:
        return a[idx]

    def equal(self, a: np.ndarray, b: np.ndarray) -> bool:
        return bool(a[0] == b[0] and a[-1] == b[-1] and np.array_equal(a, b))

    def cat(self, xs: Sequence[np.ndarray]) -> np.ndarray:
        return np.concatenate(xs)

    def w1(self, r: np.ndarray, c: np.ndarray) -> float:
        n, m = r.size, c.size
        if n == m:
            return _sum_abs_diff(r, c) / n
        big, small = (r, c) if n >= m else (c, r)
        size_b, size_s = big.size, small.size
        total = 0.0
        # Blocks of the smaller sample's steps: every temporary stays in cache (fresh 8 MB
        # temporaries cost more in page faults than the arithmetic).
        step = 1 << 16
        for j0 in range(0, size_s, step):
            j1 = min(size_s, j0 + step)
            counts, last, len1, e = _w1_plan(size_b, size_s, j0, j1)
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
    step = 1 << 16
    for i in range(0, a.size, step):
        d = np.subtract(a[i : i + step], b[i : i + step], dtype=np.float64)
        np.abs(d, out=d)
        total += float(d.sum())
    return total


class _TorchOps:
    """The same operations on torch tensors, on whatever device they live."""

    def __init__(self, device: torch.device) -> None:
        self.device = device

    def searchsorted(self, a: torch.Tensor, v: torch.Tensor, right: bool) -> torch.Tensor:
        return torch.searchsorted(a, v, right=right)

    def to_numpy(self, x: torch.Tensor) -> np.ndarray:
        return x.detach().cpu().numpy()

    def from_numpy(self, x: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(x)).to(self.device)

    def take(self, a: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        return a[idx]

    def equal(self, a: torch.Tensor, b: torch.Tensor) -> bool:
        return bool(torch.equal(a, b))

    def cat(self, xs: Sequence[torch.Tensor]) -> torch.Tensor:
        return torch.cat(list(xs))

    def w1(self, r: torch.Tensor, c: torch.Tensor) -> float:
        n, m = r.numel(), c.numel()
        if n == m:
            return float((r.double() - c.double()).abs().sum().item() / n)
        big, small = (r, c) if n >= m else (c, r)
        plan = _w1_plan(big.numel(), small.numel())[:3]
        counts, last, len1 = (torch.from_numpy(a).to(self.device) for a in plan)
        main = (big.double() - torch.repeat_interleave(small, counts).double()).abs().sum()
        # The smaller sample's last step never splits: its len1 is 0 and it has no successor.
        at = big[last[:-1]].double()
        sd = small.double()
        corr = (at - sd[1:]).abs() - (at - sd[:-1]).abs()
        total = main * small.numel() + torch.dot(corr, len1[:-1])
        return float(total.item() / (float(n) * float(m)))


def _w1_plan(
    big: int, small: int, j0: int = 0, j1: int | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """How the quantile grids {i/big} and {j/small} interleave, for W1 of unequal sample sizes.

    In units of 1/(big*small), step ``i`` of the larger sample spans ``[i*small, (i+1)*small)``
    and step ``j`` of the smaller one ``[j*big, (j+1)*big)``. With ``E_j = ceil(j*big/small)``,
    steps ``E_j .. E_{j+1}-1`` of the larger sample start inside step ``j`` (``counts``), and the
    last of them, ``last_j = E_{j+1} - 1``, overlaps step ``j + 1`` by ``len1_j = small*E_{j+1} -
    (j+1)*big`` (0 when the grids meet). So W1 * big * small is ``small * sum_i |b_i - s_j(i)|``
    plus ``sum_j len1_j * (|b_last_j - s_j+1| - |b_last_j - s_j|)``. Returns ``counts``, ``last``,
    ``len1`` for steps ``j0 <= j < j1`` and ``E_j0 .. E_j1``.
    """
    j1 = small if j1 is None else j1
    if float(big) * float(small) < 2.0**52:
        # Float64 is exact here: j*big is an integer below 2**52, and j*big/small is an integer
        # or at least 1/small away from one, far more than its rounding error.
        e = np.arange(j0, j1 + 1, dtype=np.float64) * big
        e /= small
        np.ceil(e, out=e)
        len1 = e[1:] * small - np.arange(j0 + 1, j1 + 1, dtype=np.float64) * big
    else:  # pragma: no cover - needs more than ~4e15 sample pairs
        j_big = np.arange(j0, j1 + 1, dtype=np.int64) * big
        e = -(-j_big // small)
        len1 = (e[1:] * small - j_big[1:]).astype(np.float64)
    counts = np.diff(e).astype(np.intp)
    last = e[1:].astype(np.intp) - 1
    return counts, last, len1, e


# --------------------------------------------------------------------------------------------
# The reference profile


@dataclass(frozen=True, eq=False)
class ReferenceProfile:
    """Everything a window is compared with, computed once from the reference matrix.

    Row ``j`` of ``sorted_values`` holds feature ``j``'s finite reference values ascending in its
    first ``n_valid[j]`` entries (NaN after them). ``edges`` are the PSI/JS bin edges (float64
    reference quantiles), ``ref_fractions`` the reference's bin fractions. ``grid`` holds
    ``KS_GRID`` reference values per feature (evenly spaced ranks) with their exact reference CDF
    counts ``grid_le`` (values <= g) and ``grid_lt`` (values < g), used to prune the KS search.
    """

    sorted_values: np.ndarray
    n_valid: np.ndarray
    n_rows: int
    edges: np.ndarray
    ref_fractions: np.ndarray
    grid: np.ndarray
    grid_le: np.ndarray
    grid_lt: np.ndarray
    feature_names: tuple[str, ...] | None = None
    _device_cache: dict[Any, torch.Tensor] = field(default_factory=dict, repr=False, compare=False)

    @property
    def n_features(self) -> int:
        """Number of features."""
        return int(self.sorted_values.shape[0])

    @property
    def bins(self) -> int:
        """Number of PSI/JS bins."""
        return int(self.edges.shape[1] - 1)

    @property
    def dtype(self) -> np.dtype:
        """Storage dtype of the sorted reference values (float32 or float64)."""
        return self.sorted_values.dtype

    @property
    def nan_fraction(self) -> np.ndarray:
        """Fraction of missing (non-finite) reference values per feature."""
        return 1.0 - self.n_valid / float(self.n_rows)

    @property
    def names(self) -> tuple[str, ...]:
        """Feature names, or ``f0, f1, ...`` when the profile has none."""
        if self.feature_names is not None:
            return self.feature_names
        return tuple(f"f{j}" for j in range(self.n_features))

    def values(self, j: int) -> np.ndarray:
        """Feature ``j``'s finite reference values, ascending (a view)."""
        return self.sorted_values[j, : int(self.n_valid[j])]

    @classmethod
    def from_array(
        cls,
        reference: Any,
        feature_names: Sequence[str] | None = None,
        *,
        bins: int = DEFAULT_BINS,
        ks_grid: int = KS_GRID,
        threads: int | None = None,
    ) -> ReferenceProfile:
        """Build a profile from a ``rows x features`` matrix (numpy, torch or array-like)."""
        return build_profile(reference, feature_names, bins=bins, ks_grid=ks_grid, threads=threads)

    def save(self, path: str | Path) -> None:
        """Write the profile to ``path`` as an uncompressed ``.npz`` (no pickles)."""
        names = np.array(self.feature_names if self.feature_names is not None else [], dtype=str)
        with open(path, "wb") as fh:
            np.savez(
                fh,
                format=np.array(_PROFILE_FORMAT),
                sorted_values=self.sorted_values,
                n_valid=self.n_valid,
                n_rows=np.array(self.n_rows),
                edges=self.edges,
                ref_fractions=self.ref_fractions,
                grid=self.grid,
                grid_le=self.grid_le,
                grid_lt=self.grid_lt,
                has_names=np.array(self.feature_names is not None),
                feature_names=names,
            )

    @classmethod
    def load(cls, path: str | Path) -> ReferenceProfile:
        """Read a profile written by :meth:`save`."""
        with np.load(path, allow_pickle=False) as z:
            fmt = int(z["format"])
            if fmt != _PROFILE_FORMAT:
                raise DriftError(f"{path}: profile format {fmt}, expected {_PROFILE_FORMAT}")
            names = tuple(str(s) for s in z["feature_names"]) if bool(z["has_names"]) else None
            return cls(
                sorted_values=z["sorted_values"],
                n_valid=z["n_valid"],
                n_rows=int(z["n_rows"]),
                edges=z["edges"],
                ref_fractions=z["ref_fractions"],
                grid=z["grid"],
                grid_le=z["grid_le"],
                grid_lt=z["grid_lt"],
                feature_names=names,
            )

    def _device_values(self, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
        """The sorted reference as a tensor on ``device``, copied there once and kept."""
        key = (str(device), dtype)
        if key not in self._device_cache:
            self._device_cache[key] = torch.from_numpy(self.sorted_values).to(device, dtype)
        return self._device_cache[key]


def _transpose_sorted(src: np.ndarray, out: np.ndarray) -> np.ndarray:
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


def _finite_span(sorted_row: np.ndarray) -> tuple[int, int]:
    """``[lo, hi)`` of the finite values in a numpy-sorted row (-inf first, +inf then NaN last)."""
    lo = int(np.searchsorted(sorted_row, -np.inf, side="right"))
    hi = int(np.searchsorted(sorted_row, np.inf, side="left"))
    return lo, hi


def _chunk_size(d: int, threads: int) -> int:
    # A few chunks per thread balance the pool; each chunk's sorted copy stays small.
    return max(1, min(16, math.ceil(d / (4 * threads))))


def _run_chunks(fn: Callable[[int, int], Any], d: int, threads: int) -> None:
    size = _chunk_size(d, threads)
    chunks = [(j0, min(d, j0 + size)) for j0 in range(0, d, size)]
    if threads <= 1 or len(chunks) == 1:
        for j0, j1 in chunks:
            fn(j0, j1)
        return
    with ThreadPoolExecutor(max_workers=threads) as pool:
        for _ in pool.map(lambda c: fn(*c), chunks):
            pass


def build_profile(
    reference: Any,
    feature_names: Sequence[str] | None = None,
    *,
    bins: int = DEFAULT_BINS,
    ks_grid: int = KS_GRID,
    threads: int | None = None,
) -> ReferenceProfile:
    """Sort the reference once and precompute bin edges, bin fractions and the KS grid.

    ``reference`` is ``rows x features`` (numpy, torch on any device, or array-like); float16/32
    data is kept as float32, anything else as float64. Missing values (NaN, +-inf) are dropped
    per feature. Raises :class:`DriftError` for 0 rows, a feature with no finite value, or
    ``feature_names`` of the wrong length.
    """
    if bins < 1:
        raise DriftError(f"bins must be >= 1, got {bins}")
    if ks_grid < 2:
        raise DriftError(f"ks_grid must be >= 2, got {ks_grid}")
    x = _as_matrix(reference, "reference")
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    n_rows, d = x.shape
    if n_rows == 0:
        raise DriftError("empty reference: 0 rows")
    if d == 0:
        raise DriftError("reference has 0 features")
    names = tuple(str(s) for s in feature_names) if feature_names is not None else None
    if names is not None and len(names) != d:
        raise DriftError(f"reference has {d} features but {len(names)} feature names were given")
    dtype = _compute_dtype(x.dtype)
    threads = threads or _default_threads()
    q = np.linspace(0.0, 1.0, bins + 1)

    sorted_values = np.empty((d, n_rows), dtype=dtype)
    n_valid = np.zeros(d, dtype=np.int64)
    edges = np.zeros((d, bins + 1), dtype=np.float64)
    fractions = np.zeros((d, bins), dtype=np.float64)
    grid = np.zeros((d, ks_grid), dtype=dtype)
    grid_le = np.zeros((d, ks_grid), dtype=np.int64)
    grid_lt = np.zeros((d, ks_grid), dtype=np.int64)

    def work(j0: int, j1: int) -> None:
        _transpose_sorted(x[:, j0:j1], sorted_values[j0:j1])
        for j in range(j0, j1):
            row = sorted_values[j]
            lo, hi = _finite_span(row)
            nv = hi - lo
            n_valid[j] = nv
            if lo > 0 or hi < n_rows:
                # Rare: shift the finite values to the front so rows read as [finite..., NaN...].
                row[:nv] = row[lo:hi].copy()
                row[nv:] = np.nan
            if nv == 0:
                continue
            vals = row[:nv]
            edges[j] = np.quantile(vals.astype(np.float64), q)
            cum = np.searchsorted(vals, _ceil_edges(edges[j, 1:-1], dtype), side="left")
            fractions[j] = _bin_counts(cum, nv) / nv
            idx = np.linspace(0, nv - 1, ks_grid).astype(np.int64)
            grid[j] = vals[idx]
            grid_le[j] = np.searchsorted(vals, grid[j], side="right")
            grid_lt[j] = np.searchsorted(vals, grid[j], side="left")

    _run_chunks(work, d, threads)
    empty = [j for j in range(d) if n_valid[j] == 0]
    if empty:
        shown = [names[j] if names else f"f{j}" for j in empty]
        raise DriftError(f"reference feature(s) with no finite value: {', '.join(shown)}")
    return ReferenceProfile(
        sorted_values=sorted_values,
        n_valid=n_valid,
        n_rows=int(n_rows),
        edges=edges,
        ref_fractions=fractions,
        grid=grid,
        grid_le=grid_le,
        grid_lt=grid_lt,
        feature_names=names,
    )


# --------------------------------------------------------------------------------------------
# Drift of a window


@dataclass(frozen=True, eq=False)
class DriftResult:
    """Per-feature drift statistics of one window against a profile (arrays of length d)."""

    feature_names: tuple[str, ...]
    psi: np.ndarray
    ks: np.ndarray
    js: np.ndarray
    w1: np.ndarray
    n_ref: np.ndarray
    n_cur: np.ndarray
    nan_fraction_ref: np.ndarray
    nan_fraction_cur: np.ndarray
    nan_rate_drift: np.ndarray
    empty: np.ndarray

    def statistic(self, name: str) -> np.ndarray:
        """One of ``psi``, ``ks``, ``js``, ``w1`` by name."""
        if name not in STATISTICS:
            raise DriftError(f"unknown statistic {name!r}; choose one of {', '.join(STATISTICS)}")
        return getattr(self, name)

    def drifted(self, threshold: float, statistic: str = "psi") -> np.ndarray:
        """Mask of features whose ``statistic`` exceeds ``threshold`` (empty features count)."""
        values = self.statistic(statistic)
        return (values > threshold) | self.empty

    def records(self) -> list[dict[str, Any]]:
        """One JSON-friendly dict per feature."""
        out = []
        for j, name in enumerate(self.feature_names):
            out.append(
                {
                    "feature": name,
                    **{s: float(getattr(self, s)[j]) for s in STATISTICS},
                    "n_ref": int(self.n_ref[j]),
                    "n_cur": int(self.n_cur[j]),
                    "nan_fraction_ref": float(self.nan_fraction_ref[j]),
                    "nan_fraction_cur": float(self.nan_fraction_cur[j]),
                    "nan_rate_drift": float(self.nan_rate_drift[j]),
                    "empty": bool(self.empty[j]),
                }
            )
        return out


@dataclass(frozen=True)
class _FeatureRef:
    """What one feature's statistics need from the profile, on the window's backend."""

    values: Any
    edges_inner: Any
    fractions: np.ndarray
    grid: Any
    grid_le: np.ndarray
    grid_lt: np.ndarray


def _counts_at(ops: Any, a: Any, values: Any) -> tuple[np.ndarray, np.ndarray]:
    """``#(a <= v)`` and ``#(a < v)`` for sorted ``a``, searching twice only where they differ."""
    le = ops.to_numpy(ops.searchsorted(a, values, right=True)).astype(np.int64)
    lt = le.copy()
    # They differ only where v itself occurs in a: one gather finds those, one search fixes them.
    prev = ops.to_numpy(ops.take(a, ops.from_numpy(np.maximum(le - 1, 0))))
    tied = np.flatnonzero((le > 0) & (prev == ops.to_numpy(values)))
    if tied.size:
        lt[tied] = ops.to_numpy(ops.searchsorted(a, ops.take(values, ops.from_numpy(tied)), False))
    return le, lt


def _ks_prune(
    r_le: np.ndarray, r_lt: np.ndarray, c_le: np.ndarray, c_lt: np.ndarray, n: int, m: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Index ranges (reference, window) of the grid intervals the grid points cannot rule out.

    For the open interval (a, b) between consecutive grid values, every data point x in it has
    R(x) in [R(a), R(b-)] and C(x) in [C(a), C(b-)], with R(x) > R(a) if x is a reference point
    and C(x) > C(a) if it is a window point. That bounds ``|R(x)*m - C(x)*n|`` inside.
    """
    lower = int(np.abs(r_le * m - c_le * n).max())
    a_r = np.concatenate(([0], r_le))
    a_c = np.concatenate(([0], c_le))
    b_r = np.concatenate((r_lt, [n]))
    b_c = np.concatenate((c_lt, [m]))
    has_r = b_r > a_r
    has_c = b_c > a_c
    up = np.maximum(
        np.where(has_r, b_r * m - a_c * n, _NEG), np.where(has_c, b_r * m - (a_c + 1) * n, _NEG)
    )
    down = np.maximum(
        np.where(has_r, b_c * n - (a_r + 1) * m, _NEG), np.where(has_c, b_c * n - a_r * m, _NEG)
    )
    # >= rather than >: points tying the maximum are needed for scipy's float rounding.
    keep = np.maximum(up, down) >= lower
    return a_r[keep], b_r[keep], a_c[keep], b_c[keep]


def _ks(ops: Any, r: Any, c: Any, ref: _FeatureRef) -> float:
    """Exact two-sample KS statistic of sorted ``r`` (reference) and sorted ``c`` (window).

    Works in counts scaled by n*m: a data point x has value ``R(x)*m - C(x)*n`` where R, C count
    the values <= x, and D is the largest |value| over all data points. Grid points (data points
    themselves) give a lower bound; :func:`_ks_prune` keeps only the grid intervals whose upper
    bound reaches it. While many points remain, every ``_KS_REFINE``-th of them joins the grid and
    the pruning repeats; the points left are then evaluated exactly.
    """
    n, m = int(r.shape[0]), int(c.shape[0])
    if n == m and ops.equal(r, c):
        return 0.0  # every point ties at 0, which no bound can prune
    grid = ops.to_numpy(ref.grid)
    r_le, r_lt = ref.grid_le, ref.grid_lt
    c_le, c_lt = _counts_at(ops, c, ref.grid)
    for level in range(_KS_LEVELS + 1):
        a_r, b_r, a_c, b_c = _ks_prune(r_le, r_lt, c_le, c_lt, n, m)
        ridx = _ranges(a_r, b_r)
        cidx = _ranges(a_c, b_c)
        if ridx.size + cidx.size <= _KS_DIRECT or level == _KS_LEVELS:
            break
        # Refine: sampled points of the kept intervals become grid points. They lie strictly
        # inside the old intervals, so they slot in between the old grid values.
        pts = ops.cat(
            [ops.take(r, ops.from_numpy(ridx[::_KS_REFINE])),
             ops.take(c, ops.from_numpy(cidx[::_KS_REFINE]))]
        )  # fmt: skip
        pts_np = ops.to_numpy(pts)
        order = np.argsort(pts_np, kind="stable")
        pts = ops.take(pts, ops.from_numpy(order))
        pts_np = pts_np[order]
        p_rle, p_rlt = _counts_at(ops, r, pts)
        p_cle, p_clt = _counts_at(ops, c, pts)
        at = np.searchsorted(grid, pts_np, side="left")
        grid = np.insert(grid, at, pts_np)
        r_le, r_lt = np.insert(r_le, at, p_rle), np.insert(r_lt, at, p_rlt)
        c_le, c_lt = np.insert(c_le, at, p_cle), np.insert(c_lt, at, p_clt)

    all_r, all_c = r_le, c_le
    if ridx.size or cidx.size:
        # The kept intervals' points, r_sub and c_sub, are sorted, and everything in an earlier
        # interval is below everything in a later one; so a count inside the small arrays plus the
        # count at the interval's low end gives the full-array count, without searching r or c.
        r_sub = ops.take(r, ops.from_numpy(ridx))
        c_sub = ops.take(c, ops.from_numpy(cidx))
        xs = ops.cat([r_sub, c_sub])
        len_r, len_c = b_r - a_r, b_c - a_c
        blk = np.arange(len_r.size)
        blk = np.concatenate((np.repeat(blk, len_r), np.repeat(blk, len_c)))
        in_r = ops.to_numpy(ops.searchsorted(r_sub, xs, right=True)).astype(np.int64)
        in_c = ops.to_numpy(ops.searchsorted(c_sub, xs, right=True)).astype(np.int64)
        pr = (a_r - (np.cumsum(len_r) - len_r))[blk] + in_r
        pc = (a_c - (np.cumsum(len_c) - len_c))[blk] + in_c
        all_r = np.concatenate((r_le, pr))
        all_c = np.concatenate((c_le, pc))
    diff = np.abs(all_r * m - all_c * n)
    best = int(diff.max())
    at_best = diff == best
    return _ks_float(best, all_r[at_best], all_c[at_best], n, m)


def _feature_stats(ops: Any, r: Any, c: Any, ref: _FeatureRef, psi_eps: float) -> tuple:
    """(psi, ks, js, w1) for one feature from its sorted finite reference and window values."""
    m = int(c.shape[0])
    cum = ops.to_numpy(ops.searchsorted(c, ref.edges_inner, right=False))
    q = _bin_counts(cum, m) / m
    p = ref.fractions
    return (
        psi_from_fractions(p, q, psi_eps),
        _ks(ops, r, c, ref),
        _js_distance(p, q),
        ops.w1(r, c),
    )


def _check_schema(profile: ReferenceProfile, d: int, names: Sequence[str] | None) -> None:
    expected = profile.n_features
    if d != expected:
        shown = f" ({', '.join(profile.feature_names)})" if profile.feature_names else ""
        raise DriftError(f"schema mismatch: expected {expected} features{shown}, got {d}")
    if names is None or profile.feature_names is None:
        return
    got = tuple(str(s) for s in names)
    if got != profile.feature_names:
        missing = [s for s in profile.feature_names if s not in got]
        extra = [s for s in got if s not in profile.feature_names]
        detail = f"missing {missing}, unexpected {extra}" if missing or extra else "order differs"
        raise DriftError(
            f"schema mismatch: expected features {list(profile.feature_names)}, "
            f"got {list(got)} ({detail})"
        )


def drift(
    profile: ReferenceProfile,
    current: Any,
    *,
    feature_names: Sequence[str] | None = None,
    allow_empty_features: bool = False,
    psi_eps: float = PSI_EPS,
    backend: Backend = "auto",
    threads: int | None = None,
) -> DriftResult:
    """PSI, KS, JS and W1 per feature of ``current`` (rows x features) against ``profile``.

    ``current`` may be a numpy array, a torch tensor (a CUDA tensor runs on its device) or
    anything ``np.asarray`` accepts. ``backend="torch"`` forces the torch code path on CPU too
    (slower there; it exists so that path is tested without a GPU). ``threads`` bounds the CPU
    thread pool (default: the CPUs this process may use). See the module docstring for the
    conventions, the missing-value policy and the errors raised.
    """
    if backend not in ("auto", "numpy", "torch"):
        raise DriftError(f"unknown backend {backend!r}")
    x = _as_matrix(current, "current")
    rows, d = int(x.shape[0]), int(x.shape[1])
    _check_schema(profile, d, feature_names)
    if rows == 0:
        raise DriftError("empty window: current has 0 rows")
    threads = threads or _default_threads()

    use_torch = backend == "torch" or (isinstance(x, torch.Tensor) and x.device.type != "cpu")
    if use_torch:
        results, n_cur = _drift_torch(profile, x, psi_eps)
    else:
        if isinstance(x, torch.Tensor):
            x = x.detach().numpy()
        results, n_cur = _drift_numpy(profile, x, psi_eps, threads)

    empty = n_cur == 0
    names = profile.names
    if empty.any() and not allow_empty_features:
        shown = ", ".join(names[j] for j in np.flatnonzero(empty))
        raise DriftError(f"empty window for feature(s) {shown}: no finite value in {rows} rows")
    stats_arr = np.array(results, dtype=np.float64).reshape(d, 4)
    nan_ref = profile.nan_fraction
    nan_cur = 1.0 - n_cur / float(rows)
    return DriftResult(
        feature_names=names,
        psi=stats_arr[:, 0].copy(),
        ks=stats_arr[:, 1].copy(),
        js=stats_arr[:, 2].copy(),
        w1=stats_arr[:, 3].copy(),
        n_ref=profile.n_valid.copy(),
        n_cur=n_cur,
        nan_fraction_ref=nan_ref,
        nan_fraction_cur=nan_cur,
        nan_rate_drift=nan_cur - nan_ref,
        empty=empty,
    )


_NAN4 = (math.nan, math.nan, math.nan, math.nan)


def _drift_numpy(
    profile: ReferenceProfile, x: np.ndarray, psi_eps: float, threads: int
) -> tuple[list[tuple], np.ndarray]:
    d = x.shape[1]
    dtype = _compute_dtype(profile.dtype, x.dtype)
    ops = _NumpyOps()
    results: list[tuple] = [_NAN4] * d
    n_cur = np.zeros(d, dtype=np.int64)

    size = _chunk_size(d, threads)
    local = threading.local()

    def work(j0: int, j1: int) -> None:
        if not hasattr(local, "buf"):
            local.buf = np.empty((size, x.shape[0]), dtype=dtype)
        block = _transpose_sorted(x[:, j0:j1], local.buf[: j1 - j0])
        for t, j in enumerate(range(j0, j1)):
            lo, hi = _finite_span(block[t])
            n_cur[j] = hi - lo
            if hi == lo:
                continue
            ref = _FeatureRef(
                values=profile.values(j).astype(dtype, copy=False),
                edges_inner=_ceil_edges(profile.edges[j, 1:-1], dtype),
                fractions=profile.ref_fractions[j],
                grid=profile.grid[j].astype(dtype, copy=False),
                grid_le=profile.grid_le[j],
                grid_lt=profile.grid_lt[j],
            )
            results[j] = _feature_stats(ops, ref.values, block[t, lo:hi], ref, psi_eps)

    _run_chunks(work, d, threads)
    return results, n_cur


def _drift_torch(
    profile: ReferenceProfile, x: Any, psi_eps: float
) -> tuple[list[tuple], np.ndarray]:
    if not isinstance(x, torch.Tensor):
        x = torch.from_numpy(np.ascontiguousarray(x))
    device = x.device
    np_dtype = _compute_dtype(profile.dtype, np.dtype(str(x.dtype).removeprefix("torch.")))
    dtype = torch.float32 if np_dtype == np.float32 else torch.float64
    ops = _TorchOps(device)
    ref_all = profile._device_values(device, dtype)
    d = x.shape[1]
    results: list[tuple] = [_NAN4] * d
    n_cur = np.zeros(d, dtype=np.int64)
    size = _chunk_size(d, 1)
    for j0 in range(0, d, size):
        j1 = min(d, j0 + size)
        block = x[:, j0:j1].t().to(dtype)
        finite = torch.isfinite(block)
        counts = finite.sum(dim=1).cpu().numpy()
        # Missing values become +inf so the finite ones sort first whatever the NaN order.
        block = torch.where(finite, block, torch.full_like(block, math.inf)).contiguous()
        block = torch.sort(block, dim=1).values.contiguous()
        for t, j in enumerate(range(j0, j1)):
            m = int(counts[t])
            n_cur[j] = m
            if m == 0:
                continue
            ref = _FeatureRef(
                values=ref_all[j, : int(profile.n_valid[j])],
                edges_inner=ops.from_numpy(_ceil_edges(profile.edges[j, 1:-1], np_dtype)),
                fractions=profile.ref_fractions[j],
                grid=ops.from_numpy(profile.grid[j].astype(np_dtype, copy=False)),
                grid_le=profile.grid_le[j],
                grid_lt=profile.grid_lt[j],
            )
            results[j] = _feature_stats(ops, ref.values, block[t, :m], ref, psi_eps)
    return results, n_cur


# --------------------------------------------------------------------------------------------
# Categorical features


@dataclass(frozen=True)
class CategoricalDrift:
    """Drift of one categorical feature.

    ``chi2``/``p_value``/``dof`` test the current counts of the categories the reference has
    seen (count > 0) against ``reference proportion * current count over those categories``;
    current values of categories the reference never saw are left out of the test and reported in
    ``unseen`` and ``unseen_fraction`` instead (a chi-square expectation of zero is undefined).
    ``psi`` covers every category, unseen ones included (their reference fraction is clipped to
    ``eps``, so new categories do raise it), and so does ``js``, the Jensen-Shannon distance
    (natural log) between the two category distributions. ``chi2``/``p_value`` are NaN when no
    current value falls in a seen category; with a single seen category ``dof`` is 0 and the
    p-value is NaN, as in scipy.
    """

    categories: tuple[Any, ...]
    ref_counts: tuple[int, ...]
    cur_counts: tuple[int, ...]
    chi2: float
    p_value: float
    dof: int
    psi: float
    js: float
    unseen: tuple[Any, ...]
    unseen_fraction: float
    n_ref: int
    n_cur: int
    missing_fraction_cur: float


def _is_missing(v: Any) -> bool:
    if v is None or type(v).__name__ in ("NAType", "NaTType"):
        return True
    return isinstance(v, float | np.floating) and math.isnan(v)


def _count_labels(values: Any, what: str) -> tuple[Counter, int]:
    """Counts of non-missing labels and the number of values looked at."""
    if isinstance(values, Mapping):
        counts = Counter({k: int(v) for k, v in values.items() if not _is_missing(k)})
        if any(v < 0 for v in counts.values()):
            raise DriftError(f"{what} counts must be non-negative")
        return counts, sum(counts.values())
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().numpy()
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise DriftError(f"{what} codes must be 1-D, got shape {arr.shape}")
    total = int(arr.size)
    if arr.dtype.kind in "iub":
        labels, n = np.unique(arr, return_counts=True)
        return Counter(dict(zip(labels.tolist(), n.tolist(), strict=True))), total
    if arr.dtype.kind == "f":
        ok = arr[~np.isnan(arr)]
        labels, n = np.unique(ok, return_counts=True)
        return Counter(dict(zip(labels.tolist(), n.tolist(), strict=True))), total
    return Counter(v for v in arr.tolist() if not _is_missing(v)), total


def categorical_drift(
    reference: Mapping[Any, int] | Iterable[Any] | np.ndarray,
    current: Mapping[Any, int] | Iterable[Any] | np.ndarray,
    *,
    eps: float = PSI_EPS,
) -> CategoricalDrift:
    """Chi-square test and PSI of a categorical feature's window against its reference.

    ``reference`` is either a mapping ``category -> count`` or a 1-D array of category codes or
    labels; ``current`` likewise (usually codes). Missing labels (None, NaN) are dropped.
    Matches ``scipy.stats.chisquare(f_obs, f_exp)`` with ``f_exp = ref_share * f_obs.sum()`` over
    the reference's categories; see :class:`CategoricalDrift` for unseen categories. Raises
    :class:`DriftError` when either side has no non-missing value.
    """
    ref_counts, _ = _count_labels(reference, "reference")
    cur_counts, cur_total = _count_labels(current, "current")
    n_ref = sum(ref_counts.values())
    n_cur = sum(cur_counts.values())
    if n_ref == 0:
        raise DriftError("empty reference: no category counts")
    if n_cur == 0:
        raise DriftError("empty window: no non-missing category in current")

    def order(keys: Iterable[Any]) -> list[Any]:
        try:
            return sorted(keys)
        except TypeError:  # mixed label types: keep first-seen order
            return list(keys)

    seen = order(k for k, v in ref_counts.items() if v > 0)
    unseen = order(k for k, v in cur_counts.items() if v > 0 and ref_counts.get(k, 0) == 0)
    cats = seen + unseen
    ref_arr = np.array([ref_counts.get(k, 0) for k in cats], dtype=np.int64)
    cur_arr = np.array([cur_counts.get(k, 0) for k in cats], dtype=np.int64)

    k = len(seen)
    obs = cur_arr[:k].astype(np.float64)
    n_seen = obs.sum()
    if n_seen > 0:
        expected = ref_arr[:k] / ref_arr[:k].sum() * n_seen
        # Pearson's statistic, with the same operations as scipy's power_divergence.
        chi2 = float(((obs - expected) ** 2 / expected).sum())
        p_value = float(stats.chi2.sf(chi2, k - 1))
    else:
        chi2 = p_value = math.nan
    psi = psi_from_fractions(ref_arr / n_ref, cur_arr / n_cur, eps)
    js = _js_distance(ref_arr / n_ref, cur_arr / n_cur)
    n_unseen = int(cur_arr[k:].sum())
    return CategoricalDrift(
        categories=tuple(cats),
        ref_counts=tuple(int(v) for v in ref_arr),
        cur_counts=tuple(int(v) for v in cur_arr),
        chi2=chi2,
        p_value=p_value,
        dof=k - 1,
        psi=psi,
        js=js,
        unseen=tuple(unseen),
        unseen_fraction=n_unseen / n_cur,
        n_ref=n_ref,
        n_cur=n_cur,
        missing_fraction_cur=(cur_total - n_cur) / cur_total if cur_total else 0.0,
    )
