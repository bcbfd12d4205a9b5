"""EKS managed node groups for CPU and GPU work, on encrypted volumes with IMDSv2 only."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws

from components._aws import TYPE_PREFIX, child, managed_policy, partition_of, service_role
from components._k8s import POOL_LABEL

GPU_TAINT = ("nvidia.com/gpu", "true", "NO_SCHEDULE")
AMI_TYPES = {False: "AL2023_x86_64_STANDARD", True: "AL2023_x86_64_NVIDIA"}
"""EKS-optimised Amazon Linux 2023 AMIs; the NVIDIA variant ships the driver and toolkit."""


@dataclass(frozen=True)
class NodePoolSpec:
    """One node group."""

    name: str
    """Pool name; also the node-group name suffix and the ``sovereign-ml/pool`` label."""
    gpu: bool
    """NVIDIA GPU nodes (NVIDIA AMI, GPU taint required)."""
    instance_types: Sequence[str]
    """EC2 instance types, in order of preference."""
    capacity_type: str
    """``ON_DEMAND`` or ``SPOT``."""
    min_size: int
    """Minimum node count."""
    desired_size: int
    """Initial node count; afterwards the autoscaler owns it."""
    max_size: int
    """Maximum node count."""
    disk_gib: int
    """gp3 root volume size."""
    labels: Mapping[str, str] = field(default_factory=dict)
    """Kubernetes node labels."""
    taints: Sequence[tuple[str, str, str]] = ()
    """Taints as (key, value, EKS effect such as ``NO_SCHEDULE``)."""


@dataclass
class NodePoolsArgs:
    """Inputs of :class:`NodePools`."""

    cluster_name: pulumi.Input[str]
    """Cluster the groups join."""
    kubernetes_version: str
    """Kubelet version; matches the control plane."""
    subnet_ids: Sequence[pulumi.Input[str]]
    """Private subnets the nodes run in."""
    volume_key_arn: pulumi.Input[str]
    """KMS key encrypting every root volume."""
    pools: Sequence[NodePoolSpec]
    """The pools to create."""
    name_prefix: str = "sovml"
    """Prefix of the node-group and launch-template names."""


def k8s_effect(eks_effect: str) -> str:
    """``NO_SCHEDULE`` as Kubernetes spells it: ``NoSchedule``."""
    return "".join(word.capitalize() for word in eks_effect.split("_"))


class NodePools(pulumi.ComponentResource):
    """A shared least-privilege node role and one managed node group per pool.

    Each pool gets a launch template with an encrypted gp3 root volume (customer key), IMDSv2
    required with a hop limit of 1 (pods reach AWS only through IRSA, never through the node's
    role) and tagged instances and volumes. GPU pools use the NVIDIA AMI, carry the
    ``nvidia.com/gpu=true:NoSchedule`` taint and GPU labels. The node role gets only the worker
    and ECR read-only policies (ARNs in the AWS provider's partition); CNI permissions live on
    the vpc-cni add-on's IRSA role.
    """

    node_role_arn: pulumi.Output[str]
    node_group_names: pulumi.Output[dict[str, str]]

    def __init__(
        self, name: str, args: NodePoolsArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        names = [p.name for p in args.pools]
        if len(set(names)) != len(names):
            raise ValueError(f"NodePoolsArgs.pools: duplicate names in {names}")
        for pool in args.pools:
            where = f"NodePoolsArgs.pools[{pool.name}]"
            if not 0 <= pool.min_size <= pool.desired_size <= pool.max_size or pool.max_size < 1:
                raise ValueError(
                    f"{where}: sizes {pool.min_size}/{pool.desired_size}/{pool.max_size}; "
                    "allowed 0 <= min <= desired <= max, max >= 1"
                )
            if pool.capacity_type not in ("ON_DEMAND", "SPOT"):
                raise ValueError(
                    f"{where}.capacity_type: {pool.capacity_type}; allowed ON_DEMAND, SPOT"
                )
            if pool.gpu and GPU_TAINT not in [tuple(t) for t in pool.taints]:
                raise ValueError(f"{where}.taints: GPU pools need the taint {GPU_TAINT}")
            if not pool.instance_types:
                raise ValueError(f"{where}.instance_types: empty; allowed one or more types")
        super().__init__(f"{TYPE_PREFIX}:node_pools:NodePools", name, None, opts)

        partition = partition_of(self)
        role, attachments = service_role(
            f"{name}-node-role",
            service="ec2.amazonaws.com",
            description="EKS worker nodes: join the cluster and pull images, nothing else",
            managed={
                f"{name}-node-role-{policy_name}": managed_policy(partition, policy_name)
                for policy_name in (
                    "AmazonEKSWorkerNodePolicy",
                    "AmazonEC2ContainerRegistryReadOnly",
                )
            },
            opts=child(self),
        )

        groups = {
            pool.name: self._node_group(name, args, pool, role, attachments).node_group_name
            for pool in args.pools
        }

        self.node_role_arn = role.arn
        self.node_group_names = pulumi.Output.all(**groups)
        self.register_outputs(
            {"node_role_arn": self.node_role_arn, "node_group_names": self.node_group_names}
        )

    def _node_group(
        self,
        name: str,
        args: NodePoolsArgs,
        pool: NodePoolSpec,
        role: aws.iam.Role,
        attachments: list[pulumi.Resource],
    ) -> aws.eks.NodeGroup:
        """One pool: its launch template and its managed node group."""
        group_name = f"{args.name_prefix}-{pool.name}"
        template = aws.ec2.LaunchTemplate(
            f"{name}-{pool.name}-lt",
            name=f"{group_name}-nodes",
            description=f"Encrypted gp3 root volume and IMDSv2 for the {pool.name} pool",
            update_default_version=True,
            block_device_mappings=[
                {
                    "device_name": "/dev/xvda",
                    "ebs": {
                        "volume_size": pool.disk_gib,
                        "volume_type": "gp3",
                        "encrypted": "true",
                        "kms_key_id": args.volume_key_arn,
                        "delete_on_termination": "true",
                    },
                }
            ],
            metadata_options={
                "http_endpoint": "enabled",
                "http_tokens": "required",
                "http_put_response_hop_limit": 1,
                "instance_metadata_tags": "disabled",
            },
            monitoring={"enabled": True},
            tag_specifications=[
                {"resource_type": kind, "tags": {"Name": group_name, POOL_LABEL: pool.name}}
                for kind in ("instance", "volume", "network-interface")
            ],
            opts=child(self),
        )
        labels = {POOL_LABEL: pool.name, **pool.labels}
        return aws.eks.NodeGroup(
            f"{name}-{pool.name}",
            cluster_name=args.cluster_name,
            node_group_name=group_name,
            version=args.kubernetes_version,
            node_role_arn=role.arn,
            subnet_ids=list(args.subnet_ids),
            ami_type=AMI_TYPES[pool.gpu],
            capacity_type=pool.capacity_type,
            instance_types=list(pool.instance_types),
            scaling_config={
                "min_size": pool.min_size,
                "desired_size": pool.desired_size,
                "max_size": pool.max_size,
            },
            update_config={"max_unavailable_percentage": 33},
            launch_template={"id": template.id, "version": template.latest_version.apply(str)},
            labels=labels,
            taints=[{"key": k, "value": v, "effect": e} for k, v, e in pool.taints],
            node_repair_config={"enabled": True},
            tags={POOL_LABEL: pool.name, **autoscaler_node_template_tags(pool, labels)},
            # The autoscaler moves desired_size; a later `pulumi up` must not undo that.
            opts=child(self, depends_on=attachments, ignore_changes=["scalingConfig.desiredSize"]),
        )


def autoscaler_node_template_tags(pool: NodePoolSpec, labels: dict[str, str]) -> dict[str, str]:
    """Tags that let cluster-autoscaler scale a pool up from zero.

    It cannot read labels, taints or GPU counts off nodes that do not exist yet.
    """
    template = "k8s.io/cluster-autoscaler/node-template"
    return {
        **{f"{template}/label/{k}": v for k, v in labels.items()},
        **{f"{template}/taint/{k}": f"{v}:{k8s_effect(e)}" for k, v, e in pool.taints},
        **({f"{template}/resources/nvidia.com/gpu": "1"} if pool.gpu else {}),
    }
