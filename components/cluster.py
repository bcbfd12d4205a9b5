"""An EKS control plane built for a private, encrypted, audited platform, and its k8s provider."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from components._aws import (
    TYPE_PREFIX,
    child,
    eks_addons,
    managed_policy,
    partition_of,
    policy,
    region_of,
    service_role,
    vpc_only_security_group,
)
from components._irsa import ClusterAccess, irsa_role

LOG_TYPES = ("api", "audit", "authenticator", "controllerManager", "scheduler")
"""All five control-plane log types; every one is shipped."""


@dataclass
class ClusterArgs:
    """Inputs of :class:`Cluster`."""

    cluster_name: str
    """Physical EKS cluster name."""
    kubernetes_version: str
    """Pinned Kubernetes minor version (``1.33``)."""
    vpc_id: pulumi.Input[str]
    """VPC of the cluster."""
    vpc_cidr: str
    """VPC CIDR: the only source allowed to reach the private API endpoint."""
    subnet_ids: Sequence[pulumi.Input[str]]
    """Private subnets for the control-plane ENIs."""
    secrets_key_arn: pulumi.Input[str]
    """KMS key for envelope encryption of Kubernetes Secrets."""
    logs_key_arn: pulumi.Input[str]
    """KMS key of the control-plane log group."""
    log_retention_days: int
    """Control-plane log retention in days."""
    endpoint_public_access: bool = False
    """Expose the API endpoint publicly (dev only)."""
    public_access_cidrs: Sequence[str] = field(default_factory=list)
    """CIDRs allowed to reach a public endpoint; required when it is public."""
    deletion_protection: bool = True
    """Refuse cluster deletion through the EKS API (production)."""


class Cluster(pulumi.ComponentResource):
    """EKS with a pinned version, private endpoint, KMS secrets encryption and full audit logs.

    Also creates the IAM OIDC provider for IRSA, the vpc-cni and kube-proxy add-ons (which must
    exist before nodes join; vpc-cni runs with its own IRSA role instead of node permissions) and
    a Kubernetes provider built from the cluster's endpoint and CA, exposed as ``k8s_provider``
    the way pulumi-eks does. ``access`` groups what IRSA needs for the other components. The
    region and partition are the AWS provider's.
    """

    cluster_name: pulumi.Output[str]
    endpoint: pulumi.Output[str]
    oidc_provider_arn: pulumi.Output[str]
    oidc_issuer_url: pulumi.Output[str]
    access: ClusterAccess
    security_group_id: pulumi.Output[str]
    kubeconfig: pulumi.Output[str]

    def __init__(
        self, name: str, args: ClusterArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        if args.endpoint_public_access and not args.public_access_cidrs:
            raise ValueError(
                "ClusterArgs.public_access_cidrs: empty; allowed: at least one CIDR when "
                "endpoint_public_access is true"
            )
        if "0.0.0.0/0" in args.public_access_cidrs:
            raise ValueError("ClusterArgs.public_access_cidrs: 0.0.0.0/0 is never allowed")
        if not args.subnet_ids:
            raise ValueError("ClusterArgs.subnet_ids: empty; allowed: two or more private subnets")
        super().__init__(f"{TYPE_PREFIX}:cluster:Cluster", name, None, opts)
        p = partition_of(self)

        # EKS creates this group itself, unencrypted and kept forever, unless it already exists.
        log_group = aws.cloudwatch.LogGroup(
            f"{name}-control-plane-logs",
            name=f"/aws/eks/{args.cluster_name}/cluster",
            retention_in_days=args.log_retention_days,
            kms_key_id=args.logs_key_arn,
            opts=child(self),
        )
        role, grants = self._control_plane_role(name, args, p)
        cluster = self._control_plane(name, args, role, [log_group, *grants])
        issuer = cluster.identities.apply(lambda ids: ids[0].oidcs[0].issuer)  # type: ignore[index]
        oidc = aws.iam.OpenIdConnectProvider(
            f"{name}-oidc",
            url=issuer,
            client_id_lists=["sts.amazonaws.com"],
            opts=child(self),
        )
        access = ClusterAccess(
            cluster_name=cluster.name, oidc_provider_arn=oidc.arn, oidc_issuer_url=issuer
        )
        cni_role = irsa_role(
            f"{name}-vpc-cni-irsa",
            access=access,
            namespace="kube-system",
            service_account="aws-node",
            managed_policy_arns=[managed_policy(p, "AmazonEKS_CNI_Policy")],
            opts=child(self),
        )
        addons = {"vpc-cni": cni_role.arn, "kube-proxy": None}
        eks_addons(self, name, cluster.name, cluster.version, addons)

        self.cluster_name = cluster.name
        self.endpoint = cluster.endpoint
        self.oidc_provider_arn = oidc.arn
        self.oidc_issuer_url = issuer
        self.access = access
        self.security_group_id = cluster.vpc_config.cluster_security_group_id  # type: ignore[union-attr]
        self.kubeconfig = pulumi.Output.secret(
            pulumi.Output.all(
                cluster.name, cluster.endpoint, cluster.certificate_authority, region_of(self)
            ).apply(lambda a: kubeconfig(a[0], a[1], a[2]["data"], a[3]))
        )
        self.k8s_provider = k8s.Provider(
            f"{name}-k8s",
            kubeconfig=self.kubeconfig,
            enable_server_side_apply=True,
            opts=child(self),
        )
        self.register_outputs(
            {
                "cluster_name": self.cluster_name,
                "endpoint": self.endpoint,
                "oidc_provider_arn": self.oidc_provider_arn,
                "kubeconfig": self.kubeconfig,
            }
        )

    def _control_plane_role(
        self, name: str, args: ClusterArgs, partition: pulumi.Output[str]
    ) -> tuple[aws.iam.Role, list[pulumi.Resource]]:
        """The role EKS runs the control plane as, allowed to use the secrets key."""
        return service_role(
            f"{name}-role",
            service="eks.amazonaws.com",
            description=f"EKS control plane of {args.cluster_name}",
            managed={
                f"{name}-role-cluster-policy": managed_policy(partition, "AmazonEKSClusterPolicy")
            },
            inline={
                f"{name}-role-secrets-key": policy(
                    [
                        {
                            "Sid": "EnvelopeEncryptionOfSecrets",
                            "Effect": "Allow",
                            "Action": [
                                "kms:Encrypt",
                                "kms:Decrypt",
                                "kms:ListGrants",
                                "kms:DescribeKey",
                            ],
                            "Resource": args.secrets_key_arn,
                        }
                    ]
                )
            },
            opts=child(self),
        )

    def _control_plane(
        self,
        name: str,
        args: ClusterArgs,
        role: aws.iam.Role,
        first: list[pulumi.Resource],
    ) -> aws.eks.Cluster:
        """The EKS cluster behind its VPC-only API security group; ``first`` exist before it."""
        sg = vpc_only_security_group(
            f"{name}-api-sg",
            description=f"Private API endpoint of {args.cluster_name}: HTTPS from the VPC only",
            vpc_id=args.vpc_id,
            vpc_cidr=args.vpc_cidr,
            port=443,
            ingress_description="Kubernetes API from inside the VPC",
            egress=("Control plane to kubelets and webhooks inside the VPC", 0, 65535),
            tags={"Name": f"{args.cluster_name}-api"},
            opts=child(self),
        )
        return aws.eks.Cluster(
            f"{name}-eks",
            name=args.cluster_name,
            version=args.kubernetes_version,
            role_arn=role.arn,
            vpc_config={
                "subnet_ids": list(args.subnet_ids),
                "security_group_ids": [sg.id],
                "endpoint_private_access": True,
                "endpoint_public_access": args.endpoint_public_access,
                "public_access_cidrs": (
                    list(args.public_access_cidrs) if args.endpoint_public_access else None
                ),
            },
            encryption_config={
                "provider": {"key_arn": args.secrets_key_arn},
                "resources": ["secrets"],
            },
            enabled_cluster_log_types=list(LOG_TYPES),
            access_config={
                "authentication_mode": "API",
                # The identity running `pulumi up` administers the cluster it creates.
                "bootstrap_cluster_creator_admin_permissions": True,
            },
            # Self-managed copies of the add-ons would fight the managed ones below.
            bootstrap_self_managed_addons=False,
            upgrade_policy={"support_type": "STANDARD"},
            deletion_protection=args.deletion_protection,
            opts=child(self, depends_on=first),
        )


def kubeconfig(name: str, endpoint: str, ca_data: str, region: str) -> str:
    """A kubeconfig that authenticates with ``aws eks get-token`` (no static credentials)."""
    return json.dumps(
        {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": name,
                    "cluster": {"server": endpoint, "certificate-authority-data": ca_data},
                }
            ],
            "contexts": [{"name": name, "context": {"cluster": name, "user": name}}],
            "current-context": name,
            "users": [
                {
                    "name": name,
                    "user": {
                        "exec": {
                            "apiVersion": "client.authentication.k8s.io/v1beta1",
                            "command": "aws",
                            "args": [
                                "eks",
                                "get-token",
                                "--cluster-name",
                                name,
                                "--region",
                                region,
                            ],
                        }
                    },
                }
            ],
        }
    )
