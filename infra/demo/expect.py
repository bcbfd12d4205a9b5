"""The demo's expected outcomes (:class:`Expect`): each checks a step from its exit status and the
evidence it wrote (JSON files, ``--json`` answers), never from its coloured terminal text.

Also what the registry steps read: the version the demo's run registered (from the demo's
lifecycle log) and ``sovml model show --json``'s answer.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

Check = Callable[[subprocess.CompletedProcess[str]], tuple[bool, str]]
"""A step's outcome check: (as expected, the evidence in a few words)."""


@dataclass(frozen=True)
class Expect:
    """A step's expected outcome: in words for the table, and how to check it."""

    what: str
    check: Check


def exits(code: int, *files: Path) -> Expect:
    """Exit status ``code`` and, when given, these files written."""
    what = f"exit {code}" + (f", writes {', '.join(f.name for f in files)}" if files else "")

    def check(proc: subprocess.CompletedProcess[str]) -> tuple[bool, str]:
        missing = [str(f) for f in files if not f.exists()]
        ok = proc.returncode == code and not missing
        return ok, f"exit {proc.returncode}" + (
            f"; missing {', '.join(missing)}" if missing else ""
        )

    return Expect(what, check)


def bench_ok(report: Path) -> Expect:
    """Exit 0 and a load report whose every configuration completed without errors."""

    def check(proc: subprocess.CompletedProcess[str]) -> tuple[bool, str]:
        data = read_json(report)
        ok = proc.returncode == 0 and data.get("ok") is True
        return ok, f"exit {proc.returncode}; report ok: {data.get('ok')}"

    return Expect("every request answered, 0 errors (serve.json ok)", check)


def canary(evidence: Path, decision: str, family: str | None = None) -> Expect:
    """The canary's evidence file says ``decision``, for ``family`` alone when given."""
    what = f"decision {decision}" + (f", by the {family} test" if family else "")

    def check(proc: subprocess.CompletedProcess[str]) -> tuple[bool, str]:
        data = read_json(evidence)
        if not data:
            return False, f"exit {proc.returncode}; no evidence at {evidence}"
        families = list(data.get("reason_families", []))
        ok = data.get("decision") == decision and (family is None or families == [family])
        return ok, (
            f"{data.get('decision')} ({', '.join(families) or 'every guard passed'}) after "
            f"{data.get('total_requests')} requests, {data.get('seconds', 0):.1f}s: "
            f"{data.get('reason')} [{evidence.name}]"
        )

    return Expect(what, check)


def read_json(path: Path) -> dict:
    return json.loads(path.read_text()) if path.exists() else {}


MODEL = "credit_risk"
"""The registered model the demo's pipeline run registers and the steps move."""


def registry_version(log: Path) -> int:
    """The registry version the demo's pipeline run registered, from its ``pipeline.run.finished``
    entry in the demo's lifecycle log; 0 (refused by every ``sovml model`` command) when none."""
    if not log.is_file():
        return 0
    found = 0
    for line in log.read_text().splitlines():
        entry = json.loads(line) if line.strip() else {}
        if entry.get("event") == "pipeline.run.finished":
            found = int(entry.get("details", {}).get("registry_version") or 0)
    return found


def shown_version(proc: subprocess.CompletedProcess[str]) -> dict:
    """``sovml model show --json``'s answer, empty when it gave none."""
    try:
        body = json.loads(proc.stdout) if proc.returncode == 0 else {}
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def registry_state(state: str, **records: str) -> Expect:
    """Exit 0, and ``sovml model show --json`` says ``state``; each of ``records`` (a record and
    the field ``by`` or ``decision`` it must hold, e.g. ``approval="by=demo"``) is present."""
    wanted = ", ".join([f"state {state}", *(f"{k} {v}" for k, v in records.items())])

    def check(proc: subprocess.CompletedProcess[str]) -> tuple[bool, str]:
        body = shown_version(proc)
        if not body:
            return False, f"exit {proc.returncode}, no version shown"
        ok = body.get("state") == state
        for record, pair in records.items():
            key, value = pair.split("=", 1)
            ok = ok and str((body.get(record) or {}).get(key)) == value
        return ok, registry_figure(body)

    return Expect(f"exit 0, {wanted}", check)


def registry_figure(body: dict) -> str:
    """A version as the table shows it: state, gate, trials, approval, canary."""
    gate = body.get("gate") or {}
    metrics = gate.get("metrics") or {}
    parts = [
        f"{body.get('model')} v{body.get('version')} {body.get('state')}",
        f"gate {'passed' if gate.get('passed') else 'not passed'}"
        + (f" (AUC {metrics['auc']:.3f})" if isinstance(metrics.get("auc"), float) else ""),
        f"{body.get('tuning_trials', 0)} tuning trials tracked",
    ]
    if approval := body.get("approval"):
        parts.append(f"approved by {approval.get('by')}")
    if canary := body.get("canary"):
        parts.append(f"canary {canary.get('decision')} ({canary.get('run')})")
    return "; ".join(parts)


def tuned_challenger() -> Expect:
    """Exit 0, the version a challenger that passed the gate, with at least one tuning trial."""
    inner = registry_state("challenger")

    def check(proc: subprocess.CompletedProcess[str]) -> tuple[bool, str]:
        ok, figure = inner.check(proc)
        body = shown_version(proc)
        passed = (body.get("gate") or {}).get("passed") is True
        return ok and passed and int(body.get("tuning_trials", 0)) > 0, figure

    return Expect("exit 0, state challenger, gate passed, its tuning trials tracked", check)


def canary_moved(evidence: Path) -> Expect:
    """Exit 0 (the registry move succeeded) and the canary's evidence says promoted."""
    inner = canary(evidence, "promoted")

    def check(proc: subprocess.CompletedProcess[str]) -> tuple[bool, str]:
        ok, figure = inner.check(proc)
        return ok and proc.returncode == 0, f"exit {proc.returncode}; {figure}"

    return Expect("exit 0, decision promoted, the registry version moved", check)


def audit_intact(log: Path, events: tuple[str, ...]) -> Expect:
    """Exit 0, and the log itself holds every event in ``events`` (read from the file)."""

    def check(proc: subprocess.CompletedProcess[str]) -> tuple[bool, str]:
        if proc.returncode != 0:
            return False, f"exit {proc.returncode}"
        if not log.is_file():
            return False, f"no log at {log}"
        seen = [json.loads(line)["event"] for line in log.read_text().splitlines() if line]
        missing = [e for e in events if e not in seen]
        if missing:
            return False, f"chain intact but no {', '.join(missing)} among {len(seen)} entries"
        return True, f"{len(seen)} entries, chain intact, every expected event present"

    return Expect(f"exit 0 and the events {', '.join(events)}", check)


def audit_broken(report: Path, seq: int, reason: str) -> Expect:
    """Exit 1, and the JSON report names entry ``seq`` as the first break, for ``reason``."""

    def check(proc: subprocess.CompletedProcess[str]) -> tuple[bool, str]:
        try:
            broken = json.loads(proc.stdout).get("broken") or {}
        except ValueError:
            return False, f"exit {proc.returncode}, no JSON report"
        found = f"exit {proc.returncode}, first break {broken.get('seq')} ({broken.get('reason')})"
        ok = proc.returncode == 1 and (broken.get("seq"), broken.get("reason")) == (seq, reason)
        return ok, found

    return Expect(f"exit 1 naming entry {seq} as {reason}", check)


def evidence_ok(pack: Path) -> Expect:
    """Exit 0, the pack written, no failed control."""

    def check(proc: subprocess.CompletedProcess[str]) -> tuple[bool, str]:
        if proc.returncode != 0 or not pack.is_file():
            return (
                False,
                f"exit {proc.returncode}, pack {'written' if pack.is_file() else 'missing'}",
            )
        counts = read_json(pack)["summary"]["all"]
        figure = (
            f"{counts['controls']} controls: {counts['satisfied']} satisfied, "
            f"{counts['failed']} failed, {counts['gap']} gaps"
        )
        return counts["failed"] == 0 and counts["satisfied"] > 0, figure

    return Expect("exit 0, evidence.json + evidence.html, no failed control", check)
