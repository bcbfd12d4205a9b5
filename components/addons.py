"""EKS managed add-ons that need running nodes: CoreDNS and the EBS CSI driver."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components._aws import TYPE_PREFIX, child, irsa_role, managed_policy, policy


@dataclass
class ClusterAddonsArgs:
    """Inputs of :class:`ClusterAddons`."""

    cluster_name: pulumi.Input[str]
    """Cluster to install into."""
    kubernetes_version: str
    """Version the add-on releases must support."""
    partition: str
    """AWS partition, for managed policy ARNs."""
    oidc_provider_arn: pulumi.Input[str]
    """IRSA OIDC provider of the cluster."""
    oidc_issuer_url: pulumi.Input[str]
    """Issuer URL of that provider."""
    volume_key_arn: pulumi.Input[str]
    """KMS key the EBS CSI driver encrypts volumes with."""


class ClusterAddons(pulumi.ComponentResource):
    """CoreDNS and the EBS CSI driver (with its own IRSA role and use of the volume key).

    Separate from :class:`~components.cluster.Cluster` because these add-ons only become ACTIVE
    once nodes run their pods: the platform creates this component after the node pools.
    """

    ebs_csi_role_arn: pulumi.Output[str]

    def __init__(
        self, name: str, args: ClusterAddonsArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        if not args.kubernetes_version:
            raise ValueError("ClusterAddonsArgs.kubernetes_version: empty; allowed e.g. '1.33'")
        super().__init__(f"{TYPE_PREFIX}:addons:ClusterAddons", name, None, opts)

        ebs_role = irsa_role(
            f"{name}-ebs-csi-irsa",
            oidc_provider_arn=args.oidc_provider_arn,
            oidc_issuer_url=args.oidc_issuer_url,
            namespace="kube-system",
            service_account="ebs-csi-controller-sa",
            managed_policy_arns=[
                managed_policy(args.partition, "service-role/AmazonEBSCSIDriverPolicy")
            ],
            inline_policy=policy(
                [
                    {
                        "Sid": "EncryptVolumesWithTheVolumeKey",
                        "Effect": "Allow",
                        "Action": [
                            "kms:Encrypt",
                            "kms:Decrypt",
                            "kms:ReEncrypt*",
                            "kms:GenerateDataKey*",
                            "kms:DescribeKey",
                        ],
                        "Resource": args.volume_key_arn,
                    },
                    {
                        "Sid": "GrantsForAttachedVolumesOnly",
                        "Effect": "Allow",
                        "Action": "kms:CreateGrant",
                        "Resource": args.volume_key_arn,
                        "Condition": {"Bool": {"kms:GrantIsForAWSResource": "true"}},
                    },
                ]
            ),
            opts=child(self),
        )
        for addon, role_arn in (("coredns", None), ("aws-ebs-csi-driver", ebs_role.arn)):
            aws.eks.Addon(
                f"{name}-{addon}",
                cluster_name=args.cluster_name,
                addon_name=addon,
                addon_version=aws.eks.get_addon_version_output(
                    addon_name=addon,
                    kubernetes_version=args.kubernetes_version,
                    most_recent=True,
                    opts=pulumi.InvokeOutputOptions(parent=self),
                ).version,
                service_account_role_arn=role_arn,
                resolve_conflicts_on_create="OVERWRITE",
                resolve_conflicts_on_update="PRESERVE",
                opts=child(self),
            )

        self.ebs_csi_role_arn = ebs_role.arn
        self.register_outputs({"ebs_csi_role_arn": self.ebs_csi_role_arn})
