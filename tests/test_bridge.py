"""The synth record -> checkov bridge: the Terraform type map and values
(``infra.gate.terraform_types``), the plan (``infra.gate.tfplan``) and the Kubernetes manifests
(``infra.gate.k8s_manifests``). checkov's scan of the bridged records is in
``tests/test_checkov_run.py``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from infra.gate import k8s_manifests, tfplan
from infra.gate.terraform_types import singular, snake_case, terraform_type, to_terraform_values
from tests.bridge_records import (
    BUCKET,
    DEFAULT_TAGS,
    KEY,
    bad_record,
    config_resources,
    plan_resources,
    record_of,
    resource,
)

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
    assert terraform_type(token) == expected


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
    assert snake_case(camel) == snake


def test_singular() -> None:
    plurals = ("corsRules", "inlinePolicies", "globalSecondaryIndexes", "customErrorResponses")
    assert [singular(p) for p in plurals] == [
        "cors_rule",
        "inline_policy",
        "global_secondary_index",
        "custom_error_response",
    ]


# --- values -----------------------------------------------------------------------------------


def test_values_are_snake_cased_recursively_and_blocks_become_lists() -> None:
    values = to_terraform_values(
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
    values = to_terraform_values(
        {"tags": tags, "labels": labels, "taints": [], "amiType": "AL2023_x86_64_NVIDIA"},
        "aws_eks_node_group",
    )
    assert values["tags"] == tags
    assert values["labels"] == labels
    assert values["taint"] == []
    # Tags inside repeated blocks are maps too.
    lt = to_terraform_values(
        {"tagSpecifications": [{"resourceType": "volume", "tags": {"myKey": "v"}}]},
        "aws_launch_template",
    )
    assert lt == {"tag_specifications": [{"resource_type": "volume", "tags": {"myKey": "v"}}]}


def test_pluralised_blocks_are_renamed_per_type() -> None:
    sse = to_terraform_values(
        {"rules": [{"applyServerSideEncryptionByDefault": {"sseAlgorithm": "aws:kms"}}]},
        "aws_s3_bucket_server_side_encryption_configuration",
    )
    assert sse == {
        "rule": [{"apply_server_side_encryption_by_default": [{"sse_algorithm": "aws:kms"}]}]
    }
    oidc = to_terraform_values(
        {"clientIdLists": ["sts.amazonaws.com"], "url": "https://x"},
        "aws_iam_openid_connect_provider",
    )
    assert oidc == {"client_id_list": ["sts.amazonaws.com"], "url": "https://x"}
    # The same Pulumi name is left alone on types where Terraform spells it the same.
    assert "rules" in to_terraform_values({"rules": []}, "aws_wafv2_rule_group")


def test_scalar_types_and_json_strings_survive() -> None:
    policy = json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow"}]})
    values = to_terraform_values(
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
    values = to_terraform_values({"enabledClusterLogTypes": []}, "aws_eks_cluster")
    assert "enabled_cluster_log_types" not in values


@given(
    st.dictionaries(
        st.text(alphabet="abcXYZ-/._ 0", min_size=1, max_size=12),
        st.text(max_size=8),
        max_size=6,
    )
)
def test_any_tag_map_is_copied_verbatim(tags: dict[str, str]) -> None:
    values = to_terraform_values({"tags": tags, "labels": tags}, "aws_eks_node_group")
    assert values == {"tags": tags, "labels": tags}


# --- plan shape -------------------------------------------------------------------------------


def test_plan_shape_tags_all_and_references() -> None:
    plan = tfplan.to_tfplan(bad_record())
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
    values = plan_resources(tfplan.to_tfplan(rec))["aws_s3_bucket.b"]["values"]
    assert values["tags_all"] == {**DEFAULT_TAGS, "owner": "someone-else", "x": "1"}


def test_tags_all_only_on_taggable_types() -> None:
    role = "aws:iam/role:Role"
    policy = "aws:s3/bucketPolicy:BucketPolicy"
    rec = record_of([resource(role, "r", {"assumeRolePolicy": "{}"}), resource(policy, "p", {})])
    planned = plan_resources(tfplan.to_tfplan(rec))
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
    assert list(tfplan.addresses(rec).values()) == [
        "aws_s3_bucket.a_b",
        "aws_s3_bucket.a_b_2",
        "aws_s3_bucket.r_1st",
        "aws_kms_key.a_b",
    ]


def test_kubernetes_objects_and_files(tmp_path: Path) -> None:
    objs = k8s_manifests.kubernetes_objects(bad_record())
    assert [(o["kind"], o["metadata"]["name"]) for o in objs] == [
        ("Namespace", "ml"),
        ("Deployment", "root-trainer"),
    ]
    # No namespace in the inputs: the one the provider defaults to.
    assert objs[1]["metadata"]["namespace"] == "ml"
    assert "namespace" not in objs[0]["metadata"]
    assert objs[1]["spec"]["template"]["spec"]["containers"][0]["securityContext"]["privileged"]
    (tmp_path / "stale.yaml").write_text("kind: Gone\n")
    paths = k8s_manifests.write_k8s(bad_record(), tmp_path)
    assert sorted(p.name for p in paths) == [
        "deployment-ml-root-trainer.yaml",
        "namespace-cluster-ml.yaml",
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in paths)
    assert yaml.safe_load(paths[1].read_text()) == objs[1]


_TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=300)


@given(data=st.dictionaries(st.text(st.characters(blacklist_categories=("Cs",)), min_size=1,
                                    max_size=20), _TEXT, max_size=4))  # fmt: skip
def test_written_manifests_read_back_as_the_objects(data: dict[str, str]) -> None:
    """libyaml's emitter (used where PyYAML has it) folds long strings at other places than the
    Python one: whatever the text (quotes, newlines, long JSON, any script), checkov must read
    back exactly the object the record holds."""
    import tempfile

    manifest = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "c", "namespace": "n"},
        "data": {**data, "long.json": json.dumps({"k": ["x" * 90] * 5}, indent=2)},
    }
    record = {"resources": [{"type": "kubernetes:core/v1:ConfigMap", "name": "c", "custom": True,
                             "urn": "urn:c", "inputs": manifest}]}  # fmt: skip
    with tempfile.TemporaryDirectory() as out:
        objs = list(k8s_manifests.kubernetes_objects(record))
        paths = k8s_manifests.write_k8s(record, Path(out))
        assert len(objs) == len(paths) == 1
        assert [yaml.safe_load(p.read_text()) for p in paths] == objs


# -- the plan's text -----------------------------------------------------------------------------

_JSON_LEAF = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
)
_JSON = st.recursive(
    _JSON_LEAF,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=30,
)


@given(_JSON)
def test_plan_text_is_json_s_indented_text_line_for_line(value: object) -> None:
    text = tfplan.plan_text({"v": value})
    reference = json.dumps({"v": value}, indent=2)
    # checkov's line ranges come from the layout: the same lines, each the same JSON.
    assert json.loads(text) == json.loads(reference)
    assert len(text.splitlines()) == len(reference.splitlines())
    if reference.isascii() and "\x7f" not in reference and "\\u" not in reference:
        assert text == reference


@pytest.mark.parametrize(
    "plan",
    [{"v": float("nan")}, {"v": float("inf")}, {1: "int key"}, {"v": {(1, 2): "tuple key"}}],
    ids=["nan", "infinity", "int-key", "tuple-key"],
)
def test_plan_text_falls_back_to_json_where_rapidjson_refuses(plan: dict) -> None:
    try:
        expected = json.dumps(plan, indent=2)
    except TypeError:
        with pytest.raises(TypeError):
            tfplan.plan_text(plan)
        return
    assert tfplan.plan_text(plan) == expected


def test_the_cached_schema_versions_are_the_package_s_and_cannot_be_changed_by_a_caller() -> None:
    import kubernetes_validate.utils as kvu
    from packaging.version import Version

    from infra.gate.k8s_schema import _cache_schemas

    _cache_schemas()
    first = kvu.all_versions()
    assert first == sorted(first, key=Version)
    assert kvu.latest_version() == first[-1]
    first.clear()
    assert kvu.all_versions() and kvu.latest_version()
