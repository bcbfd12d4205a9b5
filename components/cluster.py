"""An EKS control plane built for a private, encrypted, audited platform, and its k8s provider."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from components._aws import TYPE_PREFIX, child, irsa_role, managed_policy, policy, service_trust

LOG_TYPES = ("api", "audit", "authenticator", "controllerManager", "scheduler")
"""All five control-plane log types; every one is shipped."""


@dataclass
class ClusterArgs:
    """Inputs of :class:`Cluster`."""

    cluster_name: str
    """Physical EKS cluster name."""
    kubernetes_version: str
    """Pinned Kubernetes minor version (``1.33``)."""
    region: str
    """Region, for the kubeconfig's token command."""
    partition: str
    """AWS partition, for managed policy ARNs."""
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
    the way pulumi-eks does.
    """

    cluster_name: pulumi.Output[str]
    endpoint: pulumi.Output[str]
    oidc_provider_arn: pulumi.Output[str]
    oidc_issuer_url: pulumi.Output[str]
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
        p = args.partition

        # EKS creates this group itself, unencrypted and kept forever, unless it already exists.
        log_group = aws.cloudwatch.LogGroup(
            f"{name}-control-plane-logs",
            name=f"/aws/eks/{args.cluster_name}/cluster",
            retention_in_days=args.log_retention_days,
            kms_key_id=args.logs_key_arn,
            opts=child(self),
        )
        role = aws.iam.Role(
            f"{name}-role",
            assume_role_policy=service_trust("eks.amazonaws.com"),
            description=f"EKS control plane of {args.cluster_name}",
            opts=child(self),
        )
        cluster_policy = aws.iam.RolePolicyAttachment(
            f"{name}-role-cluster-policy",
            role=role.name,
            policy_arn=managed_policy(p, "AmazonEKSClusterPolicy"),
            opts=child(self),
        )
        key_use = aws.iam.RolePolicy(
            f"{name}-role-secrets-key",
            role=role.id,
            policy=policy(
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
            ),
            opts=child(self),
        )
        sg = aws.ec2.SecurityGroup(
            f"{name}-api-sg",
            description=f"Private API endpoint of {args.cluster_name}: HTTPS from the VPC only",
            vpc_id=args.vpc_id,
            ingress=[
                {
                    "description": "Kubernetes API from inside the VPC",
                    "protocol": "tcp",
                    "from_port": 443,
                    "to_port": 443,
                    "cidr_blocks": [args.vpc_cidr],
                }
            ],
            egress=[
                {
                    "description": "Control plane to kubelets and webhooks inside the VPC",
                    "protocol": "tcp",
                    "from_port": 0,
                    "to_port": 65535,
                    "cidr_blocks": [args.vpc_cidr],
                }
            ],
            tags={"Name": f"{args.cluster_name}-api"},
            opts=child(self),
        )
        cluster = aws.eks.Cluster(
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
            opts=child(self, depends_on=[log_group, cluster_policy, key_use]),
        )
        issuer = cluster.identities.apply(lambda ids: ids[0].oidcs[0].issuer)  # type: ignore[index]
        oidc = aws.iam.OpenIdConnectProvider(
            f"{name}-oidc",
            url=issuer,
            client_id_lists=["sts.amazonaws.com"],
            opts=child(self),
        )
        cni_role = irsa_role(
            f"{name}-vpc-cni-irsa",
            oidc_provider_arn=oidc.arn,
            oidc_issuer_url=issuer,
            namespace="kube-system",
            service_account="aws-node",
            managed_policy_arns=[managed_policy(p, "AmazonEKS_CNI_Policy")],
            opts=child(self),
        )
        for addon, role_arn in (("vpc-cni", cni_role.arn), ("kube-proxy", None)):
            aws.eks.Addon(
                f"{name}-{addon}",
                cluster_name=cluster.name,
                addon_name=addon,
                addon_version=aws.eks.get_addon_version_output(
                    addon_name=addon,
                    kubernetes_version=cluster.version,
                    most_recent=True,
                    opts=pulumi.InvokeOutputOptions(parent=self),
                ).version,
                service_account_role_arn=role_arn,
                resolve_conflicts_on_create="OVERWRITE",
                resolve_conflicts_on_update="PRESERVE",
                opts=child(self),
            )

        self.cluster_name = cluster.name
        self.endpoint = cluster.endpoint
        self.oidc_provider_arn = oidc.arn
        self.oidc_issuer_url = issuer
        self.security_group_id = cluster.vpc_config.cluster_security_group_id  # type: ignore[union-attr]
        self.kubeconfig = pulumi.Output.secret(
            pulumi.Output.all(cluster.name, cluster.endpoint, cluster.certificate_authority).apply(
                lambda a: kubeconfig(a[0], a[1], a[2]["data"], args.region)
            )
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
