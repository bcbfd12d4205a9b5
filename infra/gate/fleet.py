"""The fleet gate: many stacks through ``sovml check`` in one command, unchanged ones skipped.

Per stack the verdict is the one ``infra.gate.run.run_gate`` gives; only the work is shared:

* **Skip by fingerprint.** A stack is skipped when its record's fingerprint still holds
  (``infra.synth.fingerprint.stale_reason``, file hashes shared across the run) and its last
  report passed under the same *gate fingerprint*: that record digest plus the gate's own inputs
  (``gate_inputs``: the gate code, the suppressions, the custom checkov checks, checkov's and
  the schema validator's versions, whether checkov ran). The verdict is a function of those, so
  the last report stands, passed or failed (a failed one is shown again, and fails the run
  again); a report edited since, or one where a tool did not run, is never reused.
* **Synth and rules in worker processes.** Each stack is synthesized in a fresh Pulumi runtime
  (``set_mocks`` and a new ``runpy`` namespace per run, as ``sovml synth`` does), by a pool of
  ``jobs`` processes that each pay the import start-up once, not once per stack.
* **checkov started once per worker**, not twice per stack (``infra.gate.fleet_checkov``): long-
  lived checkov processes run each stack's own scans in-process, read by the per-stack parser.

Reports per stack are written exactly as ``run_gate`` writes them; beside each, ``gate.json``
holds the gate fingerprint the report is for. The fleet summary is written by
``infra.gate.fleet_reports``.
"""

from __future__ import annotations

import hashlib
import importlib.metadata as metadata
import json
import multiprocessing
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from infra.config.problems import ConfigProblem
from infra.config.stackfile import ROOT, STACKS, stack_file
from infra.gate import checkov as checkov_runner
from infra.gate import fleet_checkov
from infra.gate.checkov import CheckovReport
from infra.gate.findings import GateReport, Suppression
from infra.gate.reports import to_json, write_reports
from infra.gate.run import Prepared, apply_checkov, prepare_gate
from infra.synth import batch_gc
from infra.synth.fingerprint import stale_reason
from infra.synth.fresh import FreshRecord, record_path
from infra.synth.runner import BUILD, PROGRAM, SynthError
from policies.approvals import EXPORT_PATH

GATE_FILE = "gate.json"
"""Beside a stack's reports: the gate fingerprint they are for and the digest of report.json."""
GATE_SOURCES = (ROOT / "infra" / "gate", ROOT / "policies" / "checkov")
"""Code that turns a record into a verdict, beyond the record's own fingerprint."""
SUPPRESSIONS_FILE = ROOT / "policies" / "suppressions.yaml"
CHECKED, SKIPPED, ERROR = "checked", "skipped", "error"


@dataclass
class StackOutcome:
    """What the fleet gate did with one stack."""

    stack: str
    status: str
    """``checked``, ``skipped`` (its last report stands) or ``error`` (not judged)."""
    report: GateReport | None = None
    """The stack's report (for a skipped stack, the last one, read back)."""
    reason: str = ""
    """For ``skipped`` why that was safe; for ``error`` the one-line cause."""
    problems: list[ConfigProblem] = field(default_factory=list)
    """Config problems, when the stack file is why it could not be synthesized."""
    program_error: bool = False
    """True when the ``--program`` under test raised (bad input, not an internal error)."""


@dataclass
class FleetResult:
    """Every stack's outcome plus the time each phase took."""

    outcomes: list[StackOutcome]
    gate_inputs: str
    """The digest of the gate's own inputs (``gate_inputs``)."""
    seconds: dict[str, float] = field(default_factory=dict)
    """``plan`` (skip decisions), ``prepare`` (synth, rules, schemas), ``checkov``, ``total``."""


# --- fingerprints -----------------------------------------------------------------------------


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def checkov_version(checkov: Path = checkov_runner.CHECKOV) -> str:
    """checkov's installed version, read from its venv's metadata (starting it costs seconds)."""
    site = sorted(checkov.parent.parent.glob("lib/python*/site-packages/checkov-*.dist-info"))
    if not site:
        return "absent"
    return site[-1].name[len("checkov-") : -len(".dist-info")]


def gate_inputs(checkov: bool, suppressions_file: Path = SUPPRESSIONS_FILE) -> str:
    """Digest of what the gate adds to a record: its code, suppressions, the registry export,
    tools and their versions."""
    parts: dict[str, Any] = {"checkov": checkov_version() if checkov else "not run"}
    for folder in GATE_SOURCES:
        for path in sorted(folder.rglob("*.py")):
            if "__pycache__" not in path.parts:
                parts[str(path.relative_to(ROOT))] = _sha(path.read_bytes())
    parts["suppressions"] = (
        _sha(suppressions_file.read_bytes()) if suppressions_file.is_file() else None
    )
    # The reviewed registry export the served model versions are judged against (SOV-MOD-001):
    # a new approval changes verdicts without changing any record.
    export = ROOT / EXPORT_PATH
    parts["registry-export"] = _sha(export.read_bytes()) if export.is_file() else None
    try:
        parts["kubernetes-validate"] = metadata.version("kubernetes-validate")
    except metadata.PackageNotFoundError:
        parts["kubernetes-validate"] = None
    return _sha(json.dumps(parts, sort_keys=True).encode())


def gate_fingerprint(record_digest: str, inputs: str) -> str:
    """The fingerprint a stack's report is for: its record's digest and the gate's inputs."""
    return _sha(f"{record_digest}\0{inputs}".encode())


def _write_gate_file(out: Path, fingerprint: str, record: Mapping[str, Any]) -> None:
    """``gate.json``: the gate fingerprint, the report's hash, and the judged record's fingerprint
    (``record``), from which the next run decides without reading the record itself."""
    report = (out / "report.json").read_bytes()
    doc = {"fingerprint": fingerprint, "report": _sha(report), "record": dict(record)}
    (out / GATE_FILE).write_text(json.dumps(doc, indent=2) + "\n")


def _read_gate(out: Path) -> dict[str, Any] | None:
    """``gate.json`` of the stack folder ``out``; None when it is missing or not a JSON object
    (no report can then stand)."""
    try:
        gate = json.loads((out / GATE_FILE).read_text())
    except (OSError, ValueError):
        return None
    return gate if isinstance(gate, dict) else None


def _judged_fingerprint(gate: Mapping[str, Any], record_file: Path, inputs: str) -> dict | None:
    """The fingerprint of the record the last report judged, as ``gate`` (``gate.json``) keeps
    it, when it is that report's (its digest and ``inputs`` give the gate fingerprint written
    beside it) and the record (``record_file``) is still on disk; None otherwise (the record is
    then read, as before ``gate.json`` kept it). Whether it still holds is ``stale_reason``'s
    question, as for the record's own copy."""
    record = gate.get("record")
    if not isinstance(record, dict) or not record_file.is_file():
        return None
    if gate.get("fingerprint") != gate_fingerprint(str(record.get("digest")), inputs):
        return None
    return record


def _last_report(out: Path, gate: Mapping[str, Any], fingerprint: str) -> dict[str, Any] | None:
    """The stack's last report when ``gate`` says it was written for ``fingerprint`` by a gate
    whose tools all ran; else None. Its verdict, pass or fail, is then the verdict a new run
    would give."""
    if gate.get("fingerprint") != fingerprint:
        return None
    try:
        report_bytes = (out / "report.json").read_bytes()
        doc = json.loads(report_bytes)
    except (OSError, ValueError):
        return None
    if gate.get("report") != _sha(report_bytes):  # edited since the gate wrote it
        return None
    if not isinstance(doc, dict) or not isinstance(doc.get("ok"), bool) or doc.get("errors"):
        return None  # a tool did not run (checkov missing, timed out): judge again
    return doc


def _suppression(s: dict[str, Any]) -> Suppression:
    ids, stacks, images = (tuple(s.get(k, ())) for k in ("ids", "stacks", "images"))
    return Suppression(ids, s["resource"], s["justification"], stacks, images)


def report_from_json(doc: dict[str, Any], record: str = "") -> GateReport:
    """A ``GateReport`` read back from its ``report.json`` form (``reports.to_json``)."""
    from infra.gate.findings import Finding

    return GateReport(
        stack=str(doc["stack"]),
        findings=[Finding(**f) for f in doc.get("findings", [])],
        rules_evaluated=int(doc.get("rules", {}).get("evaluated", 0)),
        resources=int(doc.get("resources", 0)),
        schema_validated=int(doc.get("kubernetesSchema", {}).get("validated", 0)),
        schema_skipped=list(doc.get("kubernetesSchema", {}).get("skipped", [])),
        checkov=dict(doc.get("checkov", {})),
        suppressions_used=[_suppression(s) for s in doc.get("suppressions", [])],
        seconds=float(doc.get("seconds", 0.0)),
        errors=list(doc.get("errors", [])),
        record=record,
    )


def plan_skips(
    stacks: Sequence[str],
    *,
    stacks_dir: Path,
    build_dir: Path,
    program: Path,
    inputs: str,
) -> dict[str, StackOutcome]:
    """The stacks that may be skipped, each with its last report and the reason it stands."""
    memo: dict[str, str | None] = {}
    skipped: dict[str, StackOutcome] = {}
    for stack in stacks:
        path = record_path(stack, build_dir)
        gate = _read_gate(build_dir / stack)
        if gate is None:
            continue
        judged = _judged_fingerprint(gate, path, inputs)
        try:
            # The fingerprint alone decides; the whole record is read only for an older gate.json.
            record = (
                {"stack": stack, "fingerprint": judged}
                if judged is not None
                else json.loads(path.read_text())
            )
        except (OSError, ValueError):
            continue
        if not isinstance(record, dict) or stale_reason(
            record, stack_file(stack, stacks_dir), program, memo
        ):
            continue
        fingerprint = gate_fingerprint(str(record["fingerprint"]["digest"]), inputs)
        doc = _last_report(build_dir / stack, gate, fingerprint)
        if doc is None:
            continue
        fp = record["fingerprint"]
        fresh = FreshRecord(
            record, path, False,
            f"fingerprint {fp['digest'][:12]} unchanged ({len(fp['files'])} files, the stack "
            f"file, {len(fp['versions'])} versions, the policy code)", 0.0,
        )  # fmt: skip
        verdict = "passed" if doc["ok"] else "FAILED"
        reason = (
            f"gate fingerprint {fingerprint[:12]} unchanged: its last report ({verdict}) stands"
        )
        skipped[stack] = StackOutcome(
            stack, SKIPPED, report_from_json(doc, fresh.describe()), reason
        )
    return skipped


# --- synth, rules, schemas --------------------------------------------------------------------


def raised_by_program(exc: BaseException, program: Path) -> bool:
    """Whether ``exc`` came out of ``program``'s own code (a frame of it is on the traceback).

    Only for a ``--program`` other than the platform's: its failure is the caller's input. An
    exception out of ``infra/__main__.py`` is ours, and stays an internal error.
    """
    if program.resolve() == PROGRAM.resolve():
        return False
    target = str(program.resolve())
    tb = exc.__traceback__
    while tb is not None:
        if str(Path(tb.tb_frame.f_code.co_filename).resolve()) == target:
            return True
        tb = tb.tb_next
    return False


def _prepare_one(
    stack: str,
    stacks_dir: Path,
    build_dir: Path,
    suppressions: list[Suppression],
    program: Path,
) -> Prepared | StackOutcome:
    """One stack's synth, rules and schemas; a stack that cannot be judged becomes an outcome.

    Runs in a worker process: what it returns crosses a pipe, so errors are returned as data
    (``StackOutcome``) rather than raised, except internal ones, which the caller re-raises.
    """
    try:
        return prepare_gate(
            stack,
            stacks_dir=stacks_dir,
            build_dir=build_dir,
            suppressions=suppressions,
            program=program,
        )
    except SynthError as exc:
        return StackOutcome(stack, ERROR, reason=str(exc), problems=list(exc.problems))
    except Exception as exc:
        if not raised_by_program(exc, program):
            raise
        message = f"--program {program} raised {type(exc).__name__}: {exc}"
        return StackOutcome(stack, ERROR, reason=message, program_error=True)
    finally:
        batch_gc.settle()  # in a pool worker only: this process's collector is left alone


def _prepare_all(
    stacks: Sequence[str],
    jobs: int,
    args: tuple[Path, Path, list[Suppression], Path],
) -> list[Prepared | StackOutcome]:
    """``_prepare_one`` for every stack: in this process for one job or one stack, else a pool.

    Workers are spawned, not forked: the Pulumi SDK keeps event loops and threads that a fork
    would copy half-way. Each worker imports once and synthesizes many stacks in turn, its
    garbage collector tuned for that (``infra.synth.batch_gc``).
    """
    if jobs <= 1 or len(stacks) <= 1:
        return [_prepare_one(stack, *args) for stack in stacks]
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(
        max_workers=min(jobs, len(stacks)), mp_context=ctx, initializer=batch_gc.start
    ) as pool:
        futures = [pool.submit(_prepare_one, stack, *args) for stack in stacks]
        return [f.result() for f in futures]


# --- the whole fleet --------------------------------------------------------------------------


def run_fleet(
    stacks: Sequence[str],
    *,
    stacks_dir: Path = STACKS,
    build_dir: Path = BUILD,
    checkov: bool = True,
    suppressions: list[Suppression],
    program: Path = PROGRAM,
    jobs: int = 2,
    force: bool = False,
    progress: Callable[[str], None] | None = None,
) -> FleetResult:
    """Judge ``stacks``: skip the unchanged, prepare the rest in ``jobs`` processes, run checkov
    on each in long-lived checkov workers, and write every checked stack's reports and
    ``gate.json``.

    ``force`` checks every stack even where its fingerprint holds. Outcomes keep ``stacks``'
    order. Raises what an internal error raises (never for a stack's own bad input).
    """
    say = progress or (lambda _: None)
    started = time.perf_counter()
    inputs = gate_inputs(checkov)
    skipped = (
        {}
        if force
        else plan_skips(
            stacks, stacks_dir=stacks_dir, build_dir=build_dir, program=program, inputs=inputs
        )
    )
    planned = time.perf_counter()
    todo = [s for s in stacks if s not in skipped]
    say(f"{len(todo)} to check, {len(skipped)} unchanged and skipped")
    results = _prepare_all(todo, jobs, (stacks_dir, build_dir, suppressions, program))
    prepared_at = time.perf_counter()
    ready = [r for r in results if isinstance(r, Prepared)]
    if checkov and ready:
        say(f"checkov over {len(ready)} stacks")
        by_name = {p.report.stack: p for p in ready}
        judged: set[str] = set()

        def judge(stack: str, scan: CheckovReport | str) -> None:
            # Each stack's findings are made as soon as its scans are done, beside the scans of
            # the others (its own report only: the calls share nothing else).
            judged.add(stack)
            report = by_name[stack].report
            if isinstance(scan, str):
                report.errors.append(scan)
            else:
                apply_checkov(report, scan, build_dir / stack, suppressions)

        scans = fleet_checkov.scan_fleet(build_dir, list(by_name), on_done=judge)
        for stack in by_name.keys() - judged:  # never left unjudged, whatever path scan_fleet took
            judge(stack, scans[stack])
        share = (time.perf_counter() - prepared_at) / len(ready)
        for p in ready:
            # The shared checkov time is charged evenly to the stacks it judged.
            p.report.seconds += share
    checked_at = time.perf_counter()
    by_stack: dict[str, StackOutcome] = dict(skipped)
    for r in results:
        if isinstance(r, StackOutcome):
            by_stack[r.stack] = r
            continue
        out = build_dir / r.report.stack
        write_reports(r.report, out)
        _write_gate_file(out, gate_fingerprint(r.digest, inputs), r.fingerprint)
        by_stack[r.report.stack] = StackOutcome(r.report.stack, CHECKED, r.report)
    done = time.perf_counter()
    return FleetResult(
        [by_stack[s] for s in stacks],
        inputs,
        {
            "plan": planned - started,
            "prepare": prepared_at - planned,
            "checkov": checked_at - prepared_at,
            "total": done - started,
        },
    )


def stack_doc(outcome: StackOutcome) -> dict[str, Any]:
    """One stack's entry of the fleet report: status, verdict, reason and its report's JSON."""
    report = outcome.report
    return {
        "stack": outcome.stack,
        "status": outcome.status,
        "ok": bool(report is not None and report.ok),
        "reason": outcome.reason,
        "report": to_json(report) if report is not None else None,
    }
