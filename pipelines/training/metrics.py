"""Binary-classification metrics in NumPy (scikit-learn is not in the platform's environments)."""

from __future__ import annotations

import math

import numpy as np

EPS = 1e-7
"""Probabilities are clipped to [EPS, 1 - EPS] for the log loss, as scikit-learn's default does."""


def positive_scores(outputs: np.ndarray) -> np.ndarray:
    """Scores of the positive class (class 1), one per row, as float64.

    ``outputs`` of shape ``[n]`` or ``[n, 1]`` are scores already; ``[n, k>=2]`` are per-class
    scores (logits or probabilities) and class 1 is scored by its margin over the best other class.
    """
    out = np.asarray(outputs, dtype=np.float64)
    if out.ndim == 2 and out.shape[1] >= 2:
        others = np.delete(out, 1, axis=1).max(axis=1)
        return out[:, 1] - others
    return out.reshape(-1)


def accuracy(labels: np.ndarray, probabilities: np.ndarray, threshold: float = 0.5) -> float:
    """Share of correct decisions: ``probability >= threshold`` for ``[n]``/``[n, 1]`` outputs,
    the argmax for ``[n, k>=2]`` per-class outputs (``threshold`` does not apply there)."""
    y = np.asarray(labels).reshape(-1)
    out = np.asarray(probabilities, dtype=np.float64)
    if out.ndim == 2 and out.shape[1] >= 2:
        predicted = out.argmax(axis=1)
    else:
        predicted = (out.reshape(-1) >= threshold).astype(y.dtype)
    return float(np.mean(predicted == y))


def average_ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks with ties given their average rank (``scipy.stats.rankdata`` semantics).

    Here rather than scipy's because importing ``scipy.stats`` takes about 2 s per process.
    """
    values = np.asarray(values, dtype=np.float64)
    order = np.argsort(values, kind="mergesort")
    ordered = values[order]
    # Start of each run of equal values, plus the end: a tie group is [starts[i], starts[i+1]).
    starts = np.flatnonzero(np.concatenate(([True], ordered[1:] != ordered[:-1], [True])))
    group_rank = (starts[:-1] + starts[1:] - 1) / 2 + 1
    ranks = np.empty(values.size, dtype=np.float64)
    ranks[order] = np.repeat(group_rank, np.diff(starts))
    return ranks


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve via the rank-sum (Mann-Whitney U) identity, ties averaged.

    ``scores`` may be any shape :func:`positive_scores` takes. Returns NaN when only one class is
    present (AUC is undefined then): callers that must tell that case apart test for NaN.
    """
    labels = np.asarray(labels).reshape(-1).astype(bool)
    positives = int(labels.sum())
    negatives = labels.size - positives
    if positives == 0 or negatives == 0:
        return math.nan
    ranks = average_ranks(positive_scores(scores))
    u = ranks[labels].sum() - positives * (positives + 1) / 2
    return float(u / (positives * negatives))


def log_loss(labels: np.ndarray, probabilities: np.ndarray) -> float:
    """Mean binary cross-entropy of the probabilities."""
    p = np.clip(np.asarray(probabilities, dtype=np.float64), EPS, 1 - EPS)
    y = np.asarray(labels, dtype=np.float64)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def evaluate(labels: np.ndarray, probabilities: np.ndarray) -> dict[str, float]:
    """Accuracy (at 0.5), ROC AUC and log loss, plus row count and positive rate."""
    return {
        "accuracy": round(accuracy(labels, probabilities), 6),
        "auc": round(roc_auc(labels, probabilities), 6),
        "log_loss": round(log_loss(labels, probabilities), 6),
        "rows": len(labels),
        "positive_rate": round(float(np.mean(labels)), 6),
    }
