"""Synth records built by hand for the bridge tests, and helpers to read the plans made of them.

``bad_record`` breaks known rules next to a bucket that keeps them, so the bridge's links
(bucket -> encryption, key -> bucket encryption) are proven by what passes as well as by what
fails. Used by ``tests/test_bridge.py`` (plan and manifests) and ``tests/test_checkov_run.py``.
"""

from __future__ import annotations

from typing import Any

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


def _storage() -> list[dict[str, Any]]:
    """A private bucket with its key, public access block and KMS encryption; a public one."""
    key = resource(KEY, "data-key", {"enableKeyRotation": True}, rid=KEY_ARN.rsplit("/", 1)[1])
    private = resource(BUCKET, "private-data", {"bucket": "private-data"}, rid="private-data")
    public = resource(
        BUCKET, "public-data", {"bucket": "public-data", "acl": "public-read"}, rid="public-data"
    )
    on_private = {"bucket": [private["urn"]]}
    return [
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
    ]


def _compute() -> list[dict[str, Any]]:
    """An unencrypted volume, a loose launch template, an open cluster, an untainted GPU pool."""
    return [
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
    ]


def _kubernetes() -> list[dict[str, Any]]:
    """A namespace, a privileged GPU deployment, and a Helm release the bridge must skip."""
    return [
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


def bad_record() -> dict[str, Any]:
    """A record that breaks known rules, next to a bucket that keeps them (proves the links)."""
    return record_of([*_storage(), *_compute(), *_kubernetes()])


def plan_resources(plan: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Planned resources by address."""
    return {r["address"]: r for r in plan["planned_values"]["root_module"]["resources"]}


def config_resources(plan: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Configuration resources by address."""
    return {r["address"]: r for r in plan["configuration"]["root_module"]["resources"]}
