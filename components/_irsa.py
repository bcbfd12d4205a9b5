"""IRSA: IAM roles that exactly one Kubernetes service account may assume, and those accounts.

The cluster's OIDC provider ARN and issuer URL always travel together, so components take them
as one :class:`ClusterAccess`, which :class:`~components.cluster.Cluster` exposes as ``access``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from components._aws import child, objects_of, policy
from components._k8s import metadata, role_annotation


@dataclass(frozen=True)
class ClusterAccess:
    """What a component needs to reach the cluster: its name and its IRSA identity provider."""

    cluster_name: pulumi.Input[str]
    """Name of the EKS cluster (add-ons and node-group discovery refer to it)."""
    oidc_provider_arn: pulumi.Input[str]
    """ARN of the cluster's IAM OIDC provider."""
    oidc_issuer_url: pulumi.Input[str]
    """Issuer URL of that provider (``https://oidc.eks.<region>.amazonaws.com/id/...``)."""


def irsa_trust(access: ClusterAccess, namespace: str, service_account: str) -> pulumi.Output[str]:
    """Trust policy for IAM Roles for Service Accounts: exactly one namespace/service account."""

    def document(args: list[str]) -> str:
        arn, url = args
        issuer = url.removeprefix("https://")
        return json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Principal": {"Federated": arn},
                        "Action": "sts:AssumeRoleWithWebIdentity",
                        "Condition": {
                            "StringEquals": {
                                f"{issuer}:sub": (
                                    f"system:serviceaccount:{namespace}:{service_account}"
                                ),
                                f"{issuer}:aud": "sts.amazonaws.com",
                            }
                        },
                    }
                ],
            }
        )

    return pulumi.Output.all(access.oidc_provider_arn, access.oidc_issuer_url).apply(document)


def irsa_role(
    resource_name: str,
    *,
    access: ClusterAccess,
    namespace: str,
    service_account: str,
    managed_policy_arns: Sequence[pulumi.Input[str]] = (),
    inline_policy: pulumi.Input[str] | None = None,
    opts: pulumi.ResourceOptions,
    aliases: Sequence[pulumi.Alias] | None = None,
) -> aws.iam.Role:
    """An IRSA role bound to one service account, with its policies, as children of ``opts``.

    ``aliases`` apply to the role alone: its policies are its children and follow it.
    """
    role = aws.iam.Role(
        resource_name,
        assume_role_policy=irsa_trust(access, namespace, service_account),
        description=f"IRSA role for {namespace}/{service_account}",
        opts=pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(aliases=aliases)),
    )
    for i, arn in enumerate(managed_policy_arns):
        aws.iam.RolePolicyAttachment(
            f"{resource_name}-managed-{i}",
            role=role.name,
            policy_arn=arn,
            opts=pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(parent=role)),
        )
    if inline_policy is not None:
        aws.iam.RolePolicy(
            f"{resource_name}-inline",
            role=role.id,
            policy=inline_policy,
            opts=pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(parent=role)),
        )
    return role


def irsa_service_account(
    parent: pulumi.Resource,
    name: str,
    *,
    access: ClusterAccess,
    namespace: str,
    service_account: str,
    inline_policy: pulumi.Input[str],
    account_name: str | None = None,
    automount_token: bool | None = None,
) -> tuple[aws.iam.Role, k8s.core.v1.ServiceAccount]:
    """A service account annotated with its own IRSA role; both resources children of ``parent``.

    The role is named ``<name>-irsa``, the account ``<name>-sa`` unless ``account_name`` says.
    """
    role = irsa_role(
        f"{name}-irsa",
        access=access,
        namespace=namespace,
        service_account=service_account,
        inline_policy=inline_policy,
        opts=child(parent),
    )
    account = k8s.core.v1.ServiceAccount(
        account_name or f"{name}-sa",
        metadata={
            **metadata(service_account, namespace),
            "annotations": role_annotation(role.arn),
        },
        automount_service_account_token=automount_token,
        opts=child(parent),
    )
    return role, account


def bucket_policy(
    bucket_arn: pulumi.Input[str],
    key_arn: pulumi.Input[str],
    sids: tuple[str, str],
    *,
    write: bool = False,
    extra: Sequence[Mapping[str, Any]] = (),
) -> pulumi.Output[str]:
    """Read (and with ``write``, write) a bucket and all its objects, through its SSE-KMS key.

    ``sids`` name the bucket statement and the key statement; ``extra`` statements follow them.
    """
    bucket_sid, key_sid = sids
    actions = (
        ["s3:GetObject", "s3:PutObject", "s3:ListBucket"]
        if write
        else ["s3:GetObject", "s3:ListBucket"]
    )
    key_actions: str | list[str] = (
        ["kms:Decrypt", "kms:GenerateDataKey"] if write else "kms:Decrypt"
    )
    return policy(
        [
            {
                "Sid": bucket_sid,
                "Effect": "Allow",
                "Action": actions,
                "Resource": [bucket_arn, objects_of(bucket_arn)],
            },
            {"Sid": key_sid, "Effect": "Allow", "Action": key_actions, "Resource": key_arn},
            *extra,
        ]
    )


def prefix_statements(
    bucket_arn: pulumi.Input[str], key_arn: pulumi.Input[str], prefix: str
) -> list[dict[str, Any]]:
    """List, read, write and delete under ``prefix`` only, and the bucket key's data keys: what
    a workload whose artifacts live under one prefix of a bucket may do (KFP, MLflow)."""
    return [
        {
            "Sid": "ListItsPrefix",
            "Effect": "Allow",
            "Action": "s3:ListBucket",
            "Resource": bucket_arn,
            "Condition": {"StringLike": {"s3:prefix": [f"{prefix}*"]}},
        },
        {
            "Sid": "ReadWriteItsPrefix",
            "Effect": "Allow",
            "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"],
            "Resource": objects_of(bucket_arn, prefix),
        },
        {
            "Sid": "SseKmsDataKeys",
            "Effect": "Allow",
            "Action": ["kms:Decrypt", "kms:GenerateDataKey"],
            "Resource": key_arn,
        },
    ]
