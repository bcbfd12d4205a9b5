"""Group fairness of a scored test set, computed with fairlearn.

The sensitive attribute (:data:`pipelines.training.schema.SENSITIVE`) is never a model feature;
it travels beside the label so the evaluate step can ask how the model's decisions differ
between its groups:

* demographic parity difference: the largest gap between two groups' selection rates (share of
  rows predicted to default, at :data:`DECISION_THRESHOLD`);
* equalized odds difference: the larger of the largest gap in true positive rates and the
  largest gap in false positive rates;
* per group (fairlearn ``MetricFrame``): rows, accuracy, AUC, selection rate, TPR and FPR.

The gate (:mod:`pipelines.training.gate`) judges these figures against the configured
thresholds; this module only measures. fairlearn (and scikit-learn under it) is imported here
only, by the evaluate step.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from pipelines.training import metrics as metrics_lib
from pipelines.training import schema

if TYPE_CHECKING:
    import numpy as np

DECISION_THRESHOLD = 0.5
"""Probability at and above which a row counts as predicted to default (as for the accuracy)."""
ROUND = 6
"""Decimals of every reported figure (as :func:`pipelines.training.metrics.evaluate`)."""


def _figure(value: float) -> float | None:
    """``value`` rounded, or None when undefined (a group with one class has no AUC, no TPR)."""
    value = float(value)
    return None if math.isnan(value) else round(value, ROUND)


def evaluate(labels: np.ndarray, probabilities: np.ndarray, groups: np.ndarray) -> dict[str, Any]:
    """The fairness figures of one scored test set.

    Args:
        labels: True labels (0/1), shape ``[n]``.
        probabilities: Predicted default probabilities, shape ``[n]``.
        groups: The sensitive attribute's codes (:data:`schema.SENSITIVE_GROUPS`), shape ``[n]``.

    Returns:
        ``attribute``, ``threshold``, ``demographic_parity_difference``,
        ``equalized_odds_difference`` and ``by_group``: group name -> ``rows``, ``accuracy``,
        ``auc``, ``selection_rate``, ``true_positive_rate``, ``false_positive_rate`` (None where
        a group lacks the class the figure needs). ``missing_groups`` lists declared groups with
        no test rows (the gate refuses to judge fairness without them).

    Raises:
        ValueError: On a code outside :data:`schema.SENSITIVE_GROUPS` or mismatched lengths.
    """
    import numpy as np
    from fairlearn.metrics import (
        MetricFrame,
        count,
        demographic_parity_difference,
        equalized_odds_difference,
        false_positive_rate,
        selection_rate,
        true_positive_rate,
    )

    y = np.asarray(labels).reshape(-1).astype(np.int64)
    p = np.asarray(probabilities, dtype=np.float64).reshape(-1)
    codes = np.asarray(groups).reshape(-1)
    if not len(y) == len(p) == len(codes):
        raise ValueError(f"lengths differ: {len(y)} labels, {len(p)} scores, {len(codes)} groups")
    unknown = sorted(set(codes.tolist()) - set(schema.SENSITIVE_GROUPS))
    if unknown:
        raise ValueError(f"{schema.SENSITIVE}: codes {unknown} are not declared groups")
    names = np.array([schema.SENSITIVE_GROUPS[int(c)] for c in codes], dtype=object)
    predicted = (p >= DECISION_THRESHOLD).astype(np.int64)
    # Each rate is computed on its own subset; fairlearn warns (and returns 0) on an empty one,
    # which would hide a missing class: the one-class cases are turned into None below instead.
    decisions = MetricFrame(
        metrics={
            "rows": count,
            "accuracy": lambda t, q: float(np.mean(t == q)),
            "selection_rate": selection_rate,
            "true_positive_rate": lambda t, q: _rate(t, q, 1, true_positive_rate),
            "false_positive_rate": lambda t, q: _rate(t, q, 0, false_positive_rate),
        },
        y_true=y,
        y_pred=predicted,
        sensitive_features=names,
    )
    ranking = MetricFrame(
        metrics={"auc": metrics_lib.roc_auc},
        y_true=y,
        y_pred=p,
        sensitive_features=names,
    )
    by_group: dict[str, dict[str, Any]] = {}
    for name in decisions.by_group.index:
        row = decisions.by_group.loc[name]
        by_group[str(name)] = {
            "rows": int(row["rows"]),
            "accuracy": _figure(row["accuracy"]),
            "auc": _figure(ranking.by_group.loc[name, "auc"]),
            "selection_rate": _figure(row["selection_rate"]),
            "true_positive_rate": _figure(row["true_positive_rate"]),
            "false_positive_rate": _figure(row["false_positive_rate"]),
        }
    return {
        "attribute": schema.SENSITIVE,
        "threshold": DECISION_THRESHOLD,
        "demographic_parity_difference": _figure(
            demographic_parity_difference(y, predicted, sensitive_features=names)
        ),
        "equalized_odds_difference": _figure(
            equalized_odds_difference(y, predicted, sensitive_features=names)
        ),
        "by_group": by_group,
        "missing_groups": sorted(set(schema.SENSITIVE_GROUPS.values()) - set(by_group)),
    }


def _rate(truth: np.ndarray, predicted: np.ndarray, cls: int, rate: Any) -> float:
    """``rate`` (fairlearn's TPR or FPR) over the rows of class ``cls``, NaN when there are none."""
    if not (truth == cls).any():
        return math.nan
    return float(rate(truth, predicted, pos_label=1))
