"""Local A/B and canary analysis over the real Triton server: promote, hold or roll back.

Two variants are served by one Triton server under two model names (``baseline``, e.g.
``<model>-a``, and ``candidate``, e.g. ``<model>-b``). A :class:`WeightedRouter` sends each
labelled request to the candidate with the current step's weight (``PromotionCriteria.steps``,
5% -> 25% -> 50% -> 100%); the outcome (correct or not, error or not) is scored against the label
on the client, and per-variant latency is read from Triton's own metrics endpoint. Thresholds and
error rates come only from :class:`policies.promotion.PromotionCriteria`.

The procedure (also written into every evidence file, see :func:`procedure_text`):

*Looks.* At each step the candidate serves at least ``min_requests_per_step`` requests, then the
cumulative evidence of the whole run is analysed ("a look"). Each look ends in one decision:
``rollback`` (stop; the candidate's weight goes to 0), ``hold`` (stay at this weight for another
look) or ``promote`` (go to the next step; after 100% the candidate is fully promoted). The run is
bounded in requests and seconds; exhausting either before a final decision ends it as ``hold``
(inconclusive: the candidate keeps its weight and a person decides).

*Hard guards*, evaluated at every look before the statistics (and every :data:`GUARD_EVERY`
requests within a look, once the candidate has served ``min_requests_per_step``): the
candidate's error rate (failed requests / requests, cumulative) must be <= ``max_error_rate``
and its p99 latency (Triton's ``nv_inference_request_summary_us`` 0.99 quantile) <=
``max_p99_latency_ratio`` x the baseline's; a failed guard rolls back at once. Below 50% the
router mirrors baseline traffic to the candidate so both run at the same request rate (see
:class:`WeightedRouter` for why); mirrored requests count for the guards, never for accuracy.

*Accuracy: Wald's sequential probability ratio test* on the per-request correctness of the two
variants (each request a Bernoulli outcome), about ``d = acc(candidate) - acc(baseline)``. With
margin ``m`` (``accuracy_margin``), ``H0: d = -m`` (worse by the margin: must not be promoted)
against ``H1: d = 0`` (as good: must not be rolled back). The likelihood of the cumulative counts
is a product of two binomials; the baseline's accuracy is a nuisance parameter, profiled out
(maximised under each hypothesis), so ``LLR = max_p log L(p, p) - max_p log L(p, p - m)``.
Boundaries: ``LLR >= log(1/alpha)`` accepts non-inferiority (the step is promoted),
``LLR <= log(beta)`` rolls back, in between holds. Wald's argument gives, for any stopping rule
including the bounded budget, ``P(promote | H0) <= alpha * P(promote | H1) <= alpha`` and
``P(rollback | H1) <= beta * P(rollback | H0) <= beta``, and the likelihood ratio grows with
``d``, so a candidate worse than the margin is promoted with probability at most ``alpha`` and one
at least as good as the baseline is rolled back with probability at most ``beta``, with
``alpha = false_promotion_rate`` and ``beta = false_rollback_rate``. Looks at discrete times only
make the test more conservative (the LLR overshoots the boundary). Profiling the nuisance
parameter is the approximation (Wald's bounds are exact for simple hypotheses);
``tests/test_abtest_stats.py`` checks the stated rates by simulation (observed: about 0.02-0.035
for both at accuracies 0.6-0.98). Once non-inferiority is accepted the accuracy test is over
(later steps check the guards only), so traffic only grows on evidence: every accuracy look
happens at the first weight. Traffic is assumed stationary over the run (outcomes of all steps
are pooled per variant).
"""

from __future__ import annotations

import json
import math
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from policies.promotion import DEFAULT, PromotionCriteria

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_OUT = ROOT / "build" / "abtest"
Z95 = 1.959963984540054
PROMOTE, HOLD, ROLLBACK = "promote", "hold", "rollback"


# --- the sequential test (pure, vectorised) --------------------------------------------------
@dataclass(frozen=True)
class SequentialDesign:
    """Wald's SPRT of ``H1: d = 0`` against ``H0: d = -margin`` (see the module docstring).

    Attributes:
        margin: Non-inferiority margin on the accuracy difference.
        alpha: Bound on P(promote) for a candidate worse by the margin or more.
        beta: Bound on P(rollback) for a candidate at least as good as the baseline.
    """

    margin: float
    alpha: float
    beta: float

    @classmethod
    def from_criteria(cls, criteria: PromotionCriteria = DEFAULT) -> SequentialDesign:
        """The design the promotion criteria define."""
        return cls(
            criteria.accuracy_margin, criteria.false_promotion_rate, criteria.false_rollback_rate
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


def wilson_interval(correct: float, n: float, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion (95% by default); (nan, nan) if n = 0."""
    if n <= 0:
        return (math.nan, math.nan)
    p = correct / n
    denom = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def guard_failures(
    criteria: PromotionCriteria,
    candidate_errors: int,
    candidate_requests: int,
    p99_baseline_ms: float,
    p99_candidate_ms: float,
) -> list[str]:
    """The hard guards that fail (empty when all pass).

    A p99 that is not known (NaN: no summary quantiles) fails the latency guard: no evidence is
    not evidence of no regression.
    """
    failures = []
    rate = candidate_errors / candidate_requests if candidate_requests else 0.0
    if rate > criteria.max_error_rate:
        failures.append(
            f"candidate error rate {rate:.2%} > max_error_rate {criteria.max_error_rate:.2%}"
        )
    if not (math.isfinite(p99_baseline_ms) and math.isfinite(p99_candidate_ms)):
        failures.append("p99 latency unknown (Triton summary quantiles missing)")
    else:
        ratio = p99_candidate_ms / max(p99_baseline_ms, 1e-6)
        if ratio > criteria.max_p99_latency_ratio:
            failures.append(
                f"p99 ratio {ratio:.2f} ({p99_candidate_ms:.2f} ms / {p99_baseline_ms:.2f} ms) "
                f"> max_p99_latency_ratio {criteria.max_p99_latency_ratio:.2f}"
            )
    return failures


def decide_look(
    design: SequentialDesign, accepted: bool, llr: float, guards: Sequence[str]
) -> tuple[str, str]:
    """One look's decision and its reason: guards first, then the SPRT (unless accepted)."""
    if guards:
        return ROLLBACK, "guard failed: " + "; ".join(guards)
    if accepted:
        return PROMOTE, "non-inferiority accepted earlier; guards pass"
    if llr <= design.lower:
        return ROLLBACK, (
            f"LLR {llr:.2f} <= log(beta) {design.lower:.2f}: candidate worse than the baseline "
            f"by the margin {design.margin:g} or more"
        )
    if llr >= design.upper:
        return PROMOTE, (
            f"LLR {llr:.2f} >= log(1/alpha) {design.upper:.2f}: non-inferior within the margin "
            f"{design.margin:g}; guards pass"
        )
    return HOLD, f"LLR {llr:.2f} inside ({design.lower:.2f}, {design.upper:.2f}): more data"


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


def procedure_text(criteria: PromotionCriteria = DEFAULT) -> str:
    """The decision procedure and its stated error rates, for the printout and the evidence."""
    d = SequentialDesign.from_criteria(criteria)
    steps = " -> ".join(f"{s}%" for s in criteria.steps)
    return (
        f"Canary steps {steps}; at each step >= {criteria.min_requests_per_step} candidate "
        "requests per look, cumulative evidence. Hard guards each look: candidate error rate <= "
        f"{criteria.max_error_rate:.2%}, candidate p99 <= {criteria.max_p99_latency_ratio:g} x "
        "baseline p99 (Triton nv_inference_request_summary_us, quantile 0.99; baseline traffic "
        "mirrored to the candidate below 50% so both run at the same rate); a failure rolls "
        "back. Accuracy (routed requests only): Wald SPRT on d = acc(candidate) - "
        "acc(baseline), H0: d = "
        f"-{d.margin:g} vs H1: d = 0 on per-request correctness (binomial likelihoods, baseline "
        "accuracy profiled out); promote when LLR >= log(1/alpha) = "
        f"{d.upper:.3f}, roll back when "
        f"LLR <= log(beta) = {d.lower:.3f}, else hold. Stated error rates: P(promote | candidate "
        f"worse by >= {d.margin:g}) <= alpha = {d.alpha:g}; P(rollback | candidate at least as "
        f"good) <= beta = {d.beta:g}. A budget exhausted before a decision ends as hold "
        "(inconclusive)."
    )


# --- routing ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Route:
    """Where one request goes; ``mirror`` copies are sent but never answer a user."""

    model: str
    mirror: bool = False


class WeightedRouter:
    """Splits requests between baseline and candidate by the candidate's weight (percent).

    Each request goes to the candidate independently with probability ``weight / 100`` (a
    seeded generator, so a run is reproducible), as a weighted route in a gateway does.

    With ``mirror`` on, below 50% a share of the baseline's requests is also copied to the
    candidate (responses discarded, as a mesh's traffic mirroring does) so that both variants
    receive the same request rate. Why: at 5% a model instance that runs every twentieth request
    runs cold (its stub sleeps, caches are evicted) and its tail latency is measurably worse than
    an identical busy one's (p99 ratio 1.2-1.6 measured here between two copies of one model),
    which would roll back a good candidate on the p99 guard. Mirrored requests count for the
    latency and error guards; accuracy uses routed requests only, keeping the two samples
    independent as the SPRT assumes.
    """

    def __init__(self, baseline: str, candidate: str, seed: int = 0, mirror: bool = True) -> None:
        self.baseline = baseline
        self.candidate = candidate
        self.mirror = mirror
        self.rng = np.random.default_rng(seed)
        self.weight = 0.0

    def set_weight(self, percent: float) -> None:
        """Candidate's share of traffic, 0-100."""
        if not 0 <= percent <= 100:
            raise ValueError(f"weight: {percent}; allowed 0-100")
        self.weight = percent

    @property
    def mirror_fraction(self) -> float:
        """Share of baseline requests copied to the candidate: ``(1 - 2w) / (1 - w)`` below 50%
        (candidate rate = baseline rate), else 0."""
        w = self.weight / 100.0
        return (1 - 2 * w) / (1 - w) if self.mirror and w < 0.5 else 0.0

    def route(self) -> str:
        """The model one request goes to."""
        return self.candidate if self.rng.random() * 100 < self.weight else self.baseline

    def routes_until(self, candidate_requests: int) -> list[Route]:
        """Routes of consecutive requests up to and including the ``candidate_requests``-th one
        routed to the candidate (one look's traffic), with mirror copies after their originals."""
        if self.weight <= 0:
            raise ValueError("the candidate has weight 0: it never reaches its quota")
        routes: list[Route] = []
        seen = 0
        share = self.mirror_fraction
        while seen < candidate_requests:
            model = self.route()
            routes.append(Route(model))
            if model == self.candidate:
                seen += 1
            elif share and self.rng.random() < share:
                routes.append(Route(self.candidate, mirror=True))
        return routes


# --- the live run ------------------------------------------------------------------------------
@dataclass
class Tally:
    """Cumulative client-side counts of one variant."""

    requests: int = 0
    correct: int = 0
    errors: int = 0

    @property
    def scored(self) -> int:
        """Requests that returned an output (accuracy's denominator)."""
        return self.requests - self.errors

    @property
    def accuracy(self) -> float:
        """Correct / scored; NaN before any."""
        return self.correct / self.scored if self.scored else math.nan


@dataclass
class Look:
    """Evidence of one look (one row of the printout, one entry of the JSON)."""

    step: int
    weight: float
    look: int
    requests: dict[str, int]
    cumulative_requests: dict[str, int]
    mirrored_requests: int
    """Cumulative copies sent to the candidate (latency and error guards only)."""
    mirrored_errors: int
    accuracy: dict[str, float]
    accuracy_ci95: dict[str, tuple[float, float]]
    errors: dict[str, int]
    error_rate: dict[str, float]
    triton_failures: dict[str, float]
    p99_ms: dict[str, float]
    """Triton summary quantile 0.99 (server side, sliding window) at the end of the look."""
    mean_server_ms: dict[str, float]
    """Mean server request duration over this look (counter deltas)."""
    client_p99_ms: dict[str, float]
    """Client-measured p99 over this look (includes the network stack and client)."""
    p99_ratio: float
    diff: float
    diff_ci95: tuple[float, float]
    llr: float
    lower: float
    upper: float
    guards: list[str]
    decision: str
    reason: str
    seconds: float


@dataclass
class AbTestResult:
    """Outcome of :func:`run_abtest`."""

    run: str
    baseline: str
    candidate: str
    decision: str
    """``promoted``, ``rolled_back`` or ``held``."""
    reason: str
    final_weight: float
    seconds: float
    total_requests: int
    looks: list[Look] = field(default_factory=list)
    criteria: dict[str, Any] = field(default_factory=dict)
    procedure: str = ""
    evidence_path: str = ""
    settings: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """JSON-ready dict (NaN becomes null)."""
        return _clean(asdict(self))


def _clean(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


def predictions(outputs: np.ndarray) -> np.ndarray:
    """Class predictions from model outputs: a probability column (``>= 0.5``) or scores per
    class (argmax)."""
    out = np.asarray(outputs)
    if out.ndim == 1 or out.shape[-1] == 1:
        return (out.reshape(-1) >= 0.5).astype(np.int64)
    return out.argmax(axis=-1).astype(np.int64)


GUARD_EVERY = 1000
"""Requests between interim guard checks inside a look: the local stand-in for the cluster
analysis' interval, so a broken or slow candidate is rolled back without finishing the look."""


def run_abtest(
    *,
    grpc_url: str,
    http_url: str,
    metrics_url: str,
    baseline: str,
    candidate: str,
    features: np.ndarray,
    labels: np.ndarray,
    criteria: PromotionCriteria = DEFAULT,
    concurrency: int = 4,
    protocol: str = "grpc",
    seed: int = 0,
    max_requests: int = 100_000,
    max_seconds: float = 180.0,
    mirror: bool = True,
    run_name: str | None = None,
    out_dir: str | Path = DEFAULT_OUT,
    on_look: Callable[[Look], None] | None = None,
) -> AbTestResult:
    """Canary ``candidate`` against ``baseline`` on a running Triton server (module docstring).

    Args:
        grpc_url: Triton gRPC endpoint (``host:port``).
        http_url: Triton HTTP endpoint (metadata; and traffic when ``protocol`` is ``http``).
        metrics_url: Triton Prometheus endpoint (must export summary quantiles).
        baseline: Model name serving the current production variant.
        candidate: Model name of the new variant.
        features: Labelled traffic: FP32 rows ``[n, dim]``.
        labels: Integer class labels ``[n]``.
        criteria: Thresholds, error rates and steps.
        concurrency: Client threads sending traffic.
        protocol: ``grpc`` or ``http`` for the traffic.
        seed: Seeds the router and the row sampling.
        max_requests: Bound on all requests of the run (mirror copies included).
        max_seconds: Bound on the run's wall time.
        mirror: Copy baseline traffic to the candidate below 50% so both run at the same rate
            for the latency comparison (see :class:`WeightedRouter`).
        run_name: Evidence file name (default: ``<candidate>-vs-<baseline>-<UTC time>``).
        out_dir: Folder of the evidence JSON.
        on_look: Called with each look's evidence as soon as it is decided (live printout).

    Returns:
        The decision with every look's evidence; also written to ``out_dir/<run>.json``.
    """
    from pipelines.serving import load as serve_load
    from pipelines.serving.metrics import scrape

    if baseline == candidate:
        raise ValueError("baseline and candidate must be different models")
    x = np.ascontiguousarray(features, dtype=np.float32)
    y = np.asarray(labels).astype(np.int64).reshape(-1)
    if x.ndim != 2 or len(x) != len(y) or len(x) == 0:
        raise ValueError("features must be [n, dim] and labels [n], n > 0")
    input_name, output_name = _io_names(http_url, baseline, candidate)
    url = grpc_url if protocol == "grpc" else http_url
    run = run_name or f"{candidate}-vs-{baseline}-{datetime.now(UTC):%Y%m%dT%H%M%SZ}"
    started = time.monotonic()
    deadline = started + max_seconds
    router = WeightedRouter(baseline, candidate, seed, mirror=mirror)
    rows_rng = np.random.default_rng(seed + 1)
    state = _RunState(SequentialDesign.from_criteria(criteria), criteria, baseline, candidate)
    decision, reason, final_weight = "held", "", 0.0

    with serve_load.InferClients(protocol, url, concurrency, input_name, output_name) as clients:
        # Warm the connections and both models' first executions; not counted in the analysis
        # (the counters' starting point is scraped after it).
        warm = [serve_load.Job(m, x[i : i + 1]) for i in range(8) for m in (baseline, candidate)]
        serve_load.run_jobs(clients, warm, deadline)
        state.before = scrape(metrics_url)
        for step, weight in enumerate(criteria.steps, start=1):
            router.set_weight(weight)
            final_weight = weight
            look_no = 0
            step_decision = HOLD
            while step_decision == HOLD:
                if state.total >= max_requests or time.monotonic() > deadline:
                    reason = (
                        f"budget exhausted ({state.total} requests, "
                        f"{time.monotonic() - started:.1f}s) before a decision: inconclusive"
                    )
                    break
                look_no += 1
                look_start = time.monotonic()
                routes = router.routes_until(criteria.min_requests_per_step)
                idx = rows_rng.integers(0, len(x), size=len(routes))
                for k in range(1, len(routes)):
                    if routes[k].mirror:  # a mirror copy carries its original's row
                        idx[k] = idx[k - 1]
                state.start_look()
                look = None
                for first in range(0, len(routes), GUARD_EVERY):
                    part = slice(first, first + GUARD_EVERY)
                    jobs = [
                        serve_load.Job(r.model, x[i : i + 1])
                        for r, i in zip(routes[part], idx[part], strict=True)
                    ]
                    outcomes = serve_load.run_jobs(clients, jobs, deadline)
                    state.record(routes[part], y[idx[part]], outcomes)
                    if not all(o.sent for o in outcomes):
                        break
                    last = first + GUARD_EVERY >= len(routes)
                    look = state.evaluate(
                        step, weight, look_no, scrape(metrics_url), look_start, interim=not last
                    )
                    if look is not None:
                        break
                if look is None:
                    reason = "time budget ran out during a look: inconclusive"
                    break
                state.looks.append(look)
                if on_look is not None:
                    on_look(look)
                step_decision, reason = look.decision, look.reason
                state.accepted |= step_decision == PROMOTE
            if step_decision == ROLLBACK:
                decision, final_weight = "rolled_back", 0.0
                break
            if step_decision == HOLD:
                decision = "held"
                break
        else:
            decision = "promoted"
            reason = f"every step passed; candidate at {criteria.steps[-1]}%. " + reason

    result = AbTestResult(
        run=run,
        baseline=baseline,
        candidate=candidate,
        decision=decision,
        reason=reason,
        final_weight=final_weight,
        seconds=time.monotonic() - started,
        total_requests=state.total,
        looks=state.looks,
        criteria=asdict(criteria),
        procedure=procedure_text(criteria),
        settings={
            "concurrency": concurrency,
            "protocol": protocol,
            "seed": seed,
            "max_requests": max_requests,
            "max_seconds": max_seconds,
            "mirror": mirror,
            "guard_every": GUARD_EVERY,
            "rows": len(x),
        },
    )
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{run}.json"
    result.evidence_path = str(path)
    path.write_text(json.dumps(result.to_json(), indent=2) + "\n")
    return result


class _RunState:
    """Cumulative tallies and metric scrapes of one run; turns them into :class:`Look` s."""

    def __init__(
        self,
        design: SequentialDesign,
        criteria: PromotionCriteria,
        baseline: str,
        candidate: str,
    ) -> None:
        self.design = design
        self.criteria = criteria
        self.baseline = baseline
        self.candidate = candidate
        self.names = (baseline, candidate)
        self.tallies = {baseline: Tally(), candidate: Tally()}
        self.mirrored = Tally()
        self.accepted = False
        self.looks: list[Look] = []
        self.before: dict[str, Any] = {}
        self.last_p99 = {baseline: math.nan, candidate: math.nan}
        self.look_counts: dict[str, int] = {}
        self.latencies: dict[str, list[float]] = {}

    @property
    def total(self) -> int:
        """Every request sent so far, mirror copies included."""
        return sum(t.requests for t in self.tallies.values()) + self.mirrored.requests

    def start_look(self) -> None:
        """Reset the per-look counters."""
        self.look_counts = {n: 0 for n in self.names}
        self.latencies = {n: [] for n in self.names}

    def record(self, routes: Sequence[Route], labels: np.ndarray, outcomes: list[Any]) -> None:
        """Score sent requests: correct against the label, or an error."""
        for route, label, outcome in zip(routes, labels, outcomes, strict=True):
            if not outcome.sent:
                continue
            tally = self.mirrored if route.mirror else self.tallies[route.model]
            tally.requests += 1
            if not outcome.ok or outcome.output is None:
                tally.errors += 1
            elif not route.mirror:
                tally.correct += int(predictions(outcome.output)[0] == label)
            if not route.mirror:
                self.look_counts[route.model] += 1
                self.latencies[route.model].append(outcome.latency_s)

    def _p99(self, after: dict[str, Any]) -> dict[str, float]:
        from pipelines.serving.metrics import ModelMetrics

        p99 = {}
        for name in self.names:
            q = after.get(name, ModelMetrics()).quantile_us(0.99) / 1000.0
            # At 100% the baseline gets no traffic; once its summary window is empty, its last
            # known p99 stands for it (the comparison is with what it did, not with nothing).
            p99[name] = q if math.isfinite(q) else self.last_p99[name]
        return p99

    def evaluate(
        self,
        step: int,
        weight: float,
        look_no: int,
        after: dict[str, Any],
        look_start: float,
        interim: bool,
    ) -> Look | None:
        """The look's evidence and decision; for an interim check, None unless a guard fails
        (interim checks need ``min_requests_per_step`` candidate requests, mirrors included)."""
        from pipelines.serving.load import percentiles_ms
        from pipelines.serving.metrics import ModelMetrics

        a, b, m = self.tallies[self.baseline], self.tallies[self.candidate], self.mirrored
        p99 = self._p99(after)
        guards = guard_failures(
            self.criteria,
            b.errors + m.errors,
            b.requests + m.requests,
            p99[self.baseline],
            p99[self.candidate],
        )
        if interim and (
            not guards or b.requests + m.requests < self.criteria.min_requests_per_step
        ):
            return None
        self.last_p99 = dict(p99)
        deltas = {
            n: after.get(n, ModelMetrics()).minus(self.before.get(n, ModelMetrics()))
            for n in self.names
        }
        self.before = after
        if a.scored and b.scored:
            llr = float(self.design.llr(a.correct, a.scored, b.correct, b.scored))
            diff = b.accuracy - a.accuracy
            se = math.sqrt(_smoothed_var(a.correct, a.scored) + _smoothed_var(b.correct, b.scored))
            diff_ci = (diff - Z95 * se, diff + Z95 * se)
        else:
            llr, diff, diff_ci = math.nan, math.nan, (math.nan, math.nan)
        if not math.isfinite(llr) and not self.accepted and not guards:
            guards = ["no scored requests on one variant"]
        decision, reason = decide_look(self.design, self.accepted, llr, guards)
        if interim:
            reason = "interim guard check: " + reason
        base = p99[self.baseline]
        return Look(
            step=step,
            weight=weight,
            look=look_no,
            requests=dict(self.look_counts),
            cumulative_requests={n: self.tallies[n].requests for n in self.names},
            mirrored_requests=m.requests,
            mirrored_errors=m.errors,
            accuracy={n: self.tallies[n].accuracy for n in self.names},
            accuracy_ci95={
                n: wilson_interval(self.tallies[n].correct, self.tallies[n].scored)
                for n in self.names
            },
            errors={n: self.tallies[n].errors for n in self.names},
            error_rate={
                n: (
                    self.tallies[n].errors / self.tallies[n].requests
                    if self.tallies[n].requests
                    else 0.0
                )
                for n in self.names
            },
            triton_failures={n: deltas[n].failure for n in self.names},
            p99_ms=p99,
            mean_server_ms={n: deltas[n].mean_request_us / 1000.0 for n in self.names},
            client_p99_ms={n: percentiles_ms(self.latencies[n])["p99"] for n in self.names},
            p99_ratio=p99[self.candidate] / base if base > 0 else math.nan,
            diff=diff,
            diff_ci95=diff_ci,
            llr=llr,
            lower=self.design.lower,
            upper=self.design.upper,
            guards=guards,
            decision=decision,
            reason=reason,
            seconds=time.monotonic() - look_start,
        )


def _io_names(http_url: str, *models: str) -> tuple[str, str]:
    """The one input and output name the variants share (from Triton's model metadata)."""
    import tritonclient.http as httpclient

    client = httpclient.InferenceServerClient(http_url)
    try:
        names = set()
        for model in models:
            meta = client.get_model_metadata(model)
            if len(meta["inputs"]) != 1 or len(meta["outputs"]) != 1:
                raise ValueError(f"{model}: A/B needs one input and one output tensor")
            names.add((meta["inputs"][0]["name"], meta["outputs"][0]["name"]))
    finally:
        client.close()
    if len(names) != 1:
        raise ValueError(f"variants disagree on tensor names: {sorted(names)}")
    return names.pop()


# --- demo data and variants ----------------------------------------------------------------
@dataclass(frozen=True)
class DemoData:
    """A seeded synthetic labelled data set (binary classification)."""

    train_x: np.ndarray
    train_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray


def make_dataset(
    rows: int = 6000, dim: int = 8, seed: int = 0, label_noise: float = 0.15
) -> DemoData:
    """Gaussian features, labels from a fixed linear rule plus logistic noise (seeded).

    ``label_noise`` scales the noise: 0.15 makes a well-trained model about 90% accurate.
    """
    rng = np.random.default_rng(seed)
    w = rng.normal(size=dim)
    w /= np.linalg.norm(w)
    x = rng.normal(size=(rows, dim)).astype(np.float32)
    noise = rng.logistic(scale=label_noise, size=rows)
    y = ((x @ w + noise) > 0).astype(np.int64)
    cut = rows // 2
    return DemoData(x[:cut], y[:cut], x[cut:], y[cut:])


def train_classifier(
    x: np.ndarray,
    y: np.ndarray,
    path: str | Path,
    *,
    seed: int = 0,
    shuffle_labels: bool = False,
    hidden: int = 16,
    epochs: int = 200,
) -> Path:
    """Train a small MLP (features -> probability ``[n, 1]``), save it as TorchScript.

    ``shuffle_labels`` trains on permuted labels: a deliberately useless variant (about 50%
    accurate) with the same architecture, hence the same latency.
    """
    import torch
    from torch import nn

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    targets = rng.permutation(y) if shuffle_labels else y
    model = nn.Sequential(
        nn.Linear(x.shape[1], hidden), nn.ReLU(), nn.Linear(hidden, 1), nn.Sigmoid()
    )
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    xt = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    yt = torch.from_numpy(targets.astype(np.float32)).reshape(-1, 1)
    loss_fn = nn.BCELoss()
    for _ in range(epochs):
        opt.zero_grad()
        loss = loss_fn(model(xt), yt)
        loss.backward()
        opt.step()
    model.eval()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.jit.script(model).save(str(out))
    return out


SCENARIOS = {
    "better": ("shuffled", "trained"),
    "worse-accuracy": ("trained", "shuffled"),
    "worse-latency": ("trained", "slow"),
}
"""Demo scenario -> (baseline, candidate) variant: a better candidate (the trained model against
the shuffled-label one), one worse in accuracy, one worse in latency (same model, sleeps)."""
INPUT_NAME, OUTPUT_NAME = "features__0", "probability__0"
VARIANTS = ("trained", "shuffled", "slow")


@dataclass(frozen=True)
class DemoRepository:
    """A repository with the demo variants (``<model>-<variant>``) and labelled traffic."""

    root: Path
    model: str
    data: DemoData

    def name(self, variant: str) -> str:
        """Triton model name of a variant."""
        return f"{self.model}-{variant}"

    def pair(self, scenario: str) -> tuple[str, str]:
        """(baseline, candidate) model names of a scenario."""
        if scenario not in SCENARIOS:
            raise ValueError(f"scenario: {scenario!r}; allowed {tuple(SCENARIOS)}")
        baseline, candidate = SCENARIOS[scenario]
        return self.name(baseline), self.name(candidate)


def build_demo_repository(
    out_dir: str | Path,
    *,
    model: str = "demo",
    seed: int = 0,
    delay_ms: float = 10.0,
    dynamic_batching: bool = True,
) -> DemoRepository:
    """Train the demo variants on a seeded data set and write them as Triton models.

    * ``<model>-trained``: a small MLP trained on the labels (about 90% accurate);
    * ``<model>-shuffled``: the same architecture trained on permuted labels (about 50%);
    * ``<model>-slow``: the trained model, sleeping ``delay_ms`` per execution.

    Each variant has the same I/O, batching and instance group as the pipeline's export.
    """
    from pipelines.serving.local_repository import write_local_repository

    root = Path(out_dir)
    data = make_dataset(seed=seed)
    repo = DemoRepository(root, model, data)
    with tempfile.TemporaryDirectory(prefix="sovml-demo-") as tmp:
        trained = train_classifier(data.train_x, data.train_y, Path(tmp) / "t.pt", seed=seed)
        shuffled = train_classifier(
            data.train_x, data.train_y, Path(tmp) / "s.pt", seed=seed, shuffle_labels=True
        )
        for variant, pt, delay in (
            ("trained", trained, 0.0),
            ("shuffled", shuffled, 0.0),
            ("slow", trained, delay_ms),
        ):
            write_local_repository(
                pt,
                root,
                repo.name(variant),
                1,
                INPUT_NAME,
                data.train_x.shape[1],
                OUTPUT_NAME,
                1,
                max_batch_size=64,
                dynamic_batching=dynamic_batching,
                instance_count=1,
                delay_ms=delay,
            )
    return repo
