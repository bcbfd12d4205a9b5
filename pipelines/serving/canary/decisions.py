"""What the canary decides at each look: the step machine shared by the live run and the simulation.

Two variants are served by one Triton server under two model names (baseline and candidate). A
weighted router (:mod:`pipelines.serving.canary.router`) sends each labelled request to the
candidate with the current step's weight; correctness and client-visible errors are scored on the
client, latency comes from Triton's own request summary. Thresholds, budgets and the verdict
functions are :mod:`policies.promotion`'s, the ones the cluster's AnalysisTemplate renders.

:class:`Procedure` is the Argo Rollouts analysis, locally: at each analysed step (every weight
but the last) up to ``looks_per_step`` looks; at each look every guard not yet passed in this step
gets a verdict (PASS, FAIL, UNDECIDED). A FAIL rolls back at once. A guard that passes is done for
the step (an Argo metric with ``consecutiveSuccessLimit: 1`` stops at its first success). Once
all three have passed the step is promoted; when its looks run out first it is held
(inconclusive: a person decides, as a paused Rollout waits for one). Accuracy non-inferiority,
once accepted, stays accepted (Wald's test stops at its boundary). Between looks the run checks
for FAILs only (:meth:`Procedure.interim`, up to ``interim_checks`` per look): the SPRTs' bounds
hold at every look, so these cost them nothing, and the latency guard's fail side spends its
budget over them (``latency_fail_alpha``); a broken or slow candidate is rolled back without
finishing the look.

Traffic is assumed stationary over the run (outcomes of all steps are pooled per variant;
Triton's window mixes the last 48-60 s). Below 50% the router mirrors baseline traffic to the
candidate so both run at the same request rate; mirror copies count for latency and errors, never
for accuracy.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from pipelines.serving.canary.statistics import SequentialDesign
from policies.promotion import (
    BOUND_LEVELS,
    DEFAULT,
    FAIL,
    GUARDS,
    PASS,
    UNDECIDED,
    PromotionCriteria,
)

PROMOTE, CONTINUE, HOLD, ROLLBACK = "promote", "continue", "hold", "rollback"
"""A look's decision: next step (or full promotion), another look, stop held, stop rolled back."""
PROMOTED, ROLLED_BACK, HELD = "promoted", "rolled_back", "held"
"""How a run ends."""
BUDGET = "budget"
"""The reason family of a run held because its looks, requests or time ran out."""
GUARD_EVERY = 1000
"""Requests between interim error checks inside a look (and between metric scrapes)."""


@dataclass(frozen=True)
class LookDecision:
    """One look's decision, why, and which guards it was about."""

    decision: str
    reason: str
    families: tuple[str, ...] = ()
    """Guards that failed (a rollback), or ``budget`` (a hold); empty otherwise."""


@dataclass
class Procedure:
    """The step machine of one canary run (see the module docstring)."""

    criteria: PromotionCriteria = DEFAULT
    step: int = 0
    """Index into ``criteria.analysed_steps`` of the step being analysed."""
    look: int = 0
    """Looks taken at this step."""
    passed: set[str] = field(default_factory=set)
    """Guards that passed at this step."""
    accepted: bool = False
    """Accuracy non-inferiority accepted (sticky over the run)."""
    outcome: str | None = None
    """``promoted``, ``rolled_back`` or ``held`` once the run is over."""
    families: tuple[str, ...] = ()
    """The final decision's reason families."""

    def __post_init__(self) -> None:
        if not self.criteria.analysed_steps:
            self.outcome = PROMOTED  # a single 100 % step: nothing to analyse

    @property
    def weight(self) -> float:
        """The candidate's traffic share (percent) at the step being analysed."""
        return float(self.criteria.analysed_steps[self.step])

    @property
    def pending(self) -> tuple[str, ...]:
        """Guards still to pass at this step."""
        return tuple(g for g in GUARDS if g not in self.passed)

    def record(self, verdicts: Mapping[str, str], details: Mapping[str, str]) -> LookDecision:
        """Apply one look's verdicts (for the pending guards; others are ignored)."""
        if self.outcome is not None:
            raise RuntimeError(f"the run is over ({self.outcome})")
        self.look += 1
        now = {g: PASS if g == "accuracy" and self.accepted else verdicts[g] for g in self.pending}
        failed = tuple(g for g in GUARDS if now.get(g) == FAIL)
        if failed:
            return self._end(ROLLED_BACK, ROLLBACK, _why(failed, details), failed)
        for guard, verdict in now.items():
            if verdict == PASS:
                self.passed.add(guard)
                self.accepted |= guard == "accuracy"
        if not self.pending:
            reason = f"step {self.weight:g}% passed: every guard passed"
            self.step, self.look, self.passed = self.step + 1, 0, set()
            if self.step == len(self.criteria.analysed_steps):
                self.outcome = PROMOTED
                reason = f"every analysed step passed; candidate at {self.criteria.steps[-1]}%"
            return LookDecision(PROMOTE, reason)
        waiting = ", ".join(f"{g} {details.get(g, now.get(g, UNDECIDED))}" for g in self.pending)
        if self.look >= self.criteria.looks_per_step:
            reason = f"{self.look} looks at {self.weight:g}% without a decision ({waiting})"
            return self._end(HELD, HOLD, reason + ": inconclusive", (BUDGET,))
        return LookDecision(CONTINUE, f"more data: {waiting}")

    def interim(
        self, verdicts: Mapping[str, str], details: Mapping[str, str]
    ) -> LookDecision | None:
        """A between-looks check: a rollback when a pending guard FAILs, else None (a PASS
        between looks counts for nothing: promotion is judged at looks only)."""
        failed = tuple(g for g in self.pending if verdicts.get(g) == FAIL)
        if self.outcome is not None or not failed:
            return None
        return self._end(ROLLED_BACK, ROLLBACK, _why(failed, details), failed)

    def exhausted(self, reason: str) -> LookDecision:
        """The run's request or time budget ran out: held."""
        return self._end(HELD, HOLD, reason + ": inconclusive", (BUDGET,))

    def _end(
        self, outcome: str, decision: str, reason: str, families: tuple[str, ...]
    ) -> LookDecision:
        self.outcome, self.families = outcome, families
        return LookDecision(decision, reason, families)


def _why(failed: tuple[str, ...], details: Mapping[str, str]) -> str:
    return "; ".join(f"{g} guard failed: {details.get(g, FAIL)}" for g in failed)


def procedure_text(criteria: PromotionCriteria = DEFAULT) -> str:
    """The decision procedure and its stated error rates, for the printout and the evidence."""
    c = criteria
    d = SequentialDesign.from_criteria(c)
    e_pass, e_fail = c.error_bounds
    steps = " -> ".join(f"{s}%" for s in c.steps)
    levels = f"{BOUND_LEVELS[0]:g}..{BOUND_LEVELS[-1]:g}"
    return (
        f"Canary steps {steps}; every step but the last analysed in up to {c.looks_per_step} "
        f"looks (>= {c.min_requests_per_step} routed candidate requests each), with up to "
        f"{c.interim_checks} FAIL-only checks between looks (every {GUARD_EVERY} requests); a "
        "FAIL rolls back, all three guards passed promotes the step, looks run out holds. "
        f"Accuracy (routed requests): Wald SPRT of H0 d = -{d.margin:g} vs H1 d = 0, pass at LLR "
        f">= {d.upper:.3f}, fail at LLR <= {d.lower:.3f}. Errors (client-visible, mirrors "
        f"included): Wald SPRT of p = {c.acceptable_error_rate:g} vs p = {c.max_error_rate:g}, "
        f"pass at LLR <= {e_pass:.3f}, fail at LLR >= {e_fail:.3f}. Latency: order-statistic "
        "bounds of each variant's p99 from Triton's request summary (levels "
        f"{levels}, 48-60 s window), alpha {c.latency_pass_alpha:.2g} per bound and look (pass) "
        f"and {c.latency_fail_alpha:.2g} per bound and check (fail); pass when UCB(B) < "
        f"g(LCB(A)), fail when LCB(B) > g(UCB(A)), g(x) = max({c.max_p99_latency_ratio:g} x, x "
        f"+ {c.latency_floor_ms:g} ms). Stated rates over all looks: P(roll back | equal) <= "
        f"{c.false_rollback_rate:g} (accuracy {c.accuracy_rollback_rate:g}, latency "
        f"{c.latency_rollback_rate:g}, errors {c.error_rollback_rate:g}); P(promote | accuracy "
        f"worse by >= {c.accuracy_margin:g}), P(promote | p99 >= {c.max_p99_latency_ratio:g} x "
        f"and +{c.latency_floor_ms:g} ms), P(promote | error rate >= {c.max_error_rate:g}) each "
        f"<= {c.false_promotion_rate:g}."
    )
