"""Each control's status on a record, from its checks' results: satisfied, failed or a gap.

* **failed**: one of its checks failed on a resource no reviewed suppression accepts (the
  checks and resources are named);
* **gap**: none failed, but no check on the record covers the control (its evidence is tests this
  command does not run, or nothing), or one of its checks did not run (the reason is named);
* **satisfied**: every one of its checks ran and passed; failures a reviewed suppression accepts
  are listed with their justification, as exceptions an auditor should see.

Pure: ``evaluate`` takes the catalogue and ``GateResults`` and calls nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass

from infra.evidence.catalogue import Catalogue, Control
from infra.evidence.results import ACCEPTED, FAILED, NOT_RUN, CheckResult, GateResults

SATISFIED, CONTROL_FAILED, GAP = "satisfied", "failed", "gap"
STATUSES = (SATISFIED, CONTROL_FAILED, GAP)
"""A control's possible statuses, in the order reports list them."""


@dataclass(frozen=True)
class ControlResult:
    """A control, its status and why, and the result of each of its checks."""

    control: Control
    status: str
    """``satisfied``, ``failed`` or ``gap``."""
    reason: str
    """One line: what failed, why it is a gap, or what satisfied it."""
    checks: tuple[CheckResult, ...]
    """Its checks' results, in catalogue order."""


def _ids(results: list[CheckResult]) -> str:
    return ", ".join(r.id for r in results)


def evaluate_control(control: Control, results: GateResults) -> ControlResult:
    """``control``'s status from the results of its checks."""
    checks = tuple(results.result(c) for c in control.checks)
    failed = [r for r in checks if r.status == FAILED]
    not_run = [r for r in checks if r.status == NOT_RUN]
    if failed:
        where = "; ".join(
            f"{r.id} on {', '.join(f.resource for f in r.failures[:3])}"
            + (f" and {len(r.failures) - 3} more" if len(r.failures) > 3 else "")
            for r in failed
        )
        return ControlResult(control, CONTROL_FAILED, f"failed: {where}", checks)
    if not checks:
        tests = ", ".join(control.tests)
        reason = (
            "no check on the record covers it; "
            f"its evidence is tests this command does not run ({tests})"
        )
        return ControlResult(control, GAP, reason, checks)
    if not_run:
        reason = "; ".join(f"{r.id} did not run: {r.reason}" for r in not_run)
        return ControlResult(control, GAP, reason, checks)
    accepted = [r for r in checks if r.status == ACCEPTED]
    reason = f"{len(checks)} check(s) ran and passed"
    if accepted:
        reason += f"; reviewed exceptions on {_ids(accepted)}"
    return ControlResult(control, SATISFIED, reason, checks)


def evaluate(catalogue: Catalogue, results: GateResults) -> list[ControlResult]:
    """Every control of ``catalogue`` evaluated against ``results``, in catalogue order."""
    return [evaluate_control(c, results) for c in catalogue.controls]


def summary(catalogue: Catalogue, controls: list[ControlResult]) -> dict[str, dict[str, int]]:
    """Per framework id (catalogue order) and ``all``: how many controls of each status."""
    out = {f.id: dict.fromkeys(("controls", *STATUSES), 0) for f in catalogue.frameworks}
    out["all"] = dict.fromkeys(("controls", *STATUSES), 0)
    for c in controls:
        for key in (c.control.framework, "all"):
            out[key]["controls"] += 1
            out[key][c.status] += 1
    return out
