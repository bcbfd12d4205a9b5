"""The offline policy gate behind ``sovml check``: rules, Kubernetes schemas and checkov.

Everything here reads the synth record (made fresh first when its fingerprint no longer holds:
``infra.synth.fresh``); nothing re-runs or second-guesses the program. The gate
fails on any rule violation, schema error or checkov failure that is not suppressed in the one
reviewed file, ``policies/suppressions.yaml`` (``infra.gate.findings``), where every entry
carries a justification. Reports are written beside the record (``infra.gate.reports``).
"""

from __future__ import annotations

import json
import re
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from infra.config.stackfile import ROOT, STACKS
from infra.config.yamlfile import safe_load_all
from infra.gate import checkov as checkov_runner
from infra.gate.findings import PER_IMAGE, GateReport, Suppression, load_suppressions
from infra.gate.k8s_manifests import kubernetes_objects
from infra.gate.k8s_schema import validate_kubernetes
from infra.gate.pack_config import write_pack_config
from infra.gate.reports import write_reports
from infra.synth.fresh import fresh_record
from infra.synth.runner import BUILD, PROGRAM
from policies.approvals import (
    CHECK_ID,
    EXPORT_PATH,
    export_problem,
    served_version_problems,
)
from policies.inventory import identify
from policies.rules import RULES, Resource, evaluate
from policies.rules.kubernetes import pod_spec
from policies.rules.record import context_from_record, resources_from_record
from policies.rules.supply_chain import pod_images


def current_record(
    stack: str,
    *,
    stacks_dir: Path = STACKS,
    build_dir: Path = BUILD,
    program: Path = PROGRAM,
) -> dict[str, Any]:
    """The stack's synth record, synthesized first unless its fingerprint still holds.

    ``infra.synth.fresh.fresh_record`` decides (by content, never by file date).
    Raises ``infra.synth.runner.SynthError`` when the stack cannot be synthesized.
    """
    return fresh_record(stack, stacks_dir, build_dir, program).record


def _check_rules(
    report: GateReport, record: dict[str, Any], suppressions: list[Suppression]
) -> None:
    resources = resources_from_record(record)
    report.resources = len(resources)
    report.rules_evaluated = len(RULES)
    for v in evaluate(resources, context_from_record(record)):
        images = tuple(_ids(_PINNED_IMAGE.findall(v.message))) if v.rule_id in PER_IMAGE else ()
        report.add(
            suppressions,
            "rule",
            v.rule_id,
            v.resource,
            f"{v.rule_name}: {v.message}",
            images=images,
        )


_PINNED_IMAGE = re.compile(r"image (\S+) is not pinned by digest")
"""The image a ``SOV-SUP-002`` message names (supply_chain.images_pinned_by_digest)."""


def _check_served_versions(
    report: GateReport, record: dict[str, Any], export_path: Path, suppressions: list[Suppression]
) -> None:
    """SOV-MOD-001: a production stack serves only approved registry versions
    (:mod:`policies.approvals`), judged against the reviewed export ``export_path``."""
    cfg = record.get("config") or {}
    served = [str(item[0]) for item in cfg.get("served_models") or ()]
    versions = {str(m): int(v) for m, v in cfg.get("served_model_versions") or ()}
    resource = f"stack:{record.get('stack', report.stack)}:servedModelVersions"
    export: dict[str, Any] | None = None
    if export_path.is_file():
        try:
            export = json.loads(export_path.read_text())
        except (OSError, ValueError) as exc:
            export, problem = None, f"cannot be read ({exc})"
        else:
            problem = export_problem(export)
        if problem:
            report.add(
                suppressions,
                "registry",
                CHECK_ID,
                resource,
                f"the registry export {EXPORT_PATH} {problem}: rewrite it with sovml model export",
            )
            return
    production = str(cfg.get("environment") or "prod") == "prod"
    for found in served_version_problems(production, served, versions, export):
        report.add(suppressions, "registry", CHECK_ID, resource, found.message)


def _ids(references: list[str]) -> list[str]:
    # An image the inventory does not know keeps its reference, which no suppression lists.
    return [identify(ref) or ref for ref in references]


def _manifest_images(path: Path) -> list[str]:
    """The container images of the Kubernetes objects in a scanned manifest file."""
    try:
        # libyaml: a failed image-digest check reads its manifest back (about 6 files of a
        # tenant: 138 ms with PyYAML's pure-Python parser).
        docs = safe_load_all(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return []
    refs: list[str] = []
    for doc in docs:
        if isinstance(doc, dict):
            r = Resource(f"kubernetes:x:{doc.get('kind')}", "", doc)
            spec = pod_spec(r)
            refs += [image for _, image in pod_images(spec)] if spec is not None else []
    return refs


def _check_schemas(
    report: GateReport,
    record: dict[str, Any],
    suppressions: list[Suppression],
    objects: list[dict[str, Any]] | None = None,
) -> None:
    version = record["config"]["cluster"]["kubernetes_version"]
    objects = kubernetes_objects(record) if objects is None else objects
    validated, errors, skipped = validate_kubernetes(objects, version)
    report.schema_validated, report.schema_skipped = validated, skipped
    for ident, message in errors:
        report.add(suppressions, "schema", "K8S-SCHEMA", ident, message)


def _check_checkov(report: GateReport, out: Path, suppressions: list[Suppression]) -> None:
    try:
        result = checkov_runner.run_checkov(out)
    except checkov_runner.CheckovError as exc:
        report.errors.append(str(exc))
        return
    apply_checkov(report, result, out, suppressions)


def apply_checkov(
    report: GateReport,
    result: checkov_runner.CheckovReport,
    out: Path,
    suppressions: list[Suppression],
) -> None:
    """Turn checkov's results for the stack built in ``out`` into the report's findings.

    The one place checkov's verdicts become findings, whether checkov ran on this stack alone
    (``run_gate``) or on a whole fleet at once (``infra.gate.fleet``).
    """
    report.errors += [
        f"checkov could not parse {e}" for run in result.runs for e in run.parsing_errors
    ]
    counts: dict[str, Counter] = {}
    for c in result.findings:
        counts.setdefault(c.framework, Counter())
        if c.result == checkov_runner.FAILED:
            images = tuple(_ids(_manifest_images(out / c.file))) if c.check_id in PER_IMAGE else ()
            finding = report.add(
                suppressions, "checkov", c.check_id, c.resource, c.check_name, c.file, images
            )
            counts[c.framework][finding.status] += 1
        else:
            counts[c.framework][c.result] += 1
    report.checkov = {fw: dict(sorted(n.items())) for fw, n in sorted(counts.items())}


@dataclass(frozen=True)
class Prepared:
    """A stack judged by everything but checkov, its scan inputs written beside the record."""

    report: GateReport
    """The report so far: rules and schemas (checkov's findings are added later)."""
    digest: str
    """The record's fingerprint digest (what the gate judged)."""
    fingerprint: dict[str, Any] = field(default_factory=dict)
    """The record's whole fingerprint (kept beside the report: the next skip decision reads it
    instead of the record, which is about 1 MB of JSON for a tenant)."""


def prepare_gate(
    stack: str,
    *,
    stacks_dir: Path = STACKS,
    build_dir: Path = BUILD,
    suppressions: list[Suppression],
    program: Path = PROGRAM,
    registry_export: Path = ROOT / EXPORT_PATH,
) -> Prepared:
    """Synthesize if needed, run the rules and schemas, and write checkov's scan inputs.

    Raises ``infra.synth.runner.SynthError`` when the stack cannot be synthesized.
    """
    started = time.perf_counter()
    out = build_dir / stack
    fresh = fresh_record(stack, stacks_dir, build_dir, program)
    record = fresh.record
    report = GateReport(stack=stack, record=fresh.describe())
    _check_rules(report, record, suppressions)
    # One set of manifests for the schemas and checkov's files (neither changes them).
    objects = kubernetes_objects(record)
    _check_schemas(report, record, suppressions, objects)
    _check_served_versions(report, record, registry_export, suppressions)
    checkov_runner.write_scan_inputs(record, out, objects)
    write_pack_config(record, out, suppressions)  # for pulumi preview --policy-pack-config
    report.seconds = time.perf_counter() - started
    fingerprint = record.get("fingerprint")
    fingerprint = dict(fingerprint) if isinstance(fingerprint, dict) else {}
    return Prepared(report, str(fingerprint.get("digest", "")), fingerprint)


def run_gate(
    stack: str,
    *,
    stacks_dir: Path = STACKS,
    build_dir: Path = BUILD,
    checkov: bool = True,
    suppressions: list[Suppression] | None = None,
    program: Path = PROGRAM,
    registry_export: Path = ROOT / EXPORT_PATH,
) -> GateReport:
    """Synthesize if needed, then run every check on ``stack`` and write its reports.

    ``registry_export`` is the reviewed registry export the served versions are judged against
    (:data:`policies.approvals.EXPORT_PATH`)."""
    started = time.perf_counter()
    suppressions = load_suppressions() if suppressions is None else suppressions
    out = build_dir / stack
    report = prepare_gate(
        stack,
        stacks_dir=stacks_dir,
        build_dir=build_dir,
        suppressions=suppressions,
        program=program,
        registry_export=registry_export,
    ).report
    if checkov:
        _check_checkov(report, out, suppressions)
    report.seconds = time.perf_counter() - started
    write_reports(report, out)
    return report
