"""The registry export the gate reads, and the check of a stack's served model versions.

``sovml model export`` writes the model registry's states and approvals to one reviewed file,
:data:`EXPORT_PATH` (committed beside the stacks, changed by pull request like them); the gate
(``infra/gate/run.py``, check :data:`CHECK_ID`) judges a stack's ``servedModelVersions``
against it with :func:`served_version_problems`. Standard library only: ``pipelines/registry``
(which writes the file) and ``infra/gate`` (which reads it) both import this.

A production stack must name a version for every model it serves (deny by default: an unnamed
version is whatever a rollout happens to deploy), and each named version must be in the export,
in a servable state (challenger or champion) and carry an approval.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from policies.model_lifecycle import SERVABLE, State

EXPORT_PATH = "registry/approvals.json"
"""The export, relative to the project root."""
EXPORT_FORMAT = "sovml-model-approvals/1"
"""``format`` of the export; anything else is refused."""
CHECK_ID = "SOV-MOD-001"
"""The gate's check id (never suppressible: ``infra.gate.findings.NEVER``)."""
APPROVE_HINT = (
    "sovml model approve {model} {version} --by NAME --reason TEXT, then sovml model export"
)
"""How to fix an unapproved version, as the finding says it."""

_MODEL = re.compile(r"^[a-z0-9]([-_a-z0-9]{0,61}[a-z0-9])?$")
_APPROVAL_FIELDS = frozenset({"by", "at", "reason", "evidence"})


def served_name(registered: str) -> str:
    """The DNS-style name a registered model is served under (``credit_risk`` ->
    ``credit-risk``): Kubernetes and Triton names allow no underscore, Python names no dash."""
    return registered.replace("_", "-")


@dataclass(frozen=True)
class ServedVersionProblem:
    """One served model whose version a production stack may not serve.

    Attributes:
        model: The served (DNS-style) model name.
        version: The named version (0 when none was named).
        message: What is wrong and how to fix it.
    """

    model: str
    version: int
    message: str


def export_problem(export: object) -> str | None:
    """Why ``export`` is not a well-formed registry export, or None."""
    if not isinstance(export, dict) or export.get("format") != EXPORT_FORMAT:
        return f"not a registry export (format {EXPORT_FORMAT!r} expected)"
    models = export.get("models")
    if not isinstance(models, dict):
        return "models must be an object"
    for name, model in models.items():
        if not isinstance(name, str) or not _MODEL.match(name):
            return f"model name {name!r} is not a registered model name"
        versions = model.get("versions") if isinstance(model, dict) else None
        if not isinstance(versions, dict):
            return f"{name}: versions must be an object"
        for number, entry in versions.items():
            if not (isinstance(number, str) and number.isdigit() and int(number) > 0):
                return f"{name}: version {number!r} is not a positive integer"
            if not isinstance(entry, dict) or entry.get("state") not in {s.value for s in State}:
                return f"{name} v{number}: state must be one of {', '.join(s.value for s in State)}"
            approval = entry.get("approval")
            if approval is not None and (
                not isinstance(approval, dict)
                or set(approval) != _APPROVAL_FIELDS
                or not all(isinstance(approval[k], str) and approval[k] for k in ("by", "at"))
            ):
                return f"{name} v{number}: approval must be {{by, at, reason, evidence}}"
    return None


def served_version_problems(
    production: bool,
    served_models: list[str],
    served_versions: dict[str, int],
    export: dict[str, Any] | None,
) -> list[ServedVersionProblem]:
    """Served models a stack may not serve at the versions it names.

    Args:
        production: Whether the stack is a production stack; other stacks are not judged.
        served_models: The DNS-style names the stack serves (``servedModels``).
        served_versions: DNS-style name -> the version the stack names (``servedModelVersions``).
        export: The registry export (:data:`EXPORT_PATH`), None when there is none; it must
            already have passed :func:`export_problem`.
    """
    if not production:
        return []
    by_served = {
        served_name(name): model.get("versions", {})
        for name, model in ((export or {}).get("models") or {}).items()
    }
    problems: list[ServedVersionProblem] = []
    for model in served_models:
        version = served_versions.get(model)
        if version is None:
            problems.append(
                ServedVersionProblem(
                    model,
                    0,
                    f"production serves {model} without naming its version: add '{model}:N' "
                    "to servedModelVersions (an approved version from the registry export)",
                )
            )
            continue
        entry = by_served.get(model, {}).get(str(version))
        hint = APPROVE_HINT.format(model=model.replace("-", "_"), version=version)
        if entry is None:
            message = (
                f"{model} version {version} is not in the registry export {EXPORT_PATH} "
                f"(register it with a pipeline run, then: {hint})"
            )
        elif entry["state"] not in {s.value for s in SERVABLE}:
            message = (
                f"{model} version {version} is {entry['state']}; production serves only "
                f"{' or '.join(sorted(s.value for s in SERVABLE))} versions"
            )
        elif entry.get("approval") is None:
            message = f"{model} version {version} has no approval record (approve it: {hint})"
        else:
            continue
        problems.append(ServedVersionProblem(model, version, message))
    return problems
