"""Small helpers shared by the AWS components: IAM documents and IRSA roles.

Policies are built as plain dicts and serialised with ``Output.json_dumps`` rather than through the
``aws.iam.getPolicyDocument`` invoke, so the synth record holds the exact JSON that AWS receives
and the policy rules can read it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import pulumi
import pulumi_aws as aws

TYPE_PREFIX = "sovereign-ml"


def service_trust(service: str) -> str:
    """Trust policy letting one AWS service principal assume a role."""
    return pulumi.Output.json_dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"Service": service},
                    "Action": "sts:AssumeRole",
                }
            ],
        }
    )  # type: ignore[return-value]


def policy(statements: Sequence[Mapping[str, Any]]) -> pulumi.Output[str]:
    """An IAM policy document from statements whose values may be Outputs."""
    return pulumi.Output.json_dumps({"Version": "2012-10-17", "Statement": list(statements)})


def irsa_trust(
    oidc_provider_arn: pulumi.Input[str],
    oidc_issuer_url: pulumi.Input[str],
    namespace: str,
    service_account: str,
) -> pulumi.Output[str]:
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

    return pulumi.Output.all(oidc_provider_arn, oidc_issuer_url).apply(document)


def irsa_role(
    resource_name: str,
    *,
    oidc_provider_arn: pulumi.Input[str],
    oidc_issuer_url: pulumi.Input[str],
    namespace: str,
    service_account: str,
    managed_policy_arns: Sequence[pulumi.Input[str]] = (),
    inline_policy: pulumi.Input[str] | None = None,
    opts: pulumi.ResourceOptions,
) -> aws.iam.Role:
    """An IRSA role bound to one service account, with its policies, as children of ``opts``."""
    role = aws.iam.Role(
        resource_name,
        assume_role_policy=irsa_trust(
            oidc_provider_arn, oidc_issuer_url, namespace, service_account
        ),
        description=f"IRSA role for {namespace}/{service_account}",
        opts=opts,
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


def managed_policy(partition: str, name: str) -> str:
    """ARN of an AWS-managed policy."""
    return f"arn:{partition}:iam::aws:policy/{name}"


def child(
    parent: pulumi.Resource, opts: pulumi.ResourceOptions | None = None, **kw: Any
) -> pulumi.ResourceOptions:
    """Options for a child: ``parent`` set, extra options merged."""
    return pulumi.ResourceOptions.merge(pulumi.ResourceOptions(parent=parent, **kw), opts)
