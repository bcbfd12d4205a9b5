"""Registered versions in the MLflow registry, moved through their lifecycle with approvals.

Every move goes through :func:`policies.model_lifecycle.next_state` (the one transition table)
and is written three ways: the version's ``lifecycle_state`` tag, the ``champion`` alias (MLflow
aliases are unique per model, so only the single-holder state gets one; stages are deprecated),
and, for the moves a person answers for, an entry in the lifecycle log
(:mod:`pipelines.audit`: ``model.approved``, ``model.rejected``, ``model.promoted``,
``model.rolled_back``). The log entry is appended first: a move whose record cannot be written
is not made (the registry then still shows the old state, and the command fails).

A canary run (``sovml abtest --model-version``) moves the version it tried through
:func:`apply_canary`: promoted -> champion (through :func:`promote`, so its approval is
required), rolled back -> rejected with the canary's reason, held -> unchanged; each outcome is
the version's ``canary`` record, linked to the canary's evidence file and log entry.

An approval is a record on the version (the ``approval`` tag: who, when, why, the evidence it
rests on, and the hash of its log entry), not a state: a challenger is approved, then promoted.
The registry's numbers are MLflow's version numbers; the Triton repository's version folder of
the same model is the ``repository_version`` tag (equal when one build folder feeds one server).

Read-check-write over REST is not atomic: two people moving the same version at once can race;
the lifecycle log keeps both records in order, and the last tag written wins.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from pipelines.registry.mlflow_rest import MlflowRest, ModelVersion
from policies.approvals import EXPORT_FORMAT, served_name
from policies.model_lifecycle import Action, State, TransitionError, may_approve, next_state

STATE_TAG = "lifecycle_state"
"""The version's :class:`~policies.model_lifecycle.State`."""
APPROVAL_TAG = "approval"
"""JSON ``{by, at, reason, evidence, log_entry}`` once approved."""
REJECTION_TAG = "rejection"
"""JSON ``{by, at, reason, evidence, log_entry}`` once rejected."""
ROLLBACK_TAG = "rollback"
"""JSON ``{by, at, reason, log_entry}`` when the version was rolled back."""
PROMOTION_TAG = "promotion"
"""JSON ``{by, at, canary_decision, log_entry}`` when the version became champion."""
GATE_TAG = "gate"
"""JSON of the evaluation gate's decision and the metrics it judged (set at registration)."""
CANARY_TAG = "canary"
"""JSON ``{by, decision, reason, run, report, log_entry}`` of the version's last canary run."""
CHAMPION_ALIAS = "champion"
"""The alias of the version serving production."""
CANARY_PROMOTED = "promote"
"""The canary decision that may make a version champion."""


class GovernanceError(ValueError):
    """A lifecycle move that is not allowed (bad input to a command: ``sovml`` exit 2)."""


@dataclass(frozen=True)
class Decision:
    """Who decides and why: the part of every approval, rejection and rollback a person gives.

    Attributes:
        by: Who decided (a name or an account).
        reason: Why, in words.
        evidence: Extra evidence (JSON scalars): a canary decision, a report's digest.
    """

    by: str
    reason: str
    evidence: dict[str, Any]

    def problem(self) -> str | None:
        """Why this decision cannot be recorded, or None."""
        if not self.by.strip() or not self.by.isprintable():
            return "--by must name who decides (one printable line)"
        if not self.reason.strip() or not self.reason.isprintable():
            return "--reason must say why (one printable line)"
        return None


def state_of(version: ModelVersion) -> State:
    """The version's state; a version without a valid tag is a candidate (never approved)."""
    try:
        return State(version.tags.get(STATE_TAG, State.CANDIDATE.value))
    except ValueError:
        return State.CANDIDATE


def record_of(version: ModelVersion, tag: str) -> dict[str, Any] | None:
    """A JSON record tag (approval, rejection...) of the version, None when absent or unreadable."""
    raw = version.tags.get(tag)
    if not raw:
        return None
    try:
        body = json.loads(raw)
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def gate_evidence(version: ModelVersion) -> dict[str, Any]:
    """The gate decision and metrics recorded at registration (empty when none was)."""
    return record_of(version, GATE_TAG) or {}


def _subject(version: ModelVersion) -> str:
    return f"{version.name} v{version.version}"


def _details(evidence: dict[str, Any]) -> dict[str, Any]:
    """Evidence flattened to the lifecycle log's JSON scalars (``gate.auc``...)."""
    flat: dict[str, Any] = {}
    for key, value in evidence.items():
        if isinstance(value, dict):
            for inner, item in _details(value).items():
                flat[f"{key}.{inner}"] = item
        elif value is None or isinstance(value, (str, int, float, bool)):
            flat[key] = value[:1024] if isinstance(value, str) else value
    return flat


def _log(event: str, version: ModelVersion, details: dict[str, Any]) -> dict[str, Any]:
    from pipelines.audit import log as audit

    return audit.append(event, _subject(version), details=_details(details))


def _move(client: MlflowRest, version: ModelVersion, action: Action, reason: str = "") -> State:
    """Apply ``action`` through the table; the tag is the state's one record."""
    approved = record_of(version, APPROVAL_TAG) is not None
    try:
        target = next_state(state_of(version), action, approved=approved, reason=reason)
    except TransitionError as exc:
        raise GovernanceError(f"{_subject(version)}: {exc}") from None
    client.set_version_tag(version.name, version.version, STATE_TAG, target.value)
    return target


def _tag_json(client: MlflowRest, version: ModelVersion, tag: str, body: dict[str, Any]) -> None:
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), allow_nan=False)
    client.set_version_tag(version.name, version.version, tag, text)


def passed_gate(client: MlflowRest, version: ModelVersion, gate: dict[str, Any]) -> State:
    """Record the evaluation gate's decision; a passed gate makes a candidate a challenger."""
    _tag_json(client, version, GATE_TAG, gate)
    if not gate.get("passed"):
        return state_of(version)
    return _move(client, version, Action.GATE_PASSED)


def approve(client: MlflowRest, name: str, number: int, decision: Decision) -> dict[str, Any]:
    """Approve a challenger: the ``model.approved`` log entry, then the ``approval`` tag.

    The evidence is the gate's decision and metrics recorded at registration plus what the
    caller adds (a canary decision, a report digest).

    Raises:
        GovernanceError: The decision is incomplete, the version is not a challenger, or it is
            approved already.
        pipelines.audit.log.AuditError: The lifecycle log cannot be written (nothing is tagged).
    """
    version = client.get_model_version(name, number)
    if problem := decision.problem():
        raise GovernanceError(problem)
    state = state_of(version)
    if not may_approve(state):
        raise GovernanceError(
            f"{_subject(version)} is {state.value}: only a challenger (a version that passed "
            "the evaluation gate) can be approved"
        )
    if (existing := record_of(version, APPROVAL_TAG)) is not None:
        raise GovernanceError(
            f"{_subject(version)} is already approved by {existing.get('by')} "
            f"at {existing.get('at')}"
        )
    record = _record_decision(client, version, "model.approved", APPROVAL_TAG, decision)
    return record


def _record_decision(
    client: MlflowRest, version: ModelVersion, event: str, tag: str, decision: Decision
) -> dict[str, Any]:
    """A person's decision on ``version``: the ``event`` entry in the lifecycle log first (its
    hash goes into the record), then the record as the version's ``tag``; returns the record."""
    evidence = {"gate": gate_evidence(version), **decision.evidence}
    entry = _log(event, version, {"by": decision.by, "reason": decision.reason, **evidence})
    record = {
        "by": decision.by,
        "at": entry["time"],
        "reason": decision.reason,
        "evidence": evidence,
        "log_entry": entry["hash"],
    }
    _tag_json(client, version, tag, record)
    return record


def reject(client: MlflowRest, name: str, number: int, decision: Decision) -> dict[str, Any]:
    """Reject a candidate or challenger: ``model.rejected`` in the log, then state and record.

    Raises:
        GovernanceError: The decision is incomplete or the table allows no rejection from the
            version's state (a champion is rolled back, not rejected).
    """
    version = client.get_model_version(name, number)
    if problem := decision.problem():
        raise GovernanceError(problem)
    try:
        next_state(state_of(version), Action.REJECT, approved=False, reason=decision.reason)
    except TransitionError as exc:
        raise GovernanceError(f"{_subject(version)}: {exc}") from None
    record = _record_decision(client, version, "model.rejected", REJECTION_TAG, decision)
    _move(client, version, Action.REJECT, decision.reason)
    return record


def champion(client: MlflowRest, name: str) -> ModelVersion | None:
    """The version serving production (the ``champion`` alias), if any."""
    for version in client.model_versions(name):
        if CHAMPION_ALIAS in version.aliases:
            return version
    return None


def promotable(client: MlflowRest, name: str, number: int) -> ModelVersion:
    """The version, when the table lets it become champion now: an approved challenger.

    The one check behind :func:`promote` and the canary's pre-flight (``sovml abtest
    --model-version``), so a canary never starts for a version it could not promote.

    Raises:
        GovernanceError: The table refuses (not a challenger, or no approval).
    """
    version = client.get_model_version(name, number)
    approved = record_of(version, APPROVAL_TAG) is not None
    try:
        next_state(state_of(version), Action.PROMOTE, approved=approved)
    except TransitionError as exc:
        raise GovernanceError(f"{_subject(version)}: {exc}") from None
    return version


def promote(
    client: MlflowRest,
    name: str,
    number: int,
    by: str,
    canary_decision: str,
    evidence: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Make an approved challenger champion after the canary promoted it; archive the old one.

    ``evidence`` (JSON scalars and objects: the canary's run, reason and report digest) goes
    into the ``model.promoted`` log entry and the ``promotion`` record.

    Raises:
        GovernanceError: The canary did not promote it, or the table refuses (not a challenger,
            no approval).
    """
    if canary_decision != CANARY_PROMOTED:
        raise GovernanceError(
            f"{name} v{number}: the canary decided {canary_decision!r}; only "
            f"{CANARY_PROMOTED!r} makes a version champion"
        )
    version = promotable(client, name, number)
    extra = dict(evidence or {})
    previous = champion(client, name)
    entry = _log(
        "model.promoted",
        version,
        {
            "by": by,
            "canary_decision": canary_decision,
            "replaces": previous.version if previous else None,
            **extra,
        },
    )
    if previous is not None:
        _move(client, previous, Action.REPLACE)
    _move(client, version, Action.PROMOTE)
    client.set_alias(name, CHAMPION_ALIAS, number)
    record = {
        "by": by,
        "at": entry["time"],
        "canary_decision": canary_decision,
        "evidence": extra,
        "log_entry": entry["hash"],
    }
    _tag_json(client, version, PROMOTION_TAG, record)
    return record


@dataclass(frozen=True)
class CanaryOutcome:
    """What a canary run (``sovml abtest``) decided about a registered version.

    Attributes:
        decision: ``promoted``, ``held`` or ``rolled_back`` (the run's own words).
        reason: Why, as the run stated it.
        run: The canary run's name (its evidence file's stem).
        report: ``{sha256, path}`` of the run's evidence file.
        log_entry: Hash of the canary's own lifecycle-log entry (``model.promoted``,
            ``canary.held`` or ``model.rolled_back`` with the Triton pair as subject).
    """

    decision: str
    reason: str
    run: str
    report: dict[str, Any]
    log_entry: str


CANARY_ACTIONS: dict[str, str] = {
    "promoted": CANARY_PROMOTED,
    "held": "hold",
    "rolled_back": "rollback",
}
"""A canary run's decision -> the canary decision the registry records."""


def apply_canary(
    client: MlflowRest, name: str, number: int, by: str, outcome: CanaryOutcome
) -> State:
    """Move a version as its canary decided; every outcome is recorded on it (``canary`` tag).

    * promoted: champion through :func:`promote` (its approval is required there; the previous
      champion is archived), the canary's run, reason and report as the evidence;
    * rolled back: rejected (terminal) with the canary's reason as the why, so no later manual
      ``sovml model promote`` can make a version the canary refused champion;
    * held: no move; it stays an (approved) challenger for another canary.

    Raises:
        GovernanceError: An unknown decision, no ``by``, or the table refuses the move.
    """
    action = CANARY_ACTIONS.get(outcome.decision)
    if action is None:
        raise GovernanceError(
            f"unknown canary decision {outcome.decision!r} "
            f"(one of {', '.join(sorted(CANARY_ACTIONS))})"
        )
    canary = {
        "decision": outcome.decision,
        "reason": outcome.reason[:1024],
        "run": outcome.run,
        "report": outcome.report,
        "log_entry": outcome.log_entry,
    }
    if problem := Decision(by, "canary", {}).problem():
        raise GovernanceError(problem)
    if outcome.decision == "promoted":
        promote(client, name, number, by, action, {"canary": canary})
    elif outcome.decision == "rolled_back":
        # The run's reason may span lines; a decision's reason is one printable line.
        said = " ".join("".join(c if c.isprintable() else " " for c in outcome.reason).split())
        reason = f"the canary rolled it back: {said}"[:1024]
        reject(client, name, number, Decision(by, reason, {"canary": canary}))
    version = client.get_model_version(name, number)
    _tag_json(client, version, CANARY_TAG, {"by": by, **canary})
    return state_of(version)


def rollback(
    client: MlflowRest, name: str, decision: Decision, restore: int | None = None
) -> dict[str, Any]:
    """Take the champion out of service, saying why; optionally restore an archived version.

    Raises:
        GovernanceError: No champion, no reason, or the version to restore is not an approved
            archived version.
    """
    if problem := decision.problem():
        raise GovernanceError(problem)
    current = champion(client, name)
    if current is None:
        raise GovernanceError(f"{name} has no champion to roll back")
    target = client.get_model_version(name, restore) if restore is not None else None
    if target is not None:
        approved = record_of(target, APPROVAL_TAG) is not None
        try:
            next_state(state_of(target), Action.RESTORE, approved=approved)
        except TransitionError as exc:
            raise GovernanceError(f"{_subject(target)}: {exc}") from None
    entry = _log(
        "model.rolled_back",
        current,
        {"by": decision.by, "reason": decision.reason, "restored": restore, **decision.evidence},
    )
    _move(client, current, Action.ROLLBACK, decision.reason)
    record = {
        "by": decision.by,
        "at": entry["time"],
        "reason": decision.reason,
        "log_entry": entry["hash"],
    }
    _tag_json(client, current, ROLLBACK_TAG, record)
    if target is not None:
        _move(client, target, Action.RESTORE)
        client.set_alias(name, CHAMPION_ALIAS, target.version)
    else:
        client.delete_alias(name, CHAMPION_ALIAS)
    return record


def summary(version: ModelVersion) -> dict[str, Any]:
    """What ``sovml model list|show`` and the export say about one version."""
    approval = record_of(version, APPROVAL_TAG)
    return {
        "state": state_of(version).value,
        "approval": (
            {k: approval.get(k) for k in ("by", "at", "reason", "evidence")} if approval else None
        ),
        "rejection": record_of(version, REJECTION_TAG),
        "rollback": record_of(version, ROLLBACK_TAG),
        "promotion": record_of(version, PROMOTION_TAG),
        "canary": record_of(version, CANARY_TAG),
        "aliases": list(version.aliases),
        "run_id": version.run_id,
        "repository_version": version.tags.get("repository_version", ""),
        "lineage_sha256": version.tags.get("lineage_sha256", ""),
        "gate": gate_evidence(version),
    }


def tuning_trials(client: MlflowRest, version: ModelVersion) -> int:
    """How many tuning trials the version's pipeline run tracked (its child runs); 0 without a
    run."""
    if not version.run_id:
        return 0
    experiment = client.get_run(version.run_id)["info"]["experiment_id"]
    return len(client.child_runs(experiment, version.run_id))


def export(client: MlflowRest) -> dict[str, Any]:
    """The registry's states and approvals in the gate's format (:mod:`policies.approvals`)."""
    models: dict[str, Any] = {}
    for name in client.registered_models():
        versions = {}
        for version in client.model_versions(name):
            item = summary(version)
            versions[str(version.version)] = {
                k: item[k]
                for k in ("state", "approval", "run_id", "repository_version", "lineage_sha256")
            }
        models[name] = {"served_name": served_name(name), "versions": versions}
    return {"format": EXPORT_FORMAT, "models": models}
