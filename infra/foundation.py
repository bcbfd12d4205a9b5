"""The stack's foundation: its one AWS provider, the regional AWS base (keys, network, buckets),
the audit trail, and the EKS cluster with its node pools and add-ons.

Split from :mod:`infra.platform` (whose :func:`~infra.platform.build` calls these first) to keep
both short; everything later builds on :class:`AwsBase` and :class:`KubernetesCluster`.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components.addons import ClusterAddons, ClusterAddonsArgs
from components.audit_trail import DETECTION_SERVICES, AuditTrail, AuditTrailArgs
from components.cluster import Cluster, ClusterArgs
from components.encryption import Encryption, EncryptionArgs
from components.network import Network, NetworkArgs
from components.node_pools import NodePools, NodePoolsArgs, NodePoolSpec
from components.storage import ACCESS_LOGS, Storage, StorageArgs
from infra.config import NodePoolConfig, PlatformConfig
from policies.zones import OFFERED, service_availability


@dataclass(frozen=True)
class AwsBase:
    """The regional AWS foundation every later step builds on."""

    provider: aws.Provider
    """The stack's one AWS provider."""
    account_id: pulumi.Output[str]
    keys: Encryption
    network: Network
    storage: Storage

    @property
    def opts(self) -> pulumi.ResourceOptions:
        """Options selecting :attr:`provider` for AWS resources."""
        return pulumi.ResourceOptions(providers={"aws": self.provider})


@dataclass(frozen=True)
class KubernetesCluster:
    """The cluster, its nodes, and the options of everything deployed onto it."""

    cluster: Cluster
    pools: NodePools
    opts: pulumi.ResourceOptions
    """AWS and Kubernetes providers, after the add-ons the cluster needs to run pods."""


def pool_spec(pool: NodePoolConfig) -> NodePoolSpec:
    """The node-pool component's view of one configured pool."""
    return NodePoolSpec(
        name=pool.role,
        gpu=pool.gpu,
        instance_types=pool.instance_types,
        capacity_type=pool.capacity_type,
        min_size=pool.min_size,
        desired_size=pool.desired_size,
        max_size=pool.max_size,
        disk_gib=pool.disk_gib,
        labels=dict(pool.labels),
        taints=tuple((t.key, t.value, t.eks_effect) for t in pool.taints),
    )


def aws_provider(cfg: PlatformConfig) -> aws.Provider:
    """The one AWS provider: pinned to the stack's region, tagging every resource.

    Every component reads its region and partition from this provider. With
    ``allowedAccountIds`` set, the provider refuses credentials of any other account.
    """
    return aws.Provider(
        f"aws-{cfg.region}",
        region=cfg.region,
        allowed_account_ids=list(cfg.allowed_account_ids) or None,
        # pulumi-aws defaults this to true; the gate (SOV-RES-003) refuses unvalidated regions.
        skip_region_validation=False,
        default_tags={"tags": stack_tags(cfg)},
    )


def stack_tags(cfg: PlatformConfig) -> dict[str, str]:
    """The tags of everything the stack owns in AWS: the provider's default tags, and what the
    registry's creation template puts on the repositories ECR creates for it."""
    return dict(
        cfg.tags.as_aws(
            **{
                "stack": cfg.stack,
                "environment": cfg.environment,
                "residency-zone": cfg.zone,
                "tier": cfg.tier,
                "managed-by": "pulumi",
                **({"tenant": cfg.tenant} if cfg.tenant else {}),
            }
        )
    )


def aws_base(cfg: PlatformConfig, provider: aws.Provider) -> AwsBase:
    """KMS keys per purpose (the HMAC pseudonymization key among them), the VPC, and the data
    buckets."""
    prefix = cfg.name_prefix
    opts = pulumi.ResourceOptions(providers={"aws": provider})
    account_id = aws.get_caller_identity_output(
        opts=pulumi.InvokeOutputOptions(provider=provider)
    ).account_id
    keys = Encryption(
        "keys",
        EncryptionArgs(
            name_prefix=prefix,
            account_id=account_id,
            purposes=("cluster", "volumes", "storage", "logs", "vault", "pseudonymization"),
            deletion_window_days=cfg.kms_deletion_window_days,
            protect=cfg.production,
        ),
        opts=opts,
    )
    network = Network(
        "network",
        NetworkArgs(
            name_prefix=prefix,
            cidr=cfg.network.cidr,
            az_count=cfg.network.az_count,
            single_nat_gateway=cfg.network.single_nat_gateway,
            logs_key_arn=keys.keys["logs"].arn,
            log_retention_days=cfg.log_retention_days,
            cluster_name=prefix,
        ),
        opts=opts,
    )
    storage = Storage(
        "storage",
        StorageArgs(
            name_prefix=prefix,
            account_id=account_id,
            kms_key_arn=keys.keys["storage"].arn,
            protect=cfg.production,
        ),
        opts=opts,
    )
    return AwsBase(provider, account_id, keys, network, storage)


def audit_trail(cfg: PlatformConfig, base: AwsBase) -> AuditTrail:
    """CloudTrail into an object-locked bucket and CloudWatch, and the detection services the
    region offers (the availability table beside the zones), before anything else is built."""
    buckets = base.storage.buckets
    return AuditTrail(
        "audit",
        AuditTrailArgs(
            name_prefix=cfg.name_prefix,
            account_id=base.account_id,
            logs_key_arn=base.keys.keys["logs"].arn,
            access_logs_bucket=buckets[ACCESS_LOGS].bucket,
            object_lock_days=cfg.audit_retention_days,
            log_retention_days=cfg.audit_log_retention_days,
            data_bucket_arns=[b.arn for purpose, b in buckets.items() if purpose != ACCESS_LOGS],
            detection_services=[
                s for s in DETECTION_SERVICES if service_availability(cfg.region, s) == OFFERED
            ],
            protect=cfg.production,
        ),
        opts=base.opts,
    )


def kubernetes_cluster(cfg: PlatformConfig, base: AwsBase) -> KubernetesCluster:
    """The EKS control plane, its node pools, and the add-ons that need running nodes."""
    version = cfg.cluster.kubernetes_version
    volume_key = base.keys.keys["volumes"].arn
    cluster = Cluster(
        "cluster",
        ClusterArgs(
            cluster_name=cfg.name_prefix,
            kubernetes_version=version,
            vpc_id=base.network.vpc_id,
            vpc_cidr=cfg.network.cidr,
            subnet_ids=base.network.private_subnet_ids,
            secrets_key_arn=base.keys.keys["cluster"].arn,
            logs_key_arn=base.keys.keys["logs"].arn,
            log_retention_days=cfg.log_retention_days,
            endpoint_public_access=cfg.cluster.endpoint_public_access,
            public_access_cidrs=list(cfg.cluster.public_access_cidrs),
            deletion_protection=cfg.production,
        ),
        opts=base.opts,
    )
    pools = NodePools(
        "nodes",
        NodePoolsArgs(
            cluster_name=cluster.cluster_name,
            kubernetes_version=version,
            subnet_ids=base.network.private_subnet_ids,
            volume_key_arn=volume_key,
            pools=[pool_spec(p) for p in cfg.node_pools],
            name_prefix=cfg.name_prefix,
        ),
        opts=base.opts,
    )
    addons = ClusterAddons(
        "addons",
        ClusterAddonsArgs(
            cluster_access=cluster.access,
            kubernetes_version=version,
            volume_key_arn=volume_key,
        ),
        opts=pulumi.ResourceOptions.merge(base.opts, pulumi.ResourceOptions(depends_on=[pools])),
    )
    on_cluster = pulumi.ResourceOptions(
        providers={"aws": base.provider, "kubernetes": cluster.k8s_provider}, depends_on=[addons]
    )
    return KubernetesCluster(cluster, pools, on_cluster)
