"""One definition of when a canary or B variant is promoted, held or rolled back.

The same criteria drive two deciders: the cluster's progressive-delivery analysis (Argo Rollouts
``AnalysisTemplate`` queries against Prometheus, rendered by ``components/serving.py``) and the
local ``sovml abtest`` decision over the real Triton server's own metrics. Thresholds live here
only; the PromQL below reads the metrics Triton exports and the online-accuracy gauge the
monitoring job pushes from labelled outcomes.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PromotionCriteria:
    """Guard rails for moving traffic to a new variant."""

    max_error_rate: float = 0.01
    """Highest tolerated fraction of failed inferences on the candidate."""
    max_p99_latency_ratio: float = 1.25
    """Candidate p99 latency may be at most this multiple of the baseline's."""
    accuracy_margin: float = 0.02
    """Non-inferiority margin: candidate accuracy may trail the baseline's by at most this."""
    false_promotion_rate: float = 0.05
    """alpha: chance of promoting a candidate that is worse by more than the margin."""
    false_rollback_rate: float = 0.05
    """beta: chance of rolling back a candidate that is at least as good as the baseline."""
    steps: tuple[int, ...] = (5, 25, 50, 100)
    """Canary traffic weights (percent), one analysis per step."""
    min_requests_per_step: int = 200
    """Requests the candidate must serve at a step before a decision is taken."""
    analysis_interval_s: int = 60
    """How often the cluster analysis queries Prometheus."""

    def __post_init__(self) -> None:
        if not 0 < self.max_error_rate < 1:
            raise ValueError(f"max_error_rate: {self.max_error_rate}; allowed (0, 1)")
        if self.max_p99_latency_ratio < 1:
            raise ValueError(f"max_p99_latency_ratio: {self.max_p99_latency_ratio}; allowed >= 1")
        if not (0 < self.false_promotion_rate < 0.5 and 0 < self.false_rollback_rate < 0.5):
            raise ValueError("error rates: allowed (0, 0.5)")
        if list(self.steps) != sorted(self.steps) or self.steps[-1] != 100 or self.steps[0] <= 0:
            raise ValueError(f"steps: {self.steps}; allowed increasing percentages ending at 100")


DEFAULT = PromotionCriteria()


def selector(model: str, variant: str) -> str:
    """Label selector of one variant's series: Triton's ``model`` label plus the ``variant``
    label the scrape config copies from the pod label ``sovereign-ml/variant``."""
    return f'model="{model}",variant="{variant}"'


def error_rate_query(sel: str, window: str = "5m") -> str:
    """PromQL: failed / all inferences (Triton's own counters) for a selector."""
    fail = f"sum(rate(nv_inference_request_failure{{{sel}}}[{window}]))"
    ok = f"sum(rate(nv_inference_request_success{{{sel}}}[{window}]))"
    return f"{fail} / clamp_min({ok} + {fail}, 1e-9)"


def p99_latency_ratio_query(candidate: str, baseline: str) -> str:
    """PromQL: candidate p99 over baseline p99 (Triton's request summary, microseconds)."""

    def q(sel: str) -> str:
        return f'max(nv_inference_request_summary_us{{{sel},quantile="0.99"}})'

    return f"{q(candidate)} / clamp_min({q(baseline)}, 1)"


def accuracy_delta_query(candidate: str, baseline: str) -> str:
    """PromQL: candidate minus baseline online accuracy (gauge pushed by the monitoring job)."""
    return f"max(sovml_online_accuracy{{{candidate}}}) - max(sovml_online_accuracy{{{baseline}}})"
