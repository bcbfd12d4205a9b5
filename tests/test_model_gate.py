"""SOV-MOD-001 in the gate: a production stack serves only approved registry versions, judged
against the reviewed export (registry/approvals.json); the servedModelVersions key."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from infra.config.stackfile import ROOT
from infra.gate import findings
from infra.gate import run as gate
from policies.approvals import EXPORT_PATH, export_problem

EXPORT = json.loads((ROOT / EXPORT_PATH).read_text())


def _record(environment: str = "prod", versions: Any = (("credit-risk", 1),)) -> dict[str, Any]:
    return {
        "stack": "fixture",
        "config": {
            "environment": environment,
            "served_models": [["credit-risk", "gpu"]],
            "served_model_versions": [list(v) for v in versions],
        },
    }


def _judge(record: dict[str, Any], export: Any, tmp_path: Path) -> list[str]:
    path = tmp_path / "approvals.json"
    if export is not None:
        path.write_text(export if isinstance(export, str) else json.dumps(export))
    report = findings.GateReport(stack="fixture", record="fixture")
    gate._check_served_versions(report, record, path, [])
    assert all(f.id == "SOV-MOD-001" and f.status == "failed" for f in report.findings)
    return [f.message for f in report.findings]


def test_committed_export_is_valid_and_approves_what_prod_serves() -> None:
    """The reviewed export parses, and every version the shipped stacks name is approved in it."""
    assert export_problem(EXPORT) is None
    assert EXPORT["models"]["credit_risk"]["versions"]["1"]["approval"]["by"]


def test_approved_version_passes(tmp_path: Path) -> None:
    assert _judge(_record(), EXPORT, tmp_path) == []


def test_dev_stack_is_not_judged(tmp_path: Path) -> None:
    assert _judge(_record("dev", ()), None, tmp_path) == []


@pytest.mark.parametrize(
    ("versions", "change", "expected"),
    [
        ((), None, "production serves credit-risk without naming its version"),
        ((("credit-risk", 7),), None, "credit-risk version 7 is not in the registry export"),
        (
            (("credit-risk", 1),),
            lambda v: v.update(approval=None),
            "credit-risk version 1 has no approval record (approve it: sovml model approve "
            "credit_risk 1 --by NAME --reason TEXT, then sovml model export)",
        ),
        (
            (("credit-risk", 1),),
            lambda v: v.update(state="rejected"),
            "credit-risk version 1 is rejected",
        ),
    ],
)
def test_unapproved_versions_fail(
    tmp_path: Path, versions: Any, change: Any, expected: str
) -> None:
    """Each way production may name a version it must not serve: one finding, naming the model,
    the version and how to approve."""
    export = copy.deepcopy(EXPORT)
    if change is not None:
        change(export["models"]["credit_risk"]["versions"]["1"])
    messages = _judge(_record(versions=versions), export, tmp_path)
    assert len(messages) == 1 and messages[0].startswith(expected)


def test_missing_or_broken_export_fails(tmp_path: Path) -> None:
    """No export: nothing is approved; an unreadable one is named, not half-read."""
    assert _judge(_record(), None, tmp_path)[0].startswith(
        "credit-risk version 1 is not in the registry export"
    )
    assert _judge(_record(), "{not json", tmp_path)[0].startswith(
        f"the registry export {EXPORT_PATH} cannot be read"
    )
    assert "format" in _judge(_record(), {"format": "other"}, tmp_path)[0]


def test_never_suppressible(tmp_path: Path) -> None:
    path = tmp_path / "suppressions.yaml"
    path.write_text(
        "suppressions:\n  - id: SOV-MOD-001\n    resource: '*'\n    justification: reviewed\n"
    )
    with pytest.raises(ValueError, match="SOV-MOD-001 is never suppressed"):
        findings.load_suppressions(path)


def test_prod_uae_gate_with_an_unapproved_version(tmp_path: Path) -> None:
    """The real stack through run_gate (no checkov): passes with the committed export, fails
    with the same version unapproved."""
    build = tmp_path / "build"
    report = gate.run_gate("prod-uae", build_dir=build, checkov=False)
    assert not [f for f in report.failures if f.id == "SOV-MOD-001"]
    unapproved = copy.deepcopy(EXPORT)
    unapproved["models"]["credit_risk"]["versions"]["1"]["approval"] = None
    (tmp_path / "approvals.json").write_text(json.dumps(unapproved))
    report = gate.run_gate(
        "prod-uae", build_dir=build, checkov=False, registry_export=tmp_path / "approvals.json"
    )
    failed = [f for f in report.failures if f.id == "SOV-MOD-001"]
    assert [f.resource for f in failed] == ["stack:prod-uae:servedModelVersions"]
    assert "credit-risk version 1 has no approval record" in failed[0].message
    assert not report.ok


def test_config_validates_served_model_versions() -> None:
    """Names must be served models, versions positive integers, one per model."""
    from infra.config.parsing import _parse_served_versions

    class _Reader:
        def __init__(self, values: list[str]) -> None:
            self.values, self.problems = values, []

        def strings(self, name: str) -> tuple[str, ...]:
            return tuple(self.values)

        def problem(self, name: str, value: Any, allowed: str) -> None:
            self.problems.append((value, allowed))

    good = _Reader(["credit-risk:3"])
    assert _parse_served_versions(good, ["credit-risk"]) == (("credit-risk", 3),)
    bad = _Reader(["credit-risk:0", "credit-risk:03", "other:1", "credit-risk", "credit-risk:2",
                   "credit-risk:4"])  # fmt: skip
    assert _parse_served_versions(bad, ["credit-risk"]) == (("credit-risk", 2),)
    assert [v for v, _ in bad.problems] == [
        "credit-risk:0", "credit-risk:03", "other:1", "credit-risk", "credit-risk:4",
    ]  # fmt: skip
    assert "one version per served model" in bad.problems[-1][1]
