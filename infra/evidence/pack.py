"""The evidence pack of one stack: ``evidence.json`` (schema ``sovml-evidence/1``) and the page.

``build_pack`` obtains the stack's current synth record the way ``sovml check`` does
(``infra.synth.fresh``: reused while its fingerprint holds, else synthesized), runs the gate's
checks on it (``infra.evidence.results``), evaluates the catalogue (``infra.evidence.evaluate``)
and returns the JSON document; ``write_pack`` writes it and the HTML page. The document's keys
are stable; the README ("Compliance evidence") describes each.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from infra.config.stackfile import STACKS
from infra.evidence.catalogue import Catalogue, load_catalogue
from infra.evidence.evaluate import CONTROL_FAILED, GAP, ControlResult, evaluate, summary
from infra.evidence.page import render_page
from infra.evidence.results import GateResults, gate_results
from infra.gate import checkov as checkov_runner
from infra.gate.findings import Suppression, load_suppressions
from infra.synth.fresh import fresh_record
from infra.synth.runner import BUILD, PROGRAM

SCHEMA = "sovml-evidence/1"
"""The document's schema id; bumped when a key changes meaning or disappears."""
FORMATS = ("html", "json", "both")
"""What ``write_pack`` can write."""
JSON_FILE, HTML_FILE = "evidence.json", "evidence.html"


@dataclass(frozen=True)
class Pack:
    """One stack's evidence: the JSON document and what the command needs to report."""

    doc: dict[str, Any]
    """The ``evidence.json`` document."""
    controls: list[ControlResult]
    tool_errors: list[str]
    """Tools that failed to run (their checks are gaps in the pack; the command exits 3)."""

    @property
    def failed(self) -> list[ControlResult]:
        """Controls with a failed check."""
        return [c for c in self.controls if c.status == CONTROL_FAILED]


def checkov_version(checkov: Path = checkov_runner.CHECKOV) -> str | None:
    """checkov's version, read from its own virtualenv's metadata (None when it is missing)."""
    for site in sorted(checkov.parent.parent.glob("lib/python*/site-packages")):
        for dist in importlib.metadata.distributions(name="checkov", path=[str(site)]):
            return str(dist.version)
    return None


def _own_version() -> str | None:
    try:
        return importlib.metadata.version("sovereign-ml")
    except importlib.metadata.PackageNotFoundError:
        return None


def tool_versions(record: dict[str, Any], checkov: bool) -> dict[str, str | None]:
    """Versions behind the evidence: sovml, the record's SDKs and Python, checkov."""
    versions: dict[str, str | None] = {"sovml": _own_version()}
    versions.update(record.get("fingerprint", {}).get("versions", {}))
    versions["checkov"] = checkov_version() if checkov else None
    return versions


def config_summary(record: dict[str, Any]) -> dict[str, Any]:
    """The config an auditor reads first: where the stack runs and what posture it has."""
    cfg = record["config"]
    keys = ("environment", "zone", "region", "partition", "tier", "tenant", "allowed_account_ids",
            "log_retention_days", "kms_deletion_window_days")  # fmt: skip
    return {k: cfg.get(k) for k in keys}


def _finding(f: Any) -> dict[str, str]:
    return {"resource": f.resource, "text": f.text}


def control_json(c: ControlResult) -> dict[str, Any]:
    """One control's entry in the document."""
    ctl = c.control
    return {
        "id": ctl.id,
        "framework": ctl.framework,
        "title": ctl.title,
        "source": ctl.source,
        "url": ctl.url,
        "note": ctl.note,
        "status": c.status,
        "reason": c.reason,
        "checks": [
            {
                "id": r.id,
                "kind": r.kind,
                "name": r.name,
                "status": r.status,
                "judged": r.judged,
                "failures": [_finding(f) for f in r.failures],
                "accepted": [_finding(f) for f in r.accepted],
                "reason": r.reason,
            }
            for r in c.checks
        ],
        "tests": list(ctl.tests),
    }


def _listed(controls: list[ControlResult], status: str) -> list[dict[str, str]]:
    return [{"control": c.control.id, "reason": c.reason} for c in controls if c.status == status]


def pack_document(
    catalogue: Catalogue,
    controls: list[ControlResult],
    results: GateResults,
    record: dict[str, Any],
    *,
    obtained: str,
    generated: datetime,
    checkov: bool,
) -> dict[str, Any]:
    """The ``evidence.json`` document (schema ``SCHEMA``)."""
    fp = record.get("fingerprint", {})
    counts = summary(catalogue, controls)
    return {
        "schema": SCHEMA,
        "generatedAt": generated.astimezone(UTC).isoformat(timespec="seconds"),
        "stack": record["stack"],
        "record": {
            "fingerprint": fp.get("digest"),
            "policyDigest": fp.get("policies"),
            "stackFile": record.get("source"),
            "obtained": obtained,
            "resources": sum(1 for r in record["resources"] if r.get("custom")),
        },
        "config": config_summary(record),
        "tools": tool_versions(record, checkov),
        "gate": {"tools": dict(results.tools), "errors": list(results.tool_errors)},
        "summary": counts,
        "frameworks": [
            {"id": f.id, "title": f.title, "source": f.source, "url": f.url, **counts[f.id]}
            for f in catalogue.frameworks
        ],
        "controls": [control_json(c) for c in controls],
        "failed": _listed(controls, CONTROL_FAILED),
        "gaps": _listed(controls, GAP),
    }


def build_pack(
    stack: str,
    *,
    stacks_dir: Path = STACKS,
    build_dir: Path = BUILD,
    program: Path = PROGRAM,
    checkov: bool = True,
    catalogue: Catalogue | None = None,
    suppressions: list[Suppression] | None = None,
    now: datetime | None = None,
) -> Pack:
    """``stack``'s evidence on its current record.

    Raises ``infra.synth.runner.SynthError`` (the stack cannot be synthesized),
    ``infra.evidence.catalogue.CatalogueError`` and ``ValueError`` (invalid suppressions).
    """
    catalogue = load_catalogue() if catalogue is None else catalogue
    suppressions = load_suppressions() if suppressions is None else suppressions
    fresh = fresh_record(stack, stacks_dir, build_dir, program)
    record = fresh.record
    results = gate_results(record, build_dir / stack, suppressions, checkov=checkov)
    controls = evaluate(catalogue, results)
    doc = pack_document(
        catalogue, controls, results, record,
        obtained=fresh.describe(), generated=now or datetime.now(UTC), checkov=checkov,
    )  # fmt: skip
    return Pack(doc, controls, list(results.tool_errors))


def write_pack(doc: dict[str, Any], out: Path, fmt: str = "both") -> list[Path]:
    """Write ``evidence.json`` and/or ``evidence.html`` into ``out`` (created); their paths.

    Each file is written beside itself and renamed into place, so a reader never sees half.
    """
    if fmt not in FORMATS:
        raise ValueError(f"format {fmt!r}: one of {', '.join(FORMATS)}")
    out.mkdir(parents=True, exist_ok=True)
    files: Sequence[tuple[str, str]] = []
    if fmt in ("json", "both"):
        files = [*files, (JSON_FILE, json.dumps(doc, indent=2, ensure_ascii=False) + "\n")]
    if fmt in ("html", "both"):
        files = [*files, (HTML_FILE, render_page(doc))]
    written = []
    for name, text in files:
        path = out / name
        tmp = out / f".{name}.{os.getpid()}.tmp"
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
        written.append(path)
    return written


def default_out(stack: str, build_dir: Path = BUILD) -> Path:
    """Where the pack goes without ``--out``: ``build/<stack>/evidence``."""
    return build_dir / stack / "evidence"
