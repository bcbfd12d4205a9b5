"""The canary decision procedure without a server: every stated rate, measured by simulation.

:mod:`policies.promotion` states, over all looks and guards: P(roll back | candidate equal to
the baseline) <= 5 %; P(promote | accuracy worse by >= 0.02), P(promote | p99 >= 1.5 x and
+1 ms), P(promote | error rate >= 2 %) each <= 5 %. :mod:`pipelines.serving.canary.simulation`
drives the live step machine and verdict functions on seeded data with every bad case on its
boundary; these tests assert each rate.

Power of the rate tests: each runs ``RUNS`` = 1,000 seeded canaries and asserts the observed rate
<= ``LIMIT`` = 0.07 for a stated 0.05. Were the true rate 0.10 (twice the bound) the test fails
with probability 0.999 (normal approximation: (0.10 - 0.07) / sqrt(0.1 x 0.9 / 1000) = 3.2 sd);
a true rate of exactly 0.05 passes with probability 0.998 (2.9 sd). The per-guard shares of the
false-rollback budget (2 %, 2 %, 1 %) are checked the same way, at share + 3 sd.

Below them, the pieces the rates rest on: the order-statistic table against exact binomial tails
(scipy, an independent implementation), the incomplete beta function, the vectorised verdicts the
simulation uses against the scalar ones, the step machine, and the accuracy SPRT alone.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
from scipy.special import betainc
from scipy.stats import beta as beta_dist
from scipy.stats import binom

from pipelines.serving.canary.decisions import (
    CONTINUE,
    HELD,
    HOLD,
    PROMOTE,
    PROMOTED,
    ROLLBACK,
    ROLLED_BACK,
    Procedure,
)
from pipelines.serving.canary.router import WeightedRouter
from pipelines.serving.canary.simulation import (
    Latency,
    Scenario,
    latency_codes,
    regression_factor,
    simulate_procedure,
    window_quantiles,
)
from pipelines.serving.canary.statistics import (
    SequentialDesign,
    clopper_pearson,
    simulate_sprt,
    wilson_interval,
)
from policies.promotion import (
    BOUND_LEVELS,
    DEFAULT,
    FAIL,
    LOWER,
    PASS,
    SUMMARY_ERROR,
    SUMMARY_LEVELS,
    UNDECIDED,
    UPPER,
    LatencyWindow,
    PromotionCriteria,
    accuracy_verdict,
    beta_inc,
    error_llr,
    error_verdict,
    latency_verdict,
    min_window,
)

RUNS = 1000
LIMIT = 0.07
"""Observed-rate limit for a stated 0.05 (see the module docstring for the power)."""
BUSY = Latency(shift_us=300.0, scale_us=500.0, c=3.0, k=1.0)
"""A busy host's server latency: p99 2.6 ms, tail ~ x^-3 (the ratio regime of the guard)."""
HEAVY = Latency(shift_us=100.0, scale_us=100.0, c=1.5, k=1.0)
"""A heavier tail, p99 2.2 ms (tail ~ x^-1.5)."""
FAST = Latency(shift_us=100.0, scale_us=50.0, c=3.0, k=1.0)
"""A sub-millisecond model, p99 0.33 ms (the floor regime: a regression must add 1 ms)."""


def _share_limit(share: float) -> float:
    return share + 3 * math.sqrt(share * (1 - share) / RUNS)


# --- the stated rates of the whole procedure ----------------------------------------------------
@pytest.mark.parametrize("latency", [BUSY, HEAVY, FAST], ids=["busy", "heavy", "fast"])
def test_equal_candidate_is_rolled_back_at_most_5_percent(latency: Latency) -> None:
    """Equal accuracy (d = 0), equal latency distributions, errors at the acceptable 0.5 %."""
    rates = simulate_procedure(Scenario("equal", latency=latency), runs=RUNS, seed=21)
    assert rates.rolled_back <= LIMIT, rates
    shares = dict(zip(("accuracy", "latency", "errors"), DEFAULT.rollback_split, strict=True))
    for guard, share in shares.items():
        assert rates.families[guard] <= _share_limit(DEFAULT.false_rollback_rate * share), rates
    # Not vacuous: an equal candidate is mostly promoted within the looks.
    assert rates.promoted > 0.7, rates


@pytest.mark.parametrize("p_baseline", [0.85, 0.95])
def test_worse_accuracy_is_promoted_at_most_5_percent(p_baseline: float) -> None:
    worse = p_baseline - DEFAULT.accuracy_margin
    scenario = Scenario("worse-accuracy", p_baseline, worse, latency=BUSY)
    rates = simulate_procedure(scenario, runs=RUNS, seed=22)
    assert rates.promoted <= LIMIT, rates
    assert rates.families["accuracy"] > 0.6, rates


@pytest.mark.parametrize("latency", [BUSY, HEAVY, FAST], ids=["busy", "heavy", "fast"])
def test_slower_p99_is_promoted_at_most_5_percent(latency: Latency) -> None:
    """The candidate's p99 exactly at max(1.5 x, + 1 ms) of the baseline's: the boundary."""
    factor = regression_factor(latency)
    scenario = Scenario("slower", latency=latency, latency_factor=factor)
    rates = simulate_procedure(scenario, runs=RUNS, seed=23)
    assert rates.promoted <= LIMIT, rates


def test_error_rate_2_percent_is_promoted_at_most_5_percent() -> None:
    scenario = Scenario("errors", candidate_error_rate=DEFAULT.max_error_rate, latency=BUSY)
    rates = simulate_procedure(scenario, runs=RUNS, seed=24)
    assert rates.promoted <= LIMIT, rates
    assert rates.families["errors"] > 0.9, rates


def test_clear_regressions_are_rolled_back_by_their_guard() -> None:
    """Power where it matters: 3x the p99, 30 ms more, 5 % errors, or 40 points of accuracy are
    rolled back by the guard they concern (the other guards see an equal, error-free candidate)."""
    clean = {"candidate_error_rate": 0.0, "latency": BUSY}
    slow = simulate_procedure(Scenario("3x", latency_factor=3.0, **clean), runs=300, seed=25)
    assert slow.families["latency"] > 0.95, slow
    plus30 = Latency(shift_us=BUSY.shift_us + 30_000, scale_us=BUSY.scale_us)
    assert plus30.p99_us - BUSY.p99_us == pytest.approx(30_000)
    late = simulate_procedure(Scenario("+30ms", candidate_latency=plus30, **clean), runs=300)
    assert late.families["latency"] == 1.0, late
    errors = simulate_procedure(Scenario("5%", candidate_error_rate=0.05), runs=300, seed=26)
    assert errors.families["errors"] == 1.0, errors
    worse = simulate_procedure(Scenario("acc", 0.9, 0.5, **clean), runs=300, seed=27)
    assert worse.families["accuracy"] == 1.0, worse


def test_rates_follow_the_criteria() -> None:
    """Tighter budgets give fewer wrong decisions: the procedure reads them, not constants."""
    strict = replace(DEFAULT, false_promotion_rate=0.01, false_rollback_rate=0.01)
    scenario = Scenario("worse-accuracy", 0.85, 0.83, latency=BUSY)
    rates = simulate_procedure(scenario, strict, runs=RUNS, seed=28)
    assert rates.promoted <= 0.01 + 3 * math.sqrt(0.01 * 0.99 / RUNS), rates


# --- the latency bounds -------------------------------------------------------------------------
@pytest.mark.parametrize("alpha", ["pass", "fail"])
def test_min_window_is_valid_for_every_larger_window(alpha: str) -> None:
    """For every bound level, every window n in [N, 20 N) and every integer rank the CKMS
    guarantee allows, the exact binomial tail (scipy) is at most alpha: the table holds."""
    a = DEFAULT.latency_pass_alpha if alpha == "pass" else DEFAULT.latency_fail_alpha
    for level in BOUND_LEVELS:
        side = LOWER if level < 0.99 else UPPER
        need = min_window(level, a, side)
        assert need is not None and min_window(level, a, UPPER if side == LOWER else LOWER) is None
        assert _exact_tail(level, side, np.arange(need, 20 * need)).max() <= a, (level, side)
        # Not wasteful: windows a tenth or more smaller are not enough (somewhere).
        assert _exact_tail(level, side, np.arange(int(0.8 * need), int(0.9 * need))).max() > a


def _exact_tail(level: float, side: str, n: np.ndarray) -> np.ndarray:
    """P(the order statistic a level's summary may report misses the p99), exactly (scipy),
    at the worst integer rank the CKMS guarantee allows, for every window in ``n``."""
    if side == LOWER:
        rank = np.floor((level + SUMMARY_ERROR) * n) + 1  # the highest rank it may report
        return binom.cdf(rank - 1, n, 0.99)  # P(X_(rank) > p99)
    rank = np.ceil((level - SUMMARY_ERROR) * n) - 1  # the lowest
    return binom.sf(rank - 1, n, 0.99)  # P(X_(rank) < p99)


def test_bounds_are_valid_by_simulation() -> None:
    """The claim itself, with no table in between: at the table's window the chosen level's
    order statistic misses the true p99 at most alpha of the time (Monte Carlo, 200,000
    windows; alpha raised to 1 % so that misses are countable)."""
    a, rng = 0.01, np.random.default_rng(5)
    true_p99 = BUSY.p99_us
    for side, level in ((LOWER, 0.98), (UPPER, 0.996)):
        n = min_window(level, a, side)
        assert n is not None
        q = window_quantiles(BUSY, np.array([n]), 200_000, rng)[:, 0, SUMMARY_LEVELS.index(level)]
        misses = np.mean(q > true_p99) if side == LOWER else np.mean(q < true_p99)
        assert misses <= a, (side, level, n, misses)
        assert misses > a / 4, "not vacuous: the bound is near its stated level"


def test_beta_inc_matches_scipy() -> None:
    rng = np.random.default_rng(0)
    for _ in range(500):
        a, b, x = rng.uniform(0.5, 5e4), rng.uniform(0.5, 5e4), rng.uniform(0, 1)
        assert beta_inc(a, b, x) == pytest.approx(betainc(a, b, x), abs=1e-10)


def test_vectorised_latency_verdicts_equal_the_scalar_function() -> None:
    """The simulation's :func:`latency_codes` is :func:`policies.promotion.latency_verdict`."""
    rng = np.random.default_rng(3)
    n = np.array([900, 1500, 3000, 6000, 12_000, 30_000, 60_000])
    codes = {1: PASS, -1: FAIL, 0: UNDECIDED}
    seen = set()
    for factor in (0.5, 1.0, 1.4, 2.0, 4.0):
        base = window_quantiles(BUSY, n, 40, rng)
        cand = window_quantiles(BUSY.scaled(factor), n, 40, rng)
        got = latency_codes(DEFAULT, n, base, cand)
        for i in range(40):
            for k in range(len(n)):
                want = latency_verdict(
                    DEFAULT,
                    LatencyWindow(dict(zip(SUMMARY_LEVELS, base[i, k], strict=True)), n[k]),
                    LatencyWindow(dict(zip(SUMMARY_LEVELS, cand[i, k], strict=True)), n[k]),
                ).verdict
                assert codes[int(got[i, k])] == want, (factor, i, k)
                seen.add(want)
    assert seen == {PASS, FAIL, UNDECIDED}


def _window(p99_ms: float, n: float, spread: float = 1.05) -> LatencyWindow:
    """A window whose levels sit a little around ``p99_ms``."""
    return LatencyWindow(
        {q: p99_ms * 1000 * spread ** ((q - 0.99) * 200) for q in SUMMARY_LEVELS}, n
    )


def test_latency_verdict_needs_a_valid_window_and_respects_the_floor() -> None:
    big = 50_000
    assert latency_verdict(DEFAULT, _window(4.0, big), _window(4.0, big)).verdict == PASS
    assert latency_verdict(DEFAULT, _window(4.0, big), _window(12.0, big)).verdict == FAIL
    assert latency_verdict(DEFAULT, _window(4.0, big), _window(6.2, big)).verdict == UNDECIDED
    # Too few requests for any level: no bound, no decision, whatever the point estimates say.
    assert latency_verdict(DEFAULT, _window(4.0, 200), _window(40.0, 200)).verdict == UNDECIDED
    # Sub-millisecond: 0.3 -> 0.9 ms is three times the p99 but under the 1 ms floor.
    assert latency_verdict(DEFAULT, _window(0.3, big), _window(0.9, big)).verdict == PASS
    assert latency_verdict(DEFAULT, _window(0.3, big), _window(2.0, big)).verdict == FAIL
    no_floor = replace(DEFAULT, latency_floor_ms=0.0)
    assert latency_verdict(no_floor, _window(0.3, big), _window(0.9, big)).verdict == FAIL
    # Unknown quantiles (an empty summary window) never decide.
    empty = LatencyWindow({}, big)
    assert latency_verdict(DEFAULT, empty, _window(40.0, big)).verdict == UNDECIDED


def test_error_and_accuracy_verdicts_at_their_boundaries() -> None:
    e_pass, e_fail = DEFAULT.error_bounds
    assert (e_pass, e_fail) == pytest.approx((math.log(0.05), math.log(100)))
    assert error_verdict(DEFAULT, e_fail) == FAIL and error_verdict(DEFAULT, e_pass) == PASS
    assert error_verdict(DEFAULT, 0.0) == UNDECIDED
    per_failure, per_success = DEFAULT.error_weights
    assert error_llr(DEFAULT, 3, 10) == pytest.approx(3 * per_failure + 10 * per_success)
    assert per_failure == pytest.approx(math.log(4)) and per_success < 0
    # 198 clean requests reach the pass boundary; 4 failures in 10 requests the fail one.
    assert error_verdict(DEFAULT, error_llr(DEFAULT, 0, 198)) == PASS
    assert error_verdict(DEFAULT, error_llr(DEFAULT, 4, 6)) == FAIL
    lower, upper = DEFAULT.accuracy_bounds
    assert (lower, upper) == pytest.approx((math.log(0.02), math.log(20)))
    assert accuracy_verdict(DEFAULT, upper) == PASS and accuracy_verdict(DEFAULT, lower) == FAIL
    assert accuracy_verdict(DEFAULT, math.nan) == UNDECIDED


def test_budgets_split_and_spent_over_the_looks() -> None:
    c = DEFAULT
    assert c.max_looks == c.looks_per_step * 3 == 30
    assert c.accuracy_rollback_rate + c.latency_rollback_rate + c.error_rollback_rate == (
        pytest.approx(c.false_rollback_rate)
    )
    assert c.latency_pass_alpha * 2 * c.max_looks == pytest.approx(c.false_promotion_rate)
    checks = c.max_looks * (1 + c.interim_checks)
    assert c.latency_fail_alpha * 2 * checks == pytest.approx(c.latency_rollback_rate)
    assert c.window_offset_s == 48 - 15 - 10
    with pytest.raises(ValueError, match="rollback_split"):
        PromotionCriteria(rollback_split=(0.5, 0.5, 0.5))
    with pytest.raises(ValueError, match="error rates"):
        PromotionCriteria(acceptable_error_rate=0.03)


# --- the step machine ---------------------------------------------------------------------------
ALL_PASS = {"accuracy": PASS, "latency": PASS, "errors": PASS}


def test_procedure_promotes_step_by_step_and_remembers_passes() -> None:
    proc = Procedure(DEFAULT)
    first = proc.record({**ALL_PASS, "latency": UNDECIDED}, {})
    assert first.decision == CONTINUE and proc.passed == {"accuracy", "errors"}
    # A passed guard is not judged again in its step (its later verdict is ignored).
    assert proc.record({"latency": PASS, "accuracy": FAIL, "errors": FAIL}, {}).decision == (
        PROMOTE
    )
    assert proc.weight == 25 and proc.passed == set() and proc.accepted
    # Accepted accuracy stays accepted in later steps, whatever the LLR does.
    assert proc.record({**ALL_PASS, "accuracy": FAIL}, {}).decision == PROMOTE
    last = proc.record(ALL_PASS, {})
    assert last.decision == PROMOTE and proc.outcome == PROMOTED


def test_procedure_rolls_back_on_any_fail_and_names_the_guard() -> None:
    proc = Procedure(DEFAULT)
    decision = proc.record(
        {"accuracy": FAIL, "latency": UNDECIDED, "errors": PASS}, {"accuracy": "LLR -9"}
    )
    assert decision.decision == ROLLBACK and proc.outcome == ROLLED_BACK
    assert decision.families == ("accuracy",) and "LLR -9" in decision.reason
    with pytest.raises(RuntimeError):
        proc.record(ALL_PASS, {})


def test_procedure_holds_when_a_step_runs_out_of_looks() -> None:
    proc = Procedure(replace(DEFAULT, looks_per_step=3))
    undecided = {**ALL_PASS, "latency": UNDECIDED}
    assert [proc.record(undecided, {}).decision for _ in range(3)] == [CONTINUE, CONTINUE, HOLD]
    assert proc.outcome == HELD and proc.families == ("budget",)


def test_interim_checks_only_roll_back() -> None:
    proc = Procedure(DEFAULT)
    assert proc.interim(ALL_PASS, {}) is None and proc.passed == set()
    decision = proc.interim({"latency": FAIL, "errors": FAIL}, {})
    assert decision is not None and decision.families == ("latency", "errors")
    assert proc.outcome == ROLLED_BACK


def test_a_single_full_step_needs_no_analysis() -> None:
    assert Procedure(replace(DEFAULT, steps=(100,))).outcome == PROMOTED


# --- the accuracy SPRT alone --------------------------------------------------------------------
TOL_RUNS = 10_000
LOOKS = 40


def _tolerance(rate: float, runs: int = TOL_RUNS) -> float:
    return 3 * math.sqrt(rate * (1 - rate) / runs)


@pytest.mark.parametrize("p_baseline", [0.85, 0.95])
@pytest.mark.parametrize("worse_by", [1.0, 2.0])
def test_sprt_false_promotion_rate_is_at_most_alpha(p_baseline: float, worse_by: float) -> None:
    alpha = DEFAULT.false_promotion_rate
    p_candidate = p_baseline - worse_by * DEFAULT.accuracy_margin
    sim = simulate_sprt(p_baseline, p_candidate, DEFAULT, runs=TOL_RUNS, max_looks=LOOKS, seed=11)
    assert sim.promote_rate <= alpha + _tolerance(alpha), sim
    assert sim.rollback_rate > 0.9, sim


@pytest.mark.parametrize("p_baseline", [0.85, 0.95])
@pytest.mark.parametrize("better_by", [0.0, 0.01])
def test_sprt_false_rollback_rate_is_at_most_its_share(p_baseline: float, better_by: float) -> None:
    beta = DEFAULT.accuracy_rollback_rate
    sim = simulate_sprt(
        p_baseline, p_baseline + better_by, DEFAULT, runs=TOL_RUNS, max_looks=LOOKS, seed=12
    )
    assert sim.rollback_rate <= beta + _tolerance(beta), sim
    assert sim.promote_rate > 0.9, sim


def test_large_effects_decide_at_the_first_look() -> None:
    # What the server tests rely on: about +-40 points of accuracy decide at the first look.
    worse = simulate_sprt(0.9, 0.5, DEFAULT, runs=2000, max_looks=1, seed=14)
    better = simulate_sprt(0.5, 0.9, DEFAULT, runs=2000, max_looks=1, seed=15)
    assert worse.rollback_rate == 1.0
    assert better.promote_rate == 1.0


def test_boundaries_are_walds() -> None:
    d = SequentialDesign.from_criteria(DEFAULT)
    assert d.upper == pytest.approx(math.log(1 / DEFAULT.false_promotion_rate))
    assert d.lower == pytest.approx(math.log(DEFAULT.accuracy_rollback_rate))
    assert d.decide([d.upper, d.lower, 0.0]).tolist() == [1, -1, 0]


def test_llr_scalar_matches_vectorised_and_is_monotone() -> None:
    d = SequentialDesign.from_criteria(DEFAULT)
    correct_b = np.arange(150, 201)
    vec = d.llr(3400, 4000, correct_b, 200)
    scalars = [float(d.llr(3400, 4000, c, 200)) for c in correct_b]
    np.testing.assert_allclose(vec, scalars)
    assert np.all(np.diff(vec) > 0), "more correct candidate answers must mean more evidence"
    assert float(d.llr(0, 0, 10, 20)) == 0.0, "no baseline data is no evidence"


def test_llr_matches_brute_force_profile_likelihood() -> None:
    # The bisection maximiser against a dense grid over the nuisance parameter.
    d = SequentialDesign.from_criteria(DEFAULT)
    ca, na, cb, nb = 3300, 3800, 170, 200
    grid = np.linspace(1e-6, 1 - 1e-6, 200_001)

    def loglik(c: int, n: int, p: np.ndarray) -> np.ndarray:
        p = np.clip(p, 1e-12, 1 - 1e-12)
        return c * np.log(p) + (n - c) * np.log1p(-p)

    h1 = np.max(loglik(ca, na, grid) + loglik(cb, nb, grid))
    g0 = grid[grid > DEFAULT.accuracy_margin]
    h0 = np.max(loglik(ca, na, g0) + loglik(cb, nb, g0 - DEFAULT.accuracy_margin))
    assert float(d.llr(ca, na, cb, nb)) == pytest.approx(h1 - h0, abs=1e-3)


# --- intervals and the router -------------------------------------------------------------------
def test_wilson_interval() -> None:
    lo, hi = wilson_interval(90, 100)
    assert lo == pytest.approx(0.8256, abs=1e-4) and hi == pytest.approx(0.9448, abs=1e-4)
    assert all(math.isnan(v) for v in wilson_interval(0, 0))


@pytest.mark.parametrize(("k", "n"), [(0, 20), (1, 20), (10, 20), (20, 20), (3, 10)])
def test_clopper_pearson_matches_beta_quantiles(k: int, n: int) -> None:
    lo, hi = clopper_pearson(k, n)
    want_lo = 0.0 if k == 0 else beta_dist.ppf(0.025, k, n - k + 1)
    want_hi = 1.0 if k == n else beta_dist.ppf(0.975, k + 1, n - k)
    assert (lo, hi) == pytest.approx((want_lo, want_hi), abs=1e-9)


def test_router_weights_and_mirroring() -> None:
    router = WeightedRouter("a", "b", seed=3)
    router.set_weight(5)
    routes = router.routes_until(200)
    routed_b = sum(r.model == "b" and not r.mirror for r in routes)
    routed_a = sum(r.model == "a" for r in routes)
    mirrored = sum(r.mirror for r in routes)
    assert routed_b == 200 and routes[-1].model == "b"
    assert 0.03 < routed_b / (routed_a + routed_b) < 0.07
    # Mirror copies bring the candidate to the baseline's request rate.
    assert abs((routed_b + mirrored) / routed_a - 1) < 0.1
    assert all(routes[i - 1].model == "a" for i, r in enumerate(routes) if r.mirror)
    router.set_weight(50)
    assert not any(r.mirror for r in router.routes_until(200))
    assert len(router.routes_until(10, min_total=500)) >= 500
    no_mirror = WeightedRouter("a", "b", seed=3, mirror=False)
    no_mirror.set_weight(5)
    assert not any(r.mirror for r in no_mirror.routes_until(50))
