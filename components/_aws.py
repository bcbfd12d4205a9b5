"""Small helpers shared by the AWS components: IAM documents, the provider's region, VPC pieces.

Policies are built as plain dicts and serialised with ``Output.json_dumps`` rather than through the
``aws.iam.getPolicyDocument`` invoke, so the synth record holds the exact JSON that AWS receives
and the policy rules can read it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pulumi
import pulumi_aws as aws

TYPE_PREFIX = "sovereign-ml"
KMS_USE_ACTIONS = (
    "kms:Encrypt",
    "kms:Decrypt",
    "kms:ReEncrypt*",
    "kms:GenerateDataKey*",
    "kms:DescribeKey",
)
"""What a service needs to encrypt volumes with a key (EBS through Auto Scaling or the CSI)."""


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


def volume_key_statements(
    use_sid: str,
    grant_sid: str,
    resource: pulumi.Input[str],
    principal: Mapping[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """Statements letting EBS encrypt volumes with a key: use it, and grant it to attached volumes.

    With ``principal`` they are key-policy statements; without, identity-policy statements.
    """
    who = {"Principal": dict(principal)} if principal is not None else {}
    return [
        {
            "Sid": use_sid,
            "Effect": "Allow",
            **who,
            "Action": list(KMS_USE_ACTIONS),
            "Resource": resource,
        },
        {
            "Sid": grant_sid,
            "Effect": "Allow",
            **who,
            "Action": "kms:CreateGrant",
            "Resource": resource,
            "Condition": {"Bool": {"kms:GrantIsForAWSResource": "true"}},
        },
    ]


def objects_of(bucket_arn: pulumi.Input[str], prefix: str = "") -> pulumi.Output[str]:
    """The ARN of the objects of a bucket (under ``prefix``): ``<bucket arn>/<prefix>*``."""
    return pulumi.Output.from_input(bucket_arn).apply(lambda a: f"{a}/{prefix}*")


def managed_policy(partition: pulumi.Input[str], name: str) -> pulumi.Output[str]:
    """ARN of an AWS-managed policy."""
    return pulumi.Output.concat("arn:", partition, ":iam::aws:policy/", name)


def region_of(parent: pulumi.Resource) -> pulumi.Output[str]:
    """The region of the AWS provider ``parent`` uses: the one source of a component's region.

    Components never take the region as an argument, so it cannot disagree with the provider
    their resources are created through.
    """
    return aws.get_region_output(opts=pulumi.InvokeOutputOptions(parent=parent)).region


def partition_of(parent: pulumi.Resource) -> pulumi.Output[str]:
    """The partition (``aws``, ``aws-cn``, ...) of the AWS provider ``parent`` uses."""
    return aws.get_partition_output(opts=pulumi.InvokeOutputOptions(parent=parent)).partition


def child(
    parent: pulumi.Resource, opts: pulumi.ResourceOptions | None = None, **kw: Any
) -> pulumi.ResourceOptions:
    """Options for a child: ``parent`` set, extra options merged."""
    return pulumi.ResourceOptions.merge(pulumi.ResourceOptions(parent=parent, **kw), opts)


def vpc_rule(description: str, from_port: int, to_port: int, vpc_cidr: str) -> dict[str, Any]:
    """A TCP security-group rule whose only peer is the VPC."""
    return {
        "description": description,
        "protocol": "tcp",
        "from_port": from_port,
        "to_port": to_port,
        "cidr_blocks": [vpc_cidr],
    }


def vpc_only_security_group(
    resource_name: str,
    *,
    description: str,
    vpc_id: pulumi.Input[str],
    vpc_cidr: str,
    port: int,
    ingress_description: str,
    egress: tuple[str, int, int] | None = None,
    tags: Mapping[str, str] | None = None,
    opts: pulumi.ResourceOptions,
) -> aws.ec2.SecurityGroup:
    """A security group admitting TCP ``port`` from inside the VPC and nothing else.

    ``egress`` is ``(description, from_port, to_port)`` of the one egress rule, also limited to
    the VPC; without it the group declares no egress rule of its own.
    """
    return aws.ec2.SecurityGroup(
        resource_name,
        description=description,
        vpc_id=vpc_id,
        ingress=[vpc_rule(ingress_description, port, port, vpc_cidr)],
        egress=[vpc_rule(*egress, vpc_cidr)] if egress else None,
        tags=dict(tags) if tags else None,
        opts=opts,
    )


def private_store_network(
    resource_name: str,
    *,
    store: str,
    protocol: str,
    subnet_group: type[aws.rds.SubnetGroup] | type[aws.elasticache.SubnetGroup],
    group_name: str,
    vpc_id: pulumi.Input[str],
    vpc_cidr: str,
    subnet_ids: Sequence[pulumi.Input[str]],
    port: int,
    ingress_description: str,
    opts: pulumi.ResourceOptions,
) -> tuple[aws.ec2.SecurityGroup, Any]:
    """Where a managed data store lives: a VPC-only security group and a subnet group.

    ``<name>-sg`` admits ``protocol`` on ``port`` from inside the VPC only; ``<name>-subnets``
    (of the store's own ``subnet_group`` type, RDS or ElastiCache) spans the private subnets.
    """
    sg = vpc_only_security_group(
        f"{resource_name}-sg",
        description=f"{store}: {protocol} from inside the VPC only",
        vpc_id=vpc_id,
        vpc_cidr=vpc_cidr,
        port=port,
        ingress_description=ingress_description,
        opts=opts,
    )
    subnets = subnet_group(
        f"{resource_name}-subnets",
        name=group_name,
        subnet_ids=list(subnet_ids),
        description=f"Private subnets of the {store}",
        opts=opts,
    )
    return sg, subnets


def eks_addons(
    parent: pulumi.Resource,
    name: str,
    cluster_name: pulumi.Input[str],
    kubernetes_version: pulumi.Input[str],
    roles: Mapping[str, pulumi.Input[str] | None],
) -> None:
    """EKS managed add-ons ``<name>-<addon>``, each at the newest release for the cluster's
    version, with its IRSA role from ``roles`` (``None``: the node's permissions suffice).

    On create they take over whatever the cluster runs already; on update they keep changes
    made on the cluster (``PRESERVE``).
    """
    for addon, role_arn in roles.items():
        aws.eks.Addon(
            f"{name}-{addon}",
            cluster_name=cluster_name,
            addon_name=addon,
            addon_version=aws.eks.get_addon_version_output(
                addon_name=addon,
                kubernetes_version=kubernetes_version,
                most_recent=True,
                opts=pulumi.InvokeOutputOptions(parent=parent),
            ).version,
            service_account_role_arn=role_arn,
            resolve_conflicts_on_create="OVERWRITE",
            resolve_conflicts_on_update="PRESERVE",
            opts=child(parent),
        )


def service_role(
    resource_name: str,
    *,
    service: str,
    description: str,
    managed: Mapping[str, pulumi.Input[str]] | None = None,
    inline: Mapping[str, pulumi.Input[str]] | None = None,
    opts: pulumi.ResourceOptions,
) -> tuple[aws.iam.Role, list[pulumi.Resource]]:
    """A role one AWS service assumes, with its policies; returns the role and the policies.

    ``managed`` maps resource names to managed policy ARNs to attach, ``inline`` resource names
    to inline policy documents. All are created with ``opts`` (children of the same parent).
    """
    role = aws.iam.Role(
        resource_name,
        assume_role_policy=service_trust(service),
        description=description,
        opts=opts,
    )
    grants: list[pulumi.Resource] = [
        aws.iam.RolePolicyAttachment(n, role=role.name, policy_arn=arn, opts=opts)
        for n, arn in (managed or {}).items()
    ]
    grants += [
        aws.iam.RolePolicy(n, role=role.id, policy=document, opts=opts)
        for n, document in (inline or {}).items()
    ]
    return role, grants
