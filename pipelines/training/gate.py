"""The release gate: an absolute AUC floor, then "at least as good as production".

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
    """

    passed: bool
    reason: str
    production_version: int | None = None
    production_auc: float | None = None
    comparison: str = "none"

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
) -> GateDecision:
    """Apply the gate.

    Args:
        candidate_auc: The candidate's AUC on the test set.
        min_auc: The configured floor; below it the candidate is rejected.
        production_version: Current production version, None if nothing is in production.
        production_auc: Production's AUC (same test set or recorded), None if unknown.
        comparison: How ``production_auc`` was obtained.
        tolerance: How much worse than production the candidate may be (0 = not worse).
    """
    prod = {
        "production_version": production_version,
        "production_auc": production_auc,
        "comparison": comparison,
    }
    if math.isnan(candidate_auc):  # one class only in the test rows
        return GateDecision(False, "candidate AUC is undefined (one class in the test set)", **prod)
    if candidate_auc < min_auc:
        return GateDecision(
            False, f"candidate AUC {candidate_auc:.4f} is below the threshold {min_auc:.4f}", **prod
        )
    if production_version is None or production_auc is None:
        return GateDecision(
            True,
            f"candidate AUC {candidate_auc:.4f} >= threshold {min_auc:.4f}; no production model",
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
        f"candidate AUC {candidate_auc:.4f} >= threshold {min_auc:.4f} and >= production "
        f"v{production_version} AUC {production_auc:.4f} ({where})",
        **prod,
    )
