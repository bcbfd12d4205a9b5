"""What a canary run records: per-variant tallies, each look's evidence, the run's result."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, TypeAlias, TypeVar

from pipelines.serving.report import json_ready

_T = TypeVar("_T")
PerModel: TypeAlias = dict[str, _T]
"""A figure per variant, keyed by Triton model name (baseline and candidate)."""


@dataclass
class Tally:
    """Cumulative client-side counts of one variant."""

    requests: int = 0
    """Requests sent and answered or failed."""
    correct: int = 0
    """Answers that matched the label."""
    errors: int = 0
    """Requests that failed or returned no output."""

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
    """Evidence of one look (one row of the printout, one entry of the JSON).

    Per-variant figures are keyed by model name; counts are cumulative over the run unless
    said otherwise.
    """

    step: int
    """Canary step (1-based index into ``PromotionCriteria.steps``)."""
    weight: float
    """The candidate's traffic share at this step (percent)."""
    look: int
    """Look number within the step (1-based)."""
    requests: PerModel[int]
    """Requests routed to each variant during this look."""
    cumulative_requests: PerModel[int]
    mirrored_requests: int
    """Cumulative copies sent to the candidate (latency and error guards only)."""
    mirrored_errors: int
    mirrors_dropped: int
    """Cumulative mirror copies dropped because the candidate's lane fell behind (a slow
    candidate; see :mod:`pipelines.serving.canary.lanes`)."""
    accuracy: PerModel[float]
    accuracy_ci95: PerModel[tuple[float, float]]
    """Wilson score intervals of the accuracies."""
    errors: PerModel[int]
    error_rate: PerModel[float]
    triton_failures: PerModel[float]
    """Failures Triton counted during this look (counter deltas)."""
    p99_ms: PerModel[float]
    """Triton's summary at level 0.99 at the end of the look (a point estimate, for reading)."""
    window_requests: PerModel[float]
    """Lower bound of the requests in each variant's summary window (the bounds' ``n``)."""
    p99_bounds_ms: dict[str, float]
    """The latency guard's bounds: ``candidate_ucb``, ``baseline_lcb`` (pass side) and
    ``candidate_lcb``, ``baseline_ucb`` (fail side); NaN when no level is valid yet."""
    mean_server_ms: PerModel[float]
    """Mean server request duration over this look (counter deltas)."""
    client_p99_ms: PerModel[float]
    """Client-measured p99 over this look (includes the network stack and client)."""
    p99_ratio: float
    """Candidate p99 over baseline p99 (point estimates; never decides)."""
    diff: float
    """Accuracy difference, candidate minus baseline."""
    diff_ci95: tuple[float, float]
    llr: float
    """The accuracy SPRT's log-likelihood ratio (NaN without scored requests on both variants)."""
    lower: float
    """Accuracy rollback boundary ``log(beta)``."""
    upper: float
    """Accuracy promotion boundary ``log(1/alpha)``."""
    error_llr: float
    """The error SPRT's log-likelihood ratio (candidate failures, mirror copies included)."""
    verdicts: dict[str, str]
    """Each guard's verdict at this look (``passed`` when it had passed earlier in the step)."""
    guards: list[str]
    """Why the guards that failed did."""
    decision: str
    """``promote``, ``continue``, ``hold`` or ``rollback``."""
    reason: str
    seconds: float
    """Wall time of the look."""


@dataclass
class AbTestResult:
    """Outcome of :func:`pipelines.serving.canary.run.run_abtest`."""

    run: str
    """The run's name (the evidence file's stem)."""
    baseline: str
    candidate: str
    decision: str
    """``promoted``, ``rolled_back`` or ``held``."""
    reason: str
    reason_families: list[str]
    """What decided: the guards that failed (``accuracy``, ``latency``, ``errors``), ``budget``
    for a hold, empty for a promotion. The demo checks its expected outcome against these."""
    final_weight: float
    """The candidate's traffic share at the end (percent; 0 after a rollback)."""
    seconds: float
    total_requests: int
    """Every request sent, mirror copies included."""
    looks: list[Look] = field(default_factory=list)
    criteria: dict[str, Any] = field(default_factory=dict)
    """The promotion criteria the run decided with."""
    procedure: str = ""
    """The decision procedure in words, with its stated error rates."""
    evidence_path: str = ""
    settings: dict[str, Any] = field(default_factory=dict)
    """The run's settings (concurrency, protocol, seed, bounds, ...)."""

    def to_json(self) -> dict[str, Any]:
        """JSON-ready dict (NaN becomes null)."""
        return json_ready(asdict(self))
