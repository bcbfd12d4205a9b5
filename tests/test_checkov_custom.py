"""The custom checkov checks (policies/checkov, ``CKV_SOV_*``) on hand-written pass/fail fixtures.

One terraform plan and one folder of Kubernetes YAML hold every case, so checkov starts twice
(concurrently) for the whole module. The fixtures are plain plan JSON, not bridge output, so a
bridge bug cannot make these checks look right.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from infra.gate import checkov as cr

pytestmark = pytest.mark.slow

GPU_TAINT = {"key": "nvidia.com/gpu", "value": "true", "effect": "NO_SCHEDULE"}


def node_group(ami: str, types: list[str], taints: list[dict[str, str]]) -> dict[str, Any]:
    """Plan values of an aws_eks_node_group."""
    return {
        "cluster_name": "c",
        "node_group_name": "ng",
        "ami_type": ami,
        "instance_types": types,
        "taint": taints,
        "scaling_config": [{"min_size": 1, "max_size": 2, "desired_size": 1}],
    }


def sse(algorithm: str, key: str | None) -> dict[str, Any]:
    """Plan values of an aws_s3_bucket_server_side_encryption_configuration."""
    default: dict[str, Any] = {"sse_algorithm": algorithm}
    if key is not None:
        default["kms_master_key_id"] = key
    return {"bucket": "b", "rule": [{"apply_server_side_encryption_by_default": [default]}]}


def launch_template(
    metadata: dict[str, Any] | None, encrypted: str | None = "true"
) -> dict[str, Any]:
    """Plan values of an aws_launch_template (``encrypted`` is a string, as in the provider)."""
    values: dict[str, Any] = {"name": "lt"}
    if metadata is not None:
        values["metadata_options"] = [metadata]
    if encrypted is not None:
        values["block_device_mappings"] = [
            {"device_name": "/dev/xvda", "ebs": [{"encrypted": encrypted, "volume_size": 50}]}
        ]
    return values


KEY_ARN = "arn:aws:kms:me-central-1:123456789012:key/00000000-0000-0000-0000-000000000001"
IMDS_OK = {"http_tokens": "required", "http_put_response_hop_limit": 1, "http_endpoint": "enabled"}

TF_RESOURCES: dict[str, dict[str, Any]] = {
    # CKV_SOV_1
    "aws_eks_node_group.gpu_tainted": node_group(
        "AL2023_x86_64_NVIDIA", ["g5.2xlarge"], [GPU_TAINT]
    ),
    "aws_eks_node_group.gpu_untainted": node_group("AL2023_x86_64_NVIDIA", ["g5.2xlarge"], []),
    "aws_eks_node_group.gpu_by_family": node_group("CUSTOM", ["p4d.24xlarge"], []),
    "aws_eks_node_group.gpu_prefer": node_group(
        "BOTTLEROCKET_x86_64_NVIDIA", ["g6.xlarge"], [{**GPU_TAINT, "effect": "PREFER_NO_SCHEDULE"}]
    ),
    "aws_eks_node_group.gpu_other_key": node_group(
        "AL2_x86_64_GPU", ["g4dn.xlarge"], [{**GPU_TAINT, "key": "dedicated"}]
    ),
    "aws_eks_node_group.cpu": node_group("AL2023_x86_64_STANDARD", ["m7i.xlarge"], []),
    # CKV_SOV_2
    "aws_s3_bucket_server_side_encryption_configuration.kms_cmk": sse("aws:kms", KEY_ARN),
    "aws_s3_bucket_server_side_encryption_configuration.dsse_cmk": sse("aws:kms:dsse", KEY_ARN),
    "aws_s3_bucket_server_side_encryption_configuration.aes256": sse("AES256", None),
    "aws_s3_bucket_server_side_encryption_configuration.aws_managed": sse(
        "aws:kms", "alias/aws/s3"
    ),
    "aws_s3_bucket_server_side_encryption_configuration.kms_no_key": sse("aws:kms", None),
    "aws_s3_bucket_server_side_encryption_configuration.kms_empty_key": sse("aws:kms", ""),
    # CKV_SOV_3 and CKV_SOV_5
    "aws_launch_template.good": launch_template(IMDS_OK),
    "aws_launch_template.hop_two": launch_template(
        {**IMDS_OK, "http_put_response_hop_limit": 2}, encrypted="false"
    ),
    "aws_launch_template.tokens_optional": launch_template(
        {**IMDS_OK, "http_tokens": "optional"}, encrypted=None
    ),
    "aws_launch_template.no_metadata": launch_template(None),
    "aws_launch_template.imds_off": launch_template({"http_endpoint": "disabled"}),
}

EXPECTED_TF: dict[str, dict[str, str]] = {
    "CKV_SOV_1": {
        "aws_eks_node_group.gpu_tainted": "passed",
        "aws_eks_node_group.gpu_untainted": "failed",
        "aws_eks_node_group.gpu_by_family": "failed",
        "aws_eks_node_group.gpu_prefer": "failed",
        "aws_eks_node_group.gpu_other_key": "failed",
        "aws_eks_node_group.cpu": "passed",
    },
    "CKV_SOV_2": {
        "aws_s3_bucket_server_side_encryption_configuration.kms_cmk": "passed",
        "aws_s3_bucket_server_side_encryption_configuration.dsse_cmk": "passed",
        "aws_s3_bucket_server_side_encryption_configuration.aes256": "failed",
        "aws_s3_bucket_server_side_encryption_configuration.aws_managed": "failed",
        "aws_s3_bucket_server_side_encryption_configuration.kms_no_key": "failed",
        "aws_s3_bucket_server_side_encryption_configuration.kms_empty_key": "failed",
    },
    "CKV_SOV_3": {
        "aws_launch_template.good": "passed",
        "aws_launch_template.hop_two": "failed",
        "aws_launch_template.tokens_optional": "failed",
        "aws_launch_template.no_metadata": "failed",
        "aws_launch_template.imds_off": "passed",
    },
    "CKV_SOV_5": {
        "aws_launch_template.good": "passed",
        "aws_launch_template.hop_two": "failed",
        "aws_launch_template.tokens_optional": "passed",
        "aws_launch_template.no_metadata": "passed",
        "aws_launch_template.imds_off": "passed",
    },
}


def pod_spec(
    *, gpu: bool, toleration: dict[str, str] | None, selector: dict[str, str] | None
) -> dict[str, Any]:
    """A pod spec with one container, optionally asking for a GPU."""
    container: dict[str, Any] = {"name": "main", "image": "registry.local/trainer:1.0"}
    if gpu:
        container["resources"] = {"limits": {"nvidia.com/gpu": 1}}
    spec: dict[str, Any] = {"containers": [container]}
    if toleration is not None:
        spec["tolerations"] = [toleration]
    if selector is not None:
        spec["nodeSelector"] = selector
    return spec


TOLERATE = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
POOL = {"sovereign-ml/pool": "gpu"}


def workload(kind: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    """A manifest of ``kind`` whose pods run ``spec``."""
    api = {"Pod": "v1", "Job": "batch/v1", "CronJob": "batch/v1"}.get(kind, "apps/v1")
    manifest: dict[str, Any] = {
        "apiVersion": api,
        "kind": kind,
        "metadata": {"name": name, "namespace": "ml"},
    }
    template = {"metadata": {"labels": {"app": name}}, "spec": spec}
    if kind == "Pod":
        manifest["spec"] = spec
    elif kind == "CronJob":
        manifest["spec"] = {
            "schedule": "0 * * * *",
            "jobTemplate": {"spec": {"template": template}},
        }
    elif kind == "Job":
        manifest["spec"] = {"template": template}
    else:
        manifest["spec"] = {"selector": {"matchLabels": {"app": name}}, "template": template}
    return manifest


K8S_OBJECTS = [
    workload("Deployment", "gpu-ok", pod_spec(gpu=True, toleration=TOLERATE, selector=POOL)),
    workload("Deployment", "gpu-no-toleration", pod_spec(gpu=True, toleration=None, selector=POOL)),
    workload("Job", "gpu-no-selector", pod_spec(gpu=True, toleration=TOLERATE, selector=None)),
    workload(
        "Pod",
        "gpu-operator-label",
        pod_spec(
            gpu=True,
            toleration={"key": "nvidia.com/gpu", "operator": "Exists"},
            selector={"nvidia.com/gpu.present": "true"},
        ),
    ),
    workload(
        "StatefulSet",
        "gpu-wrong-effect",
        pod_spec(gpu=True, toleration={**TOLERATE, "effect": "NoExecute"}, selector=POOL),
    ),
    workload("CronJob", "gpu-cron", pod_spec(gpu=True, toleration=None, selector=None)),
    workload("Deployment", "cpu-only", pod_spec(gpu=False, toleration=None, selector=None)),
]

EXPECTED_K8S = {
    "CKV_SOV_4": {
        "Deployment.ml.gpu-ok": "passed",
        "Deployment.ml.gpu-no-toleration": "failed",
        "Job.ml.gpu-no-selector": "failed",
        "Pod.ml.gpu-operator-label": "passed",
        "StatefulSet.ml.gpu-wrong-effect": "failed",
        "CronJob.ml.gpu-cron": "failed",
        "Deployment.ml.cpu-only": "passed",
    }
}


def write_plan(resources: dict[str, dict[str, Any]], path: Path) -> None:
    """A minimal ``terraform show -json`` document with ``resources`` (address -> values)."""
    planned = []
    for address, values in resources.items():
        tf_type, name = address.split(".", 1)
        planned.append(
            {
                "address": address,
                "mode": "managed",
                "type": tf_type,
                "name": name,
                "provider_name": "registry.terraform.io/hashicorp/aws",
                "schema_version": 0,
                "values": values,
            }
        )
    doc = {
        "format_version": "1.2",
        "terraform_version": "1.9.8",
        "planned_values": {"root_module": {"resources": planned}},
    }
    path.write_text(json.dumps(doc, indent=2))


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> cr.CheckovReport:
    """checkov's results on the fixture plan and YAML (one run per framework, concurrently)."""
    if not cr.CHECKOV.is_file():
        pytest.skip("checkov is not installed (.venv-checkov missing): run `make setup`")
    build = tmp_path_factory.mktemp("custom-checks")
    write_plan(TF_RESOURCES, build / cr.TFPLAN_FILE)
    (build / cr.K8S_DIR).mkdir()
    for obj in K8S_OBJECTS:
        name = f"{obj['kind']}-{obj['metadata']['name']}.yaml".lower()
        (build / cr.K8S_DIR / name).write_text(yaml.safe_dump(obj, sort_keys=False))
    return cr.run_checkov(build)


def results_of(report: cr.CheckovReport, check_id: str) -> dict[str, str]:
    """``{resource: result}`` of one check; a resource reported twice would be a bug."""
    found = [f for f in report.findings if f.check_id == check_id]
    out = {f.resource: f.result for f in found}
    assert len(out) == len(found), f"{check_id} reported a resource more than once"
    return out


@pytest.mark.parametrize("check_id", sorted(EXPECTED_TF))
def test_terraform_custom_check(report: cr.CheckovReport, check_id: str) -> None:
    assert results_of(report, check_id) == EXPECTED_TF[check_id]


def test_kubernetes_custom_check(report: cr.CheckovReport) -> None:
    assert results_of(report, "CKV_SOV_4") == EXPECTED_K8S["CKV_SOV_4"]


def test_custom_checks_carry_names_and_guidelines(report: cr.CheckovReport) -> None:
    custom = [f for f in report.findings if f.check_id.startswith("CKV_SOV_")]
    assert {f.check_id for f in custom} == {*EXPECTED_TF, *EXPECTED_K8S}
    for f in custom:
        assert f.check_name.startswith("Ensure"), f
        assert f.guideline, f
    # Each case appears once per check: external checks are not registered twice.
    expected_total = sum(len(v) for v in (*EXPECTED_TF.values(), *EXPECTED_K8S.values()))
    assert len(custom) == expected_total


def test_both_frameworks_ran_clean(report: cr.CheckovReport) -> None:
    assert set(report.counts()) == {"terraform_plan", "kubernetes"}
    for run in report.runs:
        assert run.ran and not run.parsing_errors, run
    assert report.runs[0].resource_count == len(TF_RESOURCES)
