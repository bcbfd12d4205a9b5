"""What the gate finds: findings, the reviewed suppressions that accept some, one stack's report.

Suppressions live in one reviewed file, ``policies/suppressions.yaml``; every entry names the
check ids it covers, a resource glob, optionally the stacks, and a justification. They are
applied by the gate, not by the tools, so that a suppressed failure stays visible in every
report together with its reason.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from infra.config.stackfile import ROOT

SUPPRESSIONS = ROOT / "policies" / "suppressions.yaml"
"""The one reviewed file of exceptions to the gate."""
MAX_SUPPRESSIONS = 10
"""At most this many entries: each one is an exception someone has to keep reviewing."""

FAILED, SUPPRESSED = "failed", "suppressed"


@dataclass(frozen=True)
class Suppression:
    """A reviewed exception: check ids on resources matching a glob, with its reason."""

    ids: tuple[str, ...]
    """Check ids covered (ours or checkov's); an id may be a glob (``CKV2_AWS_*``)."""
    resource: str
    """Glob over the resource: Terraform address or Kubernetes object for checkov, URN for ours."""
    justification: str
    """Why the exception is right."""
    stacks: tuple[str, ...] = ()
    """Stacks the entry applies to; empty means every stack."""

    def matches(self, check_id: str, resource: str, stack: str = "") -> bool:
        """True when this entry covers ``check_id`` on ``resource`` in ``stack``."""
        return (
            any(fnmatch.fnmatchcase(check_id, pattern) for pattern in self.ids)
            and fnmatch.fnmatchcase(resource, self.resource)
            and (not self.stacks or stack in self.stacks)
        )


def find_suppression(
    suppressions: list[Suppression], check_id: str, resource: str, stack: str = ""
) -> Suppression | None:
    """The first suppression covering ``check_id`` on ``resource`` in ``stack``, if any."""
    return next((s for s in suppressions if s.matches(check_id, resource, stack)), None)


def load_suppressions(path: Path = SUPPRESSIONS) -> list[Suppression]:
    """The reviewed suppressions; each needs ``id`` (or a list ``ids``), a resource glob and a
    justification. One entry is one reviewed exception, however many check ids it lists."""
    if not path.exists():
        return []
    doc = yaml.safe_load(path.read_text()) or {}
    out = []
    for i, item in enumerate(doc.get("suppressions") or []):
        ids = item.get("ids") or ([item["id"]] if item.get("id") else [])
        missing = [k for k in ("resource", "justification") if not str(item.get(k) or "").strip()]
        missing += [] if ids else ["id"]
        if missing:
            raise ValueError(f"{path}: suppression #{i + 1} lacks {', '.join(missing)}")
        out.append(
            Suppression(
                tuple(ids),
                item["resource"],
                " ".join(item["justification"].split()),
                tuple(item.get("stacks") or ()),
            )
        )
    if len(out) > MAX_SUPPRESSIONS:
        raise ValueError(f"{path}: {len(out)} suppressions; at most {MAX_SUPPRESSIONS} are allowed")
    return out


@dataclass
class Finding:
    """One result line of the gate: a failed check, or one a suppression accepted."""

    source: str
    """Which tool found it: ``rule``, ``schema`` or ``checkov``."""
    id: str
    """The check id (``SOV-RES-001``, ``K8S-SCHEMA``, ``CKV_AWS_145`` ...)."""
    resource: str
    message: str
    status: str
    """``failed``, or ``suppressed`` when a suppression accepts it."""
    justification: str = ""
    """The suppression's reason, for a suppressed finding."""
    file: str = ""
    """The scanned file the finding is in, where the tool names one."""


@dataclass
class GateReport:
    """What the gate found for one stack."""

    stack: str
    findings: list[Finding] = field(default_factory=list)
    rules_evaluated: int = 0
    resources: int = 0
    schema_validated: int = 0
    schema_skipped: list[str] = field(default_factory=list)
    """apiVersion/kind of objects without a schema to validate against."""
    checkov: dict[str, dict[str, int]] = field(default_factory=dict)
    """checkov's result counts per framework (``passed``, ``failed``, ``suppressed`` ...)."""
    suppressions_used: list[Suppression] = field(default_factory=list)
    seconds: float = 0.0
    errors: list[str] = field(default_factory=list)
    """Why a tool could not run or could not read what it was given."""
    record: str = ""
    """How the synth record was obtained: reused or synthesized again, and why (one line)."""

    @property
    def failures(self) -> list[Finding]:
        """Findings that fail the gate."""
        return [f for f in self.findings if f.status == FAILED]

    @property
    def ok(self) -> bool:
        """True when nothing fails and every tool ran."""
        return not self.failures and not self.errors

    def add(
        self,
        suppressions: list[Suppression],
        source: str,
        check_id: str,
        resource: str,
        message: str,
        file: str = "",
    ) -> Finding:
        """Record a failed check, as ``suppressed`` when a suppression covers it."""
        s = find_suppression(suppressions, check_id, resource, self.stack)
        if s is not None and s not in self.suppressions_used:
            self.suppressions_used.append(s)
        finding = Finding(
            source,
            check_id,
            resource,
            message,
            SUPPRESSED if s else FAILED,
            s.justification if s else "",
            file,
        )
        self.findings.append(finding)
        return finding
