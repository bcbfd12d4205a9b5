"""Which types store data, which inputs select their customer-managed key, which companion inputs
must hold which values, and what AWS does by default: the encryption half of the classification."""

from __future__ import annotations

from typing import Any

from policies.gen_classification.kinds import DESTINATION_WORDS, Leaf, words

ENCRYPTION_WORDS = frozenset({"encryption", "encrypt", "encrypted", "sse", "kms", "security"})
"""A block named with one of these exists to configure encryption (``serverSideEncryption``)."""
SECONDARY_KEY_WORDS = frozenset({"performance", "insights", "secret", "password", "log", "source"})
"""Top-level keys that protect something besides the stored data (Performance Insights, the
master-user secret, logs, a deployment package): judged only when set (``cmkWhenConfigured``)."""
FLAG_NAMES = frozenset({"encrypted", "storageEncrypted", "atRestEncryptionEnabled"})
"""Companion flags: with a customer key they must be true (``enabled`` counts under an encryption
block)."""

NON_DATA = frozenset(
    {
        "aws:kms/ciphertext:Ciphertext",
        "aws:kms/grant:Grant",
        "aws:kms/key:Key",
        "aws:kms/keyPolicy:KeyPolicy",
        "aws:ebs/defaultKmsKey:DefaultKmsKey",
        "aws:route53/keySigningKey:KeySigningKey",
        "aws:quicksight/keyRegistration:KeyRegistration",
        "aws:redshift/snapshotCopyGrant:SnapshotCopyGrant",
        "aws:lambda/eventSourceMapping:EventSourceMapping",
        "aws:cognito/userPool:UserPool",
        "aws:dataexchange/revisionAssets:RevisionAssets",
        "aws:mailmanager/ingressPoint:IngressPoint",
        "aws:bedrock/agentcoreOauth2CredentialProvider:AgentcoreOauth2CredentialProvider",
    }
)
"""Types with a KMS input that is not the key of data they store: KMS itself, grants, default-key
settings, DNSSEC signing keys, keys of filters, custom senders, trust stores and key sources."""
SSE = "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration"
LINKED = {
    "aws:s3/bucket:Bucket": SSE,
    "aws:s3/bucketV2:BucketV2": SSE,
    "aws:s3/bucketObject:BucketObject": "aws:s3/bucket:Bucket",
    "aws:s3/bucketObjectv2:BucketObjectv2": "aws:s3/bucket:Bucket",
    "aws:s3/objectCopy:ObjectCopy": "aws:s3/bucket:Bucket",
    "aws:ebs/snapshot:Snapshot": "aws:ebs/volume:Volume",
}
"""Data stores encrypted through another resource: buckets by their SSE configuration (SOV-ENC-001
and SOV-ENC-002), objects by their bucket's default, EBS snapshots by their volume's key."""
NO_CMK = {
    "aws:glacier/vault:Vault": "AES-256 with keys Glacier manages",
    "aws:lightsail/bucket:Bucket": "an AWS-managed key (Lightsail offers no customer key)",
    "aws:lightsail/database:Database": "an AWS-managed key (Lightsail offers no customer key)",
    "aws:lightsail/disk:Disk": "an AWS-managed key (Lightsail offers no customer key)",
    "aws:cloudsearch/domain:Domain": "an AWS-owned key",
    "aws:mediastore/container:Container": "an AWS-owned key",
    "aws:dax/cluster:Cluster": "an AWS-owned key (serverSideEncryption.enabled)",
    "aws:appsync/apiCache:ApiCache": "an AWS-owned key (atRestEncryptionEnabled)",
    "aws:dynamodb/globalTable:GlobalTable": "an AWS-owned key (2017 global tables)",
    "aws:elasticache/cluster:Cluster": "unencrypted (a standalone cache cluster cannot encrypt)",
    "aws:timestreaminfluxdb/dbInstance:DbInstance": "an AWS-owned key",
}
"""Data stores that cannot take a customer-managed key, with what encrypts them instead."""
CURATED: dict[str, dict[str, Any]] = {
    "aws:dynamodb/table:Table": {"companions": {"serverSideEncryption.enabled": [True]}},
    "aws:kinesis/stream:Stream": {"companions": {"encryptionType": ["KMS"]}},
    "aws:kinesis/firehoseDeliveryStream:FirehoseDeliveryStream": {
        # The destinations' own keys (extendedS3Configuration.kmsKeyArn ...) protect the copy
        # where it lands, which the destination's own classification judges.
        "cmk": ["serverSideEncryption.keyArn"],
        "companions": {
            "serverSideEncryption.enabled": [True],
            "serverSideEncryption.keyType": ["CUSTOMER_MANAGED_CMK"],
        },
    },
    "aws:ecr/repository:Repository": {
        "companions": {"encryptionConfigurations[].encryptionType": ["KMS", "KMS_DSSE"]}
    },
    "aws:ecr/repositoryCreationTemplate:RepositoryCreationTemplate": {
        "companions": {"encryptionConfigurations[].encryptionType": ["KMS", "KMS_DSSE"]}
    },
    "aws:ssm/parameter:Parameter": {"when": {"type": ["SecureString"]}},
    "aws:ec2/instance:Instance": {
        "cmk": ["rootBlockDevice.kmsKeyId"],
        "cmkWhenConfigured": ["ebsBlockDevices[].kmsKeyId"],
        "companions": {"rootBlockDevice.encrypted": [True], "ebsBlockDevices[].encrypted": [True]},
    },
    "aws:ec2/spotInstanceRequest:SpotInstanceRequest": {
        "cmk": ["rootBlockDevice.kmsKeyId"],
        "cmkWhenConfigured": ["ebsBlockDevices[].kmsKeyId"],
        "companions": {"rootBlockDevice.encrypted": [True], "ebsBlockDevices[].encrypted": [True]},
    },
    "aws:athena/workgroup:Workgroup": {
        "cmk": ["configuration.resultConfiguration.encryptionConfiguration.kmsKeyArn"],
        "companions": {
            "configuration.resultConfiguration.encryptionConfiguration.encryptionOption": [
                "SSE_KMS",
                "CSE_KMS",
            ]
        },
    },
    "aws:glue/dataCatalogEncryptionSettings:DataCatalogEncryptionSettings": {
        "cmk": ["dataCatalogEncryptionSettings.encryptionAtRest.sseAwsKmsKeyId"],
        "companions": {
            "dataCatalogEncryptionSettings.encryptionAtRest.catalogEncryptionMode": [
                "SSE-KMS",
                "SSE-KMS-WITH-SERVICE-ROLE",
            ]
        },
    },
    "aws:glue/securityConfiguration:SecurityConfiguration": {
        "companions": {
            "encryptionConfiguration.s3Encryption.s3EncryptionMode": ["SSE-KMS"],
            "encryptionConfiguration.cloudwatchEncryption.cloudwatchEncryptionMode": ["SSE-KMS"],
            "encryptionConfiguration.jobBookmarksEncryption.jobBookmarksEncryptionMode": [
                "CSE-KMS"
            ],
        },
    },
    "aws:xray/encryptionConfig:EncryptionConfig": {"companions": {"type": ["KMS"]}},
}
"""Corrections to the derived classification: which paths, companions and conditions apply."""
DEFAULTS = {
    "dynamodb": "an AWS-owned key",
    "sqs": "SQS-managed SSE (SSE-SQS, an AWS-owned key)",
    "sns": "unencrypted",
    "kinesis": "unencrypted",
    "secretsmanager": "the AWS-managed key aws/secretsmanager",
    "ssm": "the AWS-managed key aws/ssm",
    "efs": "unencrypted",
    "fsx": "the AWS-managed key aws/fsx",
    "opensearch": "unencrypted, or the AWS-managed key aws/es",
    "elasticsearch": "unencrypted, or the AWS-managed key aws/es",
    "msk": "the AWS-managed key aws/kafka",
    "elasticache": "unencrypted",
    "memorydb": "an AWS-owned key",
    "ecr": "AES-256 with an AWS-owned key (SSE-S3)",
    "cloudwatch": "a key the service manages",
    "backup": "the AWS-managed key aws/backup",
    "sagemaker": "the AWS-managed key aws/sagemaker, or an AWS-owned key",
    "glue": "unencrypted",
    "athena": "unencrypted query results",
    "ebs": "unencrypted, or the AWS-managed key aws/ebs",
    "ec2": "unencrypted, or the AWS-managed key aws/ebs",
    "rds": "unencrypted, or the AWS-managed key aws/rds",
    "docdb": "unencrypted, or the AWS-managed key aws/rds",
    "neptune": "unencrypted, or the AWS-managed key aws/rds",
    "redshift": "unencrypted, or the AWS-managed key aws/redshift",
    "lambda": "the AWS-managed key aws/lambda",
    "s3": "SSE-S3 (AES-256 with an AWS-owned key)",
    "eks": "Kubernetes Secrets unencrypted beyond the EBS volumes of etcd",
    "cloudtrail": "SSE-S3 (AES-256 with an AWS-owned key)",
}
"""What AWS does when no customer key is given, per service (the rule's messages quote it)."""
DEFAULT_FALLBACK = "the service default: an AWS-owned or AWS-managed key"


def is_flag(wire: str, parent: str, scalar: str | None) -> bool:
    """True for an input that switches at-rest encryption on (``storageEncrypted``, ...)."""
    if scalar not in ("bool", "str"):
        return False
    parent_words = set(words(parent))
    return wire in FLAG_NAMES or (wire == "enabled" and bool(ENCRYPTION_WORDS & parent_words))


def _parent(path: str) -> str:
    return path.rpartition(".")[0]


def encryption_of(token: str, leaves: list[Leaf], flags: list[str]) -> dict[str, Any]:
    """The encryption classification of one type: ``storesData``; ``cmk`` (key inputs that must
    hold a customer key, preference order), ``cmkWhenConfigured`` (judged once their block is set,
    or, at the top level, once set), ``companions`` (input -> accepted values), ``when`` (a
    condition for the data to be encrypted at all), ``noCmk``, ``via`` (encrypted through another
    resource) and ``default`` (what AWS does without a customer key)."""
    service = token.split(":")[1].split("/")[0]
    default = DEFAULTS.get(service, DEFAULT_FALLBACK)
    if token in LINKED:
        return {"storesData": True, "via": LINKED[token], "default": default}
    if token in NO_CMK:
        return {"storesData": True, "noCmk": True, "default": NO_CMK[token]}
    if token in NON_DATA:
        return {"storesData": False}
    required: list[str] = []
    if_set: list[str] = []
    for leaf in leaves:
        segments = leaf.path.split(".")
        # The key of a replica, copy or destination belongs to that copy, judged where it lands.
        if "kms" not in leaf.kinds or any(DESTINATION_WORDS & set(words(s)) for s in segments):
            continue
        head = words(segments[0])
        if len(segments) == 1 and SECONDARY_KEY_WORDS & set(head):
            if_set.append(leaf.path)
        elif len(segments) == 1 or ENCRYPTION_WORDS & set(head):
            required.append(leaf.path)
        else:
            if_set.append(leaf.path)
    curated = CURATED.get(token, {})
    if "cmk" in curated:
        required, if_set = list(curated["cmk"]), list(curated.get("cmkWhenConfigured", []))
    if not required and not if_set:
        return {"storesData": False}
    keys = required + if_set
    # A switch beside a key input (``storageEncrypted`` next to ``kmsKeyId``) must be on; the
    # rule also accepts the text "true", as launch templates spell it.
    companions = {f: [True] for f in flags if any(_parent(f) == _parent(k) for k in keys)}
    companions.update(curated.get("companions", {}))
    out: dict[str, Any] = {"storesData": True, "cmk": required, "default": default}
    if if_set:
        out["cmkWhenConfigured"] = if_set
    if companions:
        out["companions"] = companions
    if "when" in curated:
        out["when"] = curated["when"]
    return out


def check_curation(tokens: set[str]) -> None:
    """Fail loudly when a curated token no longer exists (a pulumi-aws upgrade renamed it)."""
    curated = NON_DATA | set(LINKED) | set(NO_CMK) | set(CURATED) | set(LINKED.values())
    missing = sorted(curated - tokens)
    if missing:
        raise SystemExit(f"curated types missing from pulumi-aws: {missing}: update the tables")
