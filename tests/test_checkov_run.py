"""checkov's run (``infra.gate.checkov``) on bridged synth records, end to end.

Two scans prove the bridge's mapping: the real prod-uae stack (its failed checks are printed,
``pytest -s`` to see them) and a small record built to be bad in known ways
(``tests.bridge_records``), which must fail the matching checkov checks.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from infra.gate import checkov as cr
from infra.gate import tfplan
from infra.gate.terraform_types import terraform_type
from tests.bridge_records import bad_record, config_resources, plan_resources


def test_missing_checkov_says_how_to_install(tmp_path: Path) -> None:
    with pytest.raises(cr.CheckovError, match="make setup"):
        cr.run_checkov(tmp_path, checkov=tmp_path / "no-checkov")


def test_suppressions_need_a_justification() -> None:
    with pytest.raises(ValueError, match="justification"):
        cr.as_suppressions([("CKV_AWS_1", "*", " ")])
    sup = cr.as_suppressions(
        [{"check_id": "CKV2_AWS_*", "resource": "aws_s3_bucket.*", "justification": "j"}]
    )
    assert sup[0].matches("CKV2_AWS_62", "aws_s3_bucket.x")
    assert not sup[0].matches("CKV_AWS_62", "aws_s3_bucket.x")


# --- checkov end to end -----------------------------------------------------------------------

needs_checkov = pytest.mark.skipif(
    not cr.CHECKOV.is_file(),
    reason="checkov is not installed (.venv-checkov missing): run `make setup`",
)


def result_map(report: cr.CheckovReport, check_id: str) -> dict[str, str]:
    """``{resource: result}`` of one check."""
    return {f.resource: f.result for f in report.findings if f.check_id == check_id}


@pytest.fixture(scope="module")
def prod_uae(
    tmp_path_factory: pytest.TempPathFactory, stack_records: dict[str, dict[str, Any]]
) -> tuple[dict[str, Any], cr.CheckovReport]:
    """prod-uae's synth record, bridged into a temp build dir and scanned."""
    if not cr.CHECKOV.is_file():
        pytest.skip("checkov is not installed (.venv-checkov missing): run `make setup`")
    build = tmp_path_factory.mktemp("build")
    record = stack_records["prod-uae"]
    cr.write_scan_inputs(record, build / "prod-uae")
    return record, cr.run_checkov(build / "prod-uae")


@pytest.mark.slow
@needs_checkov
def test_prod_uae_plan_has_every_aws_resource(
    prod_uae: tuple[dict[str, Any], cr.CheckovReport],
) -> None:
    record, _ = prod_uae
    plan = tfplan.to_tfplan(record)
    aws = [r for r in record["resources"] if r["custom"] and r["type"].startswith("aws:")]
    assert all(terraform_type(r["type"]) for r in aws)
    addresses = [r["address"] for r in plan["planned_values"]["root_module"]["resources"]]
    assert len(addresses) == len(aws) == len(set(addresses))
    conf = config_resources(plan)
    buckets = {a for a in addresses if a.startswith("aws_s3_bucket.")}
    subs = [a for a in addresses if a.startswith("aws_s3_bucket_")]
    assert buckets and subs
    for address in subs:
        refs = conf[address]["expressions"]["bucket"]["references"]
        assert refs[1] in buckets, address
    flow_log = next(a for a in addresses if a.startswith("aws_flow_log."))
    assert conf[flow_log]["expressions"]["vpc_id"]["references"][1].startswith("aws_vpc.")


@pytest.mark.slow
@needs_checkov
def test_prod_uae_checkov(prod_uae: tuple[dict[str, Any], cr.CheckovReport]) -> None:
    record, report = prod_uae
    tf = next(r for r in report.runs if r.framework == "terraform_plan")
    assert tf.ran and not tf.parsing_errors
    assert tf.resource_count == len(plan_resources(tfplan.to_tfplan(record)))
    counts = report.counts()
    seconds = {r.framework: round(r.seconds, 1) for r in report.runs if r.ran}
    print(f"\ncheckov prod-uae: {counts}; seconds: {seconds}")
    print("FAILED checkov checks for prod-uae:")
    print(cr.format_findings(report.failed) or "(none)")
    assert counts["terraform_plan"]["passed"] > 100
    # Checks prod-uae is built to pass; several only pass when the bridge links resources
    # (bucket -> public access block / encryption, VPC -> flow log, VPC -> default SG).
    buckets = {
        a for a in plan_resources(tfplan.to_tfplan(record)) if a.startswith("aws_s3_bucket.")
    }
    for check_id in ("CKV2_AWS_6", "CKV_AWS_145", "CKV_AWS_19", "CKV_AWS_21", "CKV_AWS_18"):
        results = result_map(report, check_id)
        assert set(results) == buckets and set(results.values()) == {"passed"}, (check_id, results)
    for check_id in (
        "CKV_AWS_39",
        "CKV_AWS_38",
        "CKV_AWS_58",
        "CKV_AWS_37",
        "CKV2_AWS_11",
        "CKV2_AWS_12",
        "CKV_AWS_79",
        "CKV_AWS_341",
        "CKV_SOV_1",
        "CKV_SOV_2",
        "CKV_SOV_3",
        "CKV_SOV_5",
    ):
        results = result_map(report, check_id)
        assert results and set(results.values()) == {"passed"}, (check_id, results)


@pytest.fixture(scope="module")
def bad_report(tmp_path_factory: pytest.TempPathFactory) -> cr.CheckovReport:
    """The known-bad record bridged and scanned, with one suppression."""
    if not cr.CHECKOV.is_file():
        pytest.skip("checkov is not installed (.venv-checkov missing): run `make setup`")
    build = tmp_path_factory.mktemp("bad")
    cr.write_scan_inputs(bad_record(), build)
    skip = [
        ("CKV_AWS_144", "aws_s3_bucket.*", "replication would copy data out of the residency zone"),
        ("CKV_AWS_999", "*", "never matches"),
    ]
    return cr.run_checkov(build, skip=skip)


EXPECTED_BAD = {
    ("CKV2_AWS_6", "aws_s3_bucket.public_data"): "failed",
    ("CKV2_AWS_6", "aws_s3_bucket.private_data"): "passed",
    ("CKV_AWS_145", "aws_s3_bucket.public_data"): "failed",
    ("CKV_AWS_145", "aws_s3_bucket.private_data"): "passed",
    ("CKV_AWS_20", "aws_s3_bucket.public_data"): "failed",
    ("CKV_SOV_2", "aws_s3_bucket_server_side_encryption_configuration.public_data_sse"): "failed",
    ("CKV_SOV_2", "aws_s3_bucket_server_side_encryption_configuration.private_data_sse"): "passed",
    ("CKV_AWS_3", "aws_ebs_volume.scratch"): "failed",
    ("CKV_AWS_79", "aws_launch_template.loose_lt"): "failed",
    ("CKV_AWS_341", "aws_launch_template.loose_lt"): "failed",
    ("CKV_SOV_3", "aws_launch_template.loose_lt"): "failed",
    ("CKV_SOV_5", "aws_launch_template.loose_lt"): "failed",
    ("CKV_AWS_39", "aws_eks_cluster.open_cluster"): "failed",
    ("CKV_AWS_38", "aws_eks_cluster.open_cluster"): "failed",
    ("CKV_AWS_58", "aws_eks_cluster.open_cluster"): "failed",
    ("CKV_AWS_37", "aws_eks_cluster.open_cluster"): "failed",
    ("CKV_SOV_1", "aws_eks_node_group.gpu_pool"): "failed",
    ("CKV_AWS_24", "aws_security_group.ssh_world"): "failed",
    ("CKV_AWS_144", "aws_s3_bucket.public_data"): "suppressed",
    ("CKV_K8S_16", "Deployment.ml.root-trainer"): "failed",
    ("CKV_K8S_20", "Deployment.ml.root-trainer"): "failed",
    ("CKV_SOV_4", "Deployment.ml.root-trainer"): "failed",
}


@pytest.mark.slow
@needs_checkov
def test_known_bad_record_fails_the_matching_checks(bad_report: cr.CheckovReport) -> None:
    got = {(f.check_id, f.resource): f.result for f in bad_report.findings}
    wrong = {k: (want, got.get(k)) for k, want in EXPECTED_BAD.items() if got.get(k) != want}
    assert not wrong, wrong
    for run in bad_report.runs:
        assert run.ran and not run.parsing_errors, run
    # The Helm release and the component resource are not scanned.
    assert not any(
        "gpu-operator" in f.resource or f.resource == "storage" for f in bad_report.findings
    )


@pytest.mark.slow
@needs_checkov
def test_suppressed_failures_are_listed_with_their_reason(bad_report: cr.CheckovReport) -> None:
    suppressed = bad_report.suppressed
    assert {f.resource for f in suppressed} == {
        "aws_s3_bucket.public_data",
        "aws_s3_bucket.private_data",
    }
    assert all(f.justification and "residency" in f.justification for f in suppressed)
    assert not any(f.check_id == "CKV_AWS_144" for f in bad_report.failed)
    assert [s.ids for s in bad_report.unused_suppressions()] == [("CKV_AWS_999",)]
    assert not bad_report.ok
    doc = bad_report.to_dict()
    assert doc["counts"]["terraform_plan"]["suppressed"] == len(suppressed)
    json.dumps(doc)


def test_each_findings_file_is_relative_to_the_stacks_folder(tmp_path: Path) -> None:
    # checkov names a finding's file by an absolute path (resolved or as given) or by a path
    # relative to what it scanned (a folder, or one file); each comes back under the stack's folder.
    real = tmp_path / "real"
    (real / "k8s").mkdir(parents=True)
    (real / "tfplan.json").write_text("{}")
    build = tmp_path / "link"
    build.symlink_to(real)
    items = [
        {"file_abs_path": str(real / "tfplan.json")},  # resolved
        {"file_abs_path": str(build / "k8s" / "a.yaml")},  # as given
        {"file_abs_path": "/elsewhere/b.yaml"},  # outside: left absolute
        {"file_path": "/c.yaml"},  # under the scanned folder
    ]
    doc = {
        "check_type": "kubernetes",
        "results": {"failed_checks": [dict(i, check_id=f"CKV_{n}") for n, i in enumerate(items)]},
        "summary": {"resource_count": 4},
    }
    files = {}
    for target in (build / "k8s", build / "tfplan.json"):
        run = cr.FrameworkRun("kubernetes", target, ran=True)
        cr._parse_into(run, json.dumps(doc), "", build, [])
        files[target.name] = [f.file for f in run.findings]
    assert files["k8s"] == ["tfplan.json", "k8s/a.yaml", "/elsewhere/b.yaml", "k8s/c.yaml"]
    assert files["tfplan.json"][3] == "c.yaml"  # a scanned file: relative to its folder
