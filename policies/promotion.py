"""One definition of when a canary is promoted, held or rolled back, with its stated error rates.

The same criteria drive two deciders: the cluster's Argo Rollouts ``AnalysisTemplate``
(:func:`analysis_checks`, rendered by ``components/serving.py``, queries Prometheus) and the local
``sovml abtest`` (:mod:`pipelines.serving.canary`, reads the real Triton server's ``/metrics``).
Both call the verdict functions below on the same numbers; the PromQL builders compute those very
functions inside Prometheus. Standard library only (the CrossGuard pack's
virtualenv imports ``policies``).

**The procedure.** Traffic moves through ``steps[:-1]`` (5 -> 25 -> 50 %); at each step up to
``looks_per_step`` looks, each judging three guards: PASS, FAIL or UNDECIDED. Any FAIL rolls
back at once; a step is promoted when every guard has passed at one of its looks (a passed guard
is not measured again in that step, as an Argo metric stops at its first success); a step whose
looks run out is held (inconclusive: a person decides). After the last analysed step the
candidate gets 100 %.

**Stated error rates** (over all looks and guards, each checked by simulation in
``tests/test_abtest_stats.py``):

* P(roll back | candidate equal to the baseline in accuracy, p99 latency and errors) <=
  ``false_rollback_rate`` (5 %), the budget split by Bonferroni over the guards
  (``rollback_split``: accuracy 2 %, latency 2 %, errors 1 %).
* P(promote | candidate accuracy worse by >= ``accuracy_margin``) <= ``false_promotion_rate``.
* P(promote | candidate p99 >= ``max_p99_latency_ratio`` x baseline p99 and >= baseline p99 +
  ``latency_floor_ms``) <= ``false_promotion_rate``. With the defaults the floor matters only for
  a baseline p99 under 2 ms: a sub-millisecond difference is no regression and never rolls back.
* P(promote | candidate error rate >= ``max_error_rate``) <= ``false_promotion_rate``.

Each bad case needs its own guard to pass, so each gets the whole promotion budget.

**Accuracy**: Wald's sequential probability ratio test (Wald 1945) of H0: d = -margin against
H1: d = 0 on per-request correctness (``pipelines.serving.canary.statistics``); promote when the
log-likelihood ratio reaches log(1/alpha), roll back at log(beta_accuracy). Wald's inequalities
hold for any number of looks.

**Errors**: Wald's SPRT on the candidate's Bernoulli failures, H0: p = ``acceptable_error_rate``
(0.5 %) against H1: p = ``max_error_rate`` (2 %): LLR = F ln(p1/p0) + S ln((1-p1)/(1-p0)); the
likelihood ratio is a non-negative supermartingale for any p <= p0 (its inverse for p >= p1), so
Ville's inequality bounds both errors over every look, interim checks included. "Equal" assumes
a healthy baseline: a candidate at or below 0.5 % errors; the guard is absolute, the baseline's
own error rate is not compared (a baseline failing 1 % is an incident, not a canary question).

**Latency**: distribution-free order-statistic confidence bounds for each variant's p99 (Conover,
*Practical Nonparametric Statistics*, 3rd ed., 1999, sec. 3.2; Hahn & Meeker, *Statistical
Intervals*, 1991, ch. 5): in a sample of n, the r-th smallest value is below the p-quantile with
probability P(Bin(n, p) >= r), exactly, for any distribution (ties only make it conservative).
Triton 2.51 exports no latency histogram (``histogram_latencies`` is ignored by this build); what it
has is ``nv_inference_request_summary_us``: CKMS quantile estimates (Cormode, Korn, Muthukrishnan &
Srivastava 2005; rank within +-eps n) over a sliding window of the last 48-60 s (prometheus-cpp's 60
s, 5 age buckets) at levels we configure (:data:`SUMMARY_LEVELS`; eps :data:`SUMMARY_ERROR` at
:data:`BOUND_LEVELS`), plus the cumulative ``_count``. A level q is a valid lower (upper) bound of
the p99 at alpha once the window holds n >= :func:`min_window` requests: the binomial tail at the
level's worst-case rank ((q +- eps) n -+ 1), evaluated with the regularized incomplete beta function
so the table is monotone in n. The window's n is bounded below by the ``_count`` increase over the
last ``window_offset_s`` seconds (observations that are certainly still in the window). Alpha is
spent uniformly over the run's looks: each of the two bounds a verdict uses gets ``budget / (2 x
checks)`` per check, so the union over checks stays within budget (Bonferroni; windows of successive
checks overlap, which makes it only more conservative); PASS is judged at the ``max_looks`` looks,
FAIL also at the interim checks between them (``interim_checks`` per look). PASS when UCB(candidate)
< g(LCB(baseline)), FAIL when LCB(candidate) > g(UCB(baseline)), with g(x) = max(ratio x, x +
floor); else UNDECIDED, never a point comparison. With several pods per variant the bounds are taken
per pod and combined conservatively (the lowest valid lower bound, the highest valid upper bound).

**SLO burn (abort only)**: a fourth analysis metric, ``slo-fast-burn``, fails the analysis (rolls
back) when the candidate's own availability error ratio over the last 5 minutes is above the
serving SLO's fast-burn threshold, 14.4 x its error budget (the ModelAvailabilityFastBurn page's
factor and short window, ``components/_alerts.py``). It is an SLO guard, a point threshold on the
error budget, not a statistical test: it never promotes (it passes once a whole window of the
step's own traffic stayed under the threshold, :func:`burn_successes_needed` looks) and judges
only windows of at least :func:`burn_min_requests` requests. That floor bounds what it adds to
the false-rollback rate: for a candidate that meets the SLO (error rate p <= budget b) the
Chernoff bound gives P(ratio > 14.4 b in a window of n) <= exp(-n KL(14.4 b || b)) <=
:data:`BURN_LOOK_RATE` (1e-6) per look, so at most ``max_looks x 1e-6`` (3e-5 with the defaults)
over a rollout, on top of the stated 5 %; Bonferroni, as the other guards. It catches what the
error SPRT would also catch, only sooner when a candidate fails far past ``max_error_rate`` and in
the terms the on-call pages in. The local ``sovml abtest`` does not run it (its error SPRT is the
statistical test; the simulation in ``tests/test_abtest_stats.py`` is unchanged). The window
request count is Prometheus' ``increase``, extrapolated within one scrape interval.

The error guards read the mesh's request counters, not Triton's (:mod:`policies.gateway_metrics`):
the SPRT the candidate pods' sidecars' counts of gateway traffic, the burn guard the gateway's own,
so requests Triton refuses before its scheduler (400, a full queue's 503) and failures no pod saw
(the gateway's 503 and 504) count as the local decision counts them; the gateway's policy
refusals (401, 403, 413, 429) count for neither variant.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from policies.gateway_metrics import (
    FAILURE_CODES,
    SUCCESS_CODES,
    counted,
    gateway_selector,
    sprt_selector,
)

PASS, FAIL, UNDECIDED = "pass", "fail", "undecided"
"""A guard's verdict at one look."""
GUARDS = ("accuracy", "latency", "errors")
"""The three guards, in the order a look reports them."""
QUANTILE = 0.99
"""The latency quantile the guard compares (p99)."""
SUMMARY_LEVELS = (
    *(0.5, 0.9, 0.95, 0.97, 0.98, 0.984, 0.986, 0.987, 0.988),
    *(0.99, 0.992, 0.993, 0.994, 0.996, 0.998, 0.999),
)
"""Quantile levels Triton's request summary exports (local server and cluster pods alike): a grid
around p99 from which the bounds pick the tightest valid level for the window's size."""
BOUND_LEVELS = tuple(q for q in SUMMARY_LEVELS if q >= 0.97 and q != QUANTILE)
"""The levels the bounds choose from (lower ones bound the p99 too, but too loosely to matter)."""
SUMMARY_ERROR = 1e-4
"""CKMS rank error of the bound levels: a level-q estimate has rank within (q +- eps) n."""
BODY_ERRORS = {0.5: 0.05, 0.9: 0.01, 0.95: 0.001}
"""Looser errors for the levels nobody bounds with (Triton's own defaults): a tight error at the
median makes every observation expensive to summarise (measured here: p99 2.0 ms instead of 1.3
ms with eps 1e-4 at every level; 1.3 ms as Triton's default with these)."""
SUMMARY_WINDOW_S = 48.0
"""The summary window always holds at least the last 48 s (60 s age, 12 s rotation)."""
LOWER, UPPER = "lower", "upper"
"""Which side of the p99 a bound is on."""
BURN_FACTOR = 14.4
"""The fast-burn factor: 2 % of a 30-day error budget in an hour (SRE Workbook, ch. 5)."""
BURN_WINDOW_S = 300
"""The burn guard's window: the fast-burn page's short window (5m)."""
BURN_LOOK_RATE = 1e-6
"""Per-look bound of P(burn guard fails | candidate meets the SLO), by its request floor."""


@dataclass(frozen=True)
class PromotionCriteria:
    """What counts as worse, the stated error rates, and the schedule of looks."""

    accuracy_margin: float = 0.02
    """Accuracy H0: the candidate trails the baseline by this much (must not be promoted)."""
    max_p99_latency_ratio: float = 1.5
    """A candidate p99 this many times the baseline's is a regression (with the floor)."""
    latency_floor_ms: float = 1.0
    """...and only if it is also at least this much slower: smaller differences never roll back."""
    max_error_rate: float = 0.02
    """Error SPRT H1: a candidate failing this often must not be promoted."""
    acceptable_error_rate: float = 0.005
    """Error SPRT H0: a candidate failing at most this often counts as equal (not rolled back)."""
    false_promotion_rate: float = 0.05
    """Bound on P(promote) for each bad case (accuracy, latency, errors)."""
    false_rollback_rate: float = 0.05
    """Bound on P(roll back) for a candidate equal to the baseline, over all guards."""
    rollback_split: tuple[float, float, float] = (0.4, 0.4, 0.2)
    """Shares of ``false_rollback_rate`` for accuracy, latency and errors (sum 1; Bonferroni)."""
    steps: tuple[int, ...] = (5, 25, 50, 100)
    """Canary traffic weights (percent); every step but the last (promotion) is analysed."""
    looks_per_step: int = 10
    """Looks per analysed step (the AnalysisTemplate's ``count``); then the step is held."""
    interim_checks: int = 12
    """FAIL-only checks the local run may make between two looks (every 1,000 requests), so a
    broken or slow candidate is rolled back without finishing the look; the latency guard's fail
    side spends its budget over these too (the cluster, looking less often, is conservative)."""
    min_requests_per_step: int = 300
    """Routed candidate requests per local look (the accuracy test's evidence per look)."""
    analysis_interval_s: int = 60
    """Seconds between the cluster analysis' looks."""
    scrape_interval_s: int = 15
    """Prometheus' scrape interval of Triton (the ServiceMonitor's)."""
    scrape_timeout_s: int = 10
    """Prometheus' scrape timeout of Triton (bounds a sample's age within its scrape)."""
    slo_availability: float = 0.999
    """The serving availability SLO (``sloAvailabilityTarget``) the burn guard judges against."""

    def __post_init__(self) -> None:
        if not 0 < self.acceptable_error_rate < self.max_error_rate < 1:
            raise ValueError(
                f"error rates: acceptable {self.acceptable_error_rate}, max "
                f"{self.max_error_rate}; allowed 0 < acceptable < max < 1"
            )
        if self.max_p99_latency_ratio < 1 or self.latency_floor_ms < 0:
            raise ValueError(
                f"max_p99_latency_ratio {self.max_p99_latency_ratio}, latency_floor_ms "
                f"{self.latency_floor_ms}; allowed ratio >= 1, floor >= 0"
            )
        if not 0 < self.accuracy_margin < 1:
            raise ValueError(f"accuracy_margin: {self.accuracy_margin}; allowed (0, 1)")
        if not (0 < self.false_promotion_rate < 0.5 and 0 < self.false_rollback_rate < 0.5):
            raise ValueError("false_promotion_rate, false_rollback_rate: allowed (0, 0.5)")
        if len(self.rollback_split) != 3 or min(self.rollback_split) <= 0:
            raise ValueError(f"rollback_split: {self.rollback_split}; allowed 3 shares > 0")
        if abs(sum(self.rollback_split) - 1) > 1e-9:
            raise ValueError(f"rollback_split: {self.rollback_split}; the shares must sum to 1")
        if list(self.steps) != sorted(self.steps) or self.steps[-1] != 100 or self.steps[0] <= 0:
            raise ValueError(f"steps: {self.steps}; allowed increasing percentages ending at 100")
        if min(self.looks_per_step, self.min_requests_per_step) < 1 or self.interim_checks < 0:
            raise ValueError(
                "looks_per_step, min_requests_per_step: allowed >= 1; interim_checks: >= 0"
            )
        if not 1 - 1 / BURN_FACTOR < self.slo_availability < 1:
            raise ValueError(
                f"slo_availability: {self.slo_availability}; allowed "
                f"({1 - 1 / BURN_FACTOR:.4g}, 1): a {BURN_FACTOR:g}x burn must be a ratio < 1"
            )
        if self.window_offset_s < 1:
            raise ValueError(
                f"scrape_interval_s + scrape_timeout_s: {self.scrape_interval_s} + "
                f"{self.scrape_timeout_s}; allowed under {SUMMARY_WINDOW_S - 1:g} s"
            )

    @property
    def analysed_steps(self) -> tuple[int, ...]:
        """The weights an analysis gates (the last step is the promotion itself)."""
        return self.steps[:-1]

    @property
    def max_looks(self) -> int:
        """Looks over the whole run: the latency guard's alpha is spent over these."""
        return self.looks_per_step * max(1, len(self.analysed_steps))

    @property
    def accuracy_rollback_rate(self) -> float:
        """beta of the accuracy SPRT: its share of the false-rollback budget."""
        return self.false_rollback_rate * self.rollback_split[0]

    @property
    def latency_rollback_rate(self) -> float:
        """The latency guard's share of the false-rollback budget."""
        return self.false_rollback_rate * self.rollback_split[1]

    @property
    def error_rollback_rate(self) -> float:
        """alpha of the error SPRT: its share of the false-rollback budget."""
        return self.false_rollback_rate * self.rollback_split[2]

    @property
    def latency_pass_alpha(self) -> float:
        """Per look and per bound, for PASS (candidate UCB, baseline LCB)."""
        return self.false_promotion_rate / (2 * self.max_looks)

    @property
    def latency_fail_alpha(self) -> float:
        """Per check and per bound, for FAIL (candidate LCB, baseline UCB): looks and the
        interim checks between them."""
        return self.latency_rollback_rate / (2 * self.max_looks * (1 + self.interim_checks))

    @property
    def window_offset_s(self) -> int:
        """PromQL offset whose ``_count`` increase lies inside the summary window for sure."""
        return int(SUMMARY_WINDOW_S - self.scrape_interval_s - self.scrape_timeout_s)

    @property
    def accuracy_bounds(self) -> tuple[float, float]:
        """(rollback, promote) boundaries of the accuracy LLR: log(beta), log(1/alpha)."""
        return math.log(self.accuracy_rollback_rate), math.log(1 / self.false_promotion_rate)

    @property
    def error_bounds(self) -> tuple[float, float]:
        """(pass, rollback) boundaries of the error LLR: log(beta), log(1/alpha)."""
        return math.log(self.false_promotion_rate), math.log(1 / self.error_rollback_rate)

    @property
    def burn_threshold(self) -> float:
        """The error ratio a fast burn stands for: ``BURN_FACTOR x (1 - slo_availability)``."""
        return round(BURN_FACTOR * round(1 - self.slo_availability, 12), 12)

    @property
    def error_weights(self) -> tuple[float, float]:
        """LLR per failure and per success: ln(p1/p0), ln((1-p1)/(1-p0))."""
        p0, p1 = self.acceptable_error_rate, self.max_error_rate
        return math.log(p1 / p0), math.log((1 - p1) / (1 - p0))


DEFAULT = PromotionCriteria()


# --- binomial tails and the order-statistic table ------------------------------------------------
def _beta_cf(a: float, b: float, x: float) -> float:
    """Continued fraction of the incomplete beta function (modified Lentz; Numerical Recipes
    6.4)."""
    tiny, qab, qap, qam = 1e-300, a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 100_000):
        for aa in (
            m * (b - m) * x / ((qam + 2 * m) * (a + 2 * m)),
            -(a + m) * (qab + m) * x / ((a + 2 * m) * (qap + 2 * m)),
        ):
            d = 1.0 + aa * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + aa / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1.0) < 1e-15:
            break
    return h


def beta_inc(a: float, b: float, x: float) -> float:
    """Regularized incomplete beta function I_x(a, b) for real a, b > 0."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = (
        math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    )
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(log_front) * _beta_cf(a, b, x) / a
    return 1.0 - math.exp(log_front) * _beta_cf(b, a, 1.0 - x) / b


def bound_tail(level: float, n: float, side: str, p: float = QUANTILE) -> float:
    """P(the level-``level`` summary value of a window of ``n`` is on the wrong side of the true
    ``p``-quantile), at the level's worst-case rank, for any latency distribution.

    Lower: rank r <= (q + eps) n + 1 and P(X_(r) > x_p) <= P(Bin(n, p) <= (q + eps) n).
    Upper: rank r >= (q - eps) n - 1 and P(X_(r) < x_p) <= P(Bin(n, p) >= (q - eps) n - 1).
    Binomial tails with a real bound are incomplete beta values, monotone in the bound.
    """
    if side == LOWER:
        k = (level + SUMMARY_ERROR) * n
        return 1.0 if k + 1 > n else 1.0 - beta_inc(k + 1.0, n - k, p)
    r = (level - SUMMARY_ERROR) * n - 1.0
    return 1.0 if r < 1 else beta_inc(r, n - r + 1.0, p)


@lru_cache(maxsize=512)
def min_window(level: float, alpha: float, side: str) -> int | None:
    """The smallest window (requests) in which ``level`` bounds the p99 at ``alpha`` on ``side``;
    None when it never does (a level on the other side of the p99)."""
    below = level + SUMMARY_ERROR < QUANTILE
    above = level - SUMMARY_ERROR > QUANTILE
    if not (below if side == LOWER else above):
        return None
    hi = 16
    while bound_tail(level, hi, side) > alpha:
        hi *= 2
        if hi > 1 << 34:
            return None
    lo = hi // 2
    while hi - lo > 1:  # the tail falls with n past its crossing (tests check a dense grid)
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if bound_tail(level, mid, side) <= alpha else (mid, hi)
    return hi


# --- the verdicts, as both deciders compute them -------------------------------------------------
@dataclass(frozen=True)
class LatencyWindow:
    """One variant's summary at a look: quantile level -> microseconds, and the window's size."""

    quantiles_us: Mapping[float, float]
    """Triton's ``nv_inference_request_summary_us`` values by level (NaN or absent: unknown)."""
    requests: float
    """A lower bound of the requests in the summary window (see :data:`SUMMARY_WINDOW_S`)."""


def quantile_bound(window: LatencyWindow, alpha: float, side: str) -> float:
    """The tightest valid bound of the p99 on ``side`` (microseconds); NaN when none is valid."""
    best = math.nan
    for level in BOUND_LEVELS:
        value = window.quantiles_us.get(level, math.nan)
        need = min_window(level, alpha, side)
        if need is None or not math.isfinite(value) or window.requests < need:
            continue
        if math.isnan(best) or (value > best if side == LOWER else value < best):
            best = value
    return best


@dataclass(frozen=True)
class LatencyJudgement:
    """The latency guard at one look: its verdict and the four bounds it compared (us)."""

    verdict: str
    candidate_ucb: float
    """At ``latency_pass_alpha``: PASS needs it below g(baseline_lcb)."""
    baseline_lcb: float
    candidate_lcb: float
    """At ``latency_fail_alpha``: FAIL needs it above g(baseline_ucb)."""
    baseline_ucb: float


def latency_verdict(
    c: PromotionCriteria, baseline: LatencyWindow, candidate: LatencyWindow
) -> LatencyJudgement:
    """PASS, FAIL or UNDECIDED from both variants' summaries (NaN bounds never decide)."""
    ucb_c = quantile_bound(candidate, c.latency_pass_alpha, UPPER)
    lcb_b = quantile_bound(baseline, c.latency_pass_alpha, LOWER)
    lcb_c = quantile_bound(candidate, c.latency_fail_alpha, LOWER)
    ucb_b = quantile_bound(baseline, c.latency_fail_alpha, UPPER)
    ratio, floor = c.max_p99_latency_ratio, c.latency_floor_ms * 1000.0
    # The same comparisons, in the same order, as latency_verdict_query's PromQL.
    if ucb_c < lcb_b * ratio or ucb_c < lcb_b + floor:
        verdict = PASS
    elif lcb_c > ucb_b * ratio and lcb_c > ucb_b + floor:
        verdict = FAIL
    else:
        verdict = UNDECIDED
    return LatencyJudgement(verdict, ucb_c, lcb_b, lcb_c, ucb_b)


def error_llr(c: PromotionCriteria, failures: Any, successes: Any) -> Any:
    """The error SPRT's log-likelihood ratio (H1: max_error_rate over H0: acceptable rate);
    counts may be numbers or arrays (elementwise)."""
    per_failure, per_success = c.error_weights
    return failures * per_failure - successes * -per_success


def error_verdict(c: PromotionCriteria, llr: float) -> str:
    """FAIL at log(1/alpha), PASS at log(beta), else UNDECIDED."""
    passed, failed = c.error_bounds
    return FAIL if llr >= failed else PASS if llr <= passed else UNDECIDED


def accuracy_verdict(c: PromotionCriteria, llr: float) -> str:
    """PASS at log(1/alpha) (non-inferior), FAIL at log(beta), else (or NaN) UNDECIDED."""
    lower, upper = c.accuracy_bounds
    return PASS if llr >= upper else FAIL if llr <= lower else UNDECIDED


# --- what Triton and Prometheus must be told -----------------------------------------------------
def summary_quantiles_config() -> str:
    """Triton's ``--metrics-config`` value that exports :data:`SUMMARY_LEVELS`."""
    pairs = (f"{q:g}:{BODY_ERRORS.get(q, SUMMARY_ERROR):g}" for q in SUMMARY_LEVELS)
    return "summary_quantiles=" + ",".join(pairs)


def triton_metrics_args() -> list[str]:
    """``tritonserver`` flags for the summary the latency guard reads (local and cluster)."""
    return [
        "--metrics-config=summary_latencies=true",
        f"--metrics-config={summary_quantiles_config()}",
    ]


def selector(model: str, variant: str) -> str:
    """Label selector of one variant's series: Triton's ``model`` label plus the ``variant``
    label the scrape config copies from the pod label ``sovereign-ml/variant``."""
    return f'model="{model}",variant="{variant}"'


def window_query(sel: str, offset_s: int) -> str:
    """PromQL: per pod, summary observations over the last ``offset_s`` (a lower bound of the
    window's size)."""
    count = f"nv_inference_request_summary_us_count{{{sel}}}"
    return f"(sum by (pod) ({count}) - sum by (pod) ({count} offset {offset_s}s))"


def bound_query(sel: str, alpha: float, side: str, offset_s: int) -> str:
    """PromQL: :func:`quantile_bound` per pod, combined over pods (min of lower, max of upper)."""
    window = window_query(sel, offset_s)
    parts = [
        f'(nv_inference_request_summary_us{{{sel},quantile="{q:g}"}} and on (pod) '
        f"({window} >= {need}))"
        for q in BOUND_LEVELS
        if (need := min_window(q, alpha, side)) is not None
    ]
    per_pod, across = ("max", "min") if side == LOWER else ("min", "max")
    return f"{across}({per_pod} by (pod) ({' or '.join(parts)}))"


def latency_verdict_query(c: PromotionCriteria, candidate: str, baseline: str) -> str:
    """PromQL: 1 PASS, -1 FAIL, 0 UNDECIDED (:func:`latency_verdict` in Prometheus)."""
    off = c.window_offset_s
    ucb_c = f"scalar({bound_query(candidate, c.latency_pass_alpha, UPPER, off)})"
    lcb_b = f"scalar({bound_query(baseline, c.latency_pass_alpha, LOWER, off)})"
    lcb_c = f"scalar({bound_query(candidate, c.latency_fail_alpha, LOWER, off)})"
    ucb_b = f"scalar({bound_query(baseline, c.latency_fail_alpha, UPPER, off)})"
    ratio, floor = repr(c.max_p99_latency_ratio), repr(c.latency_floor_ms * 1000.0)
    passed = f"(({ucb_c} < bool {lcb_b} * {ratio}) + ({ucb_c} < bool {lcb_b} + {floor}) > bool 0)"
    failed = f"(({lcb_c} > bool {ucb_b} * {ratio}) * ({lcb_c} > bool {ucb_b} + {floor}))"
    return f"vector({passed} - {failed})"


def error_llr_query(c: PromotionCriteria, sel: str) -> str:
    """PromQL: :func:`error_llr` from the variant pods' sidecar counters (``sel``:
    :func:`~policies.gateway_metrics.sprt_selector`; cumulative since each pod started)."""
    per_failure, per_success = c.error_weights
    fail, ok = counted(sel, FAILURE_CODES), counted(sel, SUCCESS_CODES)
    return f"vector({fail} * {per_failure!r} - {ok} * {-per_success!r})"


def accuracy_llr_query(sel: str) -> str:
    """PromQL: the accuracy SPRT's LLR for the canary, a gauge the labelled-outcome job pushes
    (frozen at its first boundary crossing, where Wald's test stops); 0 (no evidence) if none."""
    return f"max(sovml_canary_accuracy_llr{{{sel}}}) or vector(0)"


@dataclass(frozen=True)
class AnalysisCheck:
    """One analysis metric: its PromQL and the Argo conditions of PASS and FAIL."""

    name: str
    query: str
    success_condition: str
    failure_condition: str
    successes_needed: int = 1
    """Argo's ``consecutiveSuccessLimit``: consecutive PASSes that end the metric."""


def burn_min_requests(c: PromotionCriteria) -> int:
    """Requests a window needs before the burn guard judges it: the smallest n with the Chernoff
    bound exp(-n KL(t || b)) <= :data:`BURN_LOOK_RATE`, t the burn threshold and b the budget
    (monotone in n, and valid for every error rate p <= b)."""
    t, b = c.burn_threshold, round(1 - c.slo_availability, 12)
    kl = t * math.log(t / b) + (1 - t) * math.log((1 - t) / (1 - b))
    return math.ceil(math.log(1 / BURN_LOOK_RATE) / kl)


def burn_verdict(c: PromotionCriteria, failures: float, requests: float) -> str:
    """The burn guard on one window's counts: FAIL above the threshold with enough requests,
    else PASS (it never holds a step: the other guards decide promotion)."""
    ratio = failures / requests if requests >= burn_min_requests(c) else 0.0
    return FAIL if ratio > c.burn_threshold else PASS


def burn_successes_needed(c: PromotionCriteria) -> int:
    """Looks until a whole window of the step's own traffic has been judged (the first look is
    at the step's start), at most ``looks_per_step``."""
    return min(c.looks_per_step, math.ceil(BURN_WINDOW_S / c.analysis_interval_s) + 1)


def burn_query(c: PromotionCriteria, sel: str) -> str:
    """PromQL: the variant's error ratio over :data:`BURN_WINDOW_S` from the gateway's counters
    (``sel``: :func:`~policies.gateway_metrics.gateway_selector`), 0 under the request floor
    (:func:`burn_verdict` in Prometheus; absent counters count as 0)."""
    w = f"{BURN_WINDOW_S}s"
    fail, ok = counted(sel, FAILURE_CODES, w), counted(sel, SUCCESS_CODES, w)
    n = f"({ok} + {fail})"
    return f"vector({fail}) / clamp_min(vector({n}), 1e-9) * ({n} >= bool {burn_min_requests(c)})"


def analysis_checks(
    c: PromotionCriteria, model: str, namespace: str = "serving"
) -> list[AnalysisCheck]:
    """The guards as Argo Rollouts metrics (``result[0]`` is the query's one value): the three
    statistical ones and the SLO fast-burn abort; the error guards read the mesh's counters
    (:mod:`policies.gateway_metrics`) of the model's pods in ``namespace``."""
    canary, stable = selector(model, "canary"), selector(model, "stable")
    mesh_canary = sprt_selector(model, "canary", namespace)
    acc_fail, acc_pass = c.accuracy_bounds
    err_pass, err_fail = c.error_bounds
    return [
        AnalysisCheck(
            "accuracy-sprt",
            accuracy_llr_query(canary),
            f"result[0] >= {acc_pass!r}",
            f"result[0] <= {acc_fail!r}",
        ),
        AnalysisCheck(
            "latency-p99",
            latency_verdict_query(c, canary, stable),
            "result[0] == 1",
            "result[0] == -1",
        ),
        AnalysisCheck(
            "error-rate-sprt",
            error_llr_query(c, mesh_canary),
            f"result[0] <= {err_pass!r}",
            f"result[0] >= {err_fail!r}",
        ),
        AnalysisCheck(
            "slo-fast-burn",
            burn_query(c, gateway_selector(model, "canary", namespace)),
            f"result[0] <= {c.burn_threshold!r}",
            f"result[0] > {c.burn_threshold!r}",
            successes_needed=burn_successes_needed(c),
        ),
    ]
