"""The canary run's state: cumulative tallies and metric scrapes, turned into looks' evidence."""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from pipelines.serving.canary.decisions import (
    decide_look,
    guard_failures,
    interim_rollback,
    look_guards,
)
from pipelines.serving.canary.evidence import Look, PerModel, Tally
from pipelines.serving.canary.router import Route
from pipelines.serving.canary.statistics import SequentialDesign, difference_ci95, wilson_interval
from pipelines.serving.load import Outcome, percentiles_ms
from pipelines.serving.metrics import ModelMetrics
from policies.promotion import PromotionCriteria


def predictions(outputs: np.ndarray) -> np.ndarray:
    """Class predictions from model outputs: a probability column (``>= 0.5``) or scores per
    class (argmax)."""
    out = np.asarray(outputs)
    if out.ndim == 1 or out.shape[-1] == 1:
        return (out.reshape(-1) >= 0.5).astype(np.int64)
    return out.argmax(axis=-1).astype(np.int64)


@dataclass(frozen=True)
class _Accuracy:
    """The accuracy comparison at a look (NaN until both variants have scored requests)."""

    llr: float = math.nan
    diff: float = math.nan
    diff_ci95: tuple[float, float] = (math.nan, math.nan)


@dataclass(frozen=True)
class _Latency:
    """Triton's latency figures at a look: summary p99 and this look's counter deltas."""

    p99_ms: PerModel[float]
    deltas: PerModel[ModelMetrics]


class RunState:
    """Cumulative tallies and metric scrapes of one run; turns them into :class:`Look` s.

    Args:
        design: The accuracy SPRT.
        criteria: Guard thresholds and the per-step request quota.
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
        self.baseline = baseline
        self.candidate = candidate
        self.names = (baseline, candidate)
        self.tallies = {baseline: Tally(), candidate: Tally()}
        self.mirrored = Tally()
        self.accepted = False
        self.looks: list[Look] = []
        self.before: dict[str, ModelMetrics] = {}
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

    def record(self, routes: Sequence[Route], labels: np.ndarray, outcomes: list[Outcome]) -> None:
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

    def evaluate(
        self,
        step: int,
        weight: float,
        look_no: int,
        after: dict[str, ModelMetrics],
        look_start: float,
        interim: bool,
    ) -> Look | None:
        """The look's evidence and decision; for an interim check, None unless a guard fails
        (interim checks need ``min_requests_per_step`` candidate requests, mirrors included)."""
        p99 = self._p99(after)
        guards = self._guards(p99)
        if interim and not interim_rollback(guards, self._candidate_requests(), self.criteria):
            return None
        self.last_p99 = dict(p99)
        latency = _Latency(p99, self._deltas(after))
        accuracy = self._accuracy()
        guards = look_guards(guards, accuracy.llr, self.accepted)
        decision, reason = decide_look(self.design, self.accepted, accuracy.llr, guards)
        if interim:
            reason = "interim guard check: " + reason
        look = self._look(step, weight, look_no, latency, accuracy)
        return Look(
            **look,
            guards=guards,
            decision=decision,
            reason=reason,
            seconds=time.monotonic() - look_start,
        )

    def _candidate_requests(self) -> int:
        """Requests the candidate served, mirror copies included (what the guards judge)."""
        return self.tallies[self.candidate].requests + self.mirrored.requests

    def _p99(self, after: dict[str, ModelMetrics]) -> dict[str, float]:
        p99 = {}
        for name in self.names:
            q = after.get(name, ModelMetrics()).quantile_us(0.99) / 1000.0
            # At 100% the baseline gets no traffic; once its summary window is empty, its last
            # known p99 stands for it (the comparison is with what it did, not with nothing).
            p99[name] = q if math.isfinite(q) else self.last_p99[name]
        return p99

    def _guards(self, p99: dict[str, float]) -> list[str]:
        """The hard guards on the candidate's errors (mirrors included) and the p99 ratio."""
        return guard_failures(
            self.criteria,
            self.tallies[self.candidate].errors + self.mirrored.errors,
            self._candidate_requests(),
            p99[self.baseline],
            p99[self.candidate],
        )

    def _deltas(self, after: dict[str, ModelMetrics]) -> dict[str, ModelMetrics]:
        """Triton's counters over this look; ``after`` becomes the next look's start."""
        deltas = {
            n: after.get(n, ModelMetrics()).minus(self.before.get(n, ModelMetrics()))
            for n in self.names
        }
        self.before = after
        return deltas

    def _accuracy(self) -> _Accuracy:
        a, b = self.tallies[self.baseline], self.tallies[self.candidate]
        if not (a.scored and b.scored):
            return _Accuracy()
        llr = float(self.design.llr(a.correct, a.scored, b.correct, b.scored))
        return _Accuracy(llr, *difference_ci95(a.correct, a.scored, b.correct, b.scored))

    def _look(
        self, step: int, weight: float, look_no: int, latency: _Latency, accuracy: _Accuracy
    ) -> dict[str, Any]:
        """The look's figures (everything but the decision) as :class:`Look` fields."""
        names, tallies, p99 = self.names, self.tallies, latency.p99_ms
        base = p99[self.baseline]
        return {
            "step": step,
            "weight": weight,
            "look": look_no,
            "requests": dict(self.look_counts),
            "cumulative_requests": {n: tallies[n].requests for n in names},
            "mirrored_requests": self.mirrored.requests,
            "mirrored_errors": self.mirrored.errors,
            "accuracy": {n: tallies[n].accuracy for n in names},
            "accuracy_ci95": {
                n: wilson_interval(tallies[n].correct, tallies[n].scored) for n in names
            },
            "errors": {n: tallies[n].errors for n in names},
            "error_rate": {
                n: tallies[n].errors / tallies[n].requests if tallies[n].requests else 0.0
                for n in names
            },
            "triton_failures": {n: latency.deltas[n].failure for n in names},
            "p99_ms": p99,
            "mean_server_ms": {n: latency.deltas[n].mean_request_us / 1000.0 for n in names},
            "client_p99_ms": {n: percentiles_ms(self.latencies[n])["p99"] for n in names},
            "p99_ratio": p99[self.candidate] / base if base > 0 else math.nan,
            "diff": accuracy.diff,
            "diff_ci95": accuracy.diff_ci95,
            "llr": accuracy.llr,
            "lower": self.design.lower,
            "upper": self.design.upper,
        }
