"""The whole canary procedure on simulated traffic: every stated rate, measured.

Each simulated run drives the live run's own step machine
(:class:`~pipelines.serving.canary.decisions.Procedure`) with the verdict functions of
:mod:`policies.promotion` (the accuracy LLR of
:class:`~pipelines.serving.canary.statistics.SequentialDesign`), on data drawn per look:

* **accuracy**: at the first step's weight, ``min_requests_per_step`` routed candidate requests and
  a negative-binomial number of baseline ones (what the weighted router sends until the
  candidate's quota), Bernoulli-correct at each variant's accuracy, cumulative;
* **errors**: the candidate's requests of a look in ``chunks`` parts (the live run's interim
  checks), each failing with the candidate's error rate, cumulative;
* every guard is checked at every part: FAIL-only between looks, all verdicts at the look (as
  :meth:`~pipelines.serving.canary.decisions.Procedure.interim` and ``record`` do live); the
  verdicts are computed for all runs at once by vectorised twins of the verdict functions
  (:func:`latency_codes`; the tests compare them with the scalar ones case by case);
* **latency**: what Triton's summary would export: the exact order statistics, at the ranks of
  :data:`~policies.promotion.SUMMARY_LEVELS`, of a window of ``n`` latencies drawn from each
  variant's distribution (joint order statistics from sequential beta draws of sorted uniforms,
  pushed through a closed-form quantile function). ``n`` grows by ``window_per_look`` per look up
  to ``window_cap``, a lower bound the table is applied to, as live.

The accuracy part is split over the parts as well (routed requests per part).

Each look draws a fresh latency window, where the live windows of successive looks overlap;
independent looks give more chances to cross a boundary, so the simulated rates are upper
bounds of the live ones in that respect. The bad cases sit exactly on their boundaries (accuracy
worse by the margin, p99 at max(ratio x, + floor), error rate at ``max_error_rate``) and the equal
case at the edge of "equal" (the same accuracy and latency, errors at ``acceptable_error_rate``):
the worst cases the stated rates cover.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, replace

import numpy as np

from pipelines.serving.canary.decisions import HELD, PROMOTED, ROLLED_BACK, Procedure
from pipelines.serving.canary.statistics import SequentialDesign
from policies.promotion import (
    BOUND_LEVELS,
    DEFAULT,
    FAIL,
    LOWER,
    PASS,
    QUANTILE,
    SUMMARY_LEVELS,
    UNDECIDED,
    UPPER,
    PromotionCriteria,
    error_llr,
    min_window,
)


@dataclass(frozen=True)
class Latency:
    """A server latency distribution with a closed-form quantile function (microseconds):
    ``shift + scale * BurrXII(c, k)``, Q(u) = shift + scale ((1 - u)^(-1/k) - 1)^(1/c). Its tail
    falls like x^-(c k): c k = 3 is a busy host's heavy tail, larger values lighter ones."""

    shift_us: float = 300.0
    scale_us: float = 500.0
    c: float = 3.0
    k: float = 1.0

    def quantile(self, u: np.ndarray | float) -> np.ndarray:
        """Q(u), elementwise."""
        u = np.asarray(u, dtype=float)
        return self.shift_us + self.scale_us * ((1 - u) ** (-1 / self.k) - 1) ** (1 / self.c)

    def scaled(self, factor: float) -> Latency:
        """Every quantile times ``factor``."""
        return replace(self, shift_us=self.shift_us * factor, scale_us=self.scale_us * factor)

    @property
    def p99_us(self) -> float:
        """The true p99."""
        return float(self.quantile(QUANTILE))


def regression_factor(latency: Latency, criteria: PromotionCriteria = DEFAULT) -> float:
    """The slow-down that puts a candidate exactly on the latency guard's boundary:
    p99 = max(ratio x, + floor) of the baseline's."""
    floor_us = criteria.latency_floor_ms * 1000.0
    return max(criteria.max_p99_latency_ratio, 1 + floor_us / latency.p99_us)


@dataclass(frozen=True)
class Scenario:
    """One canary situation: both variants' accuracy, the candidate's errors and latencies."""

    name: str
    baseline_accuracy: float = 0.9
    candidate_accuracy: float = 0.9
    candidate_error_rate: float = DEFAULT.acceptable_error_rate
    latency: Latency = field(default_factory=Latency)
    latency_factor: float = 1.0
    """The candidate's latency quantiles are the baseline's times this..."""
    candidate_latency: Latency | None = None
    """...unless the candidate has a distribution of its own (e.g. 30 ms added)."""

    @property
    def candidate(self) -> Latency:
        """The candidate's latency distribution."""
        return self.candidate_latency or self.latency.scaled(self.latency_factor)


@dataclass(frozen=True)
class Traffic:
    """How much data a look brings (per variant); see the module docstring."""

    window_per_look: int = 3000
    window_cap: int = 30_000
    candidate_per_look: int = 3000
    """Candidate requests (routed and mirrored) per look: the error SPRT's evidence."""
    chunks: int = DEFAULT.interim_checks + 1
    """Checks per look: ``chunks - 1`` interim (FAIL-only) ones, then the look's own. The
    default is the most the live run may make, the worst case for false rollbacks."""


@dataclass(frozen=True)
class ProcedureRates:
    """How ``runs`` simulated canaries of one scenario ended."""

    scenario: str
    runs: int
    promoted: float
    rolled_back: float
    held: float
    families: dict[str, float]
    """Share of runs rolled back with each guard among the reasons (a run may name several)."""
    mean_looks: float


_CODE = {1: PASS, -1: FAIL, 0: UNDECIDED}


def _split(total: int, parts: int) -> np.ndarray:
    """``total`` in ``parts`` integer parts (as even as possible)."""
    return np.diff(np.linspace(0, total, parts + 1).round().astype(np.int64))


def accuracy_codes(
    s: Scenario, c: PromotionCriteria, shape: tuple[int, int, int], rng: np.random.Generator
) -> np.ndarray:
    """Accuracy verdict codes ``[runs, checks]`` at the first step's weight (cumulative)."""
    runs, looks, chunks = shape
    weight = c.steps[0] / 100.0
    n_b = np.tile(_split(c.min_requests_per_step, chunks), looks)[None, :].repeat(runs, axis=0)
    n_a = rng.negative_binomial(np.maximum(n_b, 1), weight) if weight < 1 else n_b * 0
    n_a = np.where(n_b > 0, n_a, 0)
    c_a = rng.binomial(n_a, s.baseline_accuracy)
    c_b = rng.binomial(n_b, s.candidate_accuracy)
    cum = [np.cumsum(x, axis=1) for x in (c_a, n_a, c_b, n_b)]
    llr = np.asarray(SequentialDesign.from_criteria(c).llr(*cum))
    lower, upper = c.accuracy_bounds
    return np.where(llr >= upper, 1, np.where(llr <= lower, -1, 0)).astype(np.int8)


def error_codes(
    s: Scenario, c: PromotionCriteria, t: Traffic, shape: tuple[int, int], rng: np.random.Generator
) -> np.ndarray:
    """Error verdict codes ``[runs, checks]`` (cumulative)."""
    runs, looks = shape
    n = np.tile(_split(t.candidate_per_look, t.chunks), looks)[None, :].repeat(runs, axis=0)
    failures = np.cumsum(rng.binomial(n, s.candidate_error_rate), axis=1)
    llr = np.asarray(error_llr(c, failures, np.cumsum(n, axis=1) - failures))
    passed, failed = c.error_bounds
    return np.where(llr >= failed, -1, np.where(llr <= passed, 1, 0)).astype(np.int8)


def window_quantiles(
    latency: Latency, n: np.ndarray, runs: int, rng: np.random.Generator
) -> np.ndarray:
    """Summary values ``[runs, checks, levels]``: the order statistics of ``n[check]`` draws at
    the ranks ceil(q n) of every summary level, jointly (sorted uniforms, sequential betas)."""
    checks = len(n)
    ranks = np.clip(np.ceil(np.outer(n, SUMMARY_LEVELS)), 1, n[:, None]).astype(np.int64)
    u = np.empty((runs, checks, len(SUMMARY_LEVELS)))
    prev_u, prev_r = np.zeros((runs, checks)), np.zeros(checks, dtype=np.int64)
    for j in range(len(SUMMARY_LEVELS)):
        gap = ranks[:, j] - prev_r
        step = rng.beta(np.maximum(gap, 1), n - ranks[:, j] + 1, size=(runs, checks))
        prev_u = np.where(gap > 0, prev_u + (1 - prev_u) * step, prev_u)
        u[:, :, j], prev_r = prev_u, ranks[:, j]
    return latency.quantile(u)


def _bounds(q: np.ndarray, n: np.ndarray, alpha: float, side: str) -> np.ndarray:
    """:func:`policies.promotion.quantile_bound` over ``[runs, checks, levels]`` at once."""
    out = np.full(q.shape[:2], np.nan)
    for j, level in enumerate(SUMMARY_LEVELS):
        need = min_window(level, alpha, side) if level in BOUND_LEVELS else None
        if need is None:
            continue
        value = np.where(n[None, :] >= need, q[:, :, j], np.nan)
        better = value > out if side == LOWER else value < out
        out = np.where(np.isnan(out) | better, np.where(np.isnan(value), out, value), out)
    return out


def latency_codes(
    c: PromotionCriteria, n: np.ndarray, base: np.ndarray, cand: np.ndarray
) -> np.ndarray:
    """:func:`policies.promotion.latency_verdict` codes ``[runs, checks]``, vectorised (the
    tests compare it with the scalar function case by case)."""
    ucb_c = _bounds(cand, n, c.latency_pass_alpha, UPPER)
    lcb_b = _bounds(base, n, c.latency_pass_alpha, LOWER)
    lcb_c = _bounds(cand, n, c.latency_fail_alpha, LOWER)
    ucb_b = _bounds(base, n, c.latency_fail_alpha, UPPER)
    ratio, floor = c.max_p99_latency_ratio, c.latency_floor_ms * 1000.0
    with np.errstate(invalid="ignore"):
        passed = (ucb_c < lcb_b * ratio) | (ucb_c < lcb_b + floor)
        failed = (lcb_c > ucb_b * ratio) & (lcb_c > ucb_b + floor)
    return np.where(passed, 1, np.where(failed, -1, 0)).astype(np.int8)


def simulate_procedure(
    scenario: Scenario,
    criteria: PromotionCriteria = DEFAULT,
    *,
    traffic: Traffic | None = None,
    runs: int = 1000,
    seed: int = 0,
) -> ProcedureRates:
    """Run the whole procedure ``runs`` times on ``scenario`` (see the module docstring)."""
    c, t = criteria, traffic or Traffic()
    rng = np.random.default_rng(seed)
    looks = c.max_looks
    checks = np.arange(1, looks * t.chunks + 1)
    n = np.minimum(checks * t.window_per_look // t.chunks, t.window_cap)
    base = window_quantiles(scenario.latency, n, runs, rng)
    cand = window_quantiles(scenario.candidate, n, runs, rng)
    codes = {
        "accuracy": accuracy_codes(scenario, c, (runs, looks, t.chunks), rng),
        "latency": latency_codes(c, n, base, cand),
        "errors": error_codes(scenario, c, t, (runs, looks), rng),
    }
    outcomes: Counter[str] = Counter()
    families: Counter[str] = Counter()
    looks_taken = 0
    for i in range(runs):
        proc = Procedure(c)
        for k in range(looks * t.chunks):
            verdicts = {g: _CODE[int(codes[g][i, k])] for g in proc.pending}
            if (k + 1) % t.chunks:
                proc.interim(verdicts, {})
            else:
                proc.record(verdicts, {})
                looks_taken += 1
            if proc.outcome is not None:
                break
        outcomes[proc.outcome or HELD] += 1
        if proc.outcome == ROLLED_BACK:
            families.update(proc.families)
    return ProcedureRates(
        scenario=scenario.name,
        runs=runs,
        promoted=outcomes[PROMOTED] / runs,
        rolled_back=outcomes[ROLLED_BACK] / runs,
        held=outcomes[HELD] / runs,
        families={g: families[g] / runs for g in ("accuracy", "latency", "errors")},
        mean_looks=looks_taken / runs,
    )
