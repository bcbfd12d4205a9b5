# ruff: noqa: E501  (the case table reads best one case per line)
"""Pass and fail fixtures for every policy rule, shared by the offline and CrossGuard tests.

Each case is (rule id, resources, expected violation count of that rule). Resources are built
as they appear in a synth record, so the same case can be fed to both runners.
"""

from __future__ import annotations

import json
from typing import Any

from policies.rules import Resource
from tests.policy_cases_egress import EGRESS_CASES
from tests.policy_cases_gateway import GATEWAY_CASES
from tests.policy_cases_mesh import MESH_CASES
from tests.policy_fixtures import (
    ATTACH,
    AUDIT_BUCKET,
    BUCKET,
    DCGM_REPO,
    DDB,
    DDB_CMK,
    ECR_REPL,
    EKS,
    FIREHOSE,
    FIREHOSE_CMK,
    GPU_POOL,
    GPU_TAINT,
    GPU_TOLERATION,
    HELM,
    KEY,
    LT,
    MANAGED,
    NG,
    PARAM,
    PL_URN,
    PLATFORM,
    PROM_REPO,
    PROVIDER,
    REPLICATION,
    ROLE_POLICY,
    SG,
    SUBSCRIPTION,
    R,
    _affinity,
    _allow,
    _dcgm,
    _deny,
    _detection,
    _eks,
    _gpu_pod,
    _host,
    _hpa,
    _ingress_rule,
    _lock,
    _netpol,
    _ns,
    _plugin,
    _pod,
    _policy,
    _prefix_list,
    _prom,
    _prov,
    _public_principal,
    _release,
    _replicate_to,
    _resource_policy,
    _scaler,
    _sg,
    _sg_rule,
    _sse,
    _trail,
    _wl,
)

UAE = R(PROVIDER, "aws", {"region": "me-central-1"})
"""The stack's AWS provider: what makes a set of resources a stack for the audit rules."""
FLB_REPO = "https://fluent.github.io/helm-charts"
FLB_VOLUMES: dict[str, Any] = {
    "daemonSetVolumes": [{"name": "varlog", "hostPath": {"path": "/var/log"}}],
    "daemonSetVolumeMounts": [{"name": "varlog", "mountPath": "/var/log", "readOnly": True}],
}


DEPLOY = "kubernetes:apps/v1:Deployment"
ZONE_ECR = "111122223333.dkr.ecr.me-central-1.amazonaws.com"
"""An ECR registry in the UAE zone's region (AWS's documentation account)."""
DIGEST = "sha256:" + "b" * 64


def _pod_with_init(image: str, init_image: str) -> dict[str, Any]:
    """A workload whose container is ``image`` and whose init container is ``init_image``."""
    pod = _pod(image=image)
    spec = pod["spec"]["template"]["spec"]
    spec["initContainers"] = [{**spec["containers"][0], "name": "init", "image": init_image}]
    return pod


def _mirror_release(chart: str = f"oci://{ZONE_ECR}/charts/vault", **values: Any) -> Resource:
    """A Helm release of a chart in the zone's registry (no chart repository)."""
    return R(HELM, "rel-vault", {"name": "vault", "chart": chart, "version": "0.30.0",
                                  "namespace": "vault", "values": values})  # fmt: skip


CIP = "kubernetes:policy.sigstore.dev/v1beta1:ClusterImagePolicy"
PLATFORM_KEY = {"kms": "awskms:///arn:aws:kms:me-central-1:111122223333:key/k"}
MIRROR_POD = R(DEPLOY, "d", _pod(image=f"{ZONE_ECR}/nvidia/tritonserver@{DIGEST}"))
"""A workload in ``serving`` pulling from the zone's registry."""


def _cip(glob: str = f"{ZONE_ECR}/**", key: dict[str, Any] | None = None) -> Resource:
    """A ClusterImagePolicy admitting ``glob`` signed by ``key`` (the platform's KMS key)."""
    spec = {
        "images": [{"glob": glob}],
        "authorities": [{"name": "platform", "key": PLATFORM_KEY if key is None else key}],
    }
    return R(CIP, "cip", {"metadata": {"name": "zone"}, "spec": spec})  # fmt: skip


def _admission_ns(name: str, labelled: bool = True) -> Resource:
    """A declared namespace, with or without policy-controller's opt-in label."""
    labels = {"policy.sigstore.dev/include": "true"} if labelled else {}
    return R("kubernetes:core/v1:Namespace", f"ns-{name}", {"metadata": {"name": name, "labels": labels}})  # fmt: skip


def _flb_output(region: str, extra: str = "") -> str:
    """A Fluent Bit ``[OUTPUT]`` section shipping to CloudWatch Logs in ``region``."""
    lines = ["[OUTPUT]", "    Name cloudwatch_logs", "    Match kube.*", f"    region {region}"]
    return "\n".join(lines + ([f"    {extra}"] if extra else [])) + "\n"


ECR_TEMPLATE = "aws:ecr/repositoryCreationTemplate:RepositoryCreationTemplate"
ECR_REPO = "aws:ecr/repository:Repository"
ECR_LIFECYCLE = "aws:ecr/lifecyclePolicy:LifecyclePolicy"


def _lifecycle(*statuses: str) -> str:
    """An ECR lifecycle policy with one expiring rule per tag status."""
    rules = [
        {
            "rulePriority": i + 1,
            "selection": {"tagStatus": t, "countType": "imageCountMoreThan", "countNumber": 5},
            "action": {"type": "expire"},
        }
        for i, t in enumerate(statuses)
    ]
    return json.dumps({"rules": rules})


UNTAGGED_ONLY = _lifecycle("untagged")


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
    # SOV-RES-002 / SOV-RES-004 over the generated classification (policies/rules/aws_types.json)
    ("SOV-RES-002", "ecr replication region, nested", [R(ECR_REPL, "e", {"replicationConfiguration": {"rules": [{"destinations": [
        {"region": "eu-west-1", "registryId": "123456789012"}]}]}})], 1),
    ("SOV-RES-002", "ecr replication in zone", [R(ECR_REPL, "e", {"replicationConfiguration": {"rules": [{"destinations": [
        {"region": "me-central-1", "registryId": "123456789012"}]}]}})], 0),
    ("SOV-RES-002", "secrets manager replica", [R("aws:secretsmanager/secret:Secret", "s", {"kmsKeyId": KEY, "replicas": [{"region": "us-east-1"}]})], 1),
    ("SOV-RES-002", "dynamodb global table replica", [R(DDB, "t", {**DDB_CMK, "replicas": [{"regionName": "eu-west-1"}]})], 1),
    ("SOV-RES-002", "kms replica of a key elsewhere", [R("aws:kms/replicaKey:ReplicaKey", "k", {"primaryKeyArn": "arn:aws:kms:us-east-1:123456789012:key/mrk-1"})], 1),
    ("SOV-RES-002", "rds cross-region read replica", [R("aws:rds/instance:Instance", "db", {"replicateSourceDb": "arn:aws:rds:eu-west-1:123456789012:db:src"})], 1),
    ("SOV-RES-002", "rds same-region replica by identifier", [R("aws:rds/instance:Instance", "db", {"replicateSourceDb": "src-db"})], 0),
    ("SOV-RES-002", "aurora source region", [R("aws:rds/cluster:Cluster", "c", {"sourceRegion": "us-east-2"})], 1),
    ("SOV-RES-002", "sns subscription to an outside endpoint", [R(SUBSCRIPTION, "s", {"protocol": "https", "endpoint": "https://hooks.example.com/in"})], 1),
    ("SOV-RES-002", "sns subscription to an in-zone queue", [R(SUBSCRIPTION, "s", {"protocol": "sqs", "endpoint": "arn:aws:sqs:me-central-1:123456789012:q"})], 0),
    ("SOV-RES-002", "log subscription to another region", [R("aws:cloudwatch/logSubscriptionFilter:LogSubscriptionFilter", "f", {
        "destinationArn": "arn:aws:kinesis:eu-west-1:123456789012:stream/s"})], 1),
    ("SOV-RES-002", "eventbridge target elsewhere", [R("aws:cloudwatch/eventTarget:EventTarget", "t", {"arn": "arn:aws:events:us-east-1:123456789012:event-bus/b"})], 1),
    ("SOV-RES-002", "availability zone outside", [R("aws:ec2/subnet:Subnet", "s", {"availabilityZone": "us-east-1a"})], 1),
    ("SOV-RES-002", "availability zone name and id inside", [R("aws:ec2/subnet:Subnet", "s", {"availabilityZone": "me-central-1b"}),
                                                             R("aws:ec2/subnet:Subnet", "s2", {"availabilityZoneId": "mec1-az2"})], 0),
    ("SOV-RES-002", "in-zone AWS endpoint", [R("aws:iam/openIdConnectProvider:OpenIdConnectProvider", "o", {
        "url": "https://oidc.eks.me-central-1.amazonaws.com/id/ABC"})], 0),
    ("SOV-RES-002", "firehose to an outside http endpoint", [R(FIREHOSE, "f", {**FIREHOSE_CMK, "destination": "http_endpoint",
        "httpEndpointConfiguration": {"url": "https://intake.example.com/v1"}})], 1),
    ("SOV-RES-002", "out-of-zone ARN inside a policy document", [R(ROLE_POLICY, "p", {"policy": '{"Statement": [{"Effect": "Allow", '
        '"Action": "kms:Decrypt", "Resource": "arn:aws:kms:us-east-1:123456789012:key/k"}]}'})], 1),
    ("SOV-RES-002", "not classified: deny by default", [R("aws:madeup/thing:Thing", "t", {})], 1),
    ("SOV-RES-002", "the per-resource region is SOV-RES-001's", [R("aws:s3/bucket:Bucket", "b", {"region": "eu-west-1"})], 0),
    ("SOV-RES-004", "replication to a declared bucket", [BUCKET, R(REPLICATION, "r", _replicate_to("arn:aws:s3:::b"))], 0),
    ("SOV-RES-004", "replication to a bucket ARN not declared", [BUCKET, R(REPLICATION, "r", _replicate_to("arn:aws:s3:::elsewhere"))], 1),
    ("SOV-RES-004", "firehose to an outside bucket", [R(FIREHOSE, "f", {**FIREHOSE_CMK, "destination": "extended_s3",
        "extendedS3Configuration": {"bucketArn": "arn:aws:s3:::their-bucket", "roleArn": "arn:aws:iam::aws:role/x"}})], 1),
    ("SOV-RES-004", "log delivery to a bucket name not declared", [BUCKET, R("aws:s3/bucketLogging:BucketLogging", "l", {
        "bucket": "b", "targetBucket": "someone-elses-logs"})], 1),
    ("SOV-RES-004", "query results to an s3 location not declared", [R("aws:athena/workgroup:Workgroup", "w", {"configuration": {
        "resultConfiguration": {"outputLocation": "s3://other-results/athena/"}}})], 1),
    ("SOV-RES-004", "a bucket declared under another region's provider", [
        R("aws:s3/bucket:Bucket", "b2", {"bucket": "b2"}, provider={"region": "us-east-1"}),
        R("aws:s3/bucketLogging:BucketLogging", "l", {"bucket": "b", "targetBucket": "b2"}), BUCKET], 1),
    ("SOV-RES-004", "a role in an account the program does not declare", [R(EKS, "eks", {"roleArn": "arn:aws:iam::999999999999:role/x"})], 1),
    ("SOV-RES-004", "AWS-managed policy ARNs are AWS-owned", [R("aws:iam/rolePolicyAttachment:RolePolicyAttachment", "a", {
        "role": "r", "policyArn": "arn:aws:iam::aws:policy/AmazonEKSWorkerNodePolicy"})], 0),
    # AWS Private CA's certificate templates are AWS's definitions (#22, the platform root CA).
    ("SOV-RES-004", "a Private CA template ARN is AWS-owned", [R("aws:acmpca/certificate:Certificate", "c", {
        "templateArn": "arn:aws:acm-pca:::template/RootCACertificate/V1"})], 0),
    ("SOV-RES-004", "a template-shaped ARN in an account is not", [R("aws:acmpca/certificate:Certificate", "c", {
        "templateArn": "arn:aws:acm-pca::999999999999:template/RootCACertificate/V1"})], 1),
    ("SOV-RES-004", "a template ARN with a path escape is not", [R("aws:acmpca/certificate:Certificate", "c", {
        "templateArn": "arn:aws:acm-pca:::template/../bucket/V1"})], 1),
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
    ("SOV-ENC-002", "bucket v2 without sse", [R("aws:s3/bucketV2:BucketV2", "b", {"bucket": "b"})], 1),
    ("SOV-ENC-010", "dynamodb with a customer key", [R(DDB, "t", DDB_CMK)], 0),
    ("SOV-ENC-010", "dynamodb with the AWS-owned default", [R(DDB, "t", {"hashKey": "id"})], 1),
    ("SOV-ENC-010", "dynamodb key without enabled", [R(DDB, "t", {"serverSideEncryption": {"kmsKeyArn": KEY}})], 1),
    ("SOV-ENC-010", "sqs with a customer key", [R("aws:sqs/queue:Queue", "q", {"kmsMasterKeyId": KEY})], 0),
    ("SOV-ENC-010", "sqs with only SQS-managed SSE", [R("aws:sqs/queue:Queue", "q", {"sqsManagedSseEnabled": True})], 1),
    ("SOV-ENC-010", "sqs with the aws/sqs key", [R("aws:sqs/queue:Queue", "q", {"kmsMasterKeyId": "alias/aws/sqs"})], 1),
    ("SOV-ENC-010", "sqs key unknown at preview", [R("aws:sqs/queue:Queue", "q", {"kmsMasterKeyId": "04da6b54-80e4-46f7-96ec-b56ff0331ba9"})], 0),
    ("SOV-ENC-010", "ssm String parameter holds no secret", [R(PARAM, "p", {"type": "String", "value": "v"})], 0),
    ("SOV-ENC-010", "ssm SecureString with aws/ssm", [R(PARAM, "p", {"type": "SecureString", "value": "v"})], 1),
    ("SOV-ENC-010", "kinesis key without encryptionType", [R("aws:kinesis/stream:Stream", "k", {"kmsKeyId": KEY})], 1),
    ("SOV-ENC-010", "glacier cannot take a customer key", [R("aws:glacier/vault:Vault", "v", {})], 1),
    ("SOV-ENC-010", "ecs service without volumes stores nothing", [R("aws:ecs/service:Service", "s", {"cluster": "c"})], 0),
    ("SOV-ENC-010", "ecs managed ebs volume without key", [R("aws:ecs/service:Service", "s", {"volumeConfiguration": {
        "name": "v", "managedEbsVolume": {"roleArn": "arn:aws:iam::aws:role/r"}}})], 2),
    ("SOV-ENC-010", "instance root volume without key", [R("aws:ec2/instance:Instance", "i", {"rootBlockDevice": {"encrypted": True}})], 1),
    ("SOV-ENC-010", "instance root volume with customer key", [R("aws:ec2/instance:Instance", "i", {"rootBlockDevice": {
        "encrypted": True, "kmsKeyId": KEY}})], 0),
    ("SOV-ENC-010", "rds is SOV-ENC-008's", [R("aws:rds/instance:Instance", "db", {})], 0),
    ("SOV-ENC-010", "opensearch default", [R("aws:opensearch/domain:Domain", "d", {})], 1),
    ("SOV-ENC-010", "efs with a customer key", [R("aws:efs/fileSystem:FileSystem", "f", {"encrypted": True, "kmsKeyId": KEY})], 0),
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
    ("SOV-K8S-001", "privileged pod", [R("kubernetes:core/v1:Pod", "p", _pod("Pod", securityContext={"privileged": True}))], 4),
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
    # Provider escapes (policies/rules/providers.py)
    ("SOV-RES-003", "validated region, no overrides", [_prov()], 0),
    ("SOV-RES-003", "credential checks skipped (not residency)", [_prov(skipCredentialsValidation="true", skipRequestingAccountId="true", skipMetadataApiCheck="true", forbiddenAccountIds=["210987654321"])], 0),
    ("SOV-RES-003", "region validation left at the SDK default", [R(PROVIDER, "aws", {"region": "me-central-1"})], 1),
    ("SOV-RES-003", "skip_region_validation=True", [_prov(skipRegionValidation="true")], 1),
    ("SOV-RES-003", "endpoint override to another region", [_prov(endpoints=[{"s3": "https://s3.eu-west-1.amazonaws.com"}])], 1),
    ("SOV-RES-003", "endpoints as the engine's JSON text", [_prov(endpoints='[{"sts": "https://sts.us-east-1.amazonaws.com", "s3": "http://minio.example:9000"}]')], 2),
    ("SOV-RES-003", "proxy and STS elsewhere", [_prov(httpsProxy="http://proxy.example:3128", stsRegion="us-east-1")], 2),
    ("SOV-RES-003", "TLS verification off", [_prov(insecure="true")], 1),
    ("SOV-IAM-009", "no assume-role, no pinned accounts", [_prov(assumeRoles=[{}])], 0),
    ("SOV-IAM-009", "assume-role with no allowed accounts", [_prov(assumeRoles=[{"roleArn": "arn:aws:iam::999999999999:role/deploy"}])], 1),
    ("SOV-IAM-009", "web identity into another account", [_prov(assumeRoleWithWebIdentity='{"roleArn": "arn:aws:iam::999999999999:role/ci"}')], 1),
    ("SOV-IAM-009", "role given by name, account unknown", [_prov(assumeRoles=[{"role_arn": "deploy"}])], 1),
    ("SOV-IAM-009", "provider pins an account the stack does not list", [_prov(allowedAccountIds=["111122223333"])], 1),
    # IAM: every way of writing an administrator-equivalent grant (policies/rules/iam.py)
    ("SOV-IAM-001", "policy as data, one statement", [R(ROLE_POLICY, "p", {"policy": {"Statement": {"Effect": "Allow", "Action": "*", "Resource": "*"}}})], 1),
    ("SOV-IAM-001", "*:* on every ARN", [_allow("*:*", "arn:aws:*:*:*:*")], 1),
    ("SOV-IAM-001", "role inline policy", [R("aws:iam/role:Role", "r", {"inlinePolicies": [{"name": "a", "policy": '{"Statement": [{"Effect": "Allow", "Action": ["*"], "Resource": ["*"]}]}'}]})], 1),
    ("SOV-IAM-001", "key policy Resource * means the key", [_resource_policy("aws:kms/key:Key", {"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::123456789012:root"}, "Action": "kms:*", "Resource": "*"})], 0),
    ("SOV-IAM-002", "passrole on every role by pattern", [_allow("iam:Pass*", "arn:aws:iam::123456789012:role/*")], 1),
    ("SOV-IAM-002", "iam:* reported once, as a service wildcard", [_allow("iam:*")], 0),
    ("SOV-IAM-003", "one action on everything", [_allow("s3:GetObject")], 0),
    ("SOV-IAM-003", "service wildcard on one bucket", [_allow("s3:*", ["arn:aws:s3:::b", "arn:aws:s3:::b/*"])], 0),
    ("SOV-IAM-003", "s3:* on *", [_allow("s3:*")], 1),
    ("SOV-IAM-003", "kms:* on every key", [_allow(["kms:Decrypt", "kms:*"], "arn:aws:kms:me-central-1:123456789012:key/*")], 1),
    ("SOV-IAM-003", "iam:* on *", [_allow("iam:*")], 1),
    ("SOV-IAM-003", "any service's Get* on *", [_allow("*:Get*")], 1),
    ("SOV-IAM-003", "user policy", [R("aws:iam/userPolicy:UserPolicy", "u", {"policy": '{"Statement": {"Effect": "Allow", "Action": "secretsmanager:*", "Resource": "*"}}'})], 1),
    ("SOV-IAM-004", "read IAM on *", [_allow(["iam:GetRole", "iam:ListRoles"])], 0),
    ("SOV-IAM-004", "assume one named role", [_allow("sts:AssumeRole", "arn:aws:iam::123456789012:role/reader")], 0),
    ("SOV-IAM-004", "iam:Create* on *", [_allow("iam:Create*")], 1),
    ("SOV-IAM-004", "iam:Put* and iam:Attach* on every role", [_allow(["iam:Put*", "iam:Attach*"], "arn:aws:iam::123456789012:role/*")], 1),
    ("SOV-IAM-004", "sts:AssumeRole on *", [_allow("sts:AssumeRole")], 1),
    ("SOV-IAM-005", "Deny with NotAction is a guard", [_policy({"Effect": "Deny", "NotAction": "s3:GetObject", "Resource": "*"})], 0),
    ("SOV-IAM-005", "Allow with NotAction", [_policy({"Effect": "Allow", "NotAction": "iam:*", "Resource": "*"})], 1),
    ("SOV-IAM-005", "NotAction in a bucket policy", [_resource_policy("aws:s3/bucketPolicy:BucketPolicy", {"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::123456789012:root"}, "NotAction": "s3:DeleteBucket", "Resource": "arn:aws:s3:::b"})], 1),
    ("SOV-IAM-006", "Deny with NotResource is a guard", [_policy({"Effect": "Deny", "Action": "s3:*", "NotResource": "arn:aws:s3:::b/*"})], 0),
    ("SOV-IAM-006", "Allow with NotResource", [_policy({"Effect": "Allow", "Action": "s3:GetObject", "NotResource": "arn:aws:s3:::b/*"})], 1),
    ("SOV-IAM-007", "EKS managed policy", [R(ATTACH, "a", {"policyArn": MANAGED + "AmazonEKSClusterPolicy"})], 0),
    ("SOV-IAM-007", "customer policy that borrows the name", [R(ATTACH, "a", {"policyArn": "arn:aws:iam::123456789012:policy/AdministratorAccess"})], 0),
    ("SOV-IAM-007", "AdministratorAccess attached", [R(ATTACH, "a", {"policyArn": MANAGED + "AdministratorAccess"})], 1),
    ("SOV-IAM-007", "role managedPolicyArns", [R("aws:iam/role:Role", "r", {"managedPolicyArns": [MANAGED + "PowerUserAccess", MANAGED + "AmazonS3FullAccess"]})], 2),
    ("SOV-IAM-007", "user, group and exclusive attachments", [R("aws:iam/userPolicyAttachment:UserPolicyAttachment", "u", {"policyArn": MANAGED + "IAMFullAccess"}),
        R("aws:iam/groupPolicyAttachment:GroupPolicyAttachment", "g", {"policyArn": MANAGED + "job-function/SystemAdministrator"}),
        R("aws:iam/rolePolicyAttachmentsExclusive:RolePolicyAttachmentsExclusive", "x", {"roleName": "r", "policyArns": [MANAGED + "AWSOrganizationsFullAccess"]})], 3),
    ("SOV-IAM-007", "policyAttachment and permission set", [R("aws:iam/policyAttachment:PolicyAttachment", "pa", {"policyArn": "arn:aws-us-gov:iam::aws:policy/AdministratorAccess"}),
        R("aws:ssoadmin/managedPolicyAttachment:ManagedPolicyAttachment", "ps", {"managedPolicyArn": MANAGED + "AdministratorAccess"})], 2),
    ("SOV-IAM-008", "deny to everyone (our TLS guard)", [_resource_policy("aws:s3/bucketPolicy:BucketPolicy", {"Effect": "Deny", "Principal": {"AWS": "*"}, "Action": "s3:*", "Resource": "arn:aws:s3:::b/*", "Condition": {"Bool": {"aws:SecureTransport": "false"}}})], 0),
    ("SOV-IAM-008", "any principal of the organization", [_resource_policy("aws:sqs/queuePolicy:QueuePolicy", _public_principal(Condition={"StringEquals": {"aws:PrincipalOrgID": "o-abc123"}}))], 0),
    ("SOV-IAM-008", "queue open to everyone", [_resource_policy("aws:sqs/queuePolicy:QueuePolicy", _public_principal())], 1),
    ("SOV-IAM-008", "negated condition pins nothing", [_resource_policy("aws:sns/topic:Topic", _public_principal(Condition={"StringNotEquals": {"aws:SourceAccount": "123456789012"}}))], 1),
    ("SOV-IAM-008", "trust policy anyone may assume", [_resource_policy("aws:iam/role:Role", {"Effect": "Allow", "Principal": {"AWS": ["*"]}, "Action": "sts:AssumeRole"}, "assumeRolePolicy")], 1),
    ("SOV-IAM-008", "NotPrincipal on a secret", [_resource_policy("aws:secretsmanager/secretPolicy:SecretPolicy", {"Effect": "Allow", "NotPrincipal": {"AWS": "arn:aws:iam::123456789012:role/x"}, "Action": "secretsmanager:GetSecretValue", "Resource": "*"})], 1),
    ("SOV-IAM-008", "public key and registry", [_resource_policy("aws:kms/keyPolicy:KeyPolicy", {**_public_principal(), "Principal": "*", "Action": "kms:Decrypt"}),
        _resource_policy("aws:ecr/repositoryPolicy:RepositoryPolicy", {**_public_principal(), "Action": "ecr:BatchGetImage"})], 2),
    ("SOV-IAM-008", "lambda invocable by anyone", [R("aws:lambda/permission:Permission", "l", {"action": "lambda:InvokeFunction", "function": "f", "principal": "*"})], 1),
    ("SOV-IAM-008", "lambda invocable from one bucket", [R("aws:lambda/permission:Permission", "l", {"action": "lambda:InvokeFunction", "function": "f", "principal": "*", "sourceArn": "arn:aws:s3:::b"})], 0),
    # Ingress coverage (policies/rules/network.py)
    ("SOV-NET-002", "private space only", [_sg("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10"), _sg("fd00::/8", "fe80::/10", name="v6", key="ipv6CidrBlocks")], 0),
    ("SOV-NET-002", "open egress is not ingress", [_sg("10.0.0.0/16", egress=[{"protocol": "-1", "fromPort": 0, "toPort": 0, "cidrBlocks": ["0.0.0.0/0"]}]),
        _sg_rule(_sg(name="x"), "out", type="egress", cidrBlocks=["0.0.0.0/0"])], 0),
    ("SOV-NET-002", "0.0.0.0/0 written as two halves", [_sg("0.0.0.0/1", "128.0.0.0/1")], 1),
    ("SOV-NET-002", "halves as two rules on one group", [_sg(name="g"), _sg_rule(_sg(name="g"), "a", cidrBlocks=["0.0.0.0/1"]), _sg_rule(_sg(name="g"), "b", cidrBlocks=["128.0.0.0/1"])], 1),
    ("SOV-NET-002", "::/0 as two vpc ingress rules", [_sg(name="g"), _ingress_rule(_sg(name="g"), "a", cidrIpv6="::/1"), _ingress_rule(_sg(name="g"), "b", cidrIpv6="8000::/1")], 1),
    ("SOV-NET-002", "a few /8s", [_sg("3.0.0.0/8", "13.0.0.0/8", "52.0.0.0/8")], 1),
    ("SOV-NET-002", "default security group", [R("aws:ec2/defaultSecurityGroup:DefaultSecurityGroup", "d", {"ingress": [{"protocol": "-1", "fromPort": 0, "toPort": 0, "cidrBlocks": ["0.0.0.0/0"]}]})], 1),
    ("SOV-NET-002", "rule on a group outside the program", [_ingress_rule(None, "x", cidrIpv4="198.51.100.7/32")], 1),
    ("SOV-NET-002", "two open groups", [_sg("0.0.0.0/0", name="a"), _sg("0.0.0.0/0", name="b")], 2),
    ("SOV-NET-002", "not a CIDR", [_sg("10.0.0.0/33")], 1),
    ("SOV-NET-002", "declared prefix list of private ranges", [_prefix_list("10.1.0.0/16"), _sg_rule(_sg(name="g"), "pl", (PL_URN,), prefixListIds=["pl-1"])], 0),
    ("SOV-NET-002", "declared prefix list of public ranges", [_prefix_list("0.0.0.0/1", "128.0.0.0/1"), _ingress_rule(None, "pl", (PL_URN,), prefixListId="pl-1")], 1),
    ("SOV-NET-002", "prefix list the program does not declare", [_sg(name="g", ingress=[{"protocol": "tcp", "fromPort": 443, "toPort": 443, "prefixListIds": ["pl-0123456789abcdef0"]}])], 1),
    ("SOV-TAG-001", "provider default tags", [R("aws:ec2/vpc:Vpc", "v", {})], 0),
    ("SOV-TAG-001", "resource tags", [R("aws:ec2/vpc:Vpc", "v", {"tags": {"owner": "o", "cost-center": "c", "data-classification": "x"}}, provider={})], 0),
    ("SOV-TAG-001", "untagged", [R("aws:ec2/vpc:Vpc", "v", {"tags": {"owner": "o"}}, provider={})], 1),
    ("SOV-TAG-001", "not taggable", [R("aws:s3/bucketPolicy:BucketPolicy", "p", {}, provider={})], 0),
    # Kubernetes isolation: host access, namespaces, allow-all policies, taints, Helm values
    ("SOV-K8S-001", "allow-listed device plugin may run as root", [_plugin()], 0),
    ("SOV-K8S-001", "look-alike plugin image gets no root grant", [_plugin(image="docker.io/evil/plugin:1.0")], 1),
    ("SOV-K8S-001", "the plugin outside kube-system gets no root grant", [_plugin("gpu-ops")], 1),
    ("SOV-K8S-007", "hardened workload", [_wl()], 0),
    ("SOV-K8S-007", "device plugin's granted socket folder", [_plugin()], 0),
    ("SOV-K8S-007", "hostPath / read-write", [_wl(mounts=({"name": "host", "mountPath": "/h"},), volumes=[_host("/")])], 1),
    ("SOV-K8S-007", "hostPath read-only still host access", [_wl(mounts=({"name": "host", "mountPath": "/h", "readOnly": True},), volumes=[_host("/etc")])], 1),
    ("SOV-K8S-007", "host network, PID and IPC", [_wl(hostNetwork=True, hostPID=True, hostIPC=True)], 3),
    ("SOV-K8S-007", "privileged container with a host port", [_wl(sc={"privileged": True}, containers=[{**_pod()["spec"]["template"]["spec"]["containers"][0], "securityContext": {"privileged": True}, "ports": [{"containerPort": 80, "hostPort": 80}]}])], 2),
    ("SOV-K8S-007", "plugin grant never covers the parent folder", [_plugin(path="/var/lib/kubelet")], 1),
    ("SOV-K8S-007", "plugin grant holds only in kube-system", [_plugin("gpu-ops")], 1),
    ("SOV-K8S-007", "dcgm exporter's read-only pod-resources in kube-system", [_dcgm()], 0),
    ("SOV-K8S-007", "dcgm exporter outside kube-system", [_dcgm("monitoring")], 1),
    ("SOV-K8S-007", "dcgm exporter debug dumps to a host folder", [_dcgm(debugDump={"enabled": True})], 1),
    ("SOV-K8S-007", "kube-prometheus-stack without its node exporter", [_prom(nodeExporter={"enabled": False})], 0),
    ("SOV-K8S-007", "kube-prometheus-stack's default node exporter", [_prom()], 5),
    ("SOV-K8S-007", "privileged vault server through values", [_release("vault", "0.30.0", "vault", "https://helm.releases.hashicorp.com", server={"statefulSet": {"securityContext": {"container": {"privileged": True}}}}, injector={"enabled": False})], 1),
    ("SOV-K8S-008", "workload in a declared namespace", [_ns("serving"), _wl()], 0),
    ("SOV-K8S-008", "workload in an undeclared namespace", [_ns("serving"), _wl(ns="shadow")], 1),
    ("SOV-K8S-008", "no namespace lands in undeclared default", [_ns("serving"), R("kubernetes:core/v1:ConfigMap", "cm", {"metadata": {"name": "cm"}})], 1),
    ("SOV-K8S-008", "provider's default namespace is declared", [_ns("serving"), R("kubernetes:core/v1:ConfigMap", "cm", {"metadata": {"name": "cm"}}, provider={"namespace": "serving"})], 0),
    ("SOV-K8S-008", "allow-listed add-ons in kube-system", [_plugin(), _release("cluster-autoscaler", "9.46.6", "kube-system", "https://kubernetes.github.io/autoscaler"), _dcgm()], 0),
    ("SOV-K8S-008", "anything else in kube-system", [_wl(ns="kube-system"), R("kubernetes:core/v1:ConfigMap", "cm", {"metadata": {"name": "cm", "namespace": "kube-system"}})], 2),
    ("SOV-K8S-008", "helm release into an undeclared namespace", [_release("prometheus-pushgateway", "2.15.0", "tools", PROM_REPO)], 1),
    ("SOV-K8S-008", "cluster-scoped objects have no namespace", [R("kubernetes:storage.k8s.io/v1:StorageClass", "sc", {"metadata": {"name": "gp3"}})], 0),
    ("SOV-K8S-009", "default deny and same-namespace allow", [_deny("serving"), _netpol(ingress=[{"from": [{"podSelector": {}}]}], egress=[{"to": [{"podSelector": {}}]}], policyTypes=["Ingress", "Egress"])], 0),
    ("SOV-K8S-009", "DNS to CoreDNS only", [_netpol(policyTypes=["Egress"], egress=[{"to": [{"namespaceSelector": {}, "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}]}])], 0),
    ("SOV-K8S-009", "one pod open to all is not the namespace", [_netpol(selector={"matchLabels": {"app": "gw"}}, ingress=[{}])], 0),
    ("SOV-K8S-009", "ingress rule ignored by Egress-only policy", [_netpol(policyTypes=["Egress"], ingress=[{}], egress=[{"to": [{"podSelector": {}}]}])], 0),
    ("SOV-K8S-009", "empty peer list and empty rule", [_netpol(policyTypes=["Ingress", "Egress"], ingress=[{}], egress=[{"to": []}])], 2),
    ("SOV-K8S-009", "egress to 0.0.0.0/0", [_netpol(policyTypes=["Egress"], egress=[{"to": [{"ipBlock": {"cidr": "0.0.0.0/0"}}]}])], 1),
    ("SOV-K8S-009", "ingress from every namespace", [_netpol(ingress=[{"from": [{"namespaceSelector": {}}]}])], 1),
    ("SOV-K8S-009", "every source on one port", [_netpol(ingress=[{"ports": [{"port": 443}]}])], 1),
    ("SOV-K8S-010", "keyed tolerations", [_wl(tolerations=[{"key": "CriticalAddonsOnly", "operator": "Exists"}])], 0),
    ("SOV-K8S-010", "tolerates every taint", [_wl(tolerations=[{"operator": "Exists"}])], 1),
    ("SOV-K8S-010", "tolerates every NoSchedule taint", [_wl(tolerations=[{"operator": "Exists", "effect": "NoSchedule"}])], 1),
    ("SOV-K8S-010", "node exporter's default toleration", [_prom()], 1),
    ("SOV-GPU-003", "gpu pod on gpu nodes", [R("kubernetes:apps/v1:Deployment", "d", _gpu_pod(**GPU_POOL))], 0),
    ("SOV-GPU-003", "cpu pod on the workers pool", [_wl(nodeSelector={"sovereign-ml/pool": "workers"})], 0),
    ("SOV-GPU-003", "cpu pod tolerating the gpu taint", [_wl(tolerations=[GPU_TOLERATION])], 1),
    ("SOV-GPU-003", "cpu pod selecting the gpu pool", [_wl(nodeSelector={"sovereign-ml/pool": "gpu"})], 1),
    ("SOV-GPU-003", "cpu pod with gpu node affinity", [_wl(affinity=_affinity("sovereign-ml/pool", "gpu"))], 1),
    ("SOV-GPU-003", "cpu pod with a gpu instance type", [_wl(affinity=_affinity("node.kubernetes.io/instance-type", "p5.48xlarge"))], 1),
    ("SOV-GPU-003", "cpu pod tolerating all on the gpu pool", [_wl(tolerations=[{"operator": "Exists"}], nodeSelector={"sovereign-ml/pool": "gpu"})], 2),
    ("SOV-GPU-003", "device plugin and dcgm exporter in kube-system", [_plugin(), _dcgm()], 0),
    ("SOV-GPU-003", "device plugin copy outside kube-system", [_plugin("gpu-ops")], 2),
    ("SOV-K8S-011", "charts we ship at their versions", [_prom(nodeExporter={"enabled": False}), _dcgm(), _release("keda", "2.19.0", "keda", "https://kedacore.github.io/charts")], 0),
    ("SOV-K8S-011", "helm v4 chart, known", [_release("prometheus-pushgateway", "2.15.0", "monitoring", PROM_REPO, typ="kubernetes:helm.sh/v4:Chart")], 0),
    ("SOV-K8S-011", "unknown chart", [_release("nginx", "18.2.4", "serving", "https://charts.bitnami.com/bitnami")], 1),
    ("SOV-K8S-011", "known chart, another version", [_release("dcgm-exporter", "4.0.0", "kube-system", DCGM_REPO)], 1),
    ("SOV-K8S-011", "fluent-bit at its pinned version", [_release("fluent-bit", "0.40.0", "kube-system", FLB_REPO)], 0),
    ("SOV-K8S-007", "fluent-bit with /var/log read-only in kube-system", [_release("fluent-bit", "0.40.0", "kube-system", FLB_REPO, **FLB_VOLUMES)], 0),
    ("SOV-K8S-007", "fluent-bit chart default host mounts", [_release("fluent-bit", "0.40.0", "kube-system", FLB_REPO)], 3),
    ("SOV-K8S-007", "fluent-bit outside kube-system", [_release("fluent-bit", "0.40.0", "logging", FLB_REPO, **FLB_VOLUMES)], 1),
    ("SOV-RES-005", "fluent-bit output in the zone", [_release("fluent-bit", "0.40.0", "kube-system", FLB_REPO, config={"outputs": _flb_output("me-central-1")})], 0),
    ("SOV-RES-005", "fluent-bit output to a cluster service", [_release("fluent-bit", "0.40.0", "kube-system", FLB_REPO, config={"outputs": _flb_output("me-central-1", "Host opensearch.logging.svc")})], 0),
    ("SOV-RES-005", "fluent-bit output in eu-west-1", [_release("fluent-bit", "0.40.0", "kube-system", FLB_REPO, config={"outputs": _flb_output("eu-west-1")})], 1),
    ("SOV-RES-005", "fluent-bit output endpoint outside the zone", [_release("fluent-bit", "0.40.0", "kube-system", FLB_REPO, config={"outputs": _flb_output("me-central-1", "endpoint logs.us-east-1.amazonaws.com")})], 1),
    ("SOV-RES-005", "log values region outside the zone", [_release("aws-for-fluent-bit", "0.1.34", "kube-system", "https://aws.github.io/eks-charts", cloudWatchLogs={"region": "us-east-1"}, elasticsearch={"host": "search.example.com"})], 2),
    ("SOV-K8S-011", "known name from another repository", [_release("vault", "0.30.0", "vault", "https://charts.example.com")], 1),
    # The audit trail (policies/rules/audit.py): the context is a prod stack in the UAE zone.
    ("SOV-AUD-001", "compliant trail in the region", [UAE, _trail(), AUDIT_BUCKET], 0),
    ("SOV-AUD-001", "aws provider and resources, no trail", [UAE, AUDIT_BUCKET], 1),
    ("SOV-AUD-001", "trail without validation, with the aws/cloudtrail key", [UAE, _trail(enableLogFileValidation=False, kmsKeyId="alias/aws/cloudtrail")], 1),
    ("SOV-AUD-001", "trail without cloudwatch delivery", [UAE, _trail(cloudWatchLogsRoleArn=None)], 1),
    ("SOV-AUD-001", "trail excluding management events", [UAE, _trail(eventSelectors=[{"includeManagementEvents": False}])], 1),
    ("SOV-AUD-001", "stopped trail", [UAE, _trail(enableLogging=False)], 1),
    ("SOV-AUD-001", "trail only in another region", [UAE, _trail(region="eu-west-1"), AUDIT_BUCKET], 1),
    ("SOV-AUD-002", "compliance lock of a year", [UAE, _trail(), AUDIT_BUCKET, _lock()], 0),
    ("SOV-AUD-002", "compliance lock in years", [UAE, _trail(), AUDIT_BUCKET, _lock(years=7)], 0),
    ("SOV-AUD-002", "governance lock", [UAE, _trail(), AUDIT_BUCKET, _lock("GOVERNANCE", days=3650)], 1),
    ("SOV-AUD-002", "compliance lock of 30 days", [UAE, _trail(), AUDIT_BUCKET, _lock(days=30)], 1),
    ("SOV-AUD-002", "no lock configuration", [UAE, _trail(), AUDIT_BUCKET], 1),
    ("SOV-AUD-002", "object lock not enabled on the bucket", [UAE, _trail(), R("aws:s3/bucket:Bucket", "ab", {"bucket": "audit-b"}), _lock()], 1),
    ("SOV-AUD-002", "bucket not declared", [UAE, _trail(s3BucketName="someone-elses")], 1),
    ("SOV-AUD-003", "guardduty and config recording", [UAE, AUDIT_BUCKET, *_detection()], 0),
    ("SOV-AUD-003", "neither", [UAE, AUDIT_BUCKET], 2),
    ("SOV-AUD-003", "recorder switched off", [UAE, AUDIT_BUCKET, *_detection(recording=False)], 1),
    ("SOV-AUD-003", "detector disabled", [UAE, AUDIT_BUCKET, R("aws:guardduty/detector:Detector", "gd", {"enable": False}), *_detection(guardduty=False)], 1),
    ("SOV-AUD-003", "region where availability is unknown", [R(PROVIDER, "aws", {"region": "me-west-1"}), R("aws:s3/bucket:Bucket", "b", {"bucket": "b"}, provider={"region": "me-west-1"})], 0),
    ("SOV-AUD-001", "resources without an AWS provider are no stack", [AUDIT_BUCKET], 0),
    ("SOV-AUD-001", "a second provider's region needs its own trail", [UAE, _trail(), AUDIT_BUCKET, R(PROVIDER, "aws2", {"region": "eu-west-1"})], 1),
    ("SOV-SUP-001", "mirror image by digest", [R(DEPLOY, "d", _pod(image=f"{ZONE_ECR}/nvidia/tritonserver@{DIGEST}"))], 0),
    ("SOV-SUP-001", "mirror image by tag (the digest is SOV-SUP-002's)", [R(DEPLOY, "d", _pod(image=f"{ZONE_ECR}/nvidia/tritonserver:24.10-py3"))], 0),
    ("SOV-SUP-001", "public registry", [R(DEPLOY, "d", _pod())], 1),
    ("SOV-SUP-001", "public init container beside a mirror container", [R(DEPLOY, "d", _pod_with_init(f"{ZONE_ECR}/a/b@{DIGEST}", "busybox:1.36"))], 1),
    ("SOV-SUP-001", "ECR of a region outside the zone", [R(DEPLOY, "d", _pod(image=f"111122223333.dkr.ecr.eu-west-1.amazonaws.com/a/b@{DIGEST}"))], 1),
    ("SOV-SUP-001", "look-alike host ending in the zone's", [R(DEPLOY, "d", _pod(image=f"{ZONE_ECR}.evil.example/a/b@{DIGEST}"))], 1),
    ("SOV-SUP-001", "chart from the mirror, values image from the mirror", [_mirror_release(image={"repository": f"{ZONE_ECR}/hashicorp/vault", "tag": f"1.19.0@{DIGEST}"})], 0),
    ("SOV-SUP-001", "chart from a public repository", [_release("keda", "2.19.0", "keda", "https://kedacore.github.io/charts")], 1),
    ("SOV-SUP-001", "mirror chart with a public values image", [_mirror_release(server={"image": {"repository": "hashicorp/vault", "tag": "1.19.0"}})], 1),
    ("SOV-SUP-001", "oci chart outside the zone", [_mirror_release(chart="oci://registry-1.docker.io/bitnamicharts/keda")], 1),
    ("SOV-SUP-002", "mirror image by digest", [R(DEPLOY, "d", _pod(image=f"{ZONE_ECR}/nvidia/tritonserver@{DIGEST}"))], 0),
    ("SOV-SUP-002", "mirror image by tag", [R(DEPLOY, "d", _pod(image=f"{ZONE_ECR}/nvidia/tritonserver:24.10-py3"))], 1),
    ("SOV-SUP-002", "values image by tag", [_mirror_release(image={"repository": f"{ZONE_ECR}/hashicorp/vault", "tag": "1.19.0"})], 1),
    ("SOV-SUP-002", "values image digest field", [_mirror_release(image={"repository": f"{ZONE_ECR}/hashicorp/vault", "digest": DIGEST})], 0),
    ("SOV-SUP-003", "mirror workload, policy for the zone, labelled namespace", [_admission_ns("serving"), MIRROR_POD, _cip()], 0),
    ("SOV-SUP-003", "controller's own namespace unlabelled", [_admission_ns("serving"), _admission_ns("cosign-system", False), MIRROR_POD, _cip(), _mirror_release(chart=f"oci://{ZONE_ECR}/charts/policy-controller") ], 0),
    ("SOV-SUP-003", "public images are SOV-SUP-001's, not this rule's", [_admission_ns("serving", False), R(DEPLOY, "d", _pod())], 0),
    ("SOV-SUP-003", "no ClusterImagePolicy", [_admission_ns("serving"), MIRROR_POD], 1),
    ("SOV-SUP-003", "policy for every registry, not the zone's", [_admission_ns("serving"), MIRROR_POD, _cip(glob="**")], 1),
    ("SOV-SUP-003", "policy for another region's registry", [_admission_ns("serving"), MIRROR_POD, _cip(glob="111122223333.dkr.ecr.eu-west-1.amazonaws.com/**")], 1),
    ("SOV-SUP-003", "policy without a key authority", [_admission_ns("serving"), MIRROR_POD, _cip(key={})], 1),
    ("SOV-SUP-003", "workload namespace without the label", [_admission_ns("serving", False), MIRROR_POD, _cip()], 1),
    ("SOV-SUP-003", "Helm release namespace without the label", [_admission_ns("vault", False), _mirror_release(image={"repository": f"{ZONE_ECR}/hashicorp/vault", "digest": DIGEST}), _cip()], 1),
    ("SOV-SUP-004", "immutable template expiring untagged images", [R(ECR_TEMPLATE, "t", {"imageTagMutability": "IMMUTABLE", "lifecyclePolicy": UNTAGGED_ONLY})], 0),
    ("SOV-SUP-004", "immutable template without a lifecycle policy", [R(ECR_TEMPLATE, "t", {"imageTagMutability": "IMMUTABLE"})], 0),
    ("SOV-SUP-004", "template left at ECR's default (MUTABLE)", [R(ECR_TEMPLATE, "t", {"lifecyclePolicy": UNTAGGED_ONLY})], 1),
    ("SOV-SUP-004", "template mutable with exclusions", [R(ECR_TEMPLATE, "t", {"imageTagMutability": "IMMUTABLE_WITH_EXCLUSION"})], 1),
    ("SOV-SUP-004", "template expiring any image", [R(ECR_TEMPLATE, "t", {"imageTagMutability": "IMMUTABLE", "lifecyclePolicy": _lifecycle("any")})], 1),
    ("SOV-SUP-004", "template lifecycle that is not JSON", [R(ECR_TEMPLATE, "t", {"imageTagMutability": "IMMUTABLE", "lifecyclePolicy": "{rules"})], 1),
    ("SOV-SUP-004", "mutable and expiring tagged: both", [R(ECR_TEMPLATE, "t", {"imageTagMutability": "MUTABLE", "lifecyclePolicy": _lifecycle("tagged")})], 2),
    ("SOV-SUP-004", "immutable repository", [R(ECR_REPO, "r", {"imageTagMutability": "IMMUTABLE"})], 0),
    ("SOV-SUP-004", "repository without mutability (MUTABLE)", [R(ECR_REPO, "r", {"name": "a/b"})], 1),
    ("SOV-SUP-004", "lifecycle policy expiring untagged", [R(ECR_LIFECYCLE, "l", {"repository": "a/b", "policy": UNTAGGED_ONLY})], 0),
    ("SOV-SUP-004", "lifecycle policy, one of two rules tagged", [R(ECR_LIFECYCLE, "l", {"repository": "a/b", "policy": _lifecycle("untagged", "tagged")})], 1),
    ("SOV-SUP-004", "lifecycle policy with no rules", [R(ECR_LIFECYCLE, "l", {"repository": "a/b", "policy": '{"rules": []}'})], 1),
    ("SOV-SUP-004", "lifecycle policy missing", [R(ECR_LIFECYCLE, "l", {"repository": "a/b"})], 1),
    ("SOV-SUP-004", "lifecycle policy already parsed, untagged only", [R(ECR_LIFECYCLE, "l", {"repository": "a/b", "policy": json.loads(UNTAGGED_ONLY)})], 0),
    ("SOV-SUP-004", "a lifecycle rule that is not an object", [R(ECR_LIFECYCLE, "l", {"repository": "a/b", "policy": '{"rules": ["expire everything"]}'})], 1),
    ("SOV-SUP-004", "tag status in capitals (ECR's is lower case)", [R(ECR_TEMPLATE, "t", {"imageTagMutability": "IMMUTABLE", "lifecyclePolicy": _lifecycle("UNTAGGED")})], 1),
    ("SOV-SUP-004", "rules not a list", [R(ECR_LIFECYCLE, "l", {"repository": "a/b", "policy": '{"rules": {"tagStatus": "untagged"}}'})], 1),
    ("SOV-SUP-004", "mutability not a string", [R(ECR_REPO, "r", {"imageTagMutability": ["IMMUTABLE"]})], 1),
    *EGRESS_CASES,
]  # fmt: skip
CASES += MESH_CASES
CASES += GATEWAY_CASES


def as_record(
    resources: list[Resource], zone: str = "uae", environment: str = "prod", **config: Any
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
        "config": {"zone": zone, "environment": environment, **config},
        "resources": list(providers.values()) + out,
    }
