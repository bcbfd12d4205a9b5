"""Compose the platform's components in dependency order for one validated stack config.

:func:`build` reads like a table of contents: the foundation (:mod:`infra.foundation`: the AWS
provider, the AWS base of keys, network and buckets, the audit trail, the cluster with its nodes
and add-ons), the cluster baseline, then the services on it (Vault, Kubeflow and Feast, serving),
operations (:mod:`infra.operations`) and the budget. What differs per tier is data
(:data:`TIERS`), not branches.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_vault as vault

from components.audit_trail import (
    LifecycleSink,
)
from components.budget import BudgetArgs, StackBudget
from components.cluster_autoscaler import ClusterAutoscaler, ClusterAutoscalerArgs
from components.feature_store import FeatureStore, FeatureStoreArgs
from components.gpu_device_plugin import GpuDevicePlugin, GpuDevicePluginArgs
from components.image_admission import ADMISSION_LABEL, ImageAdmission, ImageAdmissionArgs
from components.k8s_baseline import PLATFORM_NAMESPACES, K8sBaseline, K8sBaselineArgs, TenantQuota
from components.keda import Keda, KedaArgs
from components.kubeflow import Kubeflow, KubeflowArgs
from components.mesh import INJECTION_LABEL, ROOT_NAMESPACE
from components.registry_mirror import RegistryMirror, RegistryMirrorArgs
from components.serving import ServedModel, Serving, ServingArgs
from components.vault import Vault, VaultArgs
from components.vault_config import VaultConfig, VaultConfigArgs
from components.vault_layout import layout as vault_layout
from infra.config import PlatformConfig, warm_hours_cron
from infra.egress import NAMESPACE as EGRESS_NAMESPACE
from infra.egress import mesh_egress
from infra.foundation import (
    AwsBase,
    KubernetesCluster,
    audit_trail,
    aws_base,
    aws_provider,
    kubernetes_cluster,
    stack_tags,
)
from infra.gateway import NAMESPACES as GATEWAY_NAMESPACES
from infra.gateway import inference_gateway
from infra.identity import (
    CERT_MANAGER_NAMESPACE,
    Identity,
    identity,
    identity_namespaces,
    operator_sso,
    profile_owners,
)
from infra.images.sources import sources_for, workload_image
from infra.mesh import MESH_NAMESPACES, service_mesh
from infra.operations import operations
from infra.tracking import tracking
from policies.inventory import mirror_repositories, registry_host
from policies.promotion import PromotionCriteria
from policies.zones import ZONES


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
    meshed = [n for n in platform_namespaces(cfg) if n not in addon_namespaces(cfg)]
    after_baseline = service_mesh(cfg, after_baseline, meshed, TIERS[cfg.tier])
    mesh_egress(cfg, base, after_baseline, lifecycle)  # infra/egress.py
    # Certificates (Vault's among them) and single sign-on before the workloads.
    ident = identity(cfg, eks, after_baseline)
    secrets = secrets_service(cfg, base, eks, ident.opts)
    data_services(cfg, base, eks, after_baseline, lifecycle)
    # MLflow's backend store follows the tier's database choice (RDS, or on an encrypted volume).
    tracking(cfg, base, eks, after_baseline, db_mode=TIERS[cfg.tier].db_mode)
    if cfg.served_models:
        serving(cfg, base, eks, after_baseline)
    if has_ingress(cfg):  # models are reachable only through the authenticated gateway
        inference_gateway(cfg, after_baseline)
    operations(
        cfg, base, eks, after_baseline, lifecycle, promotion_criteria(cfg), gpus=has_gpus(cfg)
    )
    if cfg.vault_configure:
        vault_configuration(cfg, eks, secrets, ident)
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
            tenants=[
                TenantQuota(t, owner=profile_owners(cfg).get(t, ""), **tier.tenant_quota)
                for t in cfg.tenants
            ],
            retain_volumes=cfg.production,
            platform_namespaces=platform_namespaces(cfg),
            workload_labels=dict([ADMISSION_LABEL]) if uses_mirror(cfg) else {},
            unlabelled_namespaces=(ADMISSION_NAMESPACE,) if uses_mirror(cfg) else (),
            mesh_labels=dict([INJECTION_LABEL]),
            outside_mesh=(ROOT_NAMESPACE, *addon_namespaces(cfg)),
            egress_gateway_namespace=EGRESS_NAMESPACE,
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
    return (
        *PLATFORM_NAMESPACES,
        *MESH_NAMESPACES,
        EGRESS_NAMESPACE,
        *extra,
        *identity_namespaces(cfg),
        *(GATEWAY_NAMESPACES if has_ingress(cfg) else ()),
    )


def addon_namespaces(cfg: PlatformConfig) -> tuple[str, ...]:
    """Control-plane add-ons kept out of the mesh: the API server, which has no mesh identity,
    calls their webhooks (a STRICT sidecar would refuse it), and the admission controller admits
    istiod's own images, so it runs before the mesh."""
    return ((ADMISSION_NAMESPACE,) if uses_mirror(cfg) else ()) + (CERT_MANAGER_NAMESPACE,)


def has_ingress(cfg: PlatformConfig) -> bool:
    """Whether the stack runs the ingress gateway: for its served models (inference) or for the
    web UIs behind single sign-on, which bind to the same gateway pods."""
    return bool(cfg.served_models) or cfg.sso is not None


ADMISSION_NAMESPACE = "cosign-system"
"""Namespace of the signature admission controller (mirror stacks)."""


def uses_mirror(cfg: PlatformConfig) -> bool:
    """Whether the stack pulls from the zone's registry (and so creates and guards it)."""
    return cfg.image_source == "mirror"


def registry_mirror(cfg: PlatformConfig, base: AwsBase) -> RegistryMirror:
    """The zone's registry (the creation template of every repository a push creates, push
    scanning) and the image-signing key."""
    return RegistryMirror(
        "mirror",
        RegistryMirrorArgs(
            name_prefix=cfg.name_prefix,
            account_id=base.account_id,
            repositories=mirror_repositories(),
            repository_tags=stack_tags(cfg),
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
            profile_owners=tuple(profile_owners(cfg).items()),
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


def vault_configuration(
    cfg: PlatformConfig, eks: KubernetesCluster, secrets: Vault, ident: Identity
) -> None:
    """Vault's engines, policies and roles (operators' SSO through Dex where configured): the
    second bootstrap step, once Vault runs and is initialised (``VAULT_TOKEN`` set)."""
    vault_provider = vault.Provider("vault", address=cfg.vault_address)
    operators = operator_sso(cfg)
    VaultConfig(
        "vault-config",
        VaultConfigArgs(
            layout=vault_layout(cfg.tenants, operators=operators),
            kubernetes_host=eks.cluster.endpoint,
            oidc_client_secret=ident.sso.vault_client_secret if operators and ident.sso else None,
            oidc_discovery_ca_pem=ident.issuer.ca_certificate_pem,
        ),
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
