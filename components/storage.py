"""S3 buckets for ML data: SSE-KMS, versioning, no public access, TLS only, access logs."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from components._aws import TYPE_PREFIX, child, objects_of, policy

ACCESS_LOGS = "access-logs"


@dataclass
class StorageArgs:
    """Inputs of :class:`Storage`."""

    name_prefix: str
    """Prefix of the bucket names (``<prefix>-<purpose>-<account>``)."""
    account_id: pulumi.Input[str]
    """Account id, appended to bucket names so they are globally unique and predictable."""
    kms_key_arn: pulumi.Input[str]
    """Customer-managed key for SSE-KMS on every bucket."""
    purposes: Sequence[str] = ("artifacts", "models", "features")
    """Data buckets to create; an access-logs bucket is always added."""
    protect: bool = True
    """Protect data buckets from deletion and keep them if removed from the program."""
    noncurrent_version_days: int = 90
    """Days a superseded object version is kept before it expires."""


class Storage(pulumi.ComponentResource):
    """One bucket per purpose plus the access-log bucket they all log to.

    Each bucket: default SSE-KMS with the customer key and an S3 bucket key (fewer KMS calls),
    versioning, all four public-access blocks, a policy that denies any request without TLS,
    server access logging, object events to EventBridge, and lifecycle rules for old versions
    and abandoned uploads.
    """

    bucket_names: pulumi.Output[dict[str, str]]
    bucket_arns: pulumi.Output[dict[str, str]]

    def __init__(
        self, name: str, args: StorageArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        if ACCESS_LOGS in args.purposes or len(set(args.purposes)) != len(args.purposes):
            raise ValueError(
                f"StorageArgs.purposes: {list(args.purposes)}; allowed distinct names other "
                f"than '{ACCESS_LOGS}' (that bucket is always created)"
            )
        if args.noncurrent_version_days < 1:
            raise ValueError(
                f"StorageArgs.noncurrent_version_days: {args.noncurrent_version_days}; allowed >= 1"
            )
        super().__init__(f"{TYPE_PREFIX}:storage:Storage", name, None, opts)

        logs = self._bucket(name, ACCESS_LOGS, args, log_target=None)
        self.buckets: dict[str, aws.s3.Bucket] = {ACCESS_LOGS: logs}
        for purpose in args.purposes:
            self.buckets[purpose] = self._bucket(name, purpose, args, log_target=logs)

        self.bucket_names = pulumi.Output.all(**{p: b.bucket for p, b in self.buckets.items()})
        self.bucket_arns = pulumi.Output.all(**{p: b.arn for p, b in self.buckets.items()})
        self.register_outputs({"bucket_names": self.bucket_names, "bucket_arns": self.bucket_arns})

    def _bucket(
        self, name: str, purpose: str, args: StorageArgs, log_target: aws.s3.Bucket | None
    ) -> aws.s3.Bucket:
        role = f"{name}-{purpose}"
        bucket = aws.s3.Bucket(
            role,
            bucket=pulumi.Output.from_input(args.account_id).apply(
                lambda a: f"{args.name_prefix}-{purpose}-{a}"
            ),
            force_destroy=not args.protect,
            object_lock_enabled=False,
            tags={"purpose": purpose},
            opts=child(self, protect=args.protect, retain_on_delete=args.protect),
        )
        owned = child(self)
        made = {
            setting: kind(f"{role}-{setting}", bucket=bucket.id, opts=owned, **values)
            for setting, (kind, values) in bucket_settings(args).items()
        }
        everything = [bucket.arn, objects_of(bucket.arn)]
        statements: list[dict] = [
            deny_all_when(
                "DenyInsecureTransport", {"Bool": {"aws:SecureTransport": "false"}}, everything
            ),
            deny_all_when(
                "DenyOutdatedTls", {"NumericLessThan": {"s3:TlsVersion": "1.2"}}, everything
            ),
        ]
        if log_target is None:
            statements.append(
                {
                    "Sid": "S3ServerAccessLogDelivery",
                    "Effect": "Allow",
                    "Principal": {"Service": "logging.s3.amazonaws.com"},
                    "Action": "s3:PutObject",
                    "Resource": objects_of(bucket.arn),
                    "Condition": {"StringEquals": {"aws:SourceAccount": args.account_id}},
                }
            )
        aws.s3.BucketPolicy(
            f"{role}-policy",
            bucket=bucket.id,
            policy=policy(statements),
            # A bucket policy put before the public-access block is settled can be rejected.
            opts=child(self, depends_on=[made["public-access-block"]]),
        )
        if log_target is not None:
            aws.s3.BucketLogging(
                f"{role}-logging",
                bucket=bucket.id,
                target_bucket=log_target.id,
                target_prefix=f"{purpose}/",
                opts=owned,
            )
        return bucket


def deny_all_when(
    sid: str, condition: dict[str, Any], resources: list[pulumi.Output[str]]
) -> dict[str, Any]:
    """A bucket-policy statement denying every S3 action to everyone under ``condition``."""
    return {
        "Sid": sid,
        "Effect": "Deny",
        "Principal": {"AWS": "*"},
        "Action": "s3:*",
        "Resource": resources,
        "Condition": condition,
    }


def bucket_settings(args: StorageArgs) -> dict[str, tuple[Any, dict[str, Any]]]:
    """Every bucket's settings resources: name suffix -> (resource class, its inputs)."""
    return {
        **hardened_bucket_settings(args.kms_key_arn),
        "lifecycle": (
            aws.s3.BucketLifecycleConfiguration,
            {
                "rules": [
                    {
                        "id": "expire-noncurrent-versions",
                        "status": "Enabled",
                        "filter": {},
                        "noncurrent_version_expiration": {
                            "noncurrent_days": args.noncurrent_version_days
                        },
                        "abort_incomplete_multipart_upload": {"days_after_initiation": 7},
                    }
                ]
            },
        ),
    }


def hardened_bucket_settings(
    kms_key_arn: pulumi.Input[str],
) -> dict[str, tuple[Any, dict[str, Any]]]:
    """The settings every bucket of the platform has, whatever it keeps (the data buckets, the
    audit trail's): SSE-KMS with ``kms_key_arn``, versioning, no public access, owner-enforced
    objects, events to EventBridge. Name suffix -> (resource class, its inputs)."""
    return {
        "sse": (
            aws.s3.BucketServerSideEncryptionConfiguration,
            {
                "rules": [
                    {
                        "apply_server_side_encryption_by_default": {
                            "sse_algorithm": "aws:kms",
                            "kms_master_key_id": kms_key_arn,
                        },
                        "bucket_key_enabled": True,
                    }
                ]
            },
        ),
        "versioning": (
            aws.s3.BucketVersioning,
            {"versioning_configuration": {"status": "Enabled"}},
        ),
        "public-access-block": (
            aws.s3.BucketPublicAccessBlock,
            {
                "block_public_acls": True,
                "block_public_policy": True,
                "ignore_public_acls": True,
                "restrict_public_buckets": True,
            },
        ),
        "ownership": (
            aws.s3.BucketOwnershipControls,
            {"rule": {"object_ownership": "BucketOwnerEnforced"}},
        ),
        # Object events go to EventBridge (no consumer is forced on the stack): new model
        # versions and feature files can trigger promotion or materialisation rules.
        "events": (aws.s3.BucketNotification, {"eventbridge": True}),
    }
