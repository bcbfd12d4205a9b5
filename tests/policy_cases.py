# ruff: noqa: E501  (the case table reads best one case per line)
"""Pass and fail fixtures for every policy rule, shared by the offline and CrossGuard tests.

Each case is (rule id, resources, expected violation count of that rule). Resources are built
as they appear in a synth record, so the same case can be fed to both runners.
"""

from __future__ import annotations

from typing import Any

from policies.rules import Resource

KEY = "arn:aws:kms:me-central-1:123456789012:key/abc"
PROVIDER_UAE = {
    "region": "me-central-1",
    "defaultTags": {"tags": {"owner": "o", "cost-center": "c", "data-classification": "internal"}},
}


def R(  # noqa: N802 (short on purpose: the case table uses it on every line)
    typ: str, name: str, inputs: dict[str, Any], deps: tuple[str, ...] = (), **kw: Any
) -> Resource:
    """A resource with a URN shaped like the synth's, on the UAE provider by default."""
    return Resource(
        type=typ,
        name=name,
        inputs=inputs,
        urn=f"urn:pulumi:t::sovereign-ml::{typ}::{name}",
        provider_inputs=kw.get("provider", PROVIDER_UAE),
        dependencies=deps,
    )


def _pod(kind: str = "Deployment", **container: Any) -> dict[str, Any]:
    good = {
        "name": "app",
        "image": "nvcr.io/nvidia/tritonserver:24.10-py3",
        "securityContext": {
            "runAsNonRoot": True,
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "resources": {
            "requests": {"cpu": "1", "memory": "1Gi"},
            "limits": {"cpu": "2", "memory": "2Gi"},
        },
    }
    c = {**good, **container}
    spec = {"containers": [c]}
    if kind == "Pod":
        return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": spec}
    return {
        "apiVersion": "apps/v1",
        "kind": kind,
        "metadata": {"name": "d", "namespace": "serving"},
        "spec": {"template": {"spec": spec}},
    }


def _gpu_pod(**spec: Any) -> dict[str, Any]:
    doc = _pod(resources={"requests": {"cpu": "1", "memory": "1Gi", "nvidia.com/gpu": 1},
                          "limits": {"cpu": "1", "memory": "1Gi", "nvidia.com/gpu": 1}})  # fmt: skip
    doc["spec"]["template"]["spec"].update(spec)
    return doc


SSE = "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration"
BUCKET = R("aws:s3/bucket:Bucket", "b", {"bucket": "b"})


def _sse(algorithm: str, key: str | None) -> Resource:
    default = {"sseAlgorithm": algorithm, **({"kmsMasterKeyId": key} if key else {})}
    return R(
        SSE, "b-sse", {"rules": [{"applyServerSideEncryptionByDefault": default}]}, (BUCKET.urn,)
    )


def _ns(name: str) -> Resource:
    return R("kubernetes:core/v1:Namespace", f"ns-{name}", {"metadata": {"name": name}})


def _deny(ns: str, **spec: Any) -> Resource:
    return R(
        "kubernetes:networking.k8s.io/v1:NetworkPolicy",
        f"deny-{ns}",
        {
            "metadata": {"name": "default-deny", "namespace": ns},
            "spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"], **spec},
        },
    )


PLATFORM = ("kubeflow", "feature-store", "serving", "monitoring", "vault")


def _target(name: str, kind: str | None, api: str) -> dict[str, str]:
    return {"name": name} if kind is None else {"apiVersion": api, "kind": kind, "name": name}


def _hpa(name: str, kind: str = "Rollout", api: str = "argoproj.io/v1alpha1") -> Resource:
    return R("kubernetes:autoscaling/v2:HorizontalPodAutoscaler", f"hpa-{name}", {
        "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": name, "namespace": "serving"},
        "spec": {"scaleTargetRef": _target(name, kind, api), "minReplicas": 1, "maxReplicas": 3},
    })  # fmt: skip


def _scaler(name: str, kind: str | None = "Rollout", namespace: str = "serving") -> Resource:
    return R("kubernetes:keda.sh/v1alpha1:ScaledObject", f"so-{name}-{namespace}", {
        "apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"scaleTargetRef": _target(name, kind, "argoproj.io/v1alpha1"), "minReplicaCount": 0},
    })  # fmt: skip


EKS = "aws:eks/cluster:Cluster"
LT = "aws:ec2/launchTemplate:LaunchTemplate"
NG = "aws:eks/nodeGroup:NodeGroup"
SG = "aws:ec2/securityGroup:SecurityGroup"
ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"
GPU_TAINT = [{"key": "nvidia.com/gpu", "value": "true", "effect": "NO_SCHEDULE"}]


def _eks(**vpc: Any) -> Resource:
    return R(EKS, "eks", {
        "vpcConfig": {"endpointPrivateAccess": True, "endpointPublicAccess": False, **vpc},
        "encryptionConfig": {"resources": ["secrets"], "provider": {"keyArn": KEY}},
    })  # fmt: skip


def _policy(statement: dict[str, Any]) -> Resource:
    import json

    return R(ROLE_POLICY, "p", {"policy": json.dumps({"Statement": [statement]})})


CASES: list[tuple[str, str, list[Resource], int]] = [
    # (rule id, case label, resources, expected violations of that rule)
    ("SOV-RES-001", "provider in zone", [R("pulumi:providers:aws", "aws", {"region": "me-central-1"})], 0),
    ("SOV-RES-001", "provider us-east-1", [R("pulumi:providers:aws", "aws", {"region": "us-east-1"})], 1),
    ("SOV-RES-001", "resource region override", [R("aws:s3/bucket:Bucket", "b", {"region": "eu-west-1"})], 1),
    ("SOV-RES-002", "in-zone log destination",
     [R("aws:ec2/flowLog:FlowLog", "f", {"logDestination": "arn:aws:logs:me-central-1:1:log-group:x"})], 0),
    ("SOV-RES-002", "replication to Frankfurt",
     [R("aws:s3/bucketReplicationConfig:BucketReplicationConfig", "r",
        {"rules": [{"destination": {"bucket": "arn:aws:s3:::x", "encryptionConfiguration":
            {"replicaKmsKeyId": "arn:aws:kms:eu-central-1:1:key/k"}}}]})], 1),
    ("SOV-RES-002", "backup copy out of zone",
     [R("aws:backup/plan:Plan", "bp", {"rules": [{"copyActions": [
         {"destinationVaultArn": "arn:aws:backup:us-east-1:1:backup-vault:v"}]}]})], 1),
    ("SOV-RES-002", "snapshot source region", [R("aws:ebs/snapshotCopy:SnapshotCopy", "s", {"sourceRegion": "us-west-2"})], 1),
    ("SOV-ENC-001", "sse-kms cmk", [_sse("aws:kms", KEY)], 0),
    ("SOV-ENC-001", "sse-s3", [_sse("AES256", None)], 1),
    ("SOV-ENC-001", "aws-managed key", [_sse("aws:kms", "alias/aws/s3")], 1),
    ("SOV-ENC-002", "bucket with sse", [BUCKET, _sse("aws:kms", KEY)], 0),
    ("SOV-ENC-002", "bucket without sse", [BUCKET], 1),
    ("SOV-ENC-003", "encrypted lt", [R(LT, "lt", {"blockDeviceMappings": [
        {"deviceName": "/dev/xvda", "ebs": {"encrypted": "true", "kmsKeyId": KEY}}]})], 0),
    ("SOV-ENC-003", "unencrypted lt", [R(LT, "lt", {"blockDeviceMappings": [
        {"deviceName": "/dev/xvda", "ebs": {"encrypted": "false"}}]})], 1),
    ("SOV-ENC-003", "unencrypted volume", [R("aws:ebs/volume:Volume", "v", {"size": 10})], 1),
    ("SOV-ENC-004", "secrets encrypted", [_eks()], 0),
    ("SOV-ENC-004", "no secrets encryption", [R(EKS, "eks", {"vpcConfig": {"endpointPublicAccess": False}})], 1),
    ("SOV-ENC-005", "rotation on", [R("aws:kms/key:Key", "k", {"enableKeyRotation": True})], 0),
    ("SOV-ENC-005", "rotation off", [R("aws:kms/key:Key", "k", {})], 1),
    ("SOV-ENC-005", "asymmetric key exempt", [R("aws:kms/key:Key", "k", {"customerMasterKeySpec": "RSA_2048"})], 0),
    ("SOV-ENC-006", "kms log group", [R("aws:cloudwatch/logGroup:LogGroup", "l", {"kmsKeyId": KEY})], 0),
    ("SOV-ENC-006", "plain log group", [R("aws:cloudwatch/logGroup:LogGroup", "l", {})], 1),
    ("SOV-ENC-007", "encrypted redis", [R("aws:elasticache/replicationGroup:ReplicationGroup", "rg", {
        "atRestEncryptionEnabled": True, "transitEncryptionEnabled": True, "kmsKeyId": KEY})], 0),
    ("SOV-ENC-007", "plain redis", [R("aws:elasticache/replicationGroup:ReplicationGroup", "rg", {})], 3),
    ("SOV-ENC-008", "encrypted rds", [R("aws:rds/instance:Instance", "db", {"storageEncrypted": True, "kmsKeyId": KEY})], 0),
    ("SOV-ENC-008", "public plain rds", [R("aws:rds/instance:Instance", "db", {"publiclyAccessible": True})], 3),
    ("SOV-ENC-009", "force_ssl", [
        R("aws:rds/parameterGroup:ParameterGroup", "pg", {"parameters": [{"name": "rds.force_ssl", "value": "1"}]}),
        R("aws:rds/instance:Instance", "db", {}, ("urn:pulumi:t::sovereign-ml::aws:rds/parameterGroup:ParameterGroup::pg",)),
    ], 0),
    ("SOV-ENC-009", "no tls", [R("aws:rds/instance:Instance", "db", {})], 1),
    ("SOV-NET-001", "private endpoint", [_eks()], 0),
    ("SOV-NET-001", "public in prod", [_eks(endpointPublicAccess=True, publicAccessCidrs=["203.0.113.0/24"])], 1),
    ("SOV-NET-001", "default is public", [R(EKS, "eks", {"vpcConfig": {}})], 1),
    ("SOV-NET-002", "vpc-only ingress", [R(SG, "sg", {"ingress": [{"protocol": "tcp", "fromPort": 443, "toPort": 443, "cidrBlocks": ["10.0.0.0/16"]}]})], 0),
    ("SOV-NET-002", "open ssh", [R(SG, "sg", {"ingress": [{"protocol": "tcp", "fromPort": 22, "toPort": 22, "cidrBlocks": ["0.0.0.0/0"]}]})], 1),
    ("SOV-NET-002", "open ipv6 rule", [R("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule", "r", {"cidrIpv6": "::/0"})], 1),
    ("SOV-NET-003", "imdsv2", [R(LT, "lt", {"metadataOptions": {"httpTokens": "required"}})], 0),
    ("SOV-NET-003", "imdsv1", [R(LT, "lt", {"metadataOptions": {"httpTokens": "optional"}})], 1),
    ("SOV-NET-004", "blocked bucket", [BUCKET, R("aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock", "pab",
        dict.fromkeys(("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets"), True),
        (BUCKET.urn,))], 0),
    ("SOV-NET-004", "half-blocked bucket", [BUCKET, R("aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock", "pab",
        {"blockPublicAcls": True}, (BUCKET.urn,))], 1),
    ("SOV-NET-004", "public acl, no block", [BUCKET, R("aws:s3/bucketAcl:BucketAcl", "acl", {"acl": "public-read"})], 2),
    ("SOV-GPU-001", "tainted gpu", [R(NG, "g", {"amiType": "AL2023_x86_64_NVIDIA", "taints": GPU_TAINT})], 0),
    ("SOV-GPU-001", "untainted gpu", [R(NG, "g", {"amiType": "AL2023_x86_64_NVIDIA", "taints": []})], 1),
    ("SOV-GPU-001", "gpu by instance type", [R(NG, "g", {"instanceTypes": ["p5.48xlarge"]})], 1),
    ("SOV-GPU-001", "cpu pool needs none", [R(NG, "c", {"amiType": "AL2023_x86_64_STANDARD"})], 0),
    ("SOV-GPU-002", "gpu pod tolerates and selects", [R("kubernetes:apps/v1:Deployment", "d", _gpu_pod(
        tolerations=[{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
        nodeSelector={"sovereign-ml/pool": "gpu"}))], 0),
    ("SOV-GPU-002", "gpu pod bare", [R("kubernetes:apps/v1:Deployment", "d", _gpu_pod())], 2),
    ("SOV-K8S-001", "restricted pod", [R("kubernetes:core/v1:Pod", "p", _pod("Pod"))], 0),
    ("SOV-K8S-001", "privileged pod", [R("kubernetes:core/v1:Pod", "p", _pod("Pod", securityContext={"privileged": True}))], 5),
    ("SOV-K8S-002", "read-only root", [R("kubernetes:apps/v1:Deployment", "d", _pod())], 0),
    ("SOV-K8S-002", "writable root", [R("kubernetes:apps/v1:Deployment", "d", _pod(securityContext={}))], 1),
    ("SOV-K8S-003", "bounded", [R("kubernetes:apps/v1:Deployment", "d", _pod())], 0),
    ("SOV-K8S-003", "unbounded", [R("kubernetes:apps/v1:Deployment", "d", _pod(resources={}))], 2),
    ("SOV-K8S-004", "tag pinned", [R("kubernetes:apps/v1:Deployment", "d", _pod())], 0),
    ("SOV-K8S-004", "digest pinned", [R("kubernetes:apps/v1:Deployment", "d", _pod(image="r/x@sha256:" + "a" * 64))], 0),
    ("SOV-K8S-004", "latest", [R("kubernetes:apps/v1:Deployment", "d", _pod(image="nginx:latest"))], 1),
    ("SOV-K8S-004", "untagged with registry port", [R("kubernetes:apps/v1:Deployment", "d", _pod(image="reg:5000/nginx"))], 1),
    ("SOV-K8S-005", "all denied", [*(_ns(n) for n in PLATFORM), *(_deny(n) for n in PLATFORM)], 0),
    ("SOV-K8S-005", "tenant without deny", [*(_ns(n) for n in PLATFORM), *(_deny(n) for n in PLATFORM), _ns("acme")], 1),
    ("SOV-K8S-005", "allow-all is not deny", [*(_ns(n) for n in PLATFORM), *(_deny(n) for n in PLATFORM[1:]),
                                            _deny("kubeflow", ingress=[{}])], 1),
    ("SOV-K8S-005", "no k8s objects, no rule", [BUCKET], 0),
    ("SOV-K8S-006", "one autoscaler each", [_hpa("a"), _scaler("b")], 0),
    ("SOV-K8S-006", "same name, other namespace", [_hpa("a"), _scaler("a", namespace="acme")], 0),
    ("SOV-K8S-006", "hpa and scaledobject on one rollout", [_hpa("a"), _scaler("a")], 1),
    ("SOV-K8S-006", "scaledobject defaults to a deployment", [_hpa("a", kind="Deployment", api="apps/v1"), _scaler("a", kind=None)], 1),
    ("SOV-IAM-001", "scoped", [_policy({"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b/*"})], 0),
    ("SOV-IAM-001", "admin", [_policy({"Effect": "Allow", "Action": "*", "Resource": "*"})], 1),
    ("SOV-IAM-001", "deny is fine", [_policy({"Effect": "Deny", "Action": "*", "Resource": "*"})], 0),
    ("SOV-IAM-002", "passrole named", [_policy({"Effect": "Allow", "Action": "iam:PassRole", "Resource": "arn:aws:iam::1:role/x"})], 0),
    ("SOV-IAM-002", "passrole star", [_policy({"Effect": "Allow", "Action": ["iam:PassRole"], "Resource": ["*"]})], 1),
    ("SOV-TAG-001", "provider default tags", [R("aws:ec2/vpc:Vpc", "v", {})], 0),
    ("SOV-TAG-001", "resource tags", [R("aws:ec2/vpc:Vpc", "v", {"tags": {"owner": "o", "cost-center": "c", "data-classification": "x"}}, provider={})], 0),
    ("SOV-TAG-001", "untagged", [R("aws:ec2/vpc:Vpc", "v", {"tags": {"owner": "o"}}, provider={})], 1),
    ("SOV-TAG-001", "not taggable", [R("aws:s3/bucketPolicy:BucketPolicy", "p", {}, provider={})], 0),
]  # fmt: skip


def as_record(
    resources: list[Resource], zone: str = "uae", environment: str = "prod"
) -> dict[str, Any]:
    """A synth-record-shaped dict holding ``resources`` (providers synthesised from their inputs)."""
    providers: dict[str, dict[str, Any]] = {}
    out = []
    for r in resources:
        provider_urn = None
        if r.provider_inputs and r.type != "pulumi:providers:aws":
            provider_urn = "urn:pulumi:t::sovereign-ml::pulumi:providers:aws::p" + str(
                abs(hash(str(r.provider_inputs))) % 1000
            )
            providers[provider_urn] = {
                "urn": provider_urn, "type": "pulumi:providers:aws", "name": "p", "custom": False,
                "inputs": dict(r.provider_inputs), "dependencies": [], "provider": None,
            }  # fmt: skip
        out.append({
            "urn": r.urn, "type": r.type, "name": r.name, "custom": True, "inputs": dict(r.inputs),
            "provider": provider_urn, "dependencies": list(r.dependencies),
        })  # fmt: skip
    # Providers are listed but not custom here so they are context only, not judged themselves.
    return {
        "stack": "t",
        "project": "sovereign-ml",
        "config": {"zone": zone, "environment": environment},
        "resources": list(providers.values()) + out,
    }
