"""The conventions every drift statistic follows: constants, missing values, errors and costs.

Exact, fast drift statistics between a stored reference profile (:mod:`kernels.drift.profile`)
and a window of current data (:func:`kernels.drift.numeric.drift`).

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
(``pipelines.monitoring.compare``, which reads tables for ``sovml drift``, refuses +-inf instead:
there an infinite value in a file is bad input, not a missing one.)

Magnitudes: every finite float64 is a valid value, up to +-1.8e308. Where a difference or a sum
of such values would overflow float64 (the interpolation between two quantiles, W1's sums), it is
computed again on the values scaled down by a power of two and scaled back, so no statistic is
ever NaN or wrong because of overflow. A W1 whose true value exceeds the largest float64 (two
samples about 3e308 apart) is ``+inf``, its correctly rounded value. The rescaled W1 rounds
values below about 1e-280 in magnitude (they become subnormal once scaled): an absolute error
below 1e-297.

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

Categorical features: :func:`kernels.drift.categorical.categorical_drift` (chi-square against
the reference proportions, plus PSI over categories); see its docstring for how categories unseen
in the reference count.
"""

from __future__ import annotations

import math
from typing import Literal

DEFAULT_BINS = 10
"""PSI/JS bins per feature (edges at the reference quantiles)."""
PSI_EPS = 1e-6
"""Floor of the bin fractions in PSI, so an empty bin gives a large but finite term."""
KS_GRID = 16384
"""Reference values per feature the profile keeps, with their CDF counts, to prune the KS search."""
STATISTICS = ("psi", "ks", "js", "w1")
"""The numeric statistics, in the order every result lists them."""

Backend = Literal["auto", "numpy", "torch"]
"""Which array library runs :func:`kernels.drift.numeric.drift` (``auto``: the window's device)."""


JS_MAX = math.sqrt(math.log(2.0))
"""The largest Jensen-Shannon distance in natural-log base (two disjoint distributions)."""
THRESHOLD_RANGES: dict[str, tuple[float, float]] = {
    "psi": (0.0, math.inf),
    "ks": (0.0, 1.0),
    "js": (0.0, JS_MAX),
    "w1": (0.0, math.inf),
}
"""Per statistic, the meaningful drift thresholds ``t``: ``low < t <= high``, ``t`` finite.

A threshold at or below 0 makes any difference at all a drift, and one above the statistic's
largest value (1 for KS, ``sqrt(ln 2)`` for JS) or a non-finite one switches detection off.
"""


class DriftError(ValueError):
    """Drift cannot be computed: empty data, a schema mismatch or an unusable profile."""


def check_statistic(name: str) -> None:
    """Raise :class:`DriftError` unless ``name`` is one of :data:`STATISTICS`."""
    if name not in STATISTICS:
        raise DriftError(f"unknown statistic {name!r}; choose one of {', '.join(STATISTICS)}")


def threshold_range(statistic: str) -> str:
    """The allowed thresholds of ``statistic`` in words: ``(0, 1]``, ``a finite number > 0``."""
    low, high = THRESHOLD_RANGES[statistic]
    if math.isinf(high):
        return f"a finite number > {low:g}"
    return f"a number in ({low:g}, {high:.6g}]"


def check_threshold(threshold: float, statistic: str) -> None:
    """Raise :class:`DriftError` unless ``threshold`` is meaningful for ``statistic``.

    The threshold must be finite and inside :data:`THRESHOLD_RANGES`; a NaN or infinite one
    would silently switch drift detection off.
    """
    check_statistic(statistic)
    low, high = THRESHOLD_RANGES[statistic]
    value = float(threshold)
    if not (math.isfinite(value) and low < value <= high):
        raise DriftError(
            f"threshold {value:g} is out of range for {statistic}: use {threshold_range(statistic)}"
        )
