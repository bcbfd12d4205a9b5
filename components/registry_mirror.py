"""The zone's registry: an ECR repository per mirrored image and chart, and the signing key.

Workloads of an ``imageSource: mirror`` stack pull every image and chart from
``<account>.dkr.ecr.<region>.amazonaws.com/<mirror>`` (:mod:`policies.inventory`); this component
creates exactly those repositories, so every reference names a repository that exists. Images
arrive there by ``sovml images mirror`` (the operator's copy) or the CI workflow (the pipeline
images), and are signed with the platform's image-signing key, which the admission policy
(:mod:`components.image_admission`) trusts.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components._aws import TYPE_PREFIX, child, partition_of, policy

SIGNING_KEY_SPEC = ("SIGN_VERIFY", "ECC_NIST_P256")
"""(key usage, key spec) of the image-signing key: cosign signs with ECDSA P-256 through KMS."""
_REPOSITORY = re.compile(r"[a-z0-9]+(?:[._-][a-z0-9]+)*(?:/[a-z0-9]+(?:[._-][a-z0-9]+)*)*")
"""ECR's repository-name grammar (lowercase path components, ``._-`` separators)."""


@dataclass
class RegistryMirrorArgs:
    """Inputs of :class:`RegistryMirror`."""

    name_prefix: str
    """Prefix of the key aliases (``alias/<prefix>-registry``, ``alias/<prefix>-image-signing``)."""
    account_id: pulumi.Input[str]
    """AWS account that owns the keys (its root principal administers them through IAM)."""
    repositories: Sequence[str]
    """ECR repository names: the inventory's distinct ``mirror`` names (images and charts)."""
    protect: bool = True
    """Protect repositories and keys from deletion and retain them if removed (production)."""
    deletion_window_days: int = 30
    """Waiting period before a scheduled key deletion takes effect (7-30)."""
    untagged_expiry_days: int = 14
    """Days an untagged image (a failed or superseded push) is kept before it expires."""


class RegistryMirror(pulumi.ComponentResource):
    """One ECR repository per mirrored name, encrypted, immutable, scanned; the signing key.

    Every repository: SSE-KMS with the mirror's own customer-managed key (rotated), IMMUTABLE
    tags (a mirrored tag can never be repointed, so a tag and its digest stay one fact), scan on
    push, and a lifecycle policy that expires only untagged images: tagged ones are the pinned
    versions workloads run and must never disappear. The signing key is an asymmetric
    ``ECC_NIST_P256`` / ``SIGN_VERIFY`` KMS key (alias ``alias/<prefix>-image-signing``): CI signs
    with ``cosign --key awskms:///alias/...``; the admission policy verifies with its ARN. KMS
    rotates only symmetric keys, so the signing key does not rotate (a new key means re-signing).
    """

    repository_urls: pulumi.Output[dict[str, str]]
    """Repository URL per repository name."""
    signing_key_arn: pulumi.Output[str]
    """ARN of the image-signing key."""

    def __init__(
        self, name: str, args: RegistryMirrorArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        bad = [r for r in args.repositories if not _REPOSITORY.fullmatch(r) or len(r) > 256]
        if bad or not args.repositories or len(set(args.repositories)) != len(args.repositories):
            raise ValueError(
                f"RegistryMirrorArgs.repositories: {list(args.repositories)}; allowed a non-empty "
                "list of distinct ECR repository names (lowercase path components, '._-')"
            )
        if not 7 <= args.deletion_window_days <= 30:
            raise ValueError(
                f"RegistryMirrorArgs.deletion_window_days: {args.deletion_window_days}; "
                "allowed 7-30"
            )
        if args.untagged_expiry_days < 1:
            raise ValueError(
                f"RegistryMirrorArgs.untagged_expiry_days: {args.untagged_expiry_days}; "
                "allowed >= 1"
            )
        super().__init__(f"{TYPE_PREFIX}:registry_mirror:RegistryMirror", name, None, opts)

        admin = key_policy(partition_of(self), args.account_id)
        # Losing a key loses every image encrypted (or signed) under it: keep keys through mistakes.
        kept = child(self, protect=args.protect, retain_on_delete=args.protect)
        key = aws.kms.Key(
            f"{name}-key",
            description=f"{args.name_prefix}: registry mirror encryption",
            enable_key_rotation=True,
            deletion_window_in_days=args.deletion_window_days,
            key_usage="ENCRYPT_DECRYPT",
            customer_master_key_spec="SYMMETRIC_DEFAULT",
            policy=admin,
            tags={"purpose": "registry"},
            opts=kept,
        )
        aws.kms.Alias(
            f"{name}-key-alias",
            name=f"alias/{args.name_prefix}-registry",
            target_key_id=key.key_id,
            opts=child(self),
        )
        usage, spec = SIGNING_KEY_SPEC
        signing = aws.kms.Key(
            f"{name}-signing-key",
            description=f"{args.name_prefix}: image signing (cosign)",
            enable_key_rotation=False,
            deletion_window_in_days=args.deletion_window_days,
            key_usage=usage,
            customer_master_key_spec=spec,
            policy=admin,
            tags={"purpose": "image-signing"},
            opts=kept,
        )
        aws.kms.Alias(
            f"{name}-signing-key-alias",
            name=signing_alias(args.name_prefix),
            target_key_id=signing.key_id,
            opts=child(self),
        )

        urls: dict[str, pulumi.Output[str]] = {}
        for repo in args.repositories:
            role = f"{name}-{repo.replace('/', '-')}"
            repository = aws.ecr.Repository(
                role,
                name=repo,
                image_tag_mutability="IMMUTABLE",
                image_scanning_configuration={"scan_on_push": True},
                encryption_configurations=[{"encryption_type": "KMS", "kms_key": key.arn}],
                force_delete=not args.protect,
                opts=child(self, protect=args.protect, retain_on_delete=args.protect),
            )
            aws.ecr.LifecyclePolicy(
                f"{role}-lifecycle",
                repository=repository.name,
                policy=lifecycle_policy(args.untagged_expiry_days),
                opts=child(self),
            )
            urls[repo] = repository.repository_url

        self.repository_urls = pulumi.Output.all(**urls)
        self.signing_key_arn = signing.arn
        self.register_outputs(
            {"repository_urls": self.repository_urls, "signing_key_arn": self.signing_key_arn}
        )


def signing_alias(name_prefix: str) -> str:
    """The image-signing key's alias (what ``cosign sign --key awskms:///<alias>`` names)."""
    return f"alias/{name_prefix}-image-signing"


def key_policy(partition: pulumi.Input[str], account_id: pulumi.Input[str]) -> pulumi.Output[str]:
    """Both keys' policy: the account administers and uses them through IAM, nothing else.

    ECR uses the encryption key through grants it creates on behalf of the pushing principal,
    and CI signs through its own IAM role, so no service principal needs a statement here.
    """
    return policy(
        [
            {
                "Sid": "AccountAdministersThroughIam",
                "Effect": "Allow",
                "Principal": {
                    "AWS": pulumi.Output.concat("arn:", partition, ":iam::", account_id, ":root")
                },
                "Action": "kms:*",
                "Resource": "*",
            }
        ]
    )


def lifecycle_policy(untagged_days: int) -> str:
    """An ECR lifecycle policy expiring untagged images after ``untagged_days``; tags stay."""
    return json.dumps(
        {
            "rules": [
                {
                    "rulePriority": 1,
                    "description": "expire untagged images; tagged (pinned) versions are kept",
                    "selection": {
                        "tagStatus": "untagged",
                        "countType": "sinceImagePushed",
                        "countUnit": "days",
                        "countNumber": untagged_days,
                    },
                    "action": {"type": "expire"},
                }
            ]
        }
    )
