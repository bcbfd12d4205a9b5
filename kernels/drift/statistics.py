"""How each numeric statistic is computed from sorted samples: PSI, exact KS, JS and W1.

The array operations come from a backend object (:mod:`kernels.drift.backends`), so the same code
runs on numpy arrays and on torch tensors; see :mod:`kernels.drift.conventions` for what each
statistic means.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import special

from kernels.drift.conventions import PSI_EPS

# scipy.stats.ks_2samp's method='auto' rounds D to h/lcm(n, m) at or below this size.
_SCIPY_EXACT_KS_MAX_N = 10_000
# KS search: evaluate the remaining points directly once at most this many are left; otherwise
# promote every _KS_REFINE-th of them to grid points and prune again, at most _KS_LEVELS times.
_KS_DIRECT = 1 << 16
_KS_REFINE = 16
_KS_LEVELS = 4
_NEG = np.iinfo(np.int64).min // 4

KsCounts = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]
"""CDF counts at the KS grid: reference ``<=`` and ``<``, window ``<=`` and ``<``."""


@dataclass(frozen=True)
class FeatureRef:
    """What one feature's statistics need from the profile, on the window's backend."""

    values: Any
    """The finite reference values, ascending."""
    edges_inner: Any
    """The inner PSI/JS bin edges, in the window's dtype (see ``backends.ceil_edges``)."""
    fractions: np.ndarray
    """The reference's bin fractions."""
    grid: Any
    """The KS grid: reference values at evenly spaced ranks."""
    grid_le: np.ndarray
    """Reference values ``<=`` each grid value."""
    grid_lt: np.ndarray
    """Reference values ``<`` each grid value."""


def bin_counts(cum_lt: np.ndarray, n: int) -> np.ndarray:
    """Counts per bin from ``#(x < inner edge)`` for each inner edge."""
    return np.diff(np.concatenate(([0], cum_lt.astype(np.int64), [n])))


def psi_from_fractions(p: np.ndarray, q: np.ndarray, eps: float = PSI_EPS) -> float:
    """PSI of current fractions ``q`` against reference fractions ``p``, both clipped at ``eps``."""
    p_ = np.clip(np.asarray(p, dtype=np.float64), eps, None)
    q_ = np.clip(np.asarray(q, dtype=np.float64), eps, None)
    return float(np.sum((q_ - p_) * np.log(q_ / p_)))


def js_distance(p: np.ndarray, q: np.ndarray) -> float:
    """Jensen-Shannon distance (natural log) between two (unnormalised) distributions."""
    # The same operations, in the same order, as scipy.spatial.distance.jensenshannon(p, q).
    p = p / np.sum(p)
    q = q / np.sum(q)
    mid = (p + q) / 2.0
    js = np.sum(special.rel_entr(p, mid)) + np.sum(special.rel_entr(q, mid))
    return float(np.sqrt(js / 2.0))


def w1_plan(
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


def feature_stats(ops: Any, r: Any, c: Any, ref: FeatureRef, psi_eps: float) -> tuple:
    """(psi, ks, js, w1) for one feature from its sorted finite reference and window values."""
    m = int(c.shape[0])
    cum = ops.to_numpy(ops.searchsorted(c, ref.edges_inner, right=False))
    q = bin_counts(cum, m) / m
    p = ref.fractions
    return (
        psi_from_fractions(p, q, psi_eps),
        ks(ops, r, c, ref),
        js_distance(p, q),
        w1_distance(ops, r, c),
    )


def w1_distance(ops: Any, r: Any, c: Any) -> float:
    """W1 of sorted ``r`` and ``c`` (the backend's ``w1``), correct whatever their magnitude.

    Finite data give a non-finite ``ops.w1`` only when a difference or a partial sum overflowed
    float64 (values near +-1e308): the sum is then taken again on the values scaled down by a
    power of two, which is exact but for subnormals, and scaled back up (``+inf`` when W1 itself
    exceeds the largest float64, its correct rounding).
    """
    with np.errstate(over="ignore", invalid="ignore"):
        w = ops.w1(r, c)
    if math.isfinite(w):
        return w
    n, m = int(r.shape[0]), int(c.shape[0])
    ends = np.concatenate((ops.to_numpy(r[[0, -1]]), ops.to_numpy(c[[0, -1]])))
    k = w1_scale_exponent(float(np.max(np.abs(ends.astype(np.float64)))), n, m)
    down = 2.0**-k
    return ops.w1(r * down, c * down) * 2.0**k


def w1_scale_exponent(peak: float, n: int, m: int) -> int:
    """``k`` such that W1's sums over values of magnitude ``<= peak * 2**-k`` cannot overflow.

    Both backends accumulate at most ``4 * peak * n * m`` (``sum |b - s|`` times the smaller
    size, plus the split-step corrections) before dividing by ``n * m``.
    """
    exponent = math.frexp(peak)[1]  # peak < 2**exponent
    return max(1, exponent + n.bit_length() + m.bit_length() + 2 - 1022)


# --------------------------------------------------------------------------------------------
# Exact two-sample Kolmogorov-Smirnov


def ks(ops: Any, r: Any, c: Any, ref: FeatureRef) -> float:
    """Exact two-sample KS statistic of sorted ``r`` (reference) and sorted ``c`` (window).

    Works in counts scaled by n*m: a data point x has value ``R(x)*m - C(x)*n`` where R, C count
    the values <= x, and D is the largest |value| over all data points. Grid points (data points
    themselves) give a lower bound; :func:`_ks_prune` keeps only the grid intervals whose upper
    bound reaches it. While many points remain, every ``_KS_REFINE``-th of them joins the grid and
    the pruning repeats (:func:`_ks_refine`); the points left are then evaluated exactly
    (:func:`_ks_interval_counts`).
    """
    n, m = int(r.shape[0]), int(c.shape[0])
    if n == m and ops.equal(r, c):
        return 0.0  # every point ties at 0, which no bound can prune
    grid = ops.to_numpy(ref.grid)
    counts: KsCounts = (ref.grid_le, ref.grid_lt, *counts_at(ops, c, ref.grid))
    for level in range(_KS_LEVELS + 1):
        bounds = _ks_prune(*counts, n, m)
        ridx = _ranges(bounds[0], bounds[1])
        cidx = _ranges(bounds[2], bounds[3])
        if ridx.size + cidx.size <= _KS_DIRECT or level == _KS_LEVELS:
            break
        grid, counts = _ks_refine(ops, r, c, grid, counts, ridx, cidx)

    all_r, all_c = counts[0], counts[2]
    if ridx.size or cidx.size:
        pr, pc = _ks_interval_counts(ops, r, c, ridx, cidx, bounds)
        all_r = np.concatenate((all_r, pr))
        all_c = np.concatenate((all_c, pc))
    diff = np.abs(all_r * m - all_c * n)
    best = int(diff.max())
    at_best = diff == best
    return _ks_float(best, all_r[at_best], all_c[at_best], n, m)


def counts_at(ops: Any, a: Any, values: Any) -> tuple[np.ndarray, np.ndarray]:
    """``#(a <= v)`` and ``#(a < v)`` for sorted ``a``, searching twice only where they differ."""
    le = ops.to_numpy(ops.searchsorted(a, values, right=True)).astype(np.int64)
    lt = le.copy()
    # They differ only where v itself occurs in a: one gather finds those, one search fixes them.
    prev = ops.to_numpy(ops.take(a, ops.from_numpy(np.maximum(le - 1, 0))))
    tied = np.flatnonzero((le > 0) & (prev == ops.to_numpy(values)))
    if tied.size:
        lt[tied] = ops.to_numpy(ops.searchsorted(a, ops.take(values, ops.from_numpy(tied)), False))
    return le, lt


def _ranges(starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Concatenation of ``arange(s, e)`` for each pair, without a Python loop."""
    lens = ends - starts
    total = int(lens.sum())
    if total == 0:
        return np.empty(0, dtype=np.int64)
    shift = starts - (np.cumsum(lens) - lens)
    return np.arange(total, dtype=np.int64) + np.repeat(shift, lens)


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


def _ks_refine(
    ops: Any,
    r: Any,
    c: Any,
    grid: np.ndarray,
    counts: KsCounts,
    ridx: np.ndarray,
    cidx: np.ndarray,
) -> tuple[np.ndarray, KsCounts]:
    """The grid and its counts with every ``_KS_REFINE``-th kept point added.

    The sampled points lie strictly inside the old intervals, so they slot in between the old
    grid values.
    """
    pts = ops.cat(
        [ops.take(r, ops.from_numpy(ridx[::_KS_REFINE])),
         ops.take(c, ops.from_numpy(cidx[::_KS_REFINE]))]
    )  # fmt: skip
    pts_np = ops.to_numpy(pts)
    order = np.argsort(pts_np, kind="stable")
    pts = ops.take(pts, ops.from_numpy(order))
    pts_np = pts_np[order]
    added = (*counts_at(ops, r, pts), *counts_at(ops, c, pts))
    at = np.searchsorted(grid, pts_np, side="left")
    r_le, r_lt, c_le, c_lt = (
        np.insert(old, at, new) for old, new in zip(counts, added, strict=True)
    )
    return np.insert(grid, at, pts_np), (r_le, r_lt, c_le, c_lt)


def _ks_interval_counts(
    ops: Any,
    r: Any,
    c: Any,
    ridx: np.ndarray,
    cidx: np.ndarray,
    bounds: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
) -> tuple[np.ndarray, np.ndarray]:
    """Reference and window CDF counts (``<=``) at every point of the kept intervals.

    The kept intervals' points, r_sub and c_sub, are sorted, and everything in an earlier
    interval is below everything in a later one; so a count inside the small arrays plus the
    count at the interval's low end gives the full-array count, without searching r or c.
    """
    a_r, b_r, a_c, b_c = bounds
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
    return pr, pc


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
