"""The canary run's state: client tallies, Triton scrapes and the step machine, made into looks."""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from pipelines.serving.canary.decisions import LookDecision, Procedure
from pipelines.serving.canary.evidence import Look, Tally
from pipelines.serving.canary.lanes import DROPPED
from pipelines.serving.canary.router import Route
from pipelines.serving.canary.statistics import SequentialDesign, difference_ci95, wilson_interval
from pipelines.serving.load import Outcome, percentiles_ms
from pipelines.serving.metrics import ModelMetrics
from policies.promotion import (
    SUMMARY_WINDOW_S,
    LatencyJudgement,
    LatencyWindow,
    PromotionCriteria,
    accuracy_verdict,
    error_llr,
    error_verdict,
    latency_verdict,
)

WINDOW_MARGIN_S = 1.0
"""Seconds shaved off the summary's 48 s minimum window when counting the requests certainly in
it (scrape times are taken on the client, before the request is sent)."""


def predictions(outputs: np.ndarray) -> np.ndarray:
    """Class predictions from model outputs: a probability column (``>= 0.5``) or scores per
    class (argmax)."""
    out = np.asarray(outputs)
    if out.ndim == 1 or out.shape[-1] == 1:
        return (out.reshape(-1) >= 0.5).astype(np.int64)
    return out.argmax(axis=-1).astype(np.int64)


@dataclass(frozen=True)
class Scrape:
    """One read of Triton's ``/metrics``: when it was sent and received, and what it said."""

    sent: float
    received: float
    metrics: dict[str, ModelMetrics]


@dataclass(frozen=True)
class _Accuracy:
    """The accuracy comparison at a look (NaN until both variants have scored requests)."""

    llr: float = math.nan
    diff: float = math.nan
    diff_ci95: tuple[float, float] = (math.nan, math.nan)


class RunState:
    """Cumulative tallies and metric scrapes of one run; turns them into :class:`Look` s.

    Args:
        design: The accuracy SPRT.
        criteria: Thresholds, budgets and the schedule of looks.
        baseline: Baseline model name.
        candidate: Candidate model name.
    """

    def __init__(
        self,
        design: SequentialDesign,
        criteria: PromotionCriteria,
        baseline: str,
        candidate: str,
    ) -> None:
        self.design = design
        self.criteria = criteria
        self.procedure = Procedure(criteria)
        self.baseline = baseline
        self.candidate = candidate
        self.names = (baseline, candidate)
        self.tallies = {baseline: Tally(), candidate: Tally()}
        self.mirrored = Tally()
        self.mirrors_dropped = 0
        self.looks: list[Look] = []
        self.scrapes: list[Scrape] = []
        self.look_start_metrics: dict[str, ModelMetrics] = {}
        self.look_counts: dict[str, int] = {}
        self.latencies: dict[str, list[float]] = {}

    @property
    def total(self) -> int:
        """Every request sent so far, mirror copies included."""
        return sum(t.requests for t in self.tallies.values()) + self.mirrored.requests

    def add_scrape(self, sent: float, received: float, metrics: dict[str, ModelMetrics]) -> None:
        """Keep a scrape (the window's lower bound needs the ones of the last 48 s)."""
        if not self.scrapes:
            self.look_start_metrics = metrics
        self.scrapes.append(Scrape(sent, received, metrics))
        horizon = received - 2 * SUMMARY_WINDOW_S
        self.scrapes = [s for s in self.scrapes[:-1] if s.sent >= horizon] + self.scrapes[-1:]

    def start_look(self) -> None:
        """Reset the per-look counters."""
        self.look_counts = {n: 0 for n in self.names}
        self.latencies = {n: [] for n in self.names}

    def record(self, routes: Sequence[Route], labels: np.ndarray, outcomes: list[Outcome]) -> None:
        """Score sent requests: correct against the label, or an error."""
        for route, label, outcome in zip(routes, labels, outcomes, strict=True):
            if not outcome.sent:
                self.mirrors_dropped += outcome.error == DROPPED
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

    # -- the guards' inputs -----------------------------------------------------------------
    def window(self, name: str) -> LatencyWindow:
        """A variant's summary at the last scrape, with the requests certainly in its window:
        the ``_count`` increase since the oldest scrape sent within the last 47 s."""
        last = self.scrapes[-1]
        now = last.metrics.get(name, ModelMetrics())
        since = last.received - (SUMMARY_WINDOW_S - WINDOW_MARGIN_S)
        oldest = next(s for s in self.scrapes if s.sent >= since or s is last)
        start = oldest.metrics.get(name, ModelMetrics()).summary_count
        return LatencyWindow(dict(now.quantiles_us), max(0.0, now.summary_count - start))

    def error_counts(self) -> tuple[int, int]:
        """(failures, successes) of the candidate, mirror copies included (client-visible)."""
        cand = self.tallies[self.candidate]
        failures = cand.errors + self.mirrored.errors
        return failures, cand.requests + self.mirrored.requests - failures

    def _accuracy(self) -> _Accuracy:
        a, b = self.tallies[self.baseline], self.tallies[self.candidate]
        if not (a.scored and b.scored):
            return _Accuracy()
        llr = float(self.design.llr(a.correct, a.scored, b.correct, b.scored))
        return _Accuracy(llr, *difference_ci95(a.correct, a.scored, b.correct, b.scored))

    # -- looks ------------------------------------------------------------------------------
    def interim(self, step: int, weight: float, look_no: int, look_start: float) -> Look | None:
        """A between-looks check: a rollback look when a pending guard FAILs, else None."""
        verdicts, details, latency, accuracy = self._verdicts()
        decision = self.procedure.interim(verdicts, details)
        if decision is None:
            return None
        decision = LookDecision(
            decision.decision, "interim check: " + decision.reason, decision.families
        )
        shown = self._shown(verdicts)
        return self._look(step, weight, look_no, look_start, decision, shown, latency, accuracy)

    def _verdicts(self) -> tuple[dict[str, str], dict[str, str], LatencyJudgement, _Accuracy]:
        """Every guard's verdict and its reason in words, from the state as it is now."""
        c = self.criteria
        accuracy = self._accuracy()
        e_llr = error_llr(c, *self.error_counts())
        latency = latency_verdict(c, self.window(self.baseline), self.window(self.candidate))
        verdicts = {
            "accuracy": accuracy_verdict(c, accuracy.llr),
            "latency": latency.verdict,
            "errors": error_verdict(c, e_llr),
        }
        details = {
            "accuracy": self._accuracy_detail(accuracy.llr),
            "latency": _latency_detail(c, latency),
            "errors": self._error_detail(e_llr),
        }
        return verdicts, details, latency, accuracy

    def _shown(self, verdicts: dict[str, str]) -> dict[str, str]:
        """Verdicts as the evidence shows them: ``passed`` for a guard done earlier."""
        shown = {g: verdicts[g] if g in self.procedure.pending else "passed" for g in verdicts}
        if self.procedure.accepted:
            shown["accuracy"] = "passed"
        return shown

    def evaluate(self, step: int, weight: float, look_no: int, look_start: float) -> Look:
        """The look's verdicts, the step machine's decision, and the evidence."""
        verdicts, details, latency, accuracy = self._verdicts()
        shown = self._shown(verdicts)
        decision = self.procedure.record(verdicts, details)
        return self._look(step, weight, look_no, look_start, decision, shown, latency, accuracy)

    def _accuracy_detail(self, llr: float) -> str:
        a, b = self.tallies[self.baseline], self.tallies[self.candidate]
        return (
            f"LLR {llr:.2f} (fail <= {self.design.lower:.2f}, pass >= {self.design.upper:.2f}); "
            f"accuracy B {b.accuracy:.3f} vs A {a.accuracy:.3f}"
        )

    def _error_detail(self, llr: float) -> str:
        failures, successes = self.error_counts()
        e_pass, e_fail = self.criteria.error_bounds
        return (
            f"LLR {llr:.2f} ({failures} failed of {failures + successes} candidate requests; "
            f"pass <= {e_pass:.2f}, fail >= {e_fail:.2f})"
        )

    def _look(
        self,
        step: int,
        weight: float,
        look_no: int,
        look_start: float,
        decision: LookDecision,
        verdicts: dict[str, str],
        latency: LatencyJudgement | None,
        accuracy: _Accuracy | None = None,
    ) -> Look:
        """The look's figures as :class:`Look`; the last scrape starts the next look."""
        accuracy = accuracy or self._accuracy()
        names, tallies = self.names, self.tallies
        after = self.scrapes[-1].metrics
        deltas = {
            n: after.get(n, ModelMetrics()).minus(self.look_start_metrics.get(n, ModelMetrics()))
            for n in names
        }
        self.look_start_metrics = after
        p99 = {n: after.get(n, ModelMetrics()).quantile_us(0.99) / 1000.0 for n in names}
        base = p99[self.baseline]
        look = Look(
            step=step,
            weight=weight,
            look=look_no,
            requests=dict(self.look_counts),
            cumulative_requests={n: tallies[n].requests for n in names},
            mirrored_requests=self.mirrored.requests,
            mirrored_errors=self.mirrored.errors,
            mirrors_dropped=self.mirrors_dropped,
            accuracy={n: tallies[n].accuracy for n in names},
            accuracy_ci95={
                n: wilson_interval(tallies[n].correct, tallies[n].scored) for n in names
            },
            errors={n: tallies[n].errors for n in names},
            error_rate={
                n: tallies[n].errors / tallies[n].requests if tallies[n].requests else 0.0
                for n in names
            },
            triton_failures={n: deltas[n].failure for n in names},
            p99_ms=p99,
            window_requests={n: self.window(n).requests for n in names},
            p99_bounds_ms=_bounds_ms(latency),
            mean_server_ms={n: deltas[n].mean_request_us / 1000.0 for n in names},
            client_p99_ms={n: percentiles_ms(self.latencies[n])["p99"] for n in names},
            p99_ratio=p99[self.candidate] / base if base > 0 else math.nan,
            diff=accuracy.diff,
            diff_ci95=accuracy.diff_ci95,
            llr=accuracy.llr,
            lower=self.design.lower,
            upper=self.design.upper,
            error_llr=error_llr(self.criteria, *self.error_counts()),
            verdicts=verdicts,
            guards=[decision.reason] if decision.decision == "rollback" else [],
            decision=decision.decision,
            reason=decision.reason,
            seconds=time.monotonic() - look_start,
        )
        self.looks.append(look)
        return look


def _bounds_ms(latency: LatencyJudgement | None) -> dict[str, float]:
    names = ("candidate_ucb", "baseline_lcb", "candidate_lcb", "baseline_ucb")
    if latency is None:
        return {n: math.nan for n in names}
    return {n: getattr(latency, n) / 1000.0 for n in names}


def _latency_detail(c: PromotionCriteria, j: LatencyJudgement) -> str:
    """The latency verdict's comparison in words (milliseconds); a bound the window is still too
    small to give reads "none yet", never "nan"."""

    def g(x: float) -> float:
        return max(c.max_p99_latency_ratio * x, x + c.latency_floor_ms * 1000.0) / 1000.0

    def shown(value_ms: float) -> str:
        return "none yet" if math.isnan(value_ms) else f"{value_ms:.2f} ms"

    return (
        f"p99 B UCB {shown(j.candidate_ucb / 1000.0)} vs g(A LCB) {shown(g(j.baseline_lcb))} "
        f"(pass below); B LCB {shown(j.candidate_lcb / 1000.0)} vs g(A UCB) "
        f"{shown(g(j.baseline_ucb))} (fail above)"
    )
