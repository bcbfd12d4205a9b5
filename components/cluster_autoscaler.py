"""cluster-autoscaler: grows and shrinks the managed node groups, through its own IRSA role."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi

from components._aws import TYPE_PREFIX, child, partition_of, region_of
from components._irsa import ClusterAccess, irsa_role
from components._k8s import (
    chart_container_security,
    helm_release,
    pool_selector,
    role_annotation,
    runtime_default,
)
from policies import inventory

AUTOSCALER_CHART = inventory.chart("cluster-autoscaler")
AUTOSCALER_IMAGE_TAG = {
    minor: inventory.entry(f"cluster-autoscaler-{minor}", "image").version
    for minor in ("1.32", "1.33", "1.34")
}
"""The autoscaler release matching each Kubernetes minor version the platform allows."""
SERVICE_ACCOUNT = "cluster-autoscaler"


@dataclass
class ClusterAutoscalerArgs:
    """Inputs of :class:`ClusterAutoscaler`."""

    cluster_access: ClusterAccess
    """The cluster whose node groups it discovers (by their ``k8s.io/cluster-autoscaler`` tags),
    and its IRSA identity provider."""
    kubernetes_version: str
    """Cluster minor version; picks the matching cluster-autoscaler image."""
    account_id: pulumi.Input[str]
    """Account id, to scope the autoscaler's IAM policy to this account's groups."""
    sources: inventory.Sources = inventory.UPSTREAM
    """Where images and charts are pulled from (the zone's mirror in production)."""


class ClusterAutoscaler(pulumi.ComponentResource):
    """cluster-autoscaler (pinned chart) in ``kube-system`` on the system pool, with IRSA.

    Its IAM policy reads scaling state and scales only this cluster's groups, in the AWS
    provider's region and partition. Scale from zero works because the node groups carry
    node-template tags (:mod:`components.node_pools`).

    Its resources were children of :class:`~components.k8s_baseline.K8sBaseline`;
    ``moved_from`` (that baseline) gives each an alias to its old parent so deployed stacks keep
    them (the role's inline policy follows its role).
    """

    def __init__(
        self,
        name: str,
        args: ClusterAutoscalerArgs,
        opts: pulumi.ResourceOptions | None = None,
        *,
        moved_from: pulumi.Resource | None = None,
    ) -> None:
        if args.kubernetes_version not in AUTOSCALER_IMAGE_TAG:
            raise ValueError(
                f"ClusterAutoscalerArgs.kubernetes_version: {args.kubernetes_version}; allowed "
                f"{', '.join(AUTOSCALER_IMAGE_TAG)}"
            )
        super().__init__(f"{TYPE_PREFIX}:cluster_autoscaler:ClusterAutoscaler", name, None, opts)
        aliases = [pulumi.Alias(parent=moved_from)] if moved_from is not None else None
        region = region_of(self)

        role = irsa_role(
            f"{name}-autoscaler-irsa",
            access=args.cluster_access,
            namespace="kube-system",
            service_account=SERVICE_ACCOUNT,
            inline_policy=autoscaler_policy(
                args.cluster_access.cluster_name, args.account_id, region, partition_of(self)
            ),
            opts=child(self),
            aliases=aliases,
        )
        helm_release(
            f"{name}-cluster-autoscaler",
            args.sources.chart("cluster-autoscaler"),
            namespace="kube-system",
            # The image of this Kubernetes release only (the inventory lists one per release).
            values=args.sources.chart_images(
                "cluster-autoscaler",
                only=(f"cluster-autoscaler-{args.kubernetes_version}",),
                values={
                    "cloudProvider": "aws",
                    "awsRegion": region,
                    "autoDiscovery": {"clusterName": args.cluster_access.cluster_name},
                    "rbac": {
                        "serviceAccount": {
                            "name": SERVICE_ACCOUNT,
                            "annotations": role_annotation(role.arn),
                        }
                    },
                    "extraArgs": {
                        "balance-similar-node-groups": True,
                        "skip-nodes-with-system-pods": False,
                        "expander": "least-waste",
                        "scale-down-unneeded-time": "10m",
                    },
                    "nodeSelector": pool_selector("system"),
                    "securityContext": {
                        "runAsNonRoot": True,
                        "runAsUser": 65534,
                        "seccompProfile": runtime_default(),
                    },
                    "containerSecurityContext": chart_container_security(),
                    "resources": {
                        "requests": {"cpu": "100m", "memory": "300Mi"},
                        "limits": {"cpu": "500m", "memory": "300Mi"},
                    },
                },
            ),
            opts=child(self, aliases=aliases),
        )
        self.register_outputs({})


def autoscaler_policy(
    cluster_name: pulumi.Input[str],
    account_id: pulumi.Input[str],
    region: pulumi.Input[str],
    partition: pulumi.Input[str],
) -> pulumi.Output[str]:
    """cluster-autoscaler's IAM policy: read scaling state, scale only this cluster's groups."""

    def document(args: list[str]) -> str:
        cluster, account, region, partition = args
        asg = (
            f"arn:{partition}:autoscaling:{region}:{account}:autoScalingGroup:*:"
            "autoScalingGroupName/*"
        )
        nodegroups = f"arn:{partition}:eks:{region}:{account}:nodegroup/{cluster}/*/*"
        return json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Sid": "ReadScalingState",
                        "Effect": "Allow",
                        "Action": [
                            "autoscaling:DescribeAutoScalingGroups",
                            "autoscaling:DescribeAutoScalingInstances",
                            "autoscaling:DescribeLaunchConfigurations",
                            "autoscaling:DescribeScalingActivities",
                            "autoscaling:DescribeTags",
                            "ec2:DescribeImages",
                            "ec2:DescribeInstanceTypes",
                            "ec2:DescribeLaunchTemplateVersions",
                            "ec2:GetInstanceTypesFromInstanceRequirements",
                        ],
                        "Resource": "*",
                    },
                    {
                        "Sid": "ReadThisClustersNodeGroups",
                        "Effect": "Allow",
                        "Action": "eks:DescribeNodegroup",
                        "Resource": nodegroups,
                    },
                    {
                        "Sid": "ScaleOnlyThisClustersGroups",
                        "Effect": "Allow",
                        "Action": [
                            "autoscaling:SetDesiredCapacity",
                            "autoscaling:TerminateInstanceInAutoScalingGroup",
                        ],
                        "Resource": asg,
                        "Condition": {
                            "StringEquals": {
                                f"aws:ResourceTag/k8s.io/cluster-autoscaler/{cluster}": "owned"
                            }
                        },
                    },
                ],
            }
        )

    return pulumi.Output.all(cluster_name, account_id, region, partition).apply(document)
