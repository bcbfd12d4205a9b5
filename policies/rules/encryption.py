"""Encryption at rest with customer-managed keys, and in transit, wherever data rests."""

from __future__ import annotations

from policies.rules.base import Context, Resource, rule, stack_rule

SSE_TYPE = "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration"
AWS_MANAGED_ALIASES = ("alias/aws/",)


def _customer_key(key: object) -> bool:
    return isinstance(key, str) and bool(key) and not any(a in key for a in AWS_MANAGED_ALIASES)


@rule(
    "SOV-ENC-001",
    "s3-sse-kms-customer-key",
    "critical",
    "S3 default encryption is SSE-KMS with a customer-managed key.",
    types=(SSE_TYPE,),
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
    configured = {d for r in resources if r.type == SSE_TYPE for d in r.dependencies}
    return [
        (b, "bucket has no server-side encryption configuration: add one with SSE-KMS")
        for b in resources
        if b.type == "aws:s3/bucket:Bucket" and b.urn not in configured
    ]


@rule(
    "SOV-ENC-003",
    "ebs-volumes-encrypted",
    "critical",
    "EBS volumes, launch-template and instance volumes are encrypted with a customer key.",
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
    elif r.type == "aws:ec2/instance:Instance":
        root = r.inputs.get("rootBlockDevice") or {}
        if not truthy(root.get("encrypted")):
            out.append("instance root volume is not encrypted")
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
