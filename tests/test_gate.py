"""The offline gate end to end: prod-uae passes, the insecure fixture fails for each reason."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest

from infra.config.stackfile import ROOT
from infra.gate import findings, reports
from infra.gate import run as gate

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="module")
def prod(tmp_path_factory: pytest.TempPathFactory) -> findings.GateReport:
    return gate.run_gate("prod-uae", build_dir=tmp_path_factory.mktemp("build"))


@pytest.fixture(scope="module")
def insecure(tmp_path_factory: pytest.TempPathFactory) -> findings.GateReport:
    return gate.run_gate(
        "insecure",
        stacks_dir=FIXTURES / "stacks",
        program=FIXTURES / "insecure" / "__main__.py",
        build_dir=tmp_path_factory.mktemp("build"),
    )


def test_prod_uae_passes_the_gate(prod: findings.GateReport) -> None:
    assert prod.ok, [f"{f.id} {f.resource} {f.message}" for f in prod.failures] + prod.errors
    assert not [f for f in prod.failures if f.source == "rule"]
    passed = sum(v.get("passed", 0) for v in prod.checkov.values())
    assert passed >= 150, prod.checkov
    assert len(prod.suppressions_used) <= findings.MAX_SUPPRESSIONS
    assert all(s.justification for s in prod.suppressions_used)


def test_insecure_fixture_fails_each_rule(insecure: findings.GateReport) -> None:
    rules = {f.id for f in insecure.failures if f.source == "rule"}
    assert {
        "SOV-RES-001",  # us-east-1 provider in zone uae
        "SOV-NET-004",  # public bucket
        "SOV-ENC-002",  # bucket without encryption
        "SOV-ENC-003",  # unencrypted volume
        "SOV-GPU-001",  # untainted GPU pool
        "SOV-K8S-001",  # privileged pod
    } <= rules
    assert not insecure.ok


def test_insecure_fixture_fails_checkov_through_the_bridge(insecure: findings.GateReport) -> None:
    ckv = {f.id for f in insecure.failures if f.source == "checkov"}
    # Bucket encryption, public access block, unencrypted EBS, our GPU-taint check, and the
    # privileged pod's Kubernetes checks: each proves a part of the type and attribute map.
    expected = {"CKV_AWS_145", "CKV2_AWS_6", "CKV_AWS_3", "CKV_SOV_1", "CKV_K8S_16", "CKV_K8S_20"}
    assert expected <= ckv, sorted(ckv)


def test_reports_are_written_and_machine_readable(
    prod: findings.GateReport, tmp_path: Path
) -> None:
    paths = reports.write_reports(prod, tmp_path)
    data = json.loads(paths[0].read_text())
    assert data["ok"] is True and data["rules"]["violations"] == 0
    suite = ET.parse(paths[1]).getroot()
    assert suite.tag == "testsuite" and suite.get("failures") == "0"
    sarif = json.loads(paths[2].read_text())
    assert sarif["version"] == "2.1.0"
    assert all("suppressions" in r for r in sarif["runs"][0]["results"])


def test_suppressions_need_a_justification(tmp_path: Path) -> None:
    bad = tmp_path / "s.yaml"
    bad.write_text("suppressions:\n  - id: CKV_AWS_1\n    resource: '*'\n")
    with pytest.raises(ValueError, match="lacks justification"):
        findings.load_suppressions(bad)
    bad.write_text("suppressions:\n  - resource: '*'\n    justification: why\n")
    with pytest.raises(ValueError, match="lacks id"):
        findings.load_suppressions(bad)
    assert all(s.justification for s in findings.load_suppressions())


def test_suppressed_failure_is_listed_not_failed() -> None:
    report = findings.GateReport(stack="t")
    s = findings.Suppression(("SOV-X",), "res*", "reviewed: fine")
    report.add([s], "rule", "SOV-X", "resource-1", "msg")
    report.add([s], "rule", "SOV-Y", "resource-1", "msg")
    assert [f.status for f in report.findings] == ["suppressed", "failed"]
    assert report.suppressions_used == [s]


def test_suppressions_match_ids_resources_and_stacks() -> None:
    s = findings.Suppression(("CKV_K8S_8", "CKV2_AWS_*"), "*device-plugin*", "why", ("dev",))
    assert s.matches("CKV_K8S_8", "DaemonSet.kube-system.nvidia-device-plugin", "dev")
    assert s.matches("CKV2_AWS_62", "x-device-plugin", "dev")
    assert not s.matches("CKV_K8S_8", "x-device-plugin", "prod")
    assert not s.matches("CKV_K8S_80", "x-device-plugin", "dev")
    assert not s.matches("CKV_K8S_8", "aws_s3_bucket.x", "dev")
    assert findings.Suppression(("CKV_K8S_8",), "*", "why").matches("CKV_K8S_8", "r", "prod")


def test_cli_check_fails_on_the_insecure_fixture() -> None:
    proc = subprocess.run(
        [
            sys.executable, "-m", "infra.cli.app", "check", "insecure", "--no-checkov",
            "--stacks-dir", str(FIXTURES / "stacks"),
            "--program", str(FIXTURES / "insecure" / "__main__.py"),
        ],
        cwd=ROOT, capture_output=True, text=True, env={"COLUMNS": "250", "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    assert proc.returncode == 1, proc.stdout + proc.stderr
    for rule_id in ("SOV-RES-001", "SOV-GPU-001", "SOV-K8S-001"):
        assert rule_id in proc.stdout


def test_the_report_says_how_the_record_was_obtained(prod: findings.GateReport) -> None:
    # A fresh build folder: nothing to reuse, so the gate synthesized and says why.
    assert prod.record.startswith("prod-uae: synthesized ")
    assert prod.record.endswith("because there was no record")
