"""The gate's results per check id on one synth record: what ran, what passed, what failed where.

``sovml check`` keeps only failures; evidence also needs the passes (a control is satisfied
because its checks ran and passed). ``gate_results`` runs the gate's own pieces on the record (the
rule registry, the Kubernetes schema validation, checkov on the bridged plan and manifests) and
applies the same reviewed suppressions the gate applies (``policies/suppressions.yaml``, with the
stack), so the two never disagree about a finding. Tests build ``GateResults`` by hand.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from infra.evidence.catalogue import CHECKOV, RULE, SCHEMA, SCHEMA_CHECK, check_kind
from infra.gate import checkov as checkov_runner
from infra.gate.findings import Suppression, find_suppression
from infra.gate.k8s_manifests import kubernetes_objects
from infra.gate.k8s_schema import validate_kubernetes
from policies.rules import RULES, StackRule, evaluate
from policies.rules.record import context_from_record, resources_from_record

PASSED, FAILED, ACCEPTED, NOT_RUN = "passed", "failed", "accepted", "not run"
"""A check's result: passed everywhere; failed somewhere; failed only where a reviewed
suppression accepts it; or did not run (nothing of its kind to judge, or its tool did not run)."""


@dataclass(frozen=True)
class Finding:
    """One resource a check failed on, with the message, or the justification that accepts it."""

    resource: str
    text: str


@dataclass(frozen=True)
class CheckResult:
    """What one check found on the record."""

    id: str
    kind: str
    """``rule``, ``checkov`` or ``schema``."""
    status: str
    """``PASSED``, ``FAILED``, ``ACCEPTED`` or ``NOT_RUN``."""
    name: str = ""
    """The check's own title (rule name and description, checkov's check name)."""
    judged: int = 0
    """How many resources (or objects) it judged."""
    failures: tuple[Finding, ...] = ()
    """Where it failed and no suppression accepts it."""
    accepted: tuple[Finding, ...] = ()
    """Where it failed and a reviewed suppression accepts it (text: the justification)."""
    reason: str = ""
    """Why it did not run."""


@dataclass
class GateResults:
    """Every check's result on one record, and why a tool did not run."""

    checks: dict[str, CheckResult] = field(default_factory=dict)
    tools: dict[str, str] = field(default_factory=dict)
    """Tool (``rules``, ``schema``, ``checkov``) -> ``ran``, or why it did not run."""
    tool_errors: list[str] = field(default_factory=list)
    """Tools that failed (an environment error, not a skip): the command exits 3."""

    def result(self, check_id: str) -> CheckResult:
        """The result of ``check_id``; a ``NOT_RUN`` result saying why when there is none."""
        if check_id in self.checks:
            return self.checks[check_id]
        kind = check_kind(check_id)
        tool = {RULE: "rules", CHECKOV: "checkov", SCHEMA: "schema"}[kind]
        ran = self.tools.get(tool, "did not run")
        if ran != "ran":
            reason = f"{tool} did not run: {ran}"
        elif kind == RULE:
            reason = f"{check_id} is not in this build's rule set"
        else:
            reason = f"no resource in the record is of a type {check_id} judges"
        return CheckResult(check_id, kind, NOT_RUN, reason=reason)


def _status(failures: list[Finding], accepted: list[Finding]) -> str:
    return FAILED if failures else ACCEPTED if accepted else PASSED


def _split(
    found: Iterable[tuple[str, str, str]], suppressions: list[Suppression], stack: str
) -> dict[str, tuple[list[Finding], list[Finding]]]:
    """``(check id, resource, message)`` -> per check id (failures, accepted)."""
    out: dict[str, tuple[list[Finding], list[Finding]]] = {}
    for check_id, resource, message in found:
        failures, accepted = out.setdefault(check_id, ([], []))
        s = find_suppression(suppressions, check_id, resource, stack)
        if s is None:
            failures.append(Finding(resource, message))
        else:
            accepted.append(Finding(resource, s.justification))
    return out


def rule_results(record: dict[str, Any], suppressions: list[Suppression]) -> dict[str, CheckResult]:
    """Every rule's result: judged on the resources of its types (a stack rule on all)."""
    resources = resources_from_record(record)
    violations = evaluate(resources, context_from_record(record))
    found = _split(
        ((v.rule_id, v.resource, v.message) for v in violations), suppressions, record["stack"]
    )
    out: dict[str, CheckResult] = {}
    for rule in RULES:
        stack_wide = isinstance(rule, StackRule)
        judged = len(resources) if stack_wide else sum(map(rule.applies, resources))
        failures, accepted = found.get(rule.id, ([], []))
        if rule.id in out:  # one id, several registered parts: judged by all of them
            prev = out[rule.id]
            judged = max(judged, prev.judged)
        status = _status(failures, accepted) if judged else NOT_RUN
        reason = "" if judged else "no resource in the record is of a type it judges"
        out[rule.id] = CheckResult(
            rule.id, RULE, status, f"{rule.name}: {rule.description}", judged,
            tuple(failures), tuple(accepted), reason,
        )  # fmt: skip
    return out


def schema_result(record: dict[str, Any], suppressions: list[Suppression]) -> CheckResult:
    """The Kubernetes schema validation of every object, as the one check ``K8S-SCHEMA``."""
    version = record["config"]["cluster"]["kubernetes_version"]
    validated, errors, _ = validate_kubernetes(kubernetes_objects(record), version)
    found = _split(((SCHEMA_CHECK, i, m) for i, m in errors), suppressions, record["stack"])
    failures, accepted = found.get(SCHEMA_CHECK, ([], []))
    judged = validated + len(errors)
    status = _status(failures, accepted) if judged else NOT_RUN
    return CheckResult(
        SCHEMA_CHECK, SCHEMA, status,
        f"Kubernetes objects validate against the schemas of Kubernetes {version}", judged,
        tuple(failures), tuple(accepted), "" if judged else "the record has no Kubernetes object",
    )  # fmt: skip


def checkov_results(
    report: checkov_runner.CheckovReport, suppressions: list[Suppression], stack: str
) -> dict[str, CheckResult]:
    """checkov's results by check id (checkov reports only checks that judged a resource)."""
    names: dict[str, str] = {}
    judged: dict[str, int] = {}
    failed: list[tuple[str, str, str]] = []
    for c in report.findings:
        names.setdefault(c.check_id, c.check_name)
        if c.result == checkov_runner.SKIPPED:
            continue
        judged[c.check_id] = judged.get(c.check_id, 0) + 1
        # run_checkov was given no suppressions: the gate's own, per stack, apply here.
        if c.result != checkov_runner.PASSED:
            failed.append((c.check_id, c.resource, c.check_name))
    found = _split(failed, suppressions, stack)
    out = {}
    for check_id, n in judged.items():
        failures, accepted = found.get(check_id, ([], []))
        out[check_id] = CheckResult(
            check_id, CHECKOV, _status(failures, accepted), names[check_id], n,
            tuple(failures), tuple(accepted),
        )  # fmt: skip
    return out


def gate_results(
    record: dict[str, Any],
    out: Path,
    suppressions: list[Suppression],
    *,
    checkov: bool = True,
) -> GateResults:
    """Run the gate's checks on ``record`` (scan inputs written under ``out``); every result."""
    results = GateResults()
    results.checks.update(rule_results(record, suppressions))
    results.tools["rules"] = "ran"
    results.checks[SCHEMA_CHECK] = schema_result(record, suppressions)
    results.tools["schema"] = "ran"
    if not checkov:
        results.tools["checkov"] = "skipped (--no-checkov)"
        return results
    checkov_runner.write_scan_inputs(record, out)
    try:
        report = checkov_runner.run_checkov(out)
    except checkov_runner.CheckovError as exc:
        message = " ".join(str(exc).split())
        results.tools["checkov"] = message
        results.tool_errors.append(f"checkov: {message}")
        return results
    parse_errors = [e for run in report.runs for e in run.parsing_errors]
    if parse_errors:
        # A file checkov could not read hides its resources: the gate calls that an error too.
        results.tool_errors += [f"checkov could not parse {e}" for e in parse_errors]
    results.checks.update(checkov_results(report, suppressions, record["stack"]))
    results.tools["checkov"] = "ran"
    return results
