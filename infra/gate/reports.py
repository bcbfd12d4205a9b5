"""The gate's reports beside the record: ``report.json``, ``report.junit.xml``, ``report.sarif``."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

from infra.gate.findings import FAILED, SUPPRESSED, GateReport
from policies.rules import RULES


def write_reports(report: GateReport, out: Path) -> list[Path]:
    """``report.json``, ``report.junit.xml`` and ``report.sarif`` beside the record."""
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "report.json", out / "report.junit.xml", out / "report.sarif"]
    paths[0].write_text(json.dumps(to_json(report), indent=2) + "\n")
    paths[1].write_text(junit(report))
    paths[2].write_text(json.dumps(sarif(report), indent=2) + "\n")
    return paths


def to_json(report: GateReport) -> dict[str, Any]:
    """JSON form of the report: verdict, counts per tool, suppressions used, every finding."""
    return {
        "stack": report.stack,
        "ok": report.ok,
        "seconds": round(report.seconds, 2),
        "resources": report.resources,
        "rules": {
            "evaluated": report.rules_evaluated,
            "violations": sum(1 for f in report.failures if f.source == "rule"),
        },
        "kubernetesSchema": {
            "validated": report.schema_validated,
            "failed": sum(1 for f in report.failures if f.source == "schema"),
            "skipped": report.schema_skipped,
        },
        "checkov": report.checkov,
        "suppressions": [asdict(s) for s in report.suppressions_used],
        "findings": [asdict(f) for f in report.findings],
        "errors": report.errors,
    }


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
        if f.status == FAILED:
            ET.SubElement(case, "failure", message=f.message).text = f.message
        else:
            ET.SubElement(case, "skipped", message=f"suppressed: {f.justification}")
    return ET.tostring(suite, encoding="unicode", xml_declaration=True) + "\n"


def sarif(report: GateReport) -> dict[str, Any]:
    """SARIF 2.1.0 for code-scanning UIs; suppressed findings carry their justification."""
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
        if f.status == SUPPRESSED:
            result["suppressions"] = [{"kind": "external", "justification": f.justification}]
        results.append(result)
    return sarif_document(results)


def sarif_document(results: list[dict[str, Any]]) -> dict[str, Any]:
    """A SARIF 2.1.0 document of one run of ``sovml check`` holding ``results``; every rule of
    the set is described, so code scanning can name a rule with no result yet."""
    driver = {
        "name": "sovml-check",
        "informationUri": "https://github.com/sovereign-ml/sovereign-ml",
        "rules": [
            {"id": r.id, "name": r.name, "shortDescription": {"text": r.description}}
            for r in {r.id: r for r in RULES}.values()
        ],
    }
    return {
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{"tool": {"driver": driver}, "results": results}],
    }
