"""The offline policy gate behind ``sovml check``: rules, Kubernetes schemas and checkov.

Everything here reads the synth record; nothing re-runs or second-guesses the program. The gate
fails on any rule violation, schema error or checkov failure that is not suppressed in the one
reviewed file, ``policies/suppressions.yaml``, where every entry carries a justification.
"""

from __future__ import annotations

import fnmatch
import json
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

import yaml

from infra.synth import runner as synthmod
from policies.rules import RULES, evaluate
from policies.rules.record import context_from_record, resources_from_record

SUPPRESSIONS = synthmod.ROOT / "policies" / "suppressions.yaml"
WATCHED = ("infra", "components", "Pulumi.yaml")
MAX_SUPPRESSIONS = 10


@dataclass(frozen=True)
class Suppression:
    """A reviewed exception: check ids on resources matching a glob, with its reason."""

    ids: tuple[str, ...]
    resource: str
    justification: str
    stacks: tuple[str, ...] = ()
    """Stacks the entry applies to; empty means every stack."""

    def matches(self, check_id: str, resource: str, stack: str = "") -> bool:
        """True when this entry covers ``check_id`` on ``resource`` in ``stack``."""
        return (
            check_id in self.ids
            and fnmatch.fnmatchcase(resource, self.resource)
            and (not self.stacks or stack in self.stacks)
        )


@dataclass
class Finding:
    """One result line of the gate."""

    source: str  # rule | schema | checkov
    id: str
    resource: str
    message: str
    status: str  # failed | suppressed
    justification: str = ""
    file: str = ""


@dataclass
class GateReport:
    """What the gate found for one stack."""

    stack: str
    findings: list[Finding] = field(default_factory=list)
    rules_evaluated: int = 0
    resources: int = 0
    schema_validated: int = 0
    schema_skipped: list[str] = field(default_factory=list)
    checkov: dict[str, dict[str, int]] = field(default_factory=dict)
    suppressions_used: list[Suppression] = field(default_factory=list)
    seconds: float = 0.0
    errors: list[str] = field(default_factory=list)

    @property
    def failures(self) -> list[Finding]:
        """Findings that fail the gate."""
        return [f for f in self.findings if f.status == "failed"]

    @property
    def ok(self) -> bool:
        """True when nothing fails and every tool ran."""
        return not self.failures and not self.errors

    def to_dict(self) -> dict[str, Any]:
        """JSON form of the report."""
        return {
            "stack": self.stack,
            "ok": self.ok,
            "seconds": round(self.seconds, 2),
            "resources": self.resources,
            "rules": {
                "evaluated": self.rules_evaluated,
                "violations": sum(1 for f in self.failures if f.source == "rule"),
            },
            "kubernetesSchema": {
                "validated": self.schema_validated,
                "failed": sum(1 for f in self.failures if f.source == "schema"),
                "skipped": self.schema_skipped,
            },
            "checkov": self.checkov,
            "suppressions": [asdict(s) for s in self.suppressions_used],
            "findings": [asdict(f) for f in self.findings],
            "errors": self.errors,
        }


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


def is_stale(record_path: Path, stack_path: Path) -> bool:
    """True when the record is missing or older than the stack file or any program source."""
    if not record_path.exists():
        return True
    built = record_path.stat().st_mtime
    sources = [stack_path]
    for name in WATCHED:
        p = synthmod.ROOT / name
        sources += list(p.rglob("*.py")) if p.is_dir() else [p]
    return any(s.exists() and s.stat().st_mtime > built for s in sources)


def _suppressed(
    check_id: str,
    resource: str,
    suppressions: list[Suppression],
    used: list[Suppression],
    stack: str = "",
) -> Suppression | None:
    for s in suppressions:
        if s.matches(check_id, resource, stack):
            if s not in used:
                used.append(s)
            return s
    return None


def _add(
    report: GateReport,
    suppressions: list[Suppression],
    source: str,
    check_id: str,
    resource: str,
    message: str,
    file: str = "",
) -> None:
    s = _suppressed(check_id, resource, suppressions, report.suppressions_used, report.stack)
    report.findings.append(
        Finding(
            source,
            check_id,
            resource,
            message,
            "suppressed" if s else "failed",
            s.justification if s else "",
            file,
        )
    )


def validate_kubernetes(objects: list[dict[str, Any]], version: str) -> tuple[int, list, list[str]]:
    """Strict schema validation of each object; returns (validated, errors, skipped)."""
    import kubernetes_validate as kv

    validated, errors, skipped = 0, [], []
    for obj in objects:
        meta = obj.get("metadata") or {}
        ident = f"{obj.get('kind')}/{meta.get('namespace', '')}/{meta.get('name')}".replace(
            "//", "/"
        )
        try:
            kv.validate(obj, f"{version}.0", strict=True)
            validated += 1
        except kv.SchemaNotFoundError:
            # Custom resources (Rollout, PrometheusRule, ...) have no built-in schema; a pod
            # template inside one is still checked, as the template of a Deployment.
            template = (obj.get("spec") or {}).get("template")
            if isinstance(template, dict):
                probe = {
                    "apiVersion": "apps/v1",
                    "kind": "Deployment",
                    "metadata": {"name": meta.get("name", "x")},
                    "spec": {"selector": obj["spec"].get("selector") or {}, "template": template},
                }
                try:
                    kv.validate(probe, f"{version}.0", strict=True)
                    validated += 1
                    continue
                except kv.ValidationError as exc:
                    errors.append((f"{ident} (pod template)", str(exc).splitlines()[0]))
                    continue
            skipped.append(f"{obj.get('apiVersion')}/{obj.get('kind')}")
        except kv.ValidationError as exc:
            errors.append((ident, str(exc).splitlines()[0]))
    return validated, errors, sorted(set(skipped))


def run_gate(
    stack: str,
    *,
    stacks_dir: Path = synthmod.STACKS,
    build_dir: Path = synthmod.BUILD,
    checkov: bool = True,
    suppressions: list[Suppression] | None = None,
    program: Path = synthmod.PROGRAM,
) -> GateReport:
    """Synthesize if needed, then run every check on ``stack`` and write its reports."""
    from infra.gate import bridge
    from infra.gate import checkov as checkov_runner

    started = time.perf_counter()
    suppressions = load_suppressions() if suppressions is None else suppressions
    out = build_dir / stack
    record_path = out / "resources.json"
    record = json.loads(record_path.read_text()) if record_path.exists() else {}
    wanted = synthmod.program_label(program)
    if (
        is_stale(record_path, synthmod.stack_file(stack, stacks_dir))
        or record.get("program") != wanted
    ):
        record = synthmod.synthesize(
            stack, stacks_dir=stacks_dir, build_dir=build_dir, program=program
        ).record
    report = GateReport(stack=stack)

    resources = resources_from_record(record)
    report.resources = len(resources)
    report.rules_evaluated = len(RULES)
    for v in evaluate(resources, context_from_record(record)):
        _add(report, suppressions, "rule", v.rule_id, v.resource, f"{v.rule_name}: {v.message}")

    objects = bridge.kubernetes_objects(record)
    bridge.write_k8s(record, out / "k8s")
    version = record["config"]["cluster"]["kubernetes_version"]
    report.schema_validated, errors, report.schema_skipped = validate_kubernetes(objects, version)
    for ident, message in errors:
        _add(report, suppressions, "schema", "K8S-SCHEMA", ident, message)

    bridge.write_tfplan(record, out / "tfplan.json")
    if checkov:
        try:
            result = checkov_runner.run_checkov(out)
        except checkov_runner.CheckovError as exc:
            report.errors.append(str(exc))
        else:
            report.errors += [
                f"checkov could not parse {e}" for run in result.runs for e in run.parsing_errors
            ]
            counts: dict[str, Counter] = {}
            for c in result.findings:
                counts.setdefault(c.framework, Counter())
                if c.result == "failed":
                    s = _suppressed(
                        c.check_id, c.resource, suppressions, report.suppressions_used, stack
                    )
                    counts[c.framework]["suppressed" if s else "failed"] += 1
                    report.findings.append(
                        Finding(
                            "checkov",
                            c.check_id,
                            c.resource,
                            c.check_name,
                            "suppressed" if s else "failed",
                            s.justification if s else "",
                            c.file,
                        )
                    )
                else:
                    counts[c.framework][c.result] += 1
            report.checkov = {fw: dict(sorted(n.items())) for fw, n in sorted(counts.items())}
    report.seconds = time.perf_counter() - started
    write_reports(report, out)
    return report


def write_reports(report: GateReport, out: Path) -> list[Path]:
    """``report.json``, ``report.junit.xml`` and ``report.sarif`` beside the record."""
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "report.json", out / "report.junit.xml", out / "report.sarif"]
    paths[0].write_text(json.dumps(report.to_dict(), indent=2) + "\n")
    paths[1].write_text(junit(report))
    paths[2].write_text(json.dumps(sarif(report), indent=2) + "\n")
    return paths


def junit(report: GateReport) -> str:
    """JUnit XML: one test case per finding, plus one passing case per clean source."""
    suite = ET.Element(
        "testsuite",
        name=f"sovml-check-{report.stack}",
        tests=str(len(report.findings) + 1),
        failures=str(len(report.failures)),
        skipped=str(len(report.findings) - len(report.failures)),
        time=f"{report.seconds:.2f}",
    )
    ET.SubElement(suite, "testcase", classname=f"{report.stack}.gate", name="gate-ran")
    for f in report.findings:
        case = ET.SubElement(
            suite, "testcase", classname=f"{report.stack}.{f.source}", name=f"{f.id} {f.resource}"
        )
        if f.status == "failed":
            ET.SubElement(case, "failure", message=f.message).text = f.message
        else:
            ET.SubElement(case, "skipped", message=f"suppressed: {f.justification}")
    return ET.tostring(suite, encoding="unicode", xml_declaration=True) + "\n"


def sarif(report: GateReport) -> dict[str, Any]:
    """SARIF 2.1.0 for code-scanning UIs; suppressed findings carry their justification."""
    rules_meta = {r.id: r for r in RULES}
    results = []
    for f in report.findings:
        result: dict[str, Any] = {
            "ruleId": f.id,
            "level": "error",
            "message": {"text": f"{f.resource}: {f.message}"},
            "locations": [
                {
                    "physicalLocation": {
                        "artifactLocation": {
                            "uri": f.file or f"build/{report.stack}/resources.json"
                        }
                    },
                    "logicalLocations": [{"fullyQualifiedName": f.resource}],
                }
            ],
        }
        if f.status == "suppressed":
            result["suppressions"] = [{"kind": "external", "justification": f.justification}]
        results.append(result)
    return {
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "sovml-check",
                        "informationUri": "https://github.com/sovereign-ml/sovereign-ml",
                        "rules": [
                            {
                                "id": r.id,
                                "name": r.name,
                                "shortDescription": {"text": r.description},
                            }
                            for r in rules_meta.values()
                        ],
                    }
                },
                "results": results,
            }
        ],
    }
