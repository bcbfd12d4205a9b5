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
from typing import Any

import yaml

from infra.config.stackfile import ROOT
from policies.inventory import INVENTORY, load_lock

SUPPRESSIONS = ROOT / "policies" / "suppressions.yaml"
"""The one reviewed file of exceptions to the gate."""
MAX_SUPPRESSIONS = 10
"""At most this many entries: each one is an exception someone has to keep reviewing."""

FAILED, SUPPRESSED = "failed", "suppressed"
PER_IMAGE = ("SOV-SUP-002", "CKV_K8S_43")
"""Checks about an image's digest: suppressed only image by image (``images``), never by glob."""
NEVER = ("SOV-SUP-001", "SOV-MOD-001")
"""Checks no suppression may name: an image outside the zone's registry, a production stack
serving a model version nobody approved."""
_NEVER_WHY = {
    "SOV-SUP-001": "out-of-zone images",
    "SOV-MOD-001": "a production stack serves approved model versions only",
}


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
    images: tuple[str, ...] = ()
    """Inventory image ids the entry is limited to (required for ``PER_IMAGE`` checks): it
    covers a finding only when every image the finding names is one of them."""

    def matches(
        self, check_id: str, resource: str, stack: str = "", images: tuple[str, ...] = ()
    ) -> bool:
        """True when this entry covers ``check_id`` on ``resource`` in ``stack``; an entry
        limited to images covers only findings whose ``images`` (inventory ids) it all lists."""
        return (
            any(fnmatch.fnmatchcase(check_id, pattern) for pattern in self.ids)
            and fnmatch.fnmatchcase(resource, self.resource)
            and (not self.stacks or stack in self.stacks)
            and (not self.images or (bool(images) and set(images) <= set(self.images)))
        )


def find_suppression(
    suppressions: list[Suppression],
    check_id: str,
    resource: str,
    stack: str = "",
    images: tuple[str, ...] = (),
) -> Suppression | None:
    """The first suppression covering ``check_id`` on ``resource`` in ``stack``, if any."""
    return next((s for s in suppressions if s.matches(check_id, resource, stack, images)), None)


def _check_images(path: Path, n: int, ids: list[str], images: Any) -> tuple[str, ...]:
    """An entry's ``images``: required exactly for the per-image checks, each an inventory image
    whose digest the lock does not have yet (a locked one must leave the list)."""
    where = f"{path}: suppression #{n}"
    never = [
        u for u in NEVER for i in ids if fnmatch.fnmatchcase(u, i) or fnmatch.fnmatchcase(i, u)
    ]
    if never:
        raise ValueError(f"{where}: {never[0]} is never suppressed ({_NEVER_WHY[never[0]]})")
    per_image = [i for i in ids if i in PER_IMAGE]
    if any(ch in i for i in ids for ch in "*?[") and any(
        fnmatch.fnmatchcase(p, i) for i in ids for p in PER_IMAGE
    ):
        raise ValueError(f"{where}: {', '.join(PER_IMAGE)} are suppressed by exact id only")
    if not per_image:
        if images:
            raise ValueError(f"{where}: images only for {', '.join(PER_IMAGE)}")
        return ()
    if len(per_image) != len(ids):
        raise ValueError(f"{where}: {', '.join(PER_IMAGE)} need an entry of their own")
    if not isinstance(images, list) or not images:
        raise ValueError(f"{where}: {', '.join(ids)} need images: inventory image ids, one by one")
    pins = load_lock()
    for i in images:
        found = INVENTORY.get(i) if isinstance(i, str) else None
        if found is None or found.kind != "image":
            raise ValueError(f"{where}: images: {i!r} is not an image id of the inventory")
        if i in pins:
            raise ValueError(f"{where}: images: {i!r} is locked (pinned by digest): remove it")
    if len(set(images)) != len(images):
        raise ValueError(f"{where}: images: duplicate ids")
    return tuple(images)


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
        images = _check_images(path, i + 1, list(ids), item.get("images"))
        out.append(
            Suppression(
                tuple(ids),
                item["resource"],
                " ".join(item["justification"].split()),
                tuple(item.get("stacks") or ()),
                images,
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
        images: tuple[str, ...] = (),
    ) -> Finding:
        """Record a failed check, as ``suppressed`` when a suppression covers it; ``images`` are
        the inventory ids of the images it is about (for the per-image suppressions)."""
        s = find_suppression(suppressions, check_id, resource, self.stack, images)
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
