"""What the canary decides at each look: promote, hold or roll back, guards first.

Two variants are served by one Triton server under two model names (``baseline``, e.g.
``<model>-a``, and ``candidate``, e.g. ``<model>-b``). A weighted router
(:mod:`pipelines.serving.canary.router`) sends each labelled request to the candidate with the
current step's weight (``PromotionCriteria.steps``, 5% -> 25% -> 50% -> 100%); the outcome
(correct or not, error or not) is scored against the label on the client, and per-variant latency
is read from Triton's own metrics endpoint. Thresholds and error rates come only from
:class:`policies.promotion.PromotionCriteria`.

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
:class:`~pipelines.serving.canary.router.WeightedRouter` for why); mirrored requests count for
the guards, never for accuracy.

*Accuracy*: Wald's sequential probability ratio test on the per-request correctness of the two
variants (:mod:`pipelines.serving.canary.statistics`, which states its error rates). Once
non-inferiority is accepted the accuracy test is over (later steps check the guards only), so
traffic only grows on evidence: every accuracy look happens at the first weight. Traffic is
assumed stationary over the run (outcomes of all steps are pooled per variant).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from pipelines.serving.canary.statistics import SequentialDesign
from policies.promotion import DEFAULT, PromotionCriteria

PROMOTE, HOLD, ROLLBACK = "promote", "hold", "rollback"
GUARD_EVERY = 1000
"""Requests between interim guard checks inside a look: the local stand-in for the cluster
analysis' interval, so a broken or slow candidate is rolled back without finishing the look."""


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


def interim_rollback(
    guards: Sequence[str], candidate_requests: int, criteria: PromotionCriteria
) -> bool:
    """Whether an interim check (every :data:`GUARD_EVERY` requests inside a look) ends the look:
    only on a failed guard, once the candidate has served ``min_requests_per_step`` requests
    (mirror copies included)."""
    return bool(guards) and candidate_requests >= criteria.min_requests_per_step


def look_guards(guards: list[str], llr: float, accepted: bool) -> list[str]:
    """The failed guards of a full look: missing accuracy evidence (no LLR: a variant without
    scored requests) fails one too, until non-inferiority has been accepted."""
    if not math.isfinite(llr) and not accepted and not guards:
        return ["no scored requests on one variant"]
    return guards


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
