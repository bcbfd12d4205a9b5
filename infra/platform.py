"""Compose the platform's components in dependency order for one validated stack config."""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi_aws as aws

from components.addons import ClusterAddons, ClusterAddonsArgs
from components.cluster import Cluster, ClusterArgs
from components.encryption import Encryption, EncryptionArgs
from components.network import Network, NetworkArgs
from components.node_pools import NodePools, NodePoolsArgs, NodePoolSpec
from components.storage import Storage, StorageArgs
from infra.config import NodePoolConfig, PlatformConfig


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


def build(cfg: PlatformConfig) -> dict[str, Any]:
    """Declare the platform for ``cfg``; returns the stack outputs."""
    prefix = cfg.name_prefix
    # The one AWS provider: pinned to the stack's region, refusing any other account's
    # credentials is left to the operator (allowed_account_ids) since the account is not config.
    provider = aws.Provider(
        f"aws-{cfg.region}",
        region=cfg.region,
        default_tags={
            "tags": cfg.tags.as_aws(
                **{
                    "stack": cfg.stack,
                    "environment": cfg.environment,
                    "residency-zone": cfg.zone,
                    "tier": cfg.tier,
                    "managed-by": "pulumi",
                    **({"tenant": cfg.tenant} if cfg.tenant else {}),
                }
            )
        },
    )
    aws_opts = pulumi.ResourceOptions(providers={"aws": provider})
    account_id = aws.get_caller_identity_output(
        opts=pulumi.InvokeOutputOptions(provider=provider)
    ).account_id

    keys = Encryption(
        "keys",
        EncryptionArgs(
            name_prefix=prefix,
            account_id=account_id,
            partition=cfg.partition,
            region=cfg.region,
            deletion_window_days=cfg.kms_deletion_window_days,
            protect=cfg.production,
        ),
        opts=aws_opts,
    )
    network = Network(
        "network",
        NetworkArgs(
            name_prefix=prefix,
            region=cfg.region,
            cidr=cfg.network.cidr,
            az_count=cfg.network.az_count,
            single_nat_gateway=cfg.network.single_nat_gateway,
            logs_key_arn=keys.keys["logs"].arn,
            log_retention_days=cfg.log_retention_days,
            cluster_name=prefix,
        ),
        opts=aws_opts,
    )
    storage = Storage(
        "storage",
        StorageArgs(
            name_prefix=prefix,
            account_id=account_id,
            partition=cfg.partition,
            kms_key_arn=keys.keys["storage"].arn,
            protect=cfg.production,
        ),
        opts=aws_opts,
    )
    cluster = Cluster(
        "cluster",
        ClusterArgs(
            cluster_name=prefix,
            kubernetes_version=cfg.cluster.kubernetes_version,
            region=cfg.region,
            partition=cfg.partition,
            vpc_id=network.vpc_id,
            vpc_cidr=cfg.network.cidr,
            subnet_ids=network.private_subnet_ids,
            secrets_key_arn=keys.keys["cluster"].arn,
            logs_key_arn=keys.keys["logs"].arn,
            log_retention_days=cfg.log_retention_days,
            endpoint_public_access=cfg.cluster.endpoint_public_access,
            public_access_cidrs=list(cfg.cluster.public_access_cidrs),
            deletion_protection=cfg.production,
        ),
        opts=aws_opts,
    )
    pools = NodePools(
        "nodes",
        NodePoolsArgs(
            cluster_name=cluster.cluster_name,
            kubernetes_version=cfg.cluster.kubernetes_version,
            subnet_ids=network.private_subnet_ids,
            partition=cfg.partition,
            volume_key_arn=keys.keys["volumes"].arn,
            pools=[pool_spec(p) for p in cfg.node_pools],
            name_prefix=prefix,
        ),
        opts=aws_opts,
    )
    ClusterAddons(
        "addons",
        ClusterAddonsArgs(
            cluster_name=cluster.cluster_name,
            kubernetes_version=cfg.cluster.kubernetes_version,
            partition=cfg.partition,
            oidc_provider_arn=cluster.oidc_provider_arn,
            oidc_issuer_url=cluster.oidc_issuer_url,
            volume_key_arn=keys.keys["volumes"].arn,
        ),
        opts=pulumi.ResourceOptions.merge(aws_opts, pulumi.ResourceOptions(depends_on=[pools])),
    )

    return {
        "region": cfg.region,
        "residencyZone": cfg.zone,
        "vpcId": network.vpc_id,
        "clusterName": cluster.cluster_name,
        "clusterEndpoint": cluster.endpoint,
        "kubeconfig": cluster.kubeconfig,
        "buckets": storage.bucket_names,
        "kmsKeys": keys.key_arns,
        "nodeGroups": pools.node_group_names,
    }
