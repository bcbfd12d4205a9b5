"""The reference profile: the reference sorted once, with bin edges, fractions and the KS grid."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from kernels.drift.backends import (
    as_matrix,
    ceil_edges,
    compute_dtype,
    default_threads,
    finite_span,
    run_chunks,
    transpose_sorted,
)
from kernels.drift.conventions import DEFAULT_BINS, KS_GRID, DriftError
from kernels.drift.statistics import bin_counts

_PROFILE_FORMAT = 1


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
    """features x rows: each feature's finite values ascending, then NaN."""
    n_valid: np.ndarray
    """Finite reference values per feature."""
    n_rows: int
    """Rows of the reference."""
    edges: np.ndarray
    """features x (bins + 1): the PSI/JS bin edges (float64 reference quantiles)."""
    ref_fractions: np.ndarray
    """features x bins: the reference's bin fractions."""
    grid: np.ndarray
    """features x ks_grid: reference values at evenly spaced ranks."""
    grid_le: np.ndarray
    """Reference values ``<=`` each grid value."""
    grid_lt: np.ndarray
    """Reference values ``<`` each grid value."""
    feature_names: tuple[str, ...] | None = None
    """Feature names, when the reference had them."""
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
    def from_array(cls, reference: Any, *args: Any, **options: Any) -> ReferenceProfile:
        """Build a profile from a ``rows x features`` matrix; arguments as :func:`build_profile`."""
        return build_profile(reference, *args, **options)

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

    def device_values(self, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
        """The sorted reference as a tensor on ``device``, copied there once and kept."""
        key = (str(device), dtype)
        if key not in self._device_cache:
            self._device_cache[key] = torch.from_numpy(self.sorted_values).to(device, dtype)
        return self._device_cache[key]


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
    x, names = _checked_reference(reference, feature_names, bins, ks_grid)
    n_rows, d = x.shape
    dtype = compute_dtype(x.dtype)
    # Allocated whole, then filled in place feature by feature from the worker threads.
    profile = ReferenceProfile(
        sorted_values=np.empty((d, n_rows), dtype=dtype),
        n_valid=np.zeros(d, dtype=np.int64),
        n_rows=int(n_rows),
        edges=np.zeros((d, bins + 1), dtype=np.float64),
        ref_fractions=np.zeros((d, bins), dtype=np.float64),
        grid=np.zeros((d, ks_grid), dtype=dtype),
        grid_le=np.zeros((d, ks_grid), dtype=np.int64),
        grid_lt=np.zeros((d, ks_grid), dtype=np.int64),
        feature_names=names,
    )
    q = np.linspace(0.0, 1.0, bins + 1)

    def work(j0: int, j1: int) -> None:
        transpose_sorted(x[:, j0:j1], profile.sorted_values[j0:j1])
        for j in range(j0, j1):
            _fill_feature(profile, j, q)

    run_chunks(work, d, threads or default_threads())
    empty = [j for j in range(d) if profile.n_valid[j] == 0]
    if empty:
        shown = [names[j] if names else f"f{j}" for j in empty]
        raise DriftError(f"reference feature(s) with no finite value: {', '.join(shown)}")
    return profile


def _checked_reference(
    reference: Any, feature_names: Sequence[str] | None, bins: int, ks_grid: int
) -> tuple[np.ndarray, tuple[str, ...] | None]:
    """The reference as a host matrix and its names, after every check that needs no sorting."""
    if bins < 1:
        raise DriftError(f"bins must be >= 1, got {bins}")
    if ks_grid < 2:
        raise DriftError(f"ks_grid must be >= 2, got {ks_grid}")
    x = as_matrix(reference, "reference")
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
    return x, names


def _fill_feature(profile: ReferenceProfile, j: int, q: np.ndarray) -> None:
    """Compact feature ``j``'s sorted row and compute its edges, fractions and KS grid."""
    row = profile.sorted_values[j]
    lo, hi = finite_span(row)
    nv = hi - lo
    profile.n_valid[j] = nv
    if lo > 0 or hi < profile.n_rows:
        # Rare: shift the finite values to the front so rows read as [finite..., NaN...].
        row[:nv] = row[lo:hi].copy()
        row[nv:] = np.nan
    if nv == 0:
        return
    vals = row[:nv]
    profile.edges[j] = quantile_edges(vals.astype(np.float64), q)
    cum = np.searchsorted(vals, ceil_edges(profile.edges[j, 1:-1], profile.dtype), side="left")
    profile.ref_fractions[j] = bin_counts(cum, nv) / nv
    idx = np.linspace(0, nv - 1, profile.grid.shape[1]).astype(np.int64)
    profile.grid[j] = vals[idx]
    profile.grid_le[j] = np.searchsorted(vals, profile.grid[j], side="right")
    profile.grid_lt[j] = np.searchsorted(vals, profile.grid[j], side="left")


def quantile_edges(values: np.ndarray, q: np.ndarray) -> np.ndarray:
    """``np.quantile(values, q)`` of finite float64 ``values``, without overflow.

    numpy interpolates as ``a + (b - a) * t``; ``b - a`` overflows when ``a`` and ``b`` are near
    -1e308 and +1e308, which gives an infinite or NaN edge. Those edges (and only those, so
    every other one stays bit for bit numpy's) are interpolated between the halved values and
    doubled: halving and doubling such large values is exact, and the result lies in ``[a, b]``.
    """
    with np.errstate(over="ignore", invalid="ignore"):
        edges = np.quantile(values, q)
    bad = ~np.isfinite(edges)
    if bad.any():
        edges[bad] = np.quantile(values * 0.5, q[bad]) * 2.0
    return edges
