"""Compose the platform's components in dependency order for one validated stack config.

:func:`build` reads like a table of contents: the AWS provider, the AWS base (keys, network,
buckets), the audit trail, the cluster (control plane, nodes, add-ons), the cluster baseline,
then the services on it (Vault, Kubeflow and Feast, serving), operations (:mod:`infra.operations`)
and the budget. What
differs per tier is data (:data:`TIERS`), not branches.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws
import pulumi_vault as vault

from components.addons import ClusterAddons, ClusterAddonsArgs
from components.audit_trail import (
    DETECTION_SERVICES,
    AuditTrail,
    AuditTrailArgs,
    LifecycleSink,
)
from components.budget import BudgetArgs, StackBudget
from components.cluster import Cluster, ClusterArgs
from components.cluster_autoscaler import ClusterAutoscaler, ClusterAutoscalerArgs
from components.encryption import Encryption, EncryptionArgs
from components.feature_store import FeatureStore, FeatureStoreArgs
from components.gpu_device_plugin import GpuDevicePlugin, GpuDevicePluginArgs
from components.image_admission import ADMISSION_LABEL, ImageAdmission, ImageAdmissionArgs
from components.k8s_baseline import PLATFORM_NAMESPACES, K8sBaseline, K8sBaselineArgs, TenantQuota
from components.keda import Keda, KedaArgs
from components.kubeflow import Kubeflow, KubeflowArgs
from components.network import Network, NetworkArgs
from components.node_pools import NodePools, NodePoolsArgs, NodePoolSpec
from components.registry_mirror import RegistryMirror, RegistryMirrorArgs
from components.serving import ServedModel, Serving, ServingArgs
from components.storage import ACCESS_LOGS, Storage, StorageArgs
from components.vault import Vault, VaultArgs
from components.vault_config import VaultConfig, VaultConfigArgs
from components.vault_layout import layout as vault_layout
from infra.config import NodePoolConfig, PlatformConfig, warm_hours_cron
from infra.gateway import NAMESPACES as GATEWAY_NAMESPACES
from infra.gateway import inference_gateway
from infra.images.sources import sources_for, workload_image
from infra.operations import operations
from infra.tracking import tracking
from policies.inventory import mirror_repositories, registry_host
from policies.promotion import PromotionCriteria
from policies.zones import OFFERED, ZONES, service_availability


@dataclass(frozen=True)
class TierChoices:
    """What a platform tier decides about the shared services."""

    tenant_quota: dict[str, Any]
    """:class:`TenantQuota` fields of every tenant namespace (SMB tenants are CPU-only)."""
    replica_floor: int
    """Replicas per served model (enterprise keeps two for zone failures)."""
    feature_servers: int
    """Feature server replica floor."""
    db_mode: str
    """Kubeflow metadata DB: Multi-AZ RDS, or one MySQL pod on an encrypted volume."""
    online_store: str
    """Feast online store: ElastiCache, or one Redis pod on an encrypted volume."""


TIERS = {
    "enterprise": TierChoices(
        tenant_quota={"cpu": "32", "memory": "128Gi", "gpus": 2, "pods": 100},
        replica_floor=2,
        feature_servers=2,
        db_mode="rds",
        online_store="elasticache",
    ),
    # SMB: pods on encrypted volumes instead of RDS and ElastiCache bills.
    "smb": TierChoices(
        tenant_quota={"cpu": "8", "memory": "32Gi", "gpus": 0, "pods": 40},
        replica_floor=1,
        feature_servers=1,
        db_mode="in-cluster",
        online_store="in-cluster",
    ),
}
"""The choices of each tier in ``infra.config.TIERS``."""


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


def build(cfg: PlatformConfig) -> dict[str, Any]:
    """Declare the platform for ``cfg``; returns the stack outputs."""
    base = aws_base(cfg, aws_provider(cfg))
    # The pods append their lifecycle log to the trail's object-locked bucket.
    lifecycle = audit_trail(cfg, base).lifecycle
    mirror = registry_mirror(cfg, base) if uses_mirror(cfg) else None
    eks = kubernetes_cluster(cfg, base)
    after_baseline = cluster_baseline(cfg, base, eks)
    if mirror is not None:
        after_baseline = image_admission(cfg, eks, after_baseline, mirror)
    secrets = secrets_service(cfg, base, eks, after_baseline)
    data_services(cfg, base, eks, after_baseline, lifecycle)
    if TIERS[cfg.tier].db_mode == "rds":  # MLflow's backend is RDS PostgreSQL too
        tracking(cfg, base, eks, after_baseline)
    if cfg.served_models:  # reachable only through the authenticated gateway
        serving(cfg, base, eks, after_baseline)
        inference_gateway(cfg, after_baseline)
    operations(
        cfg, base, eks, after_baseline, lifecycle, promotion_criteria(cfg), gpus=has_gpus(cfg)
    )
    if cfg.vault_configure:
        vault_configuration(cfg, eks, secrets)
    if cfg.monthly_budget_usd:
        budget(cfg, base)
    return {
        "region": cfg.region,
        "residencyZone": cfg.zone,
        "vpcId": base.network.vpc_id,
        "clusterName": eks.cluster.cluster_name,
        "clusterEndpoint": eks.cluster.endpoint,
        "kubeconfig": eks.cluster.kubeconfig,
        "buckets": base.storage.bucket_names,
        "kmsKeys": base.keys.key_arns,
        "nodeGroups": eks.pools.node_group_names,
    }


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


def cluster_baseline(
    cfg: PlatformConfig, base: AwsBase, eks: KubernetesCluster
) -> pulumi.ResourceOptions:
    """Namespaces, quotas and networking; the GPU device plugin and node autoscaling.

    Returns the options of the workloads: everything here comes first.
    """
    tier = TIERS[cfg.tier]
    baseline = K8sBaseline(
        "baseline",
        K8sBaselineArgs(
            vpc_cidr=cfg.network.cidr,
            volume_key_arn=base.keys.keys["volumes"].arn,
            tenants=[TenantQuota(t, **tier.tenant_quota) for t in cfg.tenants],
            retain_volumes=cfg.production,
            platform_namespaces=platform_namespaces(cfg),
            workload_labels=dict([ADMISSION_LABEL]) if uses_mirror(cfg) else {},
            unlabelled_namespaces=(ADMISSION_NAMESPACE,) if uses_mirror(cfg) else (),
        ),
        opts=eks.opts,
    )
    # These two were children of the baseline. Named like it, their resources keep their names;
    # `moved_from` aliases each to its old parent, so deployed stacks keep them too.
    first: list[pulumi.Resource] = [baseline]
    if has_gpus(cfg):
        first.append(
            GpuDevicePlugin(
                "baseline",
                GpuDevicePluginArgs(image=sources_for(cfg).image("nvidia-device-plugin")),
                eks.opts,
                moved_from=baseline,
            )
        )
    first.append(
        ClusterAutoscaler(
            "baseline",
            ClusterAutoscalerArgs(
                cluster_access=eks.cluster.access,
                kubernetes_version=cfg.cluster.kubernetes_version,
                account_id=base.account_id,
                sources=sources_for(cfg),
            ),
            eks.opts,
            moved_from=baseline,
        )
    )
    return pulumi.ResourceOptions.merge(eks.opts, pulumi.ResourceOptions(depends_on=first))


def has_gpus(cfg: PlatformConfig) -> bool:
    """Whether the stack has a GPU node pool (device plugin, DCGM exporter)."""
    return any(p.gpu for p in cfg.node_pools)


def needs_keda(cfg: PlatformConfig) -> bool:
    """Whether KEDA scales served models: to zero, or on GPU utilisation (gpu profile)."""
    return bool(cfg.served_models) and (
        cfg.serving_scale_to_zero or any(p == "gpu" for _, p in cfg.served_models)
    )


def platform_namespaces(cfg: PlatformConfig) -> tuple[str, ...]:
    """The platform's namespaces; KEDA and the admission controller get one like the rest where
    they are deployed."""
    extra = (("keda",) if needs_keda(cfg) else ()) + (
        (ADMISSION_NAMESPACE,) if uses_mirror(cfg) else ()
    )
    gateway = GATEWAY_NAMESPACES if cfg.served_models else ()
    return (*PLATFORM_NAMESPACES, *extra, *gateway)


ADMISSION_NAMESPACE = "cosign-system"
"""Namespace of the signature admission controller (mirror stacks)."""


def uses_mirror(cfg: PlatformConfig) -> bool:
    """Whether the stack pulls from the zone's registry (and so creates and guards it)."""
    return cfg.image_source == "mirror"


def registry_mirror(cfg: PlatformConfig, base: AwsBase) -> RegistryMirror:
    """The zone's ECR repositories (one per inventory mirror name) and the image-signing key."""
    return RegistryMirror(
        "mirror",
        RegistryMirrorArgs(
            name_prefix=cfg.name_prefix,
            account_id=base.account_id,
            repositories=mirror_repositories(),
            deletion_window_days=cfg.kms_deletion_window_days,
            protect=cfg.production,
        ),
        opts=base.opts,
    )


def image_admission(
    cfg: PlatformConfig,
    eks: KubernetesCluster,
    opts: pulumi.ResourceOptions,
    mirror: RegistryMirror,
) -> pulumi.ResourceOptions:
    """Signature admission before any workload: returns the workloads' options, after it."""
    admission = ImageAdmission(
        "admission",
        ImageAdmissionArgs(
            namespace=ADMISSION_NAMESPACE,
            # Config validation refuses mirror without an allowed account, so [0] exists.
            registry_host=registry_host(cfg.allowed_account_ids[0], cfg.region),
            signing_key_arn=mirror.signing_key_arn,
            cluster_access=eks.cluster.access,
            vpc_cidr=cfg.network.cidr,
            sources=sources_for(cfg),
        ),
        opts=opts,
    )
    return pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(depends_on=[admission]))


def secrets_service(
    cfg: PlatformConfig, base: AwsBase, eks: KubernetesCluster, opts: pulumi.ResourceOptions
) -> Vault:
    """Vault: the platform's key and secret service, unsealed with its own KMS key."""
    return Vault(
        "vault",
        VaultArgs(
            namespace="vault",
            unseal_key_arn=base.keys.keys["vault"].arn,
            cluster_access=eks.cluster.access,
            protect=cfg.production,
            sources=sources_for(cfg),
        ),
        opts=opts,
    )


def data_services(
    cfg: PlatformConfig,
    base: AwsBase,
    eks: KubernetesCluster,
    opts: pulumi.ResourceOptions,
    lifecycle: LifecycleSink,
) -> None:
    """Kubeflow Pipelines and the Feast feature store, each with its database as the tier says;
    pipeline runs append to the lifecycle log and pseudonymize with the stack's HMAC key."""
    tier = TIERS[cfg.tier]
    buckets = base.storage.buckets
    storage_key = base.keys.keys["storage"].arn
    # What both take alike: their database or online store lives in the private subnets.
    common: dict[str, Any] = {
        "name_prefix": cfg.name_prefix,
        "storage_key_arn": storage_key,
        "cluster_access": eks.cluster.access,
        "production": cfg.production,
        "vpc_id": base.network.vpc_id,
        "vpc_cidr": cfg.network.cidr,
        "subnet_ids": base.network.private_subnet_ids,
        "sources": sources_for(cfg),
    }
    Kubeflow(
        "kubeflow",
        KubeflowArgs(
            namespace="kubeflow",
            artifacts_bucket=buckets["artifacts"].bucket,
            artifacts_bucket_arn=buckets["artifacts"].arn,
            db_mode=tier.db_mode,
            db_key_arn=storage_key,
            tenants=list(cfg.tenants),
            audit=lifecycle,
            pseudonymization_key_arn=base.keys.keys["pseudonymization"].arn,
            **common,
        ),
        opts=opts,
    )
    FeatureStore(
        "features",
        FeatureStoreArgs(
            namespace="feature-store",
            project="credit_risk",
            features_bucket=buckets["features"].bucket,
            features_bucket_arn=buckets["features"].arn,
            online_store=tier.online_store,
            min_replicas=tier.feature_servers,
            **common,
        ),
        opts=opts,
    )


def promotion_criteria(cfg: PlatformConfig) -> PromotionCriteria:
    """The canary criteria serving's analysis and monitoring's error-rate alert share."""
    return PromotionCriteria(steps=cfg.canary_steps, slo_availability=cfg.slo_availability_target)


def vault_configuration(cfg: PlatformConfig, eks: KubernetesCluster, secrets: Vault) -> None:
    """Vault's engines, policies and roles: the second bootstrap step, once Vault runs and is
    initialised (``VAULT_TOKEN`` in the environment)."""
    vault_provider = vault.Provider("vault", address=cfg.vault_address)
    VaultConfig(
        "vault-config",
        VaultConfigArgs(layout=vault_layout(cfg.tenants), kubernetes_host=eks.cluster.endpoint),
        opts=pulumi.ResourceOptions(providers={"vault": vault_provider}, depends_on=[secrets]),
    )


def serving(
    cfg: PlatformConfig, base: AwsBase, eks: KubernetesCluster, opts: pulumi.ResourceOptions
) -> Serving:
    """Triton per served model; KEDA first where models scale to zero or on GPU load."""
    if needs_keda(cfg):
        keda = Keda(
            "keda",
            KedaArgs(namespace="keda", vpc_cidr=cfg.network.cidr, sources=sources_for(cfg)),
            opts,
        )
        # The ScaledObjects need KEDA's CRDs and webhooks in place first.
        opts = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(depends_on=[keda]))
    floor = TIERS[cfg.tier].replica_floor
    warm = warm_hours_cron(cfg.serving_warm_hours) if cfg.serving_warm_hours else None
    models = base.storage.buckets["models"]
    return Serving(
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
            models_bucket=models.bucket,
            models_bucket_arn=models.arn,
            storage_key_arn=base.keys.keys["storage"].arn,
            cluster_access=eks.cluster.access,
            puller_image=workload_image(cfg, cfg.model_puller_image, "model-puller"),
            sources=sources_for(cfg),
            criteria=promotion_criteria(cfg),
            gpu_pool_max_size=next((p.max_size for p in cfg.node_pools if p.gpu), 0),
        ),
        opts=opts,
    )


def budget(cfg: PlatformConfig, base: AwsBase) -> StackBudget:
    """The stack's (or tenant's) monthly cost budget with its alerts."""
    return StackBudget(
        "budget",
        BudgetArgs(
            name_prefix=cfg.name_prefix,
            limit_usd=cfg.monthly_budget_usd,
            alert_emails=list(cfg.budget_alert_emails),
            cost_filter_tags={"tenant": cfg.tenant} if cfg.tenant else {"stack": cfg.stack},
        ),
        opts=base.opts,
    )
