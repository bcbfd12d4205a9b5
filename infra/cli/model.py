"""``sovml model``: the registry's versions, their lifecycle states and approvals (MLflow).

Registered in ``infra/cli/app.py`` with ``app.add_typer(model_app, name="model")``::

    sovml model list [--model NAME] [--json]
    sovml model show MODEL VERSION [--json]
    sovml model approve MODEL VERSION --by NAME --reason TEXT
                        [--canary-decision promote|hold|rollback] [--evidence FILE]
    sovml model reject MODEL VERSION --by NAME --reason TEXT [--evidence FILE]
    sovml model promote MODEL VERSION --by NAME --canary-decision promote
    sovml model rollback MODEL --by NAME --reason TEXT [--restore VERSION]
    sovml model export [--out registry/approvals.json]

``sovml abtest --model-version MODEL:VERSION --by NAME`` moves a version as its canary decided
through :func:`canary_registry` (the same check as ``promote``, before the canary starts).

Every command talks to ``$SOVML_TRACKING_URI`` when set, else starts the embedded MLflow server
on ``build/mlflow`` for its duration (:mod:`pipelines.registry.server`). The moves and their
records are :mod:`pipelines.registry.governance`'s; the states are the one table of
:mod:`policies.model_lifecycle`.

Exit codes as in :mod:`infra.cli.common`: 0 done; 2 bad input (a model or version the registry
does not hold, a move the lifecycle table refuses, a missing ``--by``/``--reason``, an evidence
file that cannot be read, an output path that cannot be written); 3 the tracking server cannot
be reached or started, the lifecycle log cannot be written, or anything unexpected. Never 1.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from infra.cli.common import EXIT_BAD_INPUT, EXIT_INTERNAL, consoles, fail
from infra.config.stackfile import ROOT

model_app = typer.Typer(
    help="The model registry: versions, lifecycle states, approvals (MLflow).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

ModelArg = Annotated[str, typer.Argument(help="Registered model name, e.g. credit_risk.")]
VersionArg = Annotated[int, typer.Argument(help="Registry version number.", min=1)]
ByOpt = Annotated[str, typer.Option("--by", help="Who decides (a name or an account).")]
ReasonOpt = Annotated[str, typer.Option("--reason", help="Why, in one line.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]
EvidenceOpt = Annotated[
    Path | None,
    typer.Option(
        "--evidence",
        help="A report the decision rests on (its SHA-256 and path go into the record).",
    ),
]
CANARY_DECISIONS = ("promote", "hold", "rollback")
"""What ``sovml abtest`` (and the cluster's rollout analysis) can decide."""
DEFAULT_EXPORT = ROOT / "registry" / "approvals.json"
"""The reviewed export the gate reads (:data:`policies.approvals.EXPORT_PATH`)."""


@contextlib.contextmanager
def registry_client() -> Iterator[Any]:
    """A client of the tracking server; its failures and the log's become exit 3 or 2.

    Also ``sovml abtest --model-version``'s way to the registry (one error mapping).
    """
    from pipelines.audit.log import AuditError
    from pipelines.registry.governance import GovernanceError
    from pipelines.registry.mlflow_rest import MlflowError, MlflowRest
    from pipelines.registry.server import TrackingServerError, tracking_server

    _, err = consoles()
    try:
        with tracking_server() as url:
            yield MlflowRest(url)
    except TrackingServerError as exc:
        fail(err, str(exc), EXIT_INTERNAL)
    except GovernanceError as exc:
        fail(err, str(exc), EXIT_BAD_INPUT)
    except AuditError as exc:
        fail(err, f"the decision was not recorded: {exc}", EXIT_INTERNAL)
    except MlflowError as exc:
        missing = exc.code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE")
        fail(err, str(exc), EXIT_BAD_INPUT if missing else EXIT_INTERNAL)


MODEL_VERSION = re.compile(r"^([A-Za-z0-9][A-Za-z0-9_.-]{0,127}):([1-9][0-9]{0,8})$")
"""``--model-version``: a registered model name and a version number."""


def canary_target(
    err: Console, model_version: str | None, by: str | None
) -> tuple[str, int] | None:
    """(model, version) of ``--model-version``, None without it; exit 2 when malformed or when
    ``--by`` is missing (or given alone)."""
    if model_version is None:
        if by is not None:
            fail(err, "--by names who moves a registry version: it goes with --model-version")
        return None
    match = MODEL_VERSION.match(model_version)
    if match is None:
        fail(
            err,
            f"--model-version must be MODEL:VERSION (e.g. credit_risk:3), not {model_version!r}",
        )
    if by is None or not by.strip() or not by.isprintable():
        fail(err, "--model-version needs --by (who runs the canary, one printable line)")
    return match.group(1), int(match.group(2))


@contextlib.contextmanager
def canary_registry(
    model_version: str | None, by: str | None
) -> Iterator[Callable[[Any, dict[str, Any]], str | None]]:
    """``sovml abtest --model-version``: the version checked before the canary starts, then a
    function moving it as the canary decided (it returns what it did, or None without one).

    The check is :func:`pipelines.registry.governance.promotable`, the same one
    ``sovml model promote`` passes: a version the table could not promote (no approval, not a
    challenger) is refused with exit 2 before any model is built or served.
    """
    from pipelines.registry.governance import promotable

    target = canary_target(consoles()[1], model_version, by)
    if target is None or by is None:
        yield lambda result, entry: None
        return
    with registry_client() as client:
        promotable(client, *target)

        def move(result: Any, entry: dict[str, Any]) -> str:
            state = canary_moves_version(client, target, by, result, entry)
            return f"{target[0]} v{target[1]} is {state}"

        yield move


def canary_moves_version(
    client: Any, target: tuple[str, int], by: str, result: Any, entry: dict[str, Any]
) -> str:
    """The registry version moved as the canary decided, the evidence file as its report."""
    from pipelines.registry.governance import CanaryOutcome, apply_canary

    evidence = Path(result.evidence_path)
    outcome = CanaryOutcome(
        decision=result.decision,
        reason=str(result.reason),
        run=str(result.run),
        report={"sha256": hashlib.sha256(evidence.read_bytes()).hexdigest(), "path": str(evidence)},
        log_entry=str(entry.get("hash", "")),
    )
    return apply_canary(client, *target, by, outcome).value


def _evidence(path: Path | None, canary_decision: str | None) -> dict[str, Any]:
    """Extra evidence of a decision: the canary's decision, a report's digest and path."""
    _, err = consoles()
    evidence: dict[str, Any] = {}
    if canary_decision is not None:
        if canary_decision not in CANARY_DECISIONS:
            fail(err, f"--canary-decision must be one of {', '.join(CANARY_DECISIONS)}")
        evidence["canary_decision"] = canary_decision
    if path is not None:
        try:
            data = path.read_bytes()
        except OSError as exc:
            fail(err, f"--evidence {path}: {exc.strerror or exc}")
        evidence["report"] = {"sha256": hashlib.sha256(data).hexdigest(), "path": str(path)}
    return evidence


def _decision(by: str, reason: str, evidence: dict[str, Any]) -> Any:
    from pipelines.registry.governance import Decision

    decision = Decision(by=by, reason=reason, evidence=evidence)
    if problem := decision.problem():
        fail(consoles()[1], problem)
    return decision


def _approval_cell(item: dict[str, Any]) -> str:
    approval = item.get("approval")
    return f"{approval['by']} at {approval['at']}" if approval else "-"


@model_app.command("list")
def list_command(
    model: Annotated[str | None, typer.Option(help="Only this registered model.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Every registered version with its lifecycle state and approval."""
    from pipelines.registry.governance import summary

    out, _ = consoles()
    with registry_client() as client:
        names = [model] if model else client.registered_models()
        rows = [(n, v.version, summary(v)) for n in names for v in client.model_versions(n)]
    if as_json:
        body = [{"model": n, "version": v, **item} for n, v, item in rows]
        out.print_json(json.dumps(body))
        return
    table = Table(title="Model registry")
    for column in ("model", "version", "state", "aliases", "approved", "run"):
        table.add_column(column)
    for name, number, item in rows:
        table.add_row(
            name,
            str(number),
            item["state"],
            ",".join(item["aliases"]) or "-",
            _approval_cell(item),
            item["run_id"],
        )
    out.print(table)
    if not rows:
        out.print("no registered versions")


@model_app.command("show")
def show_command(model: ModelArg, version: VersionArg, as_json: JsonOpt = False) -> None:
    """One version: state, approval, rejection, promotion, canary, rollback, the gate's
    evidence and how many tuning trials its run tracked."""
    from pipelines.registry.governance import summary, tuning_trials

    out, _ = consoles()
    with registry_client() as client:
        found = client.get_model_version(model, version)
        body = {"model": model, "version": version, **summary(found)}
        body["tuning_trials"] = tuning_trials(client, found)
    if as_json:
        out.print_json(json.dumps(body))
        return
    for key, value in body.items():
        shown = json.dumps(value, sort_keys=True) if isinstance(value, (dict, list)) else value
        out.print(f"{key}: {shown if shown not in (None, '') else '-'}", soft_wrap=True)


@model_app.command("approve")
def approve_command(
    model: ModelArg,
    version: VersionArg,
    by: ByOpt = "",
    reason: ReasonOpt = "",
    canary_decision: Annotated[
        str | None, typer.Option(help="The canary's decision, when one ran: promote|hold|rollback.")
    ] = None,
    evidence: EvidenceOpt = None,
) -> None:
    """Approve a challenger for production: the approval record (tag and lifecycle log)."""
    from pipelines.registry import governance

    decision = _decision(by, reason, _evidence(evidence, canary_decision))
    out, _ = consoles()
    with registry_client() as client:
        record = governance.approve(client, model, version, decision)
    out.print(f"approved {model} v{version} by {record['by']} at {record['at']}", soft_wrap=True)


@model_app.command("reject")
def reject_command(
    model: ModelArg,
    version: VersionArg,
    by: ByOpt = "",
    reason: ReasonOpt = "",
    evidence: EvidenceOpt = None,
) -> None:
    """Reject a candidate or challenger (terminal): the rejection record and its log entry."""
    from pipelines.registry import governance

    decision = _decision(by, reason, _evidence(evidence, None))
    out, _ = consoles()
    with registry_client() as client:
        record = governance.reject(client, model, version, decision)
    out.print(f"rejected {model} v{version} by {record['by']} at {record['at']}", soft_wrap=True)


@model_app.command("promote")
def promote_command(
    model: ModelArg,
    version: VersionArg,
    by: ByOpt = "",
    canary_decision: Annotated[
        str, typer.Option(help="The canary's decision; only 'promote' makes a champion.")
    ] = "",
) -> None:
    """Make an approved challenger champion after its canary promoted it (archives the old)."""
    from pipelines.registry import governance

    _decision(by, "promotion", {})
    _evidence(None, canary_decision or None)
    out, _ = consoles()
    with registry_client() as client:
        governance.promote(client, model, version, by, canary_decision)
    out.print(f"{model} v{version} is champion", soft_wrap=True)


@model_app.command("rollback")
def rollback_command(
    model: ModelArg,
    by: ByOpt = "",
    reason: ReasonOpt = "",
    restore: Annotated[
        int | None, typer.Option(help="An approved, archived version to serve again.", min=1)
    ] = None,
) -> None:
    """Take the champion out of service, saying why; optionally restore an earlier version."""
    from pipelines.registry import governance

    decision = _decision(by, reason, {})
    out, _ = consoles()
    with registry_client() as client:
        governance.rollback(client, model, decision, restore)
    restored = f"; v{restore} is champion" if restore else "; no champion"
    out.print(f"rolled back {model}{restored}", soft_wrap=True)


@model_app.command("export")
def export_command(
    out_path: Annotated[
        Path, typer.Option("--out", help="Where to write the export the gate reads.")
    ] = DEFAULT_EXPORT,
) -> None:
    """Write the registry's states and approvals for the gate (review and commit the file)."""
    from pipelines.registry import governance

    out, err = consoles()
    with registry_client() as client:
        body = governance.export(client)
    text = json.dumps(body, indent=2, sort_keys=True) + "\n"
    try:
        out_path.parent.mkdir(parents=True, exist_ok=True)
        out_path.write_text(text)
    except OSError as exc:
        fail(err, f"--out {out_path}: {exc.strerror or exc}")
    versions = sum(len(m["versions"]) for m in body["models"].values())
    out.print(f"exported {versions} version(s) to {out_path}", soft_wrap=True)
