"""Drift of a categorical feature: chi-square against the reference proportions, PSI and JS."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from scipy import stats

from kernels.drift.conventions import PSI_EPS, DriftError
from kernels.drift.statistics import js_distance, psi_from_fractions


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
    """The reference's categories (sorted), then the unseen ones."""
    ref_counts: tuple[int, ...]
    """Reference count per category."""
    cur_counts: tuple[int, ...]
    """Current count per category."""
    chi2: float
    """Pearson's statistic over the seen categories."""
    p_value: float
    """Its p-value."""
    dof: int
    """Degrees of freedom: seen categories - 1."""
    psi: float
    """PSI over every category."""
    js: float
    """Jensen-Shannon distance (natural log) over every category."""
    unseen: tuple[Any, ...]
    """Current categories the reference never saw."""
    unseen_fraction: float
    """Share of the current (non-missing) values in unseen categories."""
    n_ref: int
    """Non-missing reference values."""
    n_cur: int
    """Non-missing current values."""
    missing_fraction_cur: float
    """Share of the current values that are missing."""


def _is_missing(v: Any) -> bool:
    """Whether a label is missing: None, pandas NA/NaT or a float NaN."""
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

    seen = _ordered(k for k, v in ref_counts.items() if v > 0)
    unseen = _ordered(k for k, v in cur_counts.items() if v > 0 and ref_counts.get(k, 0) == 0)
    cats = seen + unseen
    ref_arr = np.array([ref_counts.get(k, 0) for k in cats], dtype=np.int64)
    cur_arr = np.array([cur_counts.get(k, 0) for k in cats], dtype=np.int64)

    k = len(seen)
    chi2, p_value = _chi_square(ref_arr[:k], cur_arr[:k])
    psi = psi_from_fractions(ref_arr / n_ref, cur_arr / n_cur, eps)
    js = js_distance(ref_arr / n_ref, cur_arr / n_cur)
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


def _ordered(keys: Iterable[Any]) -> list[Any]:
    """The labels sorted, or in first-seen order when their types cannot be compared."""
    # Materialized first: a failed sort would otherwise leave a generator exhausted (and the
    # labels of a mixed-type column silently dropped).
    keys = list(keys)
    try:
        return sorted(keys)
    except TypeError:  # mixed label types: keep first-seen order
        return list(keys)


def _chi_square(ref_seen: np.ndarray, cur_seen: np.ndarray) -> tuple[float, float]:
    """Pearson's statistic and p-value of the current counts against the reference shares.

    Both arrays cover the categories the reference has seen; NaN for both when no current value
    falls in one of them.
    """
    obs = cur_seen.astype(np.float64)
    n_seen = obs.sum()
    if not n_seen > 0:
        return math.nan, math.nan
    expected = ref_seen / ref_seen.sum() * n_seen
    # Pearson's statistic, with the same operations as scipy's power_divergence.
    chi2 = float(((obs - expected) ** 2 / expected).sum())
    return chi2, float(stats.chi2.sf(chi2, ref_seen.size - 1))
