"""EKS managed add-ons that need running nodes: CoreDNS and the EBS CSI driver."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

from components._aws import (
    TYPE_PREFIX,
    child,
    eks_addons,
    managed_policy,
    partition_of,
    policy,
    volume_key_statements,
)
from components._irsa import ClusterAccess, irsa_role


@dataclass
class ClusterAddonsArgs:
    """Inputs of :class:`ClusterAddons`."""

    cluster_access: ClusterAccess
    """The cluster to install into, and its IRSA identity provider."""
    kubernetes_version: str
    """Version the add-on releases must support."""
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
            access=args.cluster_access,
            namespace="kube-system",
            service_account="ebs-csi-controller-sa",
            managed_policy_arns=[
                managed_policy(partition_of(self), "service-role/AmazonEBSCSIDriverPolicy")
            ],
            inline_policy=policy(
                volume_key_statements(
                    "EncryptVolumesWithTheVolumeKey",
                    "GrantsForAttachedVolumesOnly",
                    args.volume_key_arn,
                )
            ),
            opts=child(self),
        )
        addons = {"coredns": None, "aws-ebs-csi-driver": ebs_role.arn}
        eks_addons(self, name, args.cluster_access.cluster_name, args.kubernetes_version, addons)

        self.ebs_csi_role_arn = ebs_role.arn
        self.register_outputs({"ebs_csi_role_arn": self.ebs_csi_role_arn})
