"""The zone's registry: one creation template for its ECR repositories, and the signing key.

Workloads of an ``imageSource: mirror`` stack pull every image and chart from
``<account>.dkr.ecr.<region>.amazonaws.com/<mirror>`` (:mod:`policies.inventory`). Images arrive
there by ``sovml images mirror`` (the operator's copy) or the CI workflow (the pipeline images),
and are signed with the platform's image-signing key, which the admission policy
(:mod:`components.image_admission`) trusts.

Repositories are not declared one by one: ECR creates each on its first push (``CREATE_ON_PUSH``)
from the registry's ``ROOT`` creation template, which this component owns. Every repository the
registry ever gets by a push (the inventory's 80 names today, a new one tomorrow) is therefore
encrypted with the mirror's key, IMMUTABLE, tagged like the stack and under the lifecycle policy,
with no ``pulumi up`` between a new inventory entry and its copy; the registry's scanning
configuration scans every push. One template, its role and the scanning configuration replace
two resources per repository (160 of a tenant's 328 AWS resources), which is what every preview,
update and gate run of every stack paid for.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws

from components._aws import TYPE_PREFIX, child, partition_of, policy, region_of, service_trust

SIGNING_KEY_SPEC = ("SIGN_VERIFY", "ECC_NIST_P256")
"""(key usage, key spec) of the image-signing key: cosign signs with ECDSA P-256 through KMS."""
TEMPLATE_PREFIX = "ROOT"
"""The template's prefix: ECR's name for every repository no more specific template matches (the
zone's registry is the stack account's registry in its region; none other is declared)."""
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
    """ECR repository names: the inventory's distinct ``mirror`` names (images and charts), which
    the mirror job pushes (and ECR creates from the template); ``repository_urls`` names them."""
    repository_tags: Mapping[str, str] = field(default_factory=dict)
    """Tags ECR puts on every repository it creates from the template (the stack's own tags: the
    provider's default tags reach only resources the program declares)."""
    protect: bool = True
    """Protect the keys and the template from deletion (production); keys are also retained if
    removed. Repositories created on push are never in the stack, so no ``destroy`` deletes
    them."""
    deletion_window_days: int = 30
    """Waiting period before a scheduled key deletion takes effect (7-30)."""
    untagged_expiry_days: int = 14
    """Days an untagged image (a failed or superseded push) is kept before it expires."""


class RegistryMirror(pulumi.ComponentResource):
    """The registry's ``ROOT`` creation template, its role, push scanning; the signing key.

    Every repository ECR creates on a push: SSE-KMS with the mirror's own customer-managed key
    (rotated), IMMUTABLE tags (a mirrored tag can never be repointed, so a tag and its digest
    stay one fact), the stack's tags, and a lifecycle policy that expires only untagged images:
    tagged ones are the pinned versions workloads run and must never disappear. ECR uses the
    key and tags through the template's role (trusted by ``ecr.amazonaws.com`` only; it may
    create and tag repositories and grant itself this one key). The registry's scanning
    configuration scans every push (basic scanning). The pusher needs ``ecr:CreateRepository``
    beside the push actions. The signing key is an asymmetric
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
        bad_tags = {
            k: v
            for k, v in args.repository_tags.items()
            if not isinstance(k, str) or not isinstance(v, str) or not 0 < len(k) <= 128
            or len(v) > 256 or k.startswith("aws:")
        }  # fmt: skip
        if bad_tags:
            raise ValueError(
                f"RegistryMirrorArgs.repository_tags: {bad_tags}; allowed string keys of 1-128 "
                "characters not starting with 'aws:' and string values of up to 256"
            )
        super().__init__(f"{TYPE_PREFIX}:registry_mirror:RegistryMirror", name, None, opts)

        partition, region = partition_of(self), region_of(self)
        admin = key_policy(partition, args.account_id)
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

        role = aws.iam.Role(
            f"{name}-creation-role",
            description=f"{args.name_prefix}: ECR creates the mirror's repositories on push",
            assume_role_policy=service_trust("ecr.amazonaws.com"),
            opts=child(self),
        )
        repositories = pulumi.Output.concat(
            "arn:", partition, ":ecr:", region, ":", args.account_id, ":repository/*"
        )
        grants = aws.iam.RolePolicy(
            f"{name}-creation-policy",
            role=role.id,
            policy=policy(
                [
                    {
                        "Sid": "CreateAndTagRepositories",
                        "Effect": "Allow",
                        "Action": ["ecr:CreateRepository", "ecr:TagResource"],
                        "Resource": repositories,
                    },
                    {
                        "Sid": "EncryptWithTheRegistryKey",
                        "Effect": "Allow",
                        "Action": ["kms:CreateGrant", "kms:RetireGrant", "kms:DescribeKey"],
                        "Resource": key.arn,
                    },
                ]
            ),
            opts=child(self),
        )
        aws.ecr.RepositoryCreationTemplate(
            f"{name}-template",
            prefix=TEMPLATE_PREFIX,
            applied_fors=["CREATE_ON_PUSH"],
            description=f"{args.name_prefix}: every repository of the zone's registry",
            image_tag_mutability="IMMUTABLE",
            encryption_configurations=[{"encryption_type": "KMS", "kms_key": key.arn}],
            lifecycle_policy=lifecycle_policy(args.untagged_expiry_days),
            custom_role_arn=role.arn,
            resource_tags=dict(args.repository_tags) or None,
            # Without it a push would create an unencrypted, mutable repository: keep it.
            opts=child(self, protect=args.protect, depends_on=[grants]),
        )
        aws.ecr.RegistryScanningConfiguration(
            f"{name}-scanning",
            scan_type="BASIC",
            rules=[
                {
                    "scan_frequency": "SCAN_ON_PUSH",
                    "repository_filters": [{"filter": "*", "filter_type": "WILDCARD"}],
                }
            ],
            opts=child(self),
        )
        host = pulumi.Output.concat(args.account_id, ".dkr.ecr.", region, ".amazonaws.com/")
        urls = {repo: pulumi.Output.concat(host, repo) for repo in args.repositories}

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
