"""Compose the platform's components in dependency order for one validated stack config."""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi_aws as aws
import pulumi_vault as vault

from components.addons import ClusterAddons, ClusterAddonsArgs
from components.budget import BudgetArgs, StackBudget
from components.cluster import Cluster, ClusterArgs
from components.encryption import Encryption, EncryptionArgs
from components.feature_store import FeatureStore, FeatureStoreArgs
from components.k8s_baseline import PLATFORM_NAMESPACES, K8sBaseline, K8sBaselineArgs, TenantQuota
from components.keda import Keda, KedaArgs
from components.kubeflow import Kubeflow, KubeflowArgs
from components.monitoring import Monitoring, MonitoringArgs
from components.network import Network, NetworkArgs
from components.node_pools import NodePools, NodePoolsArgs, NodePoolSpec
from components.serving import ServedModel, Serving, ServingArgs
from components.storage import Storage, StorageArgs
from components.vault import Vault, VaultArgs
from components.vault_config import VaultConfig, VaultConfigArgs
from components.vault_layout import layout as vault_layout
from infra.config import NodePoolConfig, PlatformConfig, warm_hours_cron
from policies.promotion import PromotionCriteria
from policies.zones import ZONES

# Tenant namespace quotas per tier: SMB tenants are CPU-only.
TENANT_QUOTAS = {
    "enterprise": {"cpu": "32", "memory": "128Gi", "gpus": 2, "pods": 100},
    "smb": {"cpu": "8", "memory": "32Gi", "gpus": 0, "pods": 40},
}


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
            purposes=("cluster", "volumes", "storage", "logs", "vault"),
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
    addons = ClusterAddons(
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

    k8s_opts = pulumi.ResourceOptions(
        providers={"aws": provider, "kubernetes": cluster.k8s_provider}, depends_on=[addons]
    )
    # KEDA only where a served model may scale to zero; it gets a platform namespace like the rest.
    scale_to_zero = cfg.serving_scale_to_zero and bool(cfg.served_models)
    platform_namespaces = (*PLATFORM_NAMESPACES, "keda") if scale_to_zero else PLATFORM_NAMESPACES
    baseline = K8sBaseline(
        "baseline",
        K8sBaselineArgs(
            cluster_name=cluster.cluster_name,
            kubernetes_version=cfg.cluster.kubernetes_version,
            region=cfg.region,
            vpc_cidr=cfg.network.cidr,
            volume_key_arn=keys.keys["volumes"].arn,
            oidc_provider_arn=cluster.oidc_provider_arn,
            oidc_issuer_url=cluster.oidc_issuer_url,
            account_id=account_id,
            partition=cfg.partition,
            tenants=[TenantQuota(t, **TENANT_QUOTAS[cfg.tier]) for t in cfg.tenants],
            gpu_enabled=any(p.gpu for p in cfg.node_pools),
            retain_volumes=cfg.production,
            platform_namespaces=platform_namespaces,
        ),
        opts=k8s_opts,
    )
    after_baseline = pulumi.ResourceOptions.merge(
        k8s_opts, pulumi.ResourceOptions(depends_on=[baseline])
    )
    secrets = Vault(
        "vault",
        VaultArgs(
            namespace="vault",
            region=cfg.region,
            unseal_key_arn=keys.keys["vault"].arn,
            oidc_provider_arn=cluster.oidc_provider_arn,
            oidc_issuer_url=cluster.oidc_issuer_url,
            protect=cfg.production,
        ),
        opts=after_baseline,
    )
    Kubeflow(
        "kubeflow",
        KubeflowArgs(
            namespace="kubeflow",
            name_prefix=prefix,
            region=cfg.region,
            artifacts_bucket=storage.buckets["artifacts"].bucket,
            artifacts_bucket_arn=storage.buckets["artifacts"].arn,
            storage_key_arn=keys.keys["storage"].arn,
            oidc_provider_arn=cluster.oidc_provider_arn,
            oidc_issuer_url=cluster.oidc_issuer_url,
            # SMB: one MySQL pod on an encrypted volume instead of a Multi-AZ RDS bill.
            db_mode="rds" if cfg.tier == "enterprise" else "in-cluster",
            vpc_id=network.vpc_id,
            vpc_cidr=cfg.network.cidr,
            subnet_ids=network.private_subnet_ids,
            db_key_arn=keys.keys["storage"].arn,
            tenants=list(cfg.tenants),
            production=cfg.production,
        ),
        opts=after_baseline,
    )
    FeatureStore(
        "features",
        FeatureStoreArgs(
            namespace="feature-store",
            name_prefix=prefix,
            project="credit_risk",
            features_bucket=storage.buckets["features"].bucket,
            features_bucket_arn=storage.buckets["features"].arn,
            storage_key_arn=keys.keys["storage"].arn,
            oidc_provider_arn=cluster.oidc_provider_arn,
            oidc_issuer_url=cluster.oidc_issuer_url,
            # SMB: one Redis pod on an encrypted volume instead of an ElastiCache bill.
            online_store="elasticache" if cfg.tier == "enterprise" else "in-cluster",
            vpc_id=network.vpc_id,
            vpc_cidr=cfg.network.cidr,
            subnet_ids=network.private_subnet_ids,
            production=cfg.production,
            min_replicas=1 if cfg.tier == "smb" else 2,
        ),
        opts=after_baseline,
    )
    if cfg.served_models:
        # SMB stacks run one replica per model; enterprise keeps two for zone failures.
        floor = 1 if cfg.tier == "smb" else 2
        serving_opts = after_baseline
        if scale_to_zero:
            keda = Keda(
                "keda", KedaArgs(namespace="keda", vpc_cidr=cfg.network.cidr), after_baseline
            )
            # The ScaledObjects need KEDA's CRDs and webhooks in place first.
            serving_opts = pulumi.ResourceOptions.merge(
                after_baseline, pulumi.ResourceOptions(depends_on=[keda])
            )
        warm = warm_hours_cron(cfg.serving_warm_hours) if cfg.serving_warm_hours else None
        Serving(
            "serving",
            ServingArgs(
                namespace="serving",
                models=[
                    ServedModel(
                        name,
                        profile,
                        min_replicas=floor,
                        max_replicas=max(floor, 6),
                        scale_to_zero=cfg.serving_scale_to_zero,
                        idle_minutes=cfg.serving_idle_minutes,
                        warm_start_cron=warm[0] if warm else "",
                        warm_end_cron=warm[1] if warm else "",
                        timezone=ZONES[cfg.zone].timezone,
                    )
                    for name, profile in cfg.served_models
                ],
                models_bucket=storage.buckets["models"].bucket,
                models_bucket_arn=storage.buckets["models"].arn,
                storage_key_arn=keys.keys["storage"].arn,
                oidc_provider_arn=cluster.oidc_provider_arn,
                oidc_issuer_url=cluster.oidc_issuer_url,
                region=cfg.region,
                puller_image=cfg.model_puller_image,
                criteria=PromotionCriteria(steps=cfg.canary_steps),
            ),
            opts=serving_opts,
        )
    Monitoring(
        "monitoring",
        MonitoringArgs(
            namespace="monitoring",
            models=[name for name, _ in cfg.served_models],
            data_bucket=storage.buckets["models"].bucket,
            data_bucket_arn=storage.buckets["models"].arn,
            storage_key_arn=keys.keys["storage"].arn,
            oidc_provider_arn=cluster.oidc_provider_arn,
            oidc_issuer_url=cluster.oidc_issuer_url,
            drift_image=cfg.drift_image,
            drift_threshold=cfg.drift_threshold,
            gpu_enabled=any(p.gpu for p in cfg.node_pools),
            criteria=PromotionCriteria(steps=cfg.canary_steps),
        ),
        opts=after_baseline,
    )
    if cfg.vault_configure:
        # Second bootstrap step: Vault runs and is initialised; VAULT_TOKEN is in the env.
        vault_provider = vault.Provider("vault", address=cfg.vault_address)
        VaultConfig(
            "vault-config",
            VaultConfigArgs(layout=vault_layout(cfg.tenants), kubernetes_host=cluster.endpoint),
            opts=pulumi.ResourceOptions(providers={"vault": vault_provider}, depends_on=[secrets]),
        )

    if cfg.monthly_budget_usd:
        StackBudget(
            "budget",
            BudgetArgs(
                name_prefix=prefix,
                limit_usd=cfg.monthly_budget_usd,
                alert_emails=list(cfg.budget_alert_emails),
                cost_filter_tags={"tenant": cfg.tenant} if cfg.tenant else {"stack": cfg.stack},
            ),
            opts=aws_opts,
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
