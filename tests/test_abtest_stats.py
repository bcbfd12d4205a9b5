"""The canary decision procedure without a server: its stated error rates, by simulation.

``pipelines.serving.canary.statistics`` states that a candidate worse than the baseline by the
accuracy margin (or more) is promoted with probability <= alpha, and one at least as good is rolled
back with probability <= beta (``PromotionCriteria.false_promotion_rate`` /
``false_rollback_rate``). The SPRT's likelihood ratio profiles out the baseline's accuracy, so
Wald's bounds hold only approximately; here the very functions the live run uses decide
thousands of simulated canaries (vectorised, seeded) and the empirical rates must stay under the
stated ones plus a Monte Carlo tolerance of three standard errors.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from pipelines.serving.canary.decisions import HOLD, PROMOTE, ROLLBACK, decide_look, guard_failures
from pipelines.serving.canary.router import WeightedRouter
from pipelines.serving.canary.statistics import SequentialDesign, simulate_sprt, wilson_interval
from policies.promotion import DEFAULT, PromotionCriteria

RUNS = 10_000
LOOKS = 40


def _tolerance(rate: float, runs: int = RUNS) -> float:
    return 3 * math.sqrt(rate * (1 - rate) / runs)


@pytest.mark.parametrize("p_baseline", [0.85, 0.95])
@pytest.mark.parametrize("worse_by", [1.0, 2.0])
def test_false_promotion_rate_is_at_most_alpha(p_baseline: float, worse_by: float) -> None:
    alpha = DEFAULT.false_promotion_rate
    p_candidate = p_baseline - worse_by * DEFAULT.accuracy_margin
    sim = simulate_sprt(p_baseline, p_candidate, DEFAULT, runs=RUNS, max_looks=LOOKS, seed=11)
    assert sim.promote_rate <= alpha + _tolerance(alpha), sim
    # The test is not vacuous: it does decide, overwhelmingly for rollback.
    assert sim.rollback_rate > 0.9, sim


@pytest.mark.parametrize("p_baseline", [0.85, 0.95])
@pytest.mark.parametrize("better_by", [0.0, 0.01])
def test_false_rollback_rate_is_at_most_beta(p_baseline: float, better_by: float) -> None:
    beta = DEFAULT.false_rollback_rate
    sim = simulate_sprt(
        p_baseline, p_baseline + better_by, DEFAULT, runs=RUNS, max_looks=LOOKS, seed=12
    )
    assert sim.rollback_rate <= beta + _tolerance(beta), sim
    assert sim.promote_rate > 0.9, sim


def test_rates_follow_the_criteria() -> None:
    # Tighter stated rates give fewer wrong decisions: the procedure reads them, not constants.
    strict = PromotionCriteria(false_promotion_rate=0.01, false_rollback_rate=0.01)
    sim = simulate_sprt(0.85, 0.83, strict, runs=RUNS, max_looks=80, seed=13)
    assert sim.promote_rate <= 0.01 + _tolerance(0.01), sim


def test_large_effects_decide_at_the_first_look() -> None:
    # What the server tests rely on: about +-40 points of accuracy decide with 200 requests.
    worse = simulate_sprt(0.9, 0.5, DEFAULT, runs=2000, max_looks=1, seed=14)
    better = simulate_sprt(0.5, 0.9, DEFAULT, runs=2000, max_looks=1, seed=15)
    assert worse.rollback_rate == 1.0
    assert better.promote_rate == 1.0


def test_boundaries_are_walds() -> None:
    d = SequentialDesign.from_criteria(DEFAULT)
    assert d.upper == pytest.approx(math.log(1 / DEFAULT.false_promotion_rate))
    assert d.lower == pytest.approx(math.log(DEFAULT.false_rollback_rate))
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


def test_look_decisions() -> None:
    d = SequentialDesign.from_criteria(DEFAULT)
    assert decide_look(d, False, 5.0, [])[0] == PROMOTE
    assert decide_look(d, False, -5.0, [])[0] == ROLLBACK
    assert decide_look(d, False, 0.0, [])[0] == HOLD
    assert decide_look(d, True, -5.0, [])[0] == PROMOTE, "accepted: the SPRT has stopped"
    decision, reason = decide_look(d, True, 5.0, ["p99 ratio 2.0 > 1.25"])
    assert decision == ROLLBACK and "p99" in reason


def test_guards() -> None:
    assert guard_failures(DEFAULT, 0, 200, 5.0, 6.0) == []
    assert "error rate" in guard_failures(DEFAULT, 3, 200, 5.0, 5.0)[0]
    assert "p99 ratio" in guard_failures(DEFAULT, 0, 200, 5.0, 6.5)[0]
    assert "unknown" in guard_failures(DEFAULT, 0, 200, math.nan, 5.0)[0]


def test_wilson_interval() -> None:
    lo, hi = wilson_interval(90, 100)
    assert lo == pytest.approx(0.8256, abs=1e-4) and hi == pytest.approx(0.9448, abs=1e-4)
    assert all(math.isnan(v) for v in wilson_interval(0, 0))


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
    no_mirror = WeightedRouter("a", "b", seed=3, mirror=False)
    no_mirror.set_weight(5)
    assert not any(r.mirror for r in no_mirror.routes_until(50))
