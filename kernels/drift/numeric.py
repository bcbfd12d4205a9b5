"""Drift of a numeric window against a reference profile: :func:`drift` and its result."""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from kernels.drift.backends import (
    NumpyOps,
    TorchOps,
    as_matrix,
    ceil_edges,
    chunk_size,
    compute_dtype,
    default_threads,
    finite_span,
    run_chunks,
    transpose_sorted,
)
from kernels.drift.conventions import PSI_EPS, STATISTICS, Backend, DriftError, check_statistic
from kernels.drift.profile import ReferenceProfile
from kernels.drift.statistics import FeatureRef, feature_stats

_NAN4 = (math.nan, math.nan, math.nan, math.nan)
# The per-feature fields of a record after its name and statistics, with their JSON type.
_RECORD_FIELDS: tuple[tuple[str, type], ...] = (
    ("n_ref", int),
    ("n_cur", int),
    ("nan_fraction_ref", float),
    ("nan_fraction_cur", float),
    ("nan_rate_drift", float),
    ("empty", bool),
)


@dataclass(frozen=True, eq=False)
class DriftResult:
    """Per-feature drift statistics of one window against a profile (arrays of length d)."""

    feature_names: tuple[str, ...]
    """The profile's feature names (``f0, f1, ...`` when it has none)."""
    psi: np.ndarray
    """Population stability index over the profile's bins."""
    ks: np.ndarray
    """Two-sample Kolmogorov-Smirnov statistic."""
    js: np.ndarray
    """Jensen-Shannon distance (natural log) of the bin fractions."""
    w1: np.ndarray
    """Wasserstein-1 distance."""
    n_ref: np.ndarray
    """Finite reference values."""
    n_cur: np.ndarray
    """Finite window values."""
    nan_fraction_ref: np.ndarray
    """Missing fraction of the reference."""
    nan_fraction_cur: np.ndarray
    """Missing fraction of the window."""
    nan_rate_drift: np.ndarray
    """``nan_fraction_cur - nan_fraction_ref``."""
    empty: np.ndarray
    """Features with no finite window value (their statistics are NaN)."""

    def statistic(self, name: str) -> np.ndarray:
        """One of ``psi``, ``ks``, ``js``, ``w1`` by name."""
        check_statistic(name)
        return getattr(self, name)

    def drifted(self, threshold: float, statistic: str = "psi") -> np.ndarray:
        """Mask of features whose ``statistic`` exceeds ``threshold`` (empty features count)."""
        values = self.statistic(statistic)
        return (values > threshold) | self.empty

    def records(self) -> list[dict[str, Any]]:
        """One JSON-friendly dict per feature."""
        return [
            {
                "feature": name,
                **{s: float(getattr(self, s)[j]) for s in STATISTICS},
                **{f: kind(getattr(self, f)[j]) for f, kind in _RECORD_FIELDS},
            }
            for j, name in enumerate(self.feature_names)
        ]


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
    thread pool (default: the CPUs this process may use). See :mod:`kernels.drift.conventions`
    for the conventions, the missing-value policy and the errors raised.
    """
    if backend not in ("auto", "numpy", "torch"):
        raise DriftError(f"unknown backend {backend!r}")
    x = as_matrix(current, "current")
    rows, d = int(x.shape[0]), int(x.shape[1])
    _check_schema(profile, d, feature_names)
    if rows == 0:
        raise DriftError("empty window: current has 0 rows")
    threads = threads or default_threads()

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


def _check_schema(profile: ReferenceProfile, d: int, names: Sequence[str] | None) -> None:
    """Raise :class:`DriftError` naming expected and got when the window's features differ."""
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


def _drift_numpy(
    profile: ReferenceProfile, x: np.ndarray, psi_eps: float, threads: int
) -> tuple[list[tuple], np.ndarray]:
    """Statistics and finite-value counts per feature, on CPU over chunks of features."""
    d = x.shape[1]
    dtype = compute_dtype(profile.dtype, x.dtype)
    ops = NumpyOps()
    results: list[tuple] = [_NAN4] * d
    n_cur = np.zeros(d, dtype=np.int64)

    size = chunk_size(d, threads)
    local = threading.local()

    def work(j0: int, j1: int) -> None:
        if not hasattr(local, "buf"):
            local.buf = np.empty((size, x.shape[0]), dtype=dtype)
        block = transpose_sorted(x[:, j0:j1], local.buf[: j1 - j0])
        for t, j in enumerate(range(j0, j1)):
            lo, hi = finite_span(block[t])
            n_cur[j] = hi - lo
            if hi == lo:
                continue
            ref = FeatureRef(
                values=profile.values(j).astype(dtype, copy=False),
                edges_inner=ceil_edges(profile.edges[j, 1:-1], dtype),
                fractions=profile.ref_fractions[j],
                grid=profile.grid[j].astype(dtype, copy=False),
                grid_le=profile.grid_le[j],
                grid_lt=profile.grid_lt[j],
            )
            results[j] = feature_stats(ops, ref.values, block[t, lo:hi], ref, psi_eps)

    run_chunks(work, d, threads)
    return results, n_cur


def _drift_torch(
    profile: ReferenceProfile, x: Any, psi_eps: float
) -> tuple[list[tuple], np.ndarray]:
    """Statistics and finite-value counts per feature, with torch on the window's device."""
    if not isinstance(x, torch.Tensor):
        x = torch.from_numpy(np.ascontiguousarray(x))
    device = x.device
    np_dtype = compute_dtype(profile.dtype, np.dtype(str(x.dtype).removeprefix("torch.")))
    dtype = torch.float32 if np_dtype == np.float32 else torch.float64
    ops = TorchOps(device)
    ref_all = profile.device_values(device, dtype)
    d = x.shape[1]
    results: list[tuple] = [_NAN4] * d
    n_cur = np.zeros(d, dtype=np.int64)
    size = chunk_size(d, 1)
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
            ref = FeatureRef(
                values=ref_all[j, : int(profile.n_valid[j])],
                edges_inner=ops.from_numpy(ceil_edges(profile.edges[j, 1:-1], np_dtype)),
                fractions=profile.ref_fractions[j],
                grid=ops.from_numpy(profile.grid[j].astype(np_dtype, copy=False)),
                grid_le=profile.grid_le[j],
                grid_lt=profile.grid_lt[j],
            )
            results[j] = feature_stats(ops, ref.values, block[t, :m], ref, psi_eps)
    return results, n_cur
