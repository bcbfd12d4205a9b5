"""The AWS base components on their own, under the same recording mocks the synth uses.

The Kubernetes-side components have their own modules: ``test_components_baseline.py``
(baseline, GPU device plugin, autoscaler), ``test_components_workloads.py`` (Vault, Kubeflow,
feature store, KEDA) and ``test_components_serving.py``.
"""

from __future__ import annotations

import ipaddress
import json
from typing import Any

import pulumi
import pytest

from components.addons import ClusterAddons, ClusterAddonsArgs
from components.cluster import LOG_TYPES, Cluster, ClusterArgs
from components.encryption import Encryption, EncryptionArgs
from components.network import Network, NetworkArgs, subnet_plan
from components.node_pools import NodePools, NodePoolsArgs, NodePoolSpec
from components.storage import Storage, StorageArgs
from tests.component_mocks import (
    ACCESS,
    KEY,
    children_named_after,
    of_type,
    record,
    with_provider,
)


def _encryption(opts: pulumi.ResourceOptions | None = None) -> Encryption:
    return Encryption("keys", EncryptionArgs(name_prefix="p", account_id="123456789012"), opts)


def _network(opts: pulumi.ResourceOptions | None = None, single: bool = False) -> Network:
    args = NetworkArgs(
        name_prefix="p", cidr="10.40.0.0/16", az_count=3, single_nat_gateway=single,
        logs_key_arn=KEY, log_retention_days=365,
    )  # fmt: skip
    return Network("net", args, opts)


def test_encryption_keys_rotate_and_are_protected() -> None:
    res = record(_encryption)
    keys = of_type(res, "aws:kms/key:Key")
    assert len(keys) == 4
    for k in keys:
        assert k["inputs"]["enableKeyRotation"] is True, k["urn"]
        assert k["protect"] and k["retainOnDelete"], k["urn"]
        doc = json.loads(k["inputs"]["policy"])
        assert all(s["Principal"] != "*" for s in doc["Statement"]), k["urn"]
    logs = next(k for k in keys if k["name"] == "keys-logs")
    assert "logs.me-central-1.amazonaws.com" in logs["inputs"]["policy"]
    assert {a["inputs"]["name"] for a in of_type(res, "aws:kms/alias:Alias")} == {
        "alias/p-cluster",
        "alias/p-volumes",
        "alias/p-storage",
        "alias/p-logs",
    }
    children_named_after(res, "sovereign-ml:encryption:Encryption", "keys")


def test_encryption_rejects_unknown_purpose_before_any_resource() -> None:
    with pytest.raises(ValueError, match=r"EncryptionArgs.purposes: unknown \['tape'\]"):
        Encryption("k", EncryptionArgs(name_prefix="p", account_id="1", purposes=["tape"]))


@pytest.mark.parametrize(("single", "nats"), [(False, 3), (True, 1)])
def test_network_spans_azs_with_endpoints_and_flow_logs(single: bool, nats: int) -> None:
    res = record(lambda: _network(single=single))
    subnets = of_type(res, "aws:ec2/subnet:Subnet")
    assert {s["inputs"]["availabilityZone"] for s in subnets} == {
        "me-central-1a",
        "me-central-1b",
        "me-central-1c",
    }
    assert not any(s["inputs"]["mapPublicIpOnLaunch"] for s in subnets)
    assert len(of_type(res, "aws:ec2/natGateway:NatGateway")) == nats
    endpoints = of_type(res, "aws:ec2/vpcEndpoint:VpcEndpoint")
    gateway = [e for e in endpoints if e["inputs"]["vpcEndpointType"] == "Gateway"]
    assert [e["inputs"]["serviceName"] for e in gateway] == ["com.amazonaws.me-central-1.s3"]
    assert len(endpoints) - len(gateway) >= 4
    assert all(
        e["inputs"]["serviceName"].startswith("com.amazonaws.me-central-1.") for e in endpoints
    )
    (group,) = of_type(res, "aws:cloudwatch/logGroup:LogGroup")
    assert group["inputs"]["kmsKeyId"] == KEY
    assert of_type(res, "aws:ec2/flowLog:FlowLog")[0]["inputs"]["trafficType"] == "ALL"
    children_named_after(res, "sovereign-ml:network:Network", "net")


def test_the_region_is_the_providers() -> None:
    """Components take no region argument: it comes from their AWS provider, so the two can
    never disagree. Under a provider in another region, everything regional follows it."""
    region = "eu-central-1"
    res = record(with_provider(region, _network)) + record(with_provider(region, _encryption))
    services = [e["inputs"]["serviceName"] for e in of_type(res, "aws:ec2/vpcEndpoint:VpcEndpoint")]
    assert services and all(s.startswith(f"com.amazonaws.{region}.") for s in services), services
    zones = {s["inputs"]["availabilityZone"] for s in of_type(res, "aws:ec2/subnet:Subnet")}
    assert zones == {f"{region}{z}" for z in "abc"}
    logs = next(k for k in of_type(res, "aws:kms/key:Key") if k["name"] == "keys-logs")
    assert f"logs.{region}.amazonaws.com" in logs["inputs"]["policy"]
    assert f"arn:aws:logs:{region}:123456789012:log-group:*" in logs["inputs"]["policy"]
    for key in of_type(res, "aws:kms/key:Key"):
        assert "me-central-1" not in key["inputs"]["policy"], key["urn"]


def test_subnet_plan_never_overlaps() -> None:
    private, public = subnet_plan("10.40.0.0/20", 3)
    nets = [ipaddress.ip_network(c) for c in private + public]
    assert all(not a.overlaps(b) for i, a in enumerate(nets) for b in nets[i + 1 :])


def test_storage_buckets_encrypted_versioned_blocked() -> None:
    res = record(
        lambda: Storage(
            "st", StorageArgs(name_prefix="p", account_id="123456789012", kms_key_arn=KEY)
        )
    )
    buckets = of_type(res, "aws:s3/bucket:Bucket")
    assert {b["inputs"]["bucket"] for b in buckets} == {
        f"p-{x}-123456789012" for x in ("access-logs", "artifacts", "models", "features")
    }
    assert all(b["protect"] for b in buckets)
    for sse in of_type(
        res,
        "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
    ):
        rule = sse["inputs"]["rules"][0]
        assert rule["applyServerSideEncryptionByDefault"] == {
            "sseAlgorithm": "aws:kms",
            "kmsMasterKeyId": KEY,
        }, sse["urn"]
        assert rule["bucketKeyEnabled"] is True
    assert len(of_type(res, "aws:s3/bucketVersioning:BucketVersioning")) == 4
    for pab in of_type(res, "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock"):
        assert all(
            pab["inputs"][f]
            for f in (
                "blockPublicAcls",
                "blockPublicPolicy",
                "ignorePublicAcls",
                "restrictPublicBuckets",
            )
        )
    for pol in of_type(res, "aws:s3/bucketPolicy:BucketPolicy"):
        assert '"aws:SecureTransport": "false"' in pol["inputs"]["policy"], pol["urn"]


def _cluster_args(**kw: Any) -> ClusterArgs:
    args: dict[str, Any] = dict(
        cluster_name="p", kubernetes_version="1.33", vpc_id="vpc-1", vpc_cidr="10.40.0.0/16",
        subnet_ids=["subnet-1", "subnet-2"], secrets_key_arn=KEY, logs_key_arn=KEY,
        log_retention_days=365,
    )  # fmt: skip
    return ClusterArgs(**{**args, **kw})


def test_cluster_is_private_encrypted_and_logs_everything() -> None:
    def build() -> Cluster:
        c = Cluster("c", _cluster_args())

        # The STYLE.md form: assert on resolved outputs, naming the URN on failure.
        def check(args: list[Any]) -> None:
            urn, endpoint, issuer = args
            assert endpoint.startswith("https://"), f"{urn}: endpoint {endpoint}"
            assert issuer.startswith("https://oidc.eks.me-central-1."), f"{urn}: issuer {issuer}"

        pulumi.Output.all(c.urn, c.endpoint, c.access.oidc_issuer_url).apply(check)
        return c

    res = record(build)
    (eks,) = of_type(res, "aws:eks/cluster:Cluster")
    i = eks["inputs"]
    assert i["vpcConfig"]["endpointPublicAccess"] is False
    assert i["vpcConfig"]["endpointPrivateAccess"] is True
    assert i["encryptionConfig"] == {"resources": ["secrets"], "provider": {"keyArn": KEY}}
    assert i["enabledClusterLogTypes"] == list(LOG_TYPES)
    group = next(r for r in res if r["type"] == "aws:cloudwatch/logGroup:LogGroup")
    assert group["inputs"]["name"] == "/aws/eks/p/cluster"
    assert group["urn"] in eks["dependencies"], "log group must exist before the cluster"
    assert len(of_type(res, "aws:iam/openIdConnectProvider:OpenIdConnectProvider")) == 1
    assert len(of_type(res, "pulumi:providers:kubernetes")) == 1
    assert {a["inputs"]["addonName"] for a in of_type(res, "aws:eks/addon:Addon")} == {
        "vpc-cni",
        "kube-proxy",
    }
    (sg,) = of_type(res, "aws:ec2/securityGroup:SecurityGroup")
    rules = sg["inputs"]["ingress"] + sg["inputs"]["egress"]
    assert all(r["cidrBlocks"] == ["10.40.0.0/16"] for r in rules), sg["urn"]


def test_cluster_refuses_public_endpoint_without_cidrs() -> None:
    with pytest.raises(ValueError, match="public_access_cidrs"):
        Cluster("c", _cluster_args(endpoint_public_access=True))


def test_addons_give_the_ebs_driver_its_own_role_and_the_volume_key() -> None:
    res = record(
        lambda: ClusterAddons(
            "addons",
            ClusterAddonsArgs(cluster_access=ACCESS, kubernetes_version="1.33", volume_key_arn=KEY),
        )
    )
    addons = {a["inputs"]["addonName"]: a for a in of_type(res, "aws:eks/addon:Addon")}
    assert set(addons) == {"coredns", "aws-ebs-csi-driver"}
    assert "serviceAccountRoleArn" not in addons["coredns"]["inputs"]
    (role,) = of_type(res, "aws:iam/role:Role")
    trust = json.loads(role["inputs"]["assumeRolePolicy"])["Statement"][0]
    assert trust["Principal"] == {"Federated": ACCESS.oidc_provider_arn}
    assert "system:serviceaccount:kube-system:ebs-csi-controller-sa" in json.dumps(trust)
    (managed,) = of_type(res, "aws:iam/rolePolicyAttachment:RolePolicyAttachment")
    assert managed["inputs"]["policyArn"] == (
        "arn:aws:iam::aws:policy/service-role/AmazonEBSCSIDriverPolicy"
    )
    (inline,) = of_type(res, "aws:iam/rolePolicy:RolePolicy")
    statements = json.loads(inline["inputs"]["policy"])["Statement"]
    assert {s["Resource"] for s in statements} == {KEY}


def _pool(**kw: Any) -> NodePoolSpec:
    base: dict[str, Any] = dict(
        name="gpu", gpu=True, instance_types=["g5.2xlarge"], capacity_type="ON_DEMAND",
        min_size=0, desired_size=1, max_size=2, disk_gib=200,
        taints=[("nvidia.com/gpu", "true", "NO_SCHEDULE")],
    )  # fmt: skip
    return NodePoolSpec(**{**base, **kw})


def _pools_args(**kw: Any) -> NodePoolsArgs:
    args: dict[str, Any] = dict(
        cluster_name="p", kubernetes_version="1.33", subnet_ids=["s1"], volume_key_arn=KEY,
        pools=[_pool()],
    )  # fmt: skip
    return NodePoolsArgs(**{**args, **kw})


def test_gpu_pool_uses_nvidia_ami_taint_and_imdsv2() -> None:
    res = record(lambda: NodePools("np", _pools_args()))
    (group,) = of_type(res, "aws:eks/nodeGroup:NodeGroup")
    assert group["inputs"]["amiType"] == "AL2023_x86_64_NVIDIA"
    assert group["inputs"]["taints"] == [
        {"key": "nvidia.com/gpu", "value": "true", "effect": "NO_SCHEDULE"}
    ]
    assert "scalingConfig.desiredSize" in group["ignoreChanges"]
    tags = group["inputs"]["tags"]
    template = "k8s.io/cluster-autoscaler/node-template"
    assert tags[f"{template}/taint/nvidia.com/gpu"] == "true:NoSchedule"
    assert tags[f"{template}/label/sovereign-ml/pool"] == "gpu"
    assert tags[f"{template}/resources/nvidia.com/gpu"] == "1"
    (lt,) = of_type(res, "aws:ec2/launchTemplate:LaunchTemplate")
    ebs = lt["inputs"]["blockDeviceMappings"][0]["ebs"]
    assert ebs["encrypted"] == "true" and ebs["kmsKeyId"] == KEY and ebs["volumeType"] == "gp3"
    assert lt["inputs"]["metadataOptions"]["httpTokens"] == "required"
    policies = {
        a["inputs"]["policyArn"]
        for a in of_type(res, "aws:iam/rolePolicyAttachment:RolePolicyAttachment")
    }
    assert policies == {
        "arn:aws:iam::aws:policy/AmazonEKSWorkerNodePolicy",
        "arn:aws:iam::aws:policy/AmazonEC2ContainerRegistryReadOnly",
    }


def test_gpu_pool_without_taint_is_refused() -> None:
    with pytest.raises(ValueError, match=r"pools\[gpu\].taints"):
        NodePools("np", _pools_args(pools=[_pool(taints=[])]))
