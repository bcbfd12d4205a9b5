"""The canary's accuracy test (Wald's sequential probability ratio test) and binomial intervals.

Each request is a Bernoulli outcome (correct or not) and the test is about
``d = acc(candidate) - acc(baseline)``. With margin ``m`` (``accuracy_margin``), ``H0: d = -m``
(worse by the margin: must not be promoted) against ``H1: d = 0`` (as good: must not be rolled
back). The likelihood of the cumulative counts is a product of two binomials; the baseline's
accuracy is a nuisance parameter, profiled out (maximised under each hypothesis), so
``LLR = max_p log L(p, p) - max_p log L(p, p - m)``. Boundaries: ``LLR >= log(1/alpha)`` accepts
non-inferiority (the step is promoted), ``LLR <= log(beta)`` rolls back, in between holds.

Wald's argument gives, for any stopping rule including the bounded budget,
``P(promote | H0) <= alpha * P(promote | H1) <= alpha`` and
``P(rollback | H1) <= beta * P(rollback | H0) <= beta``, and the likelihood ratio grows with
``d``, so a candidate worse than the margin is promoted with probability at most ``alpha`` and one
at least as good as the baseline is rolled back with probability at most ``beta``, with
``alpha = false_promotion_rate`` and ``beta = accuracy_rollback_rate`` (the accuracy test's share
of the procedure's false-rollback budget, :mod:`policies.promotion`). Looks at discrete times only
make the test more conservative (the LLR overshoots the boundary). Profiling the nuisance
parameter is the approximation (Wald's bounds are exact for simple hypotheses);
:func:`simulate_sprt` checks the stated rates (``tests/test_abtest_stats.py``; observed: about
0.02-0.035 for alpha at accuracies 0.6-0.98). The whole procedure, with the latency and error
guards, is simulated by :mod:`pipelines.serving.canary.simulation`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from policies.promotion import DEFAULT, PromotionCriteria, beta_inc

Z95 = 1.959963984540054
"""Two-sided 95% normal quantile."""


@dataclass(frozen=True)
class SequentialDesign:
    """Wald's SPRT of ``H1: d = 0`` against ``H0: d = -margin`` (see the module docstring).

    Attributes:
        margin: Non-inferiority margin on the accuracy difference.
        alpha: Bound on P(promote) for a candidate worse by the margin or more.
        beta: Bound on P(rollback) for a candidate at least as good as the baseline (the
            accuracy share of the procedure's false-rollback budget).
    """

    margin: float
    alpha: float
    beta: float

    @classmethod
    def from_criteria(cls, criteria: PromotionCriteria = DEFAULT) -> SequentialDesign:
        """The design the promotion criteria define."""
        return cls(
            criteria.accuracy_margin, criteria.false_promotion_rate, criteria.accuracy_rollback_rate
        )

    @property
    def lower(self) -> float:
        """Rollback boundary ``log(beta)``."""
        return math.log(self.beta)

    @property
    def upper(self) -> float:
        """Promotion boundary ``log(1 / alpha)``."""
        return math.log(1.0 / self.alpha)

    def llr(
        self,
        correct_baseline: Any,
        n_baseline: Any,
        correct_candidate: Any,
        n_candidate: Any,
    ) -> np.ndarray:
        """Log-likelihood ratio (H1 over H0) of cumulative counts; broadcasts over arrays.

        Each request is a Bernoulli outcome (correct or not), so the likelihood of the counts is
        a product of two binomials. The baseline's accuracy ``p`` is a nuisance parameter, set to
        its maximum-likelihood value under each hypothesis (profile likelihood):

            LLR = max_p log L(p, p) - max_p log L(p, p - m)

        where ``L(p_baseline, p_candidate)``. Under H1 the maximiser is the pooled accuracy; under
        H0 it solves a one-dimensional concave problem (bisection). With no baseline or no
        candidate outcomes the LLR is 0: no evidence either way.
        """
        counts = (correct_baseline, n_baseline, correct_candidate, n_candidate)
        ca, na, cb, nb = np.broadcast_arrays(*(np.asarray(v, dtype=float) for v in counts))
        total = np.maximum(na + nb, 1.0)
        pooled = (ca + cb) / total
        h1 = _loglik(ca, na, pooled) + _loglik(cb, nb, pooled)
        p0 = _restricted_mle(ca, na, cb, nb, self.margin)
        h0 = _loglik(ca, na, p0) + _loglik(cb, nb, p0 - self.margin)
        return np.where((na > 0) & (nb > 0), h1 - h0, 0.0)

    def decide(self, llr: Any) -> np.ndarray:
        """+1 accept non-inferiority (promote), -1 roll back, 0 continue; per element."""
        llr = np.asarray(llr, dtype=float)
        return np.where(llr >= self.upper, 1, np.where(llr <= self.lower, -1, 0)).astype(np.int8)


_EPS = 1e-12
_NEWTON_STEPS = 10
_BISECTIONS = 45
"""Halvings of (margin, 1) for the entries Newton did not settle: the maximiser to ~1e-13."""


def _loglik(correct: np.ndarray, n: np.ndarray, p: np.ndarray) -> np.ndarray:
    p = np.clip(p, _EPS, 1.0 - _EPS)
    return correct * np.log(p) + (n - correct) * np.log1p(-p)


def _restricted_mle(
    ca: np.ndarray, na: np.ndarray, cb: np.ndarray, nb: np.ndarray, margin: float
) -> np.ndarray:
    """Baseline accuracy ``p`` maximising ``L(p, p - margin)`` over ``(margin, 1)``.

    The log-likelihood is concave in ``p`` there, so its derivative is decreasing: safeguarded
    Newton steps (a step leaving the sign bracket becomes a bisection) settle almost every entry
    in a few iterations; the rest (a maximiser at an end of the interval, extreme counts) are
    finished by plain bisection. Newton first because the simulation check evaluates this on
    hundreds of thousands of looks.
    """
    m = margin
    shape = np.shape(ca)
    ca, na, cb, nb = (np.ravel(v).astype(float) for v in (ca, na, cb, nb))

    def slope(p: np.ndarray, s: Any = slice(None)) -> np.ndarray:
        return (
            ca[s] / p - (na[s] - ca[s]) / (1 - p) + cb[s] / (p - m) - (nb[s] - cb[s]) / (1 + m - p)
        )

    def curvature(p: np.ndarray) -> np.ndarray:
        return (
            -ca / p**2 - (na - ca) / (1 - p) ** 2 - cb / (p - m) ** 2 - (nb - cb) / (1 + m - p) ** 2
        )

    lo = np.full(ca.shape, m + _EPS)
    hi = np.full(ca.shape, 1.0 - _EPS)
    total = np.maximum(na + nb, 1.0)
    p = np.clip((ca + cb) / total + m * nb / total, lo, hi)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        for _ in range(_NEWTON_STEPS):
            g = slope(p)
            up = g > 0
            lo = np.where(up, p, lo)
            hi = np.where(up, hi, p)
            step = p - g / curvature(p)
            p = np.where((step >= lo) & (step <= hi), step, (lo + hi) / 2.0)
        scale = 1e-9 * np.maximum(total, 1.0)
        todo = np.flatnonzero(~(np.abs(slope(p)) <= scale))
    if todo.size:
        tlo, thi = lo[todo], hi[todo]
        for _ in range(_BISECTIONS):
            mid = (tlo + thi) / 2.0
            up = slope(mid, todo) > 0
            tlo = np.where(up, mid, tlo)
            thi = np.where(up, thi, mid)
        p[todo] = (tlo + thi) / 2.0
    return p.reshape(shape)


def _smoothed_var(correct: float, n: float) -> float:
    # Laplace-smoothed binomial variance: a perfect arm (p_hat = 1) still has some uncertainty.
    p = (correct + 1.0) / (n + 2.0)
    return p * (1.0 - p) / n


def difference_ci95(
    correct_baseline: float, n_baseline: float, correct_candidate: float, n_candidate: float
) -> tuple[float, tuple[float, float]]:
    """Accuracy difference (candidate minus baseline) and its normal 95% interval (Laplace-smoothed
    variances); both arms need outcomes."""
    diff = correct_candidate / n_candidate - correct_baseline / n_baseline
    se = math.sqrt(
        _smoothed_var(correct_baseline, n_baseline) + _smoothed_var(correct_candidate, n_candidate)
    )
    return diff, (diff - Z95 * se, diff + Z95 * se)


def wilson_interval(correct: float, n: float, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion (95% by default); (nan, nan) if n = 0."""
    if n <= 0:
        return (math.nan, math.nan)
    p = correct / n
    denom = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def clopper_pearson(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Exact (Clopper-Pearson 1934) two-sided interval of a binomial proportion ``k / n``:
    bounds from the beta quantiles, found by bisection on the incomplete beta function.
    (nan, nan) if ``n`` is 0."""
    if n <= 0:
        return (math.nan, math.nan)
    tail = (1 - confidence) / 2

    def solve(f: Any) -> float:
        lo, hi = 0.0, 1.0
        for _ in range(60):
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if f(mid) else (lo, mid)
        return (lo + hi) / 2

    # P(Bin(n, p) >= k) = I_p(k, n - k + 1) rises with p; P(Bin(n, p) <= k) falls with it.
    lower = 0.0 if k == 0 else solve(lambda p: beta_inc(k, n - k + 1, p) < tail)
    upper = 1.0 if k == n else solve(lambda p: 1 - beta_inc(k + 1, n - k, p) > tail)
    return (lower, upper)


@dataclass(frozen=True)
class SimulationResult:
    """Operating characteristics of the accuracy SPRT from :func:`simulate_sprt`."""

    p_baseline: float
    p_candidate: float
    runs: int
    promote_rate: float
    rollback_rate: float
    undecided_rate: float
    mean_candidate_requests: float


def simulate_sprt(
    p_baseline: float,
    p_candidate: float,
    criteria: PromotionCriteria = DEFAULT,
    *,
    runs: int = 20_000,
    max_looks: int = 60,
    seed: int = 0,
) -> SimulationResult:
    """Run the accuracy SPRT ``runs`` times on simulated Bernoulli outcomes (no server).

    The schedule is the live one: looks at the first step's weight, each with
    ``min_requests_per_step`` candidate requests and a negative-binomial number of baseline
    requests (what a weighted router produces until the candidate's quota is met), at most
    ``max_looks`` looks (then undecided, i.e. ``hold``). The decision uses the very
    :meth:`SequentialDesign.llr` and :meth:`SequentialDesign.decide` of the live run.
    """
    design = SequentialDesign.from_criteria(criteria)
    weight = criteria.steps[0] / 100.0
    per_look = criteria.min_requests_per_step
    rng = np.random.default_rng(seed)
    n_b = np.full((runs, max_looks), per_look, dtype=np.int64)
    n_a = (
        rng.negative_binomial(per_look, weight, size=(runs, max_looks))
        if weight < 1
        else np.zeros((runs, max_looks), dtype=np.int64)
    )
    c_b = rng.binomial(n_b, p_candidate)
    c_a = rng.binomial(n_a, p_baseline)
    cum = [np.cumsum(x, axis=1) for x in (c_a, n_a, c_b, n_b)]
    decisions = design.decide(design.llr(*cum))
    decided = decisions != 0
    first = decided.argmax(axis=1)
    any_decided = decided.any(axis=1)
    outcome = np.where(any_decided, decisions[np.arange(runs), first], 0)
    looks_used = np.where(any_decided, first + 1, max_looks)
    return SimulationResult(
        p_baseline=p_baseline,
        p_candidate=p_candidate,
        runs=runs,
        promote_rate=float(np.mean(outcome == 1)),
        rollback_rate=float(np.mean(outcome == -1)),
        undecided_rate=float(np.mean(outcome == 0)),
        mean_candidate_requests=float(np.mean(looks_used) * per_look),
    )
