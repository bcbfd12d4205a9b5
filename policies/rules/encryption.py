"""Encryption at rest with customer-managed keys, and in transit, wherever data rests.

SOV-ENC-010 holds every AWS type that stores data, as the generated classification
(``aws_types.json``, :mod:`policies.rules.classification`) lists them, to a customer-managed KMS
key: its key inputs set to a key of the stack (not ``alias/aws/*``) and its companion inputs
(``storageEncrypted``, ``serverSideEncryption.enabled`` ...) holding the required values. An
AWS-owned or service-managed key (SQS-managed SSE, DynamoDB's default, ``aws/ssm`` ...) fails, and
so does a data store that cannot take a customer key at all. The types with a rule of their own
(S3, EBS volumes and launch templates, EKS, log groups, ElastiCache, RDS: SOV-ENC-001 to 008)
are left to it, so that no two rules report the same thing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from policies.rules.base import Context, Resource, rule, stack_rule
from policies.rules.classification import entry, is_unknown, leaves, snake

SSE_TYPE = "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration"
SSE_TYPES = (
    SSE_TYPE,
    "aws:s3/bucketServerSideEncryptionConfigurationV2:BucketServerSideEncryptionConfigurationV2",
)
"""The bucket encryption resource, and its deprecated V2 name."""
BUCKET_TYPES = ("aws:s3/bucket:Bucket", "aws:s3/bucketV2:BucketV2")
AWS_MANAGED_ALIASES = ("alias/aws/",)


def _customer_key(key: object) -> bool:
    return isinstance(key, str) and bool(key) and not any(a in key for a in AWS_MANAGED_ALIASES)


@rule(
    "SOV-ENC-001",
    "s3-sse-kms-customer-key",
    "critical",
    "S3 default encryption is SSE-KMS with a customer-managed key.",
    types=SSE_TYPES,
)
def s3_sse_kms(r: Resource, ctx: Context) -> list[str]:
    rules = r.inputs.get("rules") or []
    for item in rules if isinstance(rules, list) else [rules]:
        default = (item or {}).get("applyServerSideEncryptionByDefault") or {}
        if default.get("sseAlgorithm") not in ("aws:kms", "aws:kms:dsse"):
            return [
                f"bucket default encryption is {default.get('sseAlgorithm')!r}: use "
                "sse_algorithm 'aws:kms' with the stack's storage key"
            ]
        if not _customer_key(default.get("kmsMasterKeyId")):
            return [
                "SSE-KMS without a customer-managed key (AWS-managed aws/s3 key or none): set "
                "kms_master_key_id to the storage key's ARN"
            ]
    return [] if rules else ["no encryption rule: add SSE-KMS with the storage key"]


@stack_rule(
    "SOV-ENC-002",
    "s3-bucket-has-encryption",
    "critical",
    "Every S3 bucket has a server-side encryption configuration resource.",
)
def bucket_has_sse(resources: list[Resource], ctx: Context) -> list[tuple[Resource | None, str]]:
    configured = {d for r in resources if r.type in SSE_TYPES for d in r.dependencies}
    return [
        (b, "bucket has no server-side encryption configuration: add one with SSE-KMS")
        for b in resources
        if b.type in BUCKET_TYPES and b.urn not in configured
    ]


@rule(
    "SOV-ENC-003",
    "ebs-volumes-encrypted",
    "critical",
    "EBS volumes and launch-template volumes are encrypted with a customer key.",
)
def ebs_encrypted(r: Resource, ctx: Context) -> list[str]:
    def truthy(v: object) -> bool:
        return v is True or v == "true"

    out: list[str] = []
    if r.type == "aws:ebs/volume:Volume":
        if not truthy(r.inputs.get("encrypted")):
            out.append("EBS volume is not encrypted: set encrypted=true and kms_key_id")
        elif not _customer_key(r.inputs.get("kmsKeyId")):
            out.append("EBS volume uses the AWS-managed key: set kms_key_id to the volume key")
    elif r.type == "aws:ec2/launchTemplate:LaunchTemplate":
        mappings = r.inputs.get("blockDeviceMappings") or []
        if not mappings:
            out.append(
                "launch template declares no block device: the AMI's unencrypted default "
                "applies; map the root volume with encrypted=true"
            )
        for m in mappings:
            ebs = (m or {}).get("ebs") or {}
            if not truthy(ebs.get("encrypted")):
                out.append(f"volume {m.get('deviceName')} is not encrypted: set ebs.encrypted")
            elif not _customer_key(ebs.get("kmsKeyId")):
                out.append(f"volume {m.get('deviceName')} uses the AWS-managed key")
    return out


@rule(
    "SOV-ENC-004",
    "eks-secrets-encryption",
    "critical",
    "EKS envelope-encrypts Kubernetes Secrets with a customer-managed KMS key.",
    types=("aws:eks/cluster:Cluster",),
)
def eks_secrets(r: Resource, ctx: Context) -> list[str]:
    enc = r.get("encryptionConfig") or {}
    if "secrets" not in (enc.get("resources") or []) or not _customer_key(
        r.get("encryptionConfig", "provider", "keyArn")
    ):
        return ["Secrets are not envelope-encrypted: set encryption_config with the cluster key"]
    return []


@rule(
    "SOV-ENC-005",
    "kms-key-rotation",
    "high",
    "Symmetric customer-managed KMS keys rotate automatically.",
    types=("aws:kms/key:Key",),
)
def kms_rotation(r: Resource, ctx: Context) -> list[str]:
    spec = r.inputs.get("customerMasterKeySpec") or "SYMMETRIC_DEFAULT"
    if spec == "SYMMETRIC_DEFAULT" and r.inputs.get("enableKeyRotation") is not True:
        return ["key rotation is off: set enable_key_rotation=true"]
    return []


@rule(
    "SOV-ENC-006",
    "log-group-kms",
    "high",
    "CloudWatch log groups are encrypted with a customer-managed KMS key.",
    types=("aws:cloudwatch/logGroup:LogGroup",),
)
def log_group_kms(r: Resource, ctx: Context) -> list[str]:
    if not _customer_key(r.inputs.get("kmsKeyId")):
        return ["log group is not KMS-encrypted: set kms_key_id to the logs key"]
    return []


@rule(
    "SOV-ENC-007",
    "redis-encrypted",
    "critical",
    "ElastiCache Redis/Valkey encrypts at rest (customer key) and in transit.",
)
def redis_encrypted(r: Resource, ctx: Context) -> list[str]:
    out: list[str] = []
    if r.type == "aws:elasticache/replicationGroup:ReplicationGroup":
        if r.inputs.get("atRestEncryptionEnabled") not in (True, "true"):
            out.append("at-rest encryption is off: set at_rest_encryption_enabled")
        if not _customer_key(r.inputs.get("kmsKeyId")):
            out.append("no customer-managed key: set kms_key_id")
        if r.inputs.get("transitEncryptionEnabled") is not True:
            out.append("in-transit encryption (TLS) is off: set transit_encryption_enabled")
    elif r.type == "aws:elasticache/serverlessCache:ServerlessCache":
        if not _customer_key(r.inputs.get("kmsKeyId")):
            out.append("serverless cache without a customer-managed key: set kms_key_id")
    elif (
        r.type == "aws:elasticache/cluster:Cluster"
        and r.inputs.get("engine") != "memcached"
        and not r.inputs.get("replicationGroupId")
    ):
        out.append(
            "a standalone cache cluster cannot encrypt: use a replication group with "
            "at-rest and in-transit encryption"
        )
    return out


@rule(
    "SOV-ENC-008",
    "rds-encrypted",
    "critical",
    "RDS instances and clusters encrypt storage with a customer key and force TLS.",
    types=("aws:rds/instance:Instance", "aws:rds/cluster:Cluster"),
)
def rds_encrypted(r: Resource, ctx: Context) -> list[str]:
    out: list[str] = []
    if r.inputs.get("storageEncrypted") is not True:
        out.append("storage is not encrypted: set storage_encrypted=true")
    if not _customer_key(r.inputs.get("kmsKeyId")):
        out.append("no customer-managed key: set kms_key_id")
    if r.inputs.get("publiclyAccessible") is True:
        out.append("database is publicly accessible: set publicly_accessible=false")
    return out


@stack_rule(
    "SOV-ENC-009",
    "rds-forces-tls",
    "high",
    "RDS parameter groups in use force TLS (rds.force_ssl / require_secure_transport).",
)
def rds_forces_tls(resources: list[Resource], ctx: Context) -> list[tuple[Resource | None, str]]:
    groups = {
        r.urn: r
        for r in resources
        if r.type
        in (
            "aws:rds/parameterGroup:ParameterGroup",
            "aws:rds/clusterParameterGroup:ClusterParameterGroup",
        )
    }
    out: list[tuple[Resource | None, str]] = []
    for db in resources:
        if db.type not in ("aws:rds/instance:Instance", "aws:rds/cluster:Cluster"):
            continue
        linked = [groups[d] for d in db.dependencies if d in groups]
        forced = any(
            p.get("name") in ("rds.force_ssl", "require_secure_transport")
            and str(p.get("value")).lower() in ("1", "on", "true")
            for g in linked
            for p in g.inputs.get("parameters") or []
        )
        if not forced:
            out.append((db, "TLS is not enforced: use a parameter group with rds.force_ssl=1"))
    return out


DEDICATED = frozenset(
    {
        *SSE_TYPES,
        *BUCKET_TYPES,
        "aws:ebs/volume:Volume",
        "aws:ec2/launchTemplate:LaunchTemplate",
        "aws:eks/cluster:Cluster",
        "aws:cloudwatch/logGroup:LogGroup",
        "aws:elasticache/replicationGroup:ReplicationGroup",
        "aws:elasticache/serverlessCache:ServerlessCache",
        "aws:elasticache/cluster:Cluster",
        "aws:rds/instance:Instance",
        "aws:rds/cluster:Cluster",
    }
)
"""Data stores judged by SOV-ENC-001 to SOV-ENC-008; SOV-ENC-010 leaves them to those rules."""


def _accepts(value: Any, allowed: list[Any]) -> bool:
    """True when ``value`` is one of ``allowed`` (``True`` also as the text ``"true"``)."""
    if True in allowed and isinstance(value, str) and value.lower() == "true":
        return True
    return any(value == a and type(value) is type(a) for a in allowed)


def _key_problem(at: str, value: Any, default: str) -> str | None:
    """What is wrong with the key input ``at`` holding ``value`` (None: a customer key)."""
    fix = f"set {snake(at)} to the ARN of a customer-managed KMS key of the stack"
    if value is None or value == "":
        return (
            f"{at} is unset, so the data gets AWS's default, {default}, not a customer key: {fix}"
        )
    if is_unknown(value) or not isinstance(value, str):
        return None
    if not _customer_key(value):
        return f"{at} = {value!r} is an AWS-managed key, not a customer-managed one: {fix}"
    return None


def _applies(r: Resource, spec: Mapping[str, Any]) -> bool:
    """False when the type's condition (``when``: an SSM parameter that is no SecureString)
    says its data is not encrypted at all."""
    for path, allowed in (spec.get("when") or {}).items():
        value = r.get(*path.split("."))
        if is_unknown(value):
            return True
        if not _accepts(value, allowed):
            return False
    return True


@rule(
    "SOV-ENC-010",
    "customer-managed-key-everywhere",
    "critical",
    "Every AWS type that stores data is encrypted with a customer-managed KMS key (not an "
    "AWS-owned or service-managed one), with its encryption switches on.",
)
def customer_managed_key_everywhere(r: Resource, ctx: Context) -> list[str]:
    info = entry(r.type) if r.type.startswith("aws:") else None
    spec = (info or {}).get("encryption") or {}
    if not spec.get("storesData") or "via" in spec or r.type in DEDICATED or not _applies(r, spec):
        return []
    default = spec.get("default", "an AWS-owned or AWS-managed key")
    if spec.get("noCmk"):
        return [
            f"{r.type} cannot be encrypted with a customer-managed key (AWS encrypts it its own "
            f"way: {default}): keep this data in a store that takes a customer-managed KMS key"
        ]
    out: list[str] = []
    for path in spec.get("cmk") or ():
        found = list(leaves(r.inputs, path)) or [(path, None)]
        out += [p for at, value in found if (p := _key_problem(at, value, default))]
    for path in spec.get("cmkWhenConfigured") or ():
        for at, value in leaves(r.inputs, path):
            # A top-level key of secondary data is judged when set; a nested one whenever the
            # block that needs it is configured.
            if value is not None or "." in path:
                out += [p for p in [_key_problem(at, value, default)] if p]
    for path, allowed in (spec.get("companions") or {}).items():
        for at, value in leaves(r.inputs, path):
            if is_unknown(value) or _accepts(value, allowed):
                continue
            wanted = " or ".join(repr(a) for a in allowed if a != "true")
            state = "is unset" if value is None else f"= {value!r}"
            out.append(
                f"{at} {state}: the data is encrypted with the customer-managed key only when "
                f"it is {wanted}; set {snake(at)} to {wanted}"
            )
    return out
