"""The release gate: an absolute AUC floor, group fairness, then "at least as good as production".

Fairness (the figures of :mod:`pipelines.training.fairness`, judged here against
:class:`FairnessLimits`): the demographic parity difference and the equalized odds difference
over the sensitive attribute must not exceed their thresholds, and every declared group must be
present with both classes in the test rows (a gap that cannot be measured is not taken as no
gap). A refusal names the metric, the two groups furthest apart and the threshold.

The candidate is compared with the production model on the *same* test rows whenever the
production TorchScript file is still readable and its features are available (champion vs
challenger on one holdout); otherwise with the metrics recorded when production was registered,
and the decision says which comparison was made.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class GateDecision:
    """Outcome of the gate.

    Attributes:
        passed: True when the candidate may be exported and registered.
        reason: One sentence a person can act on.
        production_version: The production version compared with, if any.
        production_auc: Production's AUC used in the comparison, if any.
        comparison: ``same-test-set``, ``recorded-metrics`` or ``none``.
        fairness: See the field.
    """

    passed: bool
    reason: str
    production_version: int | None = None
    production_auc: float | None = None
    comparison: str = "none"
    fairness: dict[str, Any] | None = None
    """The fairness figures judged and the limits they were judged against (None: not judged)."""

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for JSON."""
        return asdict(self)


def decide(
    candidate_auc: float,
    min_auc: float,
    production_version: int | None = None,
    production_auc: float | None = None,
    comparison: str = "none",
    tolerance: float = 0.0,
    fairness: dict[str, Any] | None = None,
    limits: FairnessLimits | None = None,
) -> GateDecision:
    """Apply the gate: the AUC floor, then fairness (when ``limits`` are given), then production.

    Args:
        candidate_auc: The candidate's AUC on the test set.
        min_auc: The configured floor; below it the candidate is rejected.
        production_version: Current production version, None if nothing is in production.
        production_auc: Production's AUC (same test set or recorded), None if unknown.
        comparison: How ``production_auc`` was obtained.
        tolerance: How much worse than production the candidate may be (0 = not worse).
        fairness: The candidate's figures from :func:`pipelines.training.fairness.evaluate`.
        limits: The fairness thresholds; with ``limits`` and no ``fairness`` the gate refuses.
    """
    judged = None if limits is None else {"figures": fairness, "limits": asdict(limits)}
    prod = {
        "production_version": production_version,
        "production_auc": production_auc,
        "comparison": comparison,
        "fairness": judged,
    }
    if math.isnan(candidate_auc):  # one class only in the test rows
        return GateDecision(False, "candidate AUC is undefined (one class in the test set)", **prod)
    if candidate_auc < min_auc:
        return GateDecision(
            False, f"candidate AUC {candidate_auc:.4f} is below the threshold {min_auc:.4f}", **prod
        )
    fair = ""
    if limits is not None:
        problem = fairness_problem(fairness, limits)
        if problem is not None:
            return GateDecision(False, problem, **prod)
        fair = "; fairness within thresholds"
    if production_version is None or production_auc is None:
        return GateDecision(
            True,
            f"candidate AUC {candidate_auc:.4f} >= threshold {min_auc:.4f}{fair}; "
            "no production model",
            **prod,
        )
    where = "on the same test set" if comparison == "same-test-set" else "as recorded"
    if candidate_auc + tolerance < production_auc:
        return GateDecision(
            False,
            f"candidate AUC {candidate_auc:.4f} is worse than production v{production_version} "
            f"AUC {production_auc:.4f} ({where})",
            **prod,
        )
    return GateDecision(
        True,
        f"candidate AUC {candidate_auc:.4f} >= threshold {min_auc:.4f}{fair} and >= "
        f"production v{production_version} AUC {production_auc:.4f} ({where})",
        **prod,
    )


@dataclass(frozen=True)
class FairnessLimits:
    """The fairness thresholds (pipeline parameters; defaults and why in the README).

    Attributes:
        max_parity_difference: Largest demographic parity difference accepted.
        max_odds_difference: Largest equalized odds difference accepted.
    """

    max_parity_difference: float
    max_odds_difference: float

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if not 0.0 <= value <= 1.0:  # also refuses NaN
                raise ValueError(f"{name} must be in [0, 1], got {value}")


DEFAULT_LIMITS = FairnessLimits(max_parity_difference=0.1, max_odds_difference=0.15)
"""The pipeline's default thresholds (why these, in the README's fairness section)."""

RATE_NAMES = {
    "selection_rate": "selection rate",
    "true_positive_rate": "true positive rate",
    "false_positive_rate": "false positive rate",
}
"""Per-group figures the reasons quote, as a person reads them."""


def fairness_problem(fairness: dict[str, Any] | None, limits: FairnessLimits) -> str | None:
    """Why the fairness figures fail ``limits``, or None when they pass.

    Refuses what cannot be judged too: no figures, a declared group without test rows, or a
    group without both classes (its TPR or FPR is undefined, and fairlearn would count it as 0).
    """
    if not fairness:
        return "fairness figures are missing: the gate cannot judge fairness"
    attribute = fairness.get("attribute", "the sensitive attribute")
    if fairness.get("missing_groups"):
        missing = ", ".join(fairness["missing_groups"])
        return f"cannot judge fairness over {attribute}: no test rows for group(s) {missing}"
    groups: dict[str, dict[str, Any]] = fairness.get("by_group") or {}
    for name, figures in sorted(groups.items()):
        for rate in ("true_positive_rate", "false_positive_rate"):
            if figures.get(rate) is None:
                return (
                    f"cannot judge equalized odds over {attribute}: group {name} has no "
                    f"{'defaults' if rate == 'true_positive_rate' else 'repaid loans'} in the "
                    "test rows"
                )
    parity = fairness.get("demographic_parity_difference")
    if parity is None or parity > limits.max_parity_difference:
        return _exceeds(
            "demographic parity difference",
            parity,
            limits.max_parity_difference,
            attribute,
            groups,
            ("selection_rate",),
        )
    odds = fairness.get("equalized_odds_difference")
    if odds is None or odds > limits.max_odds_difference:
        return _exceeds(
            "equalized odds difference",
            odds,
            limits.max_odds_difference,
            attribute,
            groups,
            ("true_positive_rate", "false_positive_rate"),
        )
    return None


def _exceeds(
    metric: str,
    value: float | None,
    limit: float,
    attribute: str,
    groups: dict[str, dict[str, Any]],
    rates: tuple[str, ...],
) -> str:
    """The refusal: the metric, its value, the threshold, and the widest gap among ``rates``."""
    shown = "undefined" if value is None else f"{value:.4f}"
    text = f"{metric} over {attribute} {shown} exceeds the threshold {limit:.4f}"
    widest: tuple[float, str, str, str] | None = None
    for rate in rates:
        ranked = sorted((g[rate], name) for name, g in groups.items() if g.get(rate) is not None)
        if len(ranked) >= 2:
            gap = ranked[-1][0] - ranked[0][0]
            if widest is None or gap > widest[0]:
                widest = (gap, rate, ranked[-1][1], ranked[0][1])
    if widest is None:
        return text
    _, rate, high, low = widest
    return (
        f"{text}: {RATE_NAMES[rate]} of group {high} {groups[high][rate]:.4f} vs group {low} "
        f"{groups[low][rate]:.4f}"
    )
