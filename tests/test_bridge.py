"""The synth record -> checkov bridge (infra/gate/bridge.py) and checkov's run (infra/gate/checkov.py).

Unit tests cover the type map and the value conversion; two checkov scans prove the mapping end
to end: the real prod-uae stack (its failed checks are printed, ``pytest -s`` to see them) and a
small record built to be bad in known ways, which must fail the matching checkov checks.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from infra.gate import bridge
from infra.gate import checkov as cr

# --- terraform_type ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("token", "expected"),
    [
        ("aws:eks/nodeGroup:NodeGroup", "aws_eks_node_group"),
        ("aws:eks/cluster:Cluster", "aws_eks_cluster"),
        (
            "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
            "aws_s3_bucket_server_side_encryption_configuration",
        ),
        (
            "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock",
            "aws_s3_bucket_public_access_block",
        ),
        ("aws:s3/bucket:Bucket", "aws_s3_bucket"),
        ("aws:s3/bucketV2:BucketV2", "aws_s3_bucket"),
        ("aws:s3/bucketVersioningV2:BucketVersioningV2", "aws_s3_bucket_versioning"),
        ("aws:ec2/vpc:Vpc", "aws_vpc"),
        ("aws:ec2/launchTemplate:LaunchTemplate", "aws_launch_template"),
        ("aws:ec2/defaultSecurityGroup:DefaultSecurityGroup", "aws_default_security_group"),
        ("aws:ec2/vpcEndpoint:VpcEndpoint", "aws_vpc_endpoint"),
        ("aws:ec2/flowLog:FlowLog", "aws_flow_log"),
        ("aws:ec2/eip:Eip", "aws_eip"),
        ("aws:ebs/volume:Volume", "aws_ebs_volume"),
        ("aws:iam/openIdConnectProvider:OpenIdConnectProvider", "aws_iam_openid_connect_provider"),
        ("aws:iam/rolePolicyAttachment:RolePolicyAttachment", "aws_iam_role_policy_attachment"),
        ("aws:rds/instance:Instance", "aws_db_instance"),
        ("aws:rds/parameterGroup:ParameterGroup", "aws_db_parameter_group"),
        ("aws:rds/cluster:Cluster", "aws_rds_cluster"),
        ("aws:cfg/rule:Rule", "aws_config_config_rule"),
        ("aws:cloudwatch/logGroup:LogGroup", "aws_cloudwatch_log_group"),
        ("aws:kms/key:Key", "aws_kms_key"),
        (
            "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule",
            "aws_vpc_security_group_ingress_rule",
        ),
        ("kubernetes:core/v1:Namespace", None),
        ("kubernetes:helm.sh/v3:Release", None),
        ("pulumi:providers:aws", None),
        ("sovereign-ml:storage:Storage", None),
        ("random:index/randomId:RandomId", None),
    ],
)
def test_terraform_type(token: str, expected: str | None) -> None:
    assert bridge.terraform_type(token) == expected


@pytest.mark.parametrize(
    ("camel", "snake"),
    [
        ("enableDnsHostnames", "enable_dns_hostnames"),
        ("httpPutResponseHopLimit", "http_put_response_hop_limit"),
        ("ipv6CidrBlock", "ipv6_cidr_block"),
        ("kmsKeyID", "kms_key_id"),
        ("s3BucketName", "s3_bucket_name"),
        ("bucket", "bucket"),
    ],
)
def test_snake_case(camel: str, snake: str) -> None:
    assert bridge.snake_case(camel) == snake


# --- values -----------------------------------------------------------------------------------


def test_values_are_snake_cased_recursively_and_blocks_become_lists() -> None:
    values = bridge.to_terraform_values(
        {
            "vpcConfig": {"endpointPublicAccess": False, "subnetIds": ["subnet-1"]},
            "enabledClusterLogTypes": ["api", "controllerManager"],
            "encryptionConfig": {"provider": {"keyArn": "arn:k"}, "resources": ["secrets"]},
            "version": "1.33",
        },
        "aws_eks_cluster",
    )
    assert values == {
        "vpc_config": [{"endpoint_public_access": False, "subnet_ids": ["subnet-1"]}],
        # Values are data: log type names keep their spelling.
        "enabled_cluster_log_types": ["api", "controllerManager"],
        "encryption_config": [{"provider": [{"key_arn": "arn:k"}], "resources": ["secrets"]}],
        "version": "1.33",
    }


def test_data_maps_keep_their_keys() -> None:
    tags = {"sovereign-ml/pool": "gpu", "costCenter": "cc-1", "Name": "x"}
    labels = {"nvidia.com/gpu.present": "true", "topologyZone": "a"}
    values = bridge.to_terraform_values(
        {"tags": tags, "labels": labels, "taints": [], "amiType": "AL2023_x86_64_NVIDIA"},
        "aws_eks_node_group",
    )
    assert values["tags"] == tags
    assert values["labels"] == labels
    assert values["taint"] == []
    # Tags inside repeated blocks are maps too.
    lt = bridge.to_terraform_values(
        {"tagSpecifications": [{"resourceType": "volume", "tags": {"myKey": "v"}}]},
        "aws_launch_template",
    )
    assert lt == {"tag_specifications": [{"resource_type": "volume", "tags": {"myKey": "v"}}]}


def test_pluralised_blocks_are_renamed_per_type() -> None:
    sse = bridge.to_terraform_values(
        {"rules": [{"applyServerSideEncryptionByDefault": {"sseAlgorithm": "aws:kms"}}]},
        "aws_s3_bucket_server_side_encryption_configuration",
    )
    assert sse == {
        "rule": [{"apply_server_side_encryption_by_default": [{"sse_algorithm": "aws:kms"}]}]
    }
    oidc = bridge.to_terraform_values(
        {"clientIdLists": ["sts.amazonaws.com"], "url": "https://x"},
        "aws_iam_openid_connect_provider",
    )
    assert oidc == {"client_id_list": ["sts.amazonaws.com"], "url": "https://x"}
    # The same Pulumi name is left alone on types where Terraform spells it the same.
    assert "rules" in bridge.to_terraform_values({"rules": []}, "aws_wafv2_rule_group")


def test_scalar_types_and_json_strings_survive() -> None:
    policy = json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow"}]})
    values = bridge.to_terraform_values(
        {
            "metadataOptions": {"httpPutResponseHopLimit": 1, "httpTokens": "required"},
            "blockDeviceMappings": [{"ebs": {"encrypted": "true", "volumeSize": 100}}],
            "updateDefaultVersion": True,
            "policy": policy,
        },
        "aws_launch_template",
    )
    assert values["metadata_options"] == [
        {"http_put_response_hop_limit": 1, "http_tokens": "required"}
    ]
    assert values["block_device_mappings"] == [{"ebs": [{"encrypted": "true", "volume_size": 100}]}]
    assert values["update_default_version"] is True
    assert values["policy"] == policy


def test_empty_cluster_log_types_are_left_out() -> None:
    # checkov's CKV_AWS_37 crashes on [] but fails a missing attribute, as it should.
    values = bridge.to_terraform_values({"enabledClusterLogTypes": []}, "aws_eks_cluster")
    assert "enabled_cluster_log_types" not in values


@given(
    st.dictionaries(
        st.text(alphabet="abcXYZ-/._ 0", min_size=1, max_size=12),
        st.text(max_size=8),
        max_size=6,
    )
)
def test_any_tag_map_is_copied_verbatim(tags: dict[str, str]) -> None:
    values = bridge.to_terraform_values({"tags": tags, "labels": tags}, "aws_eks_node_group")
    assert values == {"tags": tags, "labels": tags}


# --- fixture records --------------------------------------------------------------------------

STACK_URN = "urn:pulumi:bad::sovereign-ml::pulumi:pulumi:Stack::sovereign-ml-bad"
PROVIDER_URN = "urn:pulumi:bad::sovereign-ml::pulumi:providers:aws::aws-me-central-1"
K8S_PROVIDER_URN = "urn:pulumi:bad::sovereign-ml::pulumi:providers:kubernetes::k8s"
DEFAULT_TAGS = {"owner": "ml-platform", "residency-zone": "uae", "managed-by": "pulumi"}


def urn(token: str, name: str) -> str:
    """A URN as the engine builds it for a top-level resource."""
    return f"urn:pulumi:bad::sovereign-ml::{token}::{name}"


def resource(
    token: str,
    name: str,
    inputs: dict[str, Any],
    *,
    rid: str | None = None,
    deps: dict[str, list[str]] | None = None,
    custom: bool = True,
) -> dict[str, Any]:
    """One record entry; ``deps`` maps an input name to the URNs it came from."""
    deps = deps or {}
    provider = K8S_PROVIDER_URN if token.startswith("kubernetes:") else PROVIDER_URN
    return {
        "urn": urn(token, name),
        "type": token,
        "name": name,
        "custom": custom,
        "id": rid or f"{name}-id",
        "parent": STACK_URN,
        "provider": provider if custom else None,
        "dependencies": sorted({u for us in deps.values() for u in us}),
        "propertyDependencies": deps,
        "protect": False,
        "inputs": inputs,
    }


def record_of(resources: list[dict[str, Any]], stack: str = "bad") -> dict[str, Any]:
    """A synth record around ``resources``, with an AWS and a Kubernetes provider."""
    providers = [
        {
            **resource("pulumi:providers:aws", "aws-me-central-1", {}),
            "urn": PROVIDER_URN,
            "provider": None,
            "inputs": {"region": "me-central-1", "defaultTags": {"tags": DEFAULT_TAGS}},
        },
        {
            **resource("pulumi:providers:kubernetes", "k8s", {}),
            "urn": K8S_PROVIDER_URN,
            "provider": None,
            "inputs": {"namespace": "ml"},
        },
    ]
    return {
        "version": 1,
        "stack": stack,
        "project": "sovereign-ml",
        "config": {"region": "me-central-1", "zone": "uae"},
        "resources": providers + resources,
    }


BUCKET = "aws:s3/bucket:Bucket"
PAB = "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock"
SSE = "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration"
KEY = "aws:kms/key:Key"
KEY_ARN = "arn:aws:kms:me-central-1:123456789012:key/11111111-2222-3333-4444-555555555555"


def bad_record() -> dict[str, Any]:
    """A record that breaks known rules, next to a bucket that keeps them (proves the links)."""
    key = resource(KEY, "data-key", {"enableKeyRotation": True}, rid=KEY_ARN.rsplit("/", 1)[1])
    private = resource(BUCKET, "private-data", {"bucket": "private-data"}, rid="private-data")
    public = resource(
        BUCKET, "public-data", {"bucket": "public-data", "acl": "public-read"}, rid="public-data"
    )
    on_private = {"bucket": [private["urn"]]}
    return record_of(
        [
            {
                **resource("sovereign-ml:storage:Storage", "storage", {}, custom=False),
                "parent": STACK_URN,
            },
            key,
            private,
            resource(
                PAB,
                "private-data-pab",
                {
                    "bucket": "private-data",
                    "blockPublicAcls": True,
                    "blockPublicPolicy": True,
                    "ignorePublicAcls": True,
                    "restrictPublicBuckets": True,
                },
                deps=on_private,
            ),
            resource(
                SSE,
                "private-data-sse",
                {
                    "bucket": "private-data",
                    "rules": [
                        {
                            "applyServerSideEncryptionByDefault": {
                                "sseAlgorithm": "aws:kms",
                                "kmsMasterKeyId": KEY_ARN,
                            }
                        }
                    ],
                },
                deps={**on_private, "rules": [key["urn"]]},
            ),
            public,
            resource(
                SSE,
                "public-data-sse",
                {
                    "bucket": "public-data",
                    "rules": [{"applyServerSideEncryptionByDefault": {"sseAlgorithm": "AES256"}}],
                },
                deps={"bucket": [public["urn"]]},
            ),
            resource(
                "aws:ebs/volume:Volume",
                "scratch",
                {"availabilityZone": "me-central-1a", "size": 100, "encrypted": False},
            ),
            resource(
                "aws:ec2/launchTemplate:LaunchTemplate",
                "loose-lt",
                {
                    "metadataOptions": {"httpTokens": "optional", "httpPutResponseHopLimit": 2},
                    "blockDeviceMappings": [
                        {"deviceName": "/dev/xvda", "ebs": {"encrypted": "false", "volumeSize": 50}}
                    ],
                },
            ),
            resource(
                "aws:eks/cluster:Cluster",
                "open-cluster",
                {
                    "name": "open",
                    "roleArn": "arn:aws:iam::123456789012:role/eks",
                    "enabledClusterLogTypes": [],
                    "vpcConfig": {
                        "endpointPublicAccess": True,
                        "endpointPrivateAccess": False,
                        "publicAccessCidrs": ["0.0.0.0/0"],
                        "subnetIds": ["subnet-1", "subnet-2"],
                    },
                },
                rid="open",
            ),
            resource(
                "aws:eks/nodeGroup:NodeGroup",
                "gpu-pool",
                {
                    "clusterName": "open",
                    "amiType": "AL2_x86_64_GPU",
                    "instanceTypes": ["g5.xlarge"],
                    "taints": [],
                    "labels": {"sovereign-ml/pool": "gpu"},
                    "scalingConfig": {"minSize": 0, "maxSize": 2, "desiredSize": 0},
                },
                deps={"clusterName": [urn("aws:eks/cluster:Cluster", "open-cluster")]},
            ),
            resource(
                "aws:ec2/securityGroup:SecurityGroup",
                "ssh-world",
                {
                    "description": "ssh from anywhere",
                    "ingress": [
                        {
                            "protocol": "tcp",
                            "fromPort": 22,
                            "toPort": 22,
                            "cidrBlocks": ["0.0.0.0/0"],
                            "description": "ssh",
                        }
                    ],
                },
            ),
            resource(
                "kubernetes:core/v1:Namespace",
                "ml-ns",
                {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "ml"}},
            ),
            resource(
                "kubernetes:apps/v1:Deployment",
                "root-trainer",
                {
                    "apiVersion": "apps/v1",
                    "kind": "Deployment",
                    "metadata": {"name": "root-trainer"},
                    "spec": {
                        "selector": {"matchLabels": {"app": "t"}},
                        "template": {
                            "metadata": {"labels": {"app": "t"}},
                            "spec": {
                                "containers": [
                                    {
                                        "name": "t",
                                        "image": "registry.local/t:1",
                                        "securityContext": {
                                            "privileged": True,
                                            "allowPrivilegeEscalation": True,
                                        },
                                        "resources": {"limits": {"nvidia.com/gpu": 1}},
                                    }
                                ]
                            },
                        },
                    },
                },
            ),
            resource(
                "kubernetes:helm.sh/v3:Release",
                "gpu-operator",
                {"chart": "gpu-operator", "namespace": "gpu-operator", "values": {}},
            ),
        ]
    )


# --- plan shape -------------------------------------------------------------------------------


def plan_resources(plan: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Planned resources by address."""
    return {r["address"]: r for r in plan["planned_values"]["root_module"]["resources"]}


def config_resources(plan: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Configuration resources by address."""
    return {r["address"]: r for r in plan["configuration"]["root_module"]["resources"]}


def test_plan_shape_tags_all_and_references() -> None:
    plan = bridge.to_tfplan(bad_record())
    assert plan["terraform_version"] and plan["format_version"]
    planned = plan_resources(plan)
    assert "aws_s3_bucket.public_data" in planned
    assert not any(a.startswith(("kubernetes", "sovereign")) for a in planned)
    for res in planned.values():
        assert res["mode"] == "managed"
        assert res["provider_name"] == "registry.terraform.io/hashicorp/aws"
    bucket = planned["aws_s3_bucket.public_data"]["values"]
    assert bucket["tags_all"] == DEFAULT_TAGS
    conf = config_resources(plan)
    sse = conf["aws_s3_bucket_server_side_encryption_configuration.private_data_sse"]
    assert sse["expressions"]["bucket"]["references"] == [
        "aws_s3_bucket.private_data.id",
        "aws_s3_bucket.private_data",
    ]
    # A reference inside a block sits on the leaf that carries the other resource's id.
    default = sse["expressions"]["rule"][0]["apply_server_side_encryption_by_default"][0]
    assert default["kms_master_key_id"]["references"] == [
        "aws_kms_key.data_key.arn",
        "aws_kms_key.data_key",
    ]
    assert plan["configuration"]["provider_config"]["aws"]["expressions"]["region"] == {
        "constant_value": "me-central-1"
    }
    assert {c["change"]["actions"][0] for c in plan["resource_changes"]} == {"create"}


def test_resource_tags_override_default_tags() -> None:
    rec = record_of([resource(BUCKET, "b", {"tags": {"owner": "someone-else", "x": "1"}})])
    values = plan_resources(bridge.to_tfplan(rec))["aws_s3_bucket.b"]["values"]
    assert values["tags_all"] == {**DEFAULT_TAGS, "owner": "someone-else", "x": "1"}


def test_tags_all_only_on_taggable_types() -> None:
    role = "aws:iam/role:Role"
    policy = "aws:s3/bucketPolicy:BucketPolicy"
    rec = record_of([resource(role, "r", {"assumeRolePolicy": "{}"}), resource(policy, "p", {})])
    planned = plan_resources(bridge.to_tfplan(rec))
    # The role has no tags of its own but takes the provider's; a bucket policy has no tags.
    assert planned["aws_iam_role.r"]["values"]["tags_all"] == DEFAULT_TAGS
    assert "tags_all" not in planned["aws_s3_bucket_policy.p"]["values"]


def test_addresses_are_unique_identifiers() -> None:
    rec = record_of(
        [
            resource(BUCKET, "a-b", {}),
            resource(BUCKET, "a_b", {}),
            resource(BUCKET, "1st", {}),
            resource(KEY, "a-b", {}),
        ]
    )
    assert list(bridge.addresses(rec).values()) == [
        "aws_s3_bucket.a_b",
        "aws_s3_bucket.a_b_2",
        "aws_s3_bucket.r_1st",
        "aws_kms_key.a_b",
    ]


def test_kubernetes_objects_and_files(tmp_path: Path) -> None:
    objs = bridge.kubernetes_objects(bad_record())
    assert [(o["kind"], o["metadata"]["name"]) for o in objs] == [
        ("Namespace", "ml"),
        ("Deployment", "root-trainer"),
    ]
    # No namespace in the inputs: the one the provider defaults to.
    assert objs[1]["metadata"]["namespace"] == "ml"
    assert "namespace" not in objs[0]["metadata"]
    assert objs[1]["spec"]["template"]["spec"]["containers"][0]["securityContext"]["privileged"]
    (tmp_path / "stale.yaml").write_text("kind: Gone\n")
    paths = bridge.write_k8s(bad_record(), tmp_path)
    assert sorted(p.name for p in paths) == [
        "deployment-ml-root-trainer.yaml",
        "namespace-cluster-ml.yaml",
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in paths)
    assert yaml.safe_load(paths[1].read_text()) == objs[1]


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
    bridge.write_all(record, build / "prod-uae")
    return record, cr.run_checkov(build / "prod-uae")


@pytest.mark.slow
@needs_checkov
def test_prod_uae_plan_has_every_aws_resource(
    prod_uae: tuple[dict[str, Any], cr.CheckovReport],
) -> None:
    record, _ = prod_uae
    plan = bridge.to_tfplan(record)
    aws = [r for r in record["resources"] if r["custom"] and r["type"].startswith("aws:")]
    assert all(bridge.terraform_type(r["type"]) for r in aws)
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
    assert tf.resource_count == len(plan_resources(bridge.to_tfplan(record)))
    counts = report.counts()
    seconds = {r.framework: round(r.seconds, 1) for r in report.runs if r.ran}
    print(f"\ncheckov prod-uae: {counts}; seconds: {seconds}")
    print("FAILED checkov checks for prod-uae:")
    print(cr.format_findings(report.failed) or "(none)")
    assert counts["terraform_plan"]["passed"] > 100
    # Checks prod-uae is built to pass; several only pass when the bridge links resources
    # (bucket -> public access block / encryption, VPC -> flow log, VPC -> default SG).
    buckets = {
        a for a in plan_resources(bridge.to_tfplan(record)) if a.startswith("aws_s3_bucket.")
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
    bridge.write_all(bad_record(), build)
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
    assert [s.check_id for s in bad_report.unused_suppressions()] == ["CKV_AWS_999"]
    assert not bad_report.ok
    doc = bad_report.to_dict()
    assert doc["counts"]["terraform_plan"]["suppressed"] == len(suppressed)
    json.dumps(doc)
