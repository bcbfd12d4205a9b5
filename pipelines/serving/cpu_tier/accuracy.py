"""Accuracy checks of the CPU tier: each candidate's deviation from fp32 eager, and the bound.

Every candidate scores the validation rows (and a batch of 1, which exercises the dynamic batch
dimension); the largest absolute output difference against ``eager_fp32`` and the drop of a
metric (AUC by default, higher is better) on labelled rows are compared with an
:class:`AccuracyBound`. The metrics themselves are :mod:`pipelines.training.metrics`, the ones
the training pipeline evaluates with.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from pipelines.serving.cpu_tier.forms import REFERENCE, Candidate, Predict
from pipelines.training.metrics import accuracy, roc_auc

Metric = Callable[[np.ndarray, np.ndarray], float]
"""``metric(labels, outputs)`` -> a score, higher is better."""

METRICS: dict[str, Metric] = {
    "auc": roc_auc,
    "accuracy": accuracy,
}
"""The metrics a selection can name (``metric="auc"``)."""


@dataclass(frozen=True)
class AccuracyBound:
    """How far a candidate may deviate from ``eager_fp32`` and still be served."""

    max_abs_diff: float = 1e-2
    """Largest allowed absolute difference of any output value."""
    max_metric_drop: float = 1e-3
    """Largest allowed drop of the validation metric (reference minus candidate; a candidate
    that scores better is never rejected for it)."""

    def __post_init__(self) -> None:
        if self.max_abs_diff < 0 or self.max_metric_drop < 0:
            raise ValueError("accuracy bounds must be >= 0")


@dataclass(frozen=True)
class Deviation:
    """Accuracy of one candidate against the reference."""

    max_abs_diff: float
    """Largest absolute output difference (inf when the output shape differs)."""
    metric: float | None
    """The candidate's metric, None without usable labels."""
    metric_drop: float | None
    """Reference metric minus this one (positive = worse), None without usable labels."""


def _predict_all(predict: Predict, x: np.ndarray, chunk: int = 1024) -> np.ndarray:
    parts = [predict(np.ascontiguousarray(x[i : i + chunk])) for i in range(0, len(x), chunk)]
    return np.concatenate(parts).astype(np.float64)


def _reference_metric(
    metric: Metric, labels: np.ndarray | None, ref_out: np.ndarray
) -> float | None:
    """The reference's metric; None when there are no labels or it is undefined on them.

    Undefined is a NaN (:func:`~pipelines.training.metrics.roc_auc` on rows of one class) or a
    ValueError (a caller's metric): only the output difference is bounded then, since a NaN
    drop would put every candidate outside the bound.
    """
    if labels is None:
        return None
    try:
        value = metric(labels, ref_out)
    except ValueError:
        return None
    return None if math.isnan(value) else value


def check_accuracy(
    candidates: Sequence[Candidate],
    x: np.ndarray,
    labels: np.ndarray | None,
    metric: Metric,
) -> dict[str, Deviation]:
    """Max abs output difference and metric drop of every built candidate vs ``eager_fp32``.

    The rows are scored in chunks and once more as a batch of 1 (the first row), so a candidate
    whose batch dimension was wrongly specialised cannot pass. Where the metric is undefined on
    the labels (e.g. AUC on rows of one class), only the output difference is bounded.
    """
    rows = np.ascontiguousarray(np.asarray(x, dtype=np.float32))
    reference = next(c for c in candidates if c.name == REFERENCE)
    assert reference.predict is not None
    ref_out = _predict_all(reference.predict, rows)
    ref_one = reference.predict(rows[:1]).astype(np.float64)
    ref_metric = _reference_metric(metric, labels, ref_out)
    deviations = {}
    for c in candidates:
        if c.predict is None:
            continue
        out = _predict_all(c.predict, rows)
        one = c.predict(rows[:1]).astype(np.float64)
        if out.shape != ref_out.shape or one.shape != ref_one.shape:
            diff = float("inf")
        else:
            diff = float(max(np.abs(out - ref_out).max(), np.abs(one - ref_one).max()))
        value = metric(labels, out) if ref_metric is not None else None
        drop = float(ref_metric - value) if ref_metric is not None and value is not None else None
        deviations[c.name] = Deviation(diff, value, drop)
    return deviations


def within(deviation: Deviation, bound: AccuracyBound) -> bool:
    """Is ``deviation`` inside ``bound`` (NaN never is)?"""
    if not deviation.max_abs_diff <= bound.max_abs_diff:
        return False
    return deviation.metric_drop is None or deviation.metric_drop <= bound.max_metric_drop
