"""Customer-managed KMS keys, one per purpose, with rotation and least-privilege key policies.

Every purpose but one gets a symmetric encryption key with automatic rotation. The
``pseudonymization`` key is an HMAC_256 key (usage GENERATE_VERIFY_MAC): the ingest step's
``kms`` key service derives its keyed-hash key with ``GenerateMac`` (``pipelines/privacy``), and
a KMS key has one usage, so it cannot be an encryption key. KMS supports neither automatic nor
on-demand rotation of HMAC keys (only symmetric encryption keys rotate), so that key has
rotation off; a new key under the alias would change every token (a new pseudonym space).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws

from components._aws import (
    TYPE_PREFIX,
    child,
    partition_of,
    policy,
    region_of,
    volume_key_statements,
)

PURPOSES = ("cluster", "volumes", "storage", "logs", "vault", "pseudonymization")
"""Purposes a key can serve; each one adds the service grants that purpose needs."""
KEY_SPECS: dict[str, tuple[str, str]] = {"pseudonymization": ("GENERATE_VERIFY_MAC", "HMAC_256")}
"""(key usage, key spec) of the purposes that are not symmetric encryption keys; these cannot
rotate (KMS rotates symmetric encryption keys only)."""
ENCRYPTION_SPEC = ("ENCRYPT_DECRYPT", "SYMMETRIC_DEFAULT")
"""(key usage, key spec) of every other purpose."""


@dataclass
class EncryptionArgs:
    """Inputs of :class:`Encryption`."""

    name_prefix: str
    """Prefix of the key aliases (``alias/<prefix>-<purpose>``)."""
    account_id: pulumi.Input[str]
    """AWS account that owns the keys (its root principal administers them through IAM)."""
    purposes: Sequence[str] = ("cluster", "volumes", "storage", "logs")
    """Which keys to create; a subset of ``PURPOSES``."""
    deletion_window_days: int = 30
    """Waiting period before a scheduled deletion takes effect (7-30)."""
    rotation_period_days: int = 365
    """Automatic rotation period (90-2560 days)."""
    protect: bool = True
    """Protect keys from deletion and retain them if removed from the program (production): the
    pseudonymization key too, since losing it makes every token unlinkable."""
    tags: Mapping[str, str] = field(default_factory=dict)
    """Extra tags for the keys (provider default tags apply as well)."""


class Encryption(pulumi.ComponentResource):
    """A customer-managed KMS key per purpose.

    Every encryption key has automatic rotation on (the HMAC ``pseudonymization`` key cannot
    rotate: see the module), every key an alias, and a key policy that keeps administration
    with the account (through IAM) and grants services only what their purpose needs: CloudWatch
    Logs and CloudTrail for the logs key (scoped by encryption context to this account's log
    groups and trails), the Auto
    Scaling service-linked role for the volumes key (managed node groups launch encrypted
    volumes through it), S3 server-access-log delivery for the storage key. Service grants are
    scoped to the AWS provider's region.
    """

    key_arns: pulumi.Output[dict[str, str]]
    """Key ARN per purpose."""

    def __init__(
        self, name: str, args: EncryptionArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        unknown = sorted(set(args.purposes) - set(PURPOSES))
        if unknown:
            raise ValueError(f"EncryptionArgs.purposes: unknown {unknown}; allowed {PURPOSES}")
        if not 7 <= args.deletion_window_days <= 30:
            raise ValueError(
                f"EncryptionArgs.deletion_window_days: {args.deletion_window_days}; allowed 7-30"
            )
        if not 90 <= args.rotation_period_days <= 2560:
            raise ValueError(
                f"EncryptionArgs.rotation_period_days: {args.rotation_period_days}; "
                "allowed 90-2560"
            )
        super().__init__(f"{TYPE_PREFIX}:encryption:Encryption", name, None, opts)

        arns = AccountArns(partition_of(self), region_of(self), args.account_id)
        self.keys: dict[str, aws.kms.Key] = {}
        for purpose in args.purposes:
            usage, spec = KEY_SPECS.get(purpose, ENCRYPTION_SPEC)
            rotates = spec == "SYMMETRIC_DEFAULT"
            key = aws.kms.Key(
                f"{name}-{purpose}",
                description=f"{args.name_prefix}: {purpose} "
                + ("encryption" if rotates else "keyed hashing (HMAC)"),
                enable_key_rotation=rotates,
                rotation_period_in_days=args.rotation_period_days if rotates else None,
                deletion_window_in_days=args.deletion_window_days,
                key_usage=usage,
                customer_master_key_spec=spec,
                policy=key_policy(purpose, arns),
                tags={**args.tags, "purpose": purpose},
                # Losing a key loses every byte encrypted under it: keep keys through mistakes.
                opts=child(self, protect=args.protect, retain_on_delete=args.protect),
            )
            aws.kms.Alias(
                f"{name}-{purpose}-alias",
                name=f"alias/{args.name_prefix}-{purpose}",
                target_key_id=key.key_id,
                opts=child(self),
            )
            self.keys[purpose] = key

        self.key_arns = pulumi.Output.all(
            **{purpose: key.arn for purpose, key in self.keys.items()}
        )
        self.register_outputs({"key_arns": self.key_arns})


class AccountArns:
    """ARNs in this account, partition and region, built from templates."""

    def __init__(
        self,
        partition: pulumi.Output[str],
        region: pulumi.Output[str],
        account_id: pulumi.Input[str],
    ) -> None:
        self.partition, self.region = partition, region
        self.account = pulumi.Output.from_input(account_id)

    def __call__(self, template: str) -> pulumi.Output[str]:
        """``template`` with ``{p}`` (partition), ``{region}`` and ``{a}`` (account) filled in."""
        return pulumi.Output.all(self.partition, self.region, self.account).apply(
            lambda v: template.format(p=v[0], region=v[1], a=v[2])
        )


def key_policy(purpose: str, arn: AccountArns) -> pulumi.Output[str]:
    """A key's policy: the account administers it through IAM; the purpose's service grants."""
    administer = {
        "Sid": "AccountAdministersThroughIam",
        "Effect": "Allow",
        "Principal": {"AWS": arn("arn:{p}:iam::{a}:root")},
        "Action": "kms:*",
        "Resource": "*",
    }
    grants = SERVICE_GRANTS.get(purpose)
    return policy([administer, *(grants(arn) if grants else [])])


def _logs_grants(arn: AccountArns) -> list[dict]:
    """CloudWatch Logs for this account's log groups, CloudTrail for its trails, in this region."""
    return [
        {
            "Sid": "CloudWatchLogsOfThisAccount",
            "Effect": "Allow",
            "Principal": {"Service": pulumi.Output.concat("logs.", arn.region, ".amazonaws.com")},
            "Action": [
                "kms:Encrypt*",
                "kms:Decrypt*",
                "kms:ReEncrypt*",
                "kms:GenerateDataKey*",
                "kms:Describe*",
            ],
            "Resource": "*",
            "Condition": {
                "ArnLike": {
                    "kms:EncryptionContext:aws:logs:arn": arn(
                        "arn:{p}:logs:{region}:{a}:log-group:*"
                    )
                }
            },
        },
        # The audit trail's log files (components/audit_trail.py): only trails of this account
        # in this region, only on this account's behalf.
        {
            "Sid": "CloudTrailEncryptsThisAccountsTrails",
            "Effect": "Allow",
            "Principal": {"Service": "cloudtrail.amazonaws.com"},
            "Action": "kms:GenerateDataKey*",
            "Resource": "*",
            "Condition": {
                "StringEquals": {"aws:SourceAccount": arn.account},
                "StringLike": {
                    "kms:EncryptionContext:aws:cloudtrail:arn": arn(
                        "arn:{p}:cloudtrail:{region}:{a}:trail/*"
                    )
                },
            },
        },
        {
            "Sid": "CloudTrailDescribesKey",
            "Effect": "Allow",
            "Principal": {"Service": "cloudtrail.amazonaws.com"},
            "Action": "kms:DescribeKey",
            "Resource": "*",
            "Condition": {"StringEquals": {"aws:SourceAccount": arn.account}},
        },
    ]


def _volumes_grants(arn: AccountArns) -> list[dict]:
    """The Auto Scaling service-linked role, which launches the nodes' encrypted volumes."""
    asg_role = arn(
        "arn:{p}:iam::{a}:role/aws-service-role/"
        "autoscaling.amazonaws.com/AWSServiceRoleForAutoScaling"
    )
    return volume_key_statements(
        "AutoScalingUsesKeyForNodeVolumes",
        "AutoScalingGrantsForAttachedVolumes",
        "*",
        principal={"AWS": asg_role},
    )


def _storage_grants(arn: AccountArns) -> list[dict]:
    """S3 server-access-log delivery into this account's buckets."""
    return [
        {
            "Sid": "S3ServerAccessLogDelivery",
            "Effect": "Allow",
            "Principal": {"Service": "logging.s3.amazonaws.com"},
            "Action": ["kms:GenerateDataKey", "kms:Decrypt"],
            "Resource": "*",
            "Condition": {"StringEquals": {"aws:SourceAccount": arn.account}},
        }
    ]


SERVICE_GRANTS: dict[str, Callable[[AccountArns], list[dict]]] = {
    "logs": _logs_grants,
    "volumes": _volumes_grants,
    "storage": _storage_grants,
}
"""Key-policy statements per purpose beyond the account's own (none for the others)."""
