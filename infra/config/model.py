"""The typed config: frozen dataclasses that ``parse`` builds once per stack, fully validated.

Components get slices of it as their Args; nothing here validates (``parsing`` does), so every
value held is already known to be allowed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from components._alertmanager_config import Receivers
from components._dex import SsoSettings


@dataclass(frozen=True)
class Tags:
    """The three mandatory tags carried by every taggable resource."""

    owner: str
    """The team or person accountable (``owner`` tag)."""
    cost_center: str
    """Where the bill goes (``cost-center`` tag)."""
    data_classification: str
    """``public``, ``internal``, ``confidential`` or ``restricted`` (``data-classification``)."""

    def as_aws(self, **extra: str) -> dict[str, str]:
        """Tags in AWS form (``owner``, ``cost-center``, ``data-classification``) plus extras."""
        return {
            "owner": self.owner,
            "cost-center": self.cost_center,
            "data-classification": self.data_classification,
            **extra,
        }


@dataclass(frozen=True)
class GatewayConfig:
    """The inference gateway's token issuer and limits (``gateway*`` keys)."""

    issuer: str
    """OIDC issuer whose tokens the gateway accepts ('' only when no model is served)."""
    jwks_uri: str
    """The issuer's JWKS URL."""
    audiences: tuple[str, ...]
    """Accepted ``aud`` values (never empty)."""
    hostname: str
    """DNS name clients call."""
    max_request_bytes: int
    """Largest request body forwarded."""
    rate_limit_rps: int
    """Requests per second per gateway replica."""


@dataclass(frozen=True)
class Taint:
    """A Kubernetes node taint."""

    key: str
    """Taint key, e.g. ``nvidia.com/gpu``."""
    value: str
    """Taint value (may be empty)."""
    effect: str
    """``NoSchedule``, ``PreferNoSchedule`` or ``NoExecute`` (Kubernetes spelling)."""

    @property
    def eks_effect(self) -> str:
        """The taint effect as the EKS API spells it (``NO_SCHEDULE``)."""
        return re.sub(r"(?<!^)(?=[A-Z])", "_", self.effect).upper()


@dataclass(frozen=True)
class NodePoolConfig:
    """One node pool role as the stack asks for it."""

    role: str
    """``system``, ``workers`` or ``gpu``."""
    gpu: bool
    """Whether the pool runs NVIDIA GPU instances (the ``gpu`` role)."""
    instance_types: tuple[str, ...]
    """EC2 instance types, cheapest first."""
    capacity_type: str
    """``ON_DEMAND`` or ``SPOT``."""
    min_size: int
    """Fewest nodes the autoscaler keeps."""
    desired_size: int
    """Node count at creation."""
    max_size: int
    """Most nodes the autoscaler adds."""
    disk_gib: int
    """Encrypted gp3 root volume size per node, GiB."""
    labels: tuple[tuple[str, str], ...]
    """Extra Kubernetes node labels as ``(key, value)`` pairs."""
    taints: tuple[Taint, ...]
    """Node taints (the GPU pool always has ``nvidia.com/gpu=true:NoSchedule``)."""


@dataclass(frozen=True)
class NetworkConfig:
    """VPC layout."""

    cidr: str
    """Private IPv4 CIDR of the VPC, /16 to /20."""
    az_count: int
    """How many availability zones the VPC spans."""
    availability_zones: tuple[str, ...]
    """The zones themselves, the first ``az_count`` of the region's."""
    single_nat_gateway: bool
    """One shared NAT gateway instead of one per AZ."""


@dataclass(frozen=True)
class ClusterConfig:
    """EKS control plane settings."""

    kubernetes_version: str
    """EKS Kubernetes version, e.g. ``1.33``."""
    endpoint_public_access: bool
    """Whether the API endpoint is public (dev only)."""
    public_access_cidrs: tuple[str, ...]
    """CIDRs a public endpoint admits; empty when it is private."""


@dataclass(frozen=True)
class PlatformConfig:
    """Everything a stack asks for, validated; components get slices of it as Args.

    Fields mirror the keys of ``infra.config.keys.KEYS``; their defaults live there only.
    """

    stack: str
    """Stack name, e.g. ``prod-uae``."""
    source: str
    """The stack file the values came from."""
    environment: str
    """``dev``, ``staging`` or ``prod``."""
    zone: str
    """Residency zone (``policies.zones.ZONES``)."""
    region: str
    """AWS region, inside the zone."""
    partition: str
    """AWS partition of the region."""
    tier: str
    """``enterprise`` or ``smb``."""
    tags: Tags
    """The mandatory tags."""
    network: NetworkConfig
    """VPC layout."""
    cluster: ClusterConfig
    """EKS control plane."""
    node_pools: tuple[NodePoolConfig, ...]
    """The enabled pools, in ``POOL_ROLES`` order."""
    log_retention_days: int
    """Retention of flow and control-plane logs."""
    log_masked_fields: tuple[str, ...]
    """Container log record fields removed on the node before shipping."""
    audit_retention_days: int
    """Object Lock retention (COMPLIANCE) of the audit trail's files."""
    audit_log_retention_days: int
    """Retention of the audit trail's CloudWatch Logs group."""
    kms_deletion_window_days: int
    """Waiting period of a scheduled KMS key deletion."""
    tenants: tuple[str, ...]
    """Tenant namespaces on the cluster."""
    served_models: tuple[tuple[str, str], ...]
    """``(model, profile)`` pairs Triton serves; profile ``gpu`` or ``cpu``."""
    served_model_versions: tuple[tuple[str, int], ...]
    """``(model, registry version)`` pairs the stack serves (``servedModelVersions``)."""
    canary_steps: tuple[int, ...]
    """Traffic percentages of a canary rollout, ending at 100."""
    serving_scale_to_zero: bool
    """Whether idle models scale to zero replicas (KEDA)."""
    serving_idle_minutes: int
    """Idle minutes before a scale-to-zero model goes to zero."""
    serving_warm_hours: str
    """``servingWarmHours`` as given ('' for no schedule)."""
    model_puller_image: str
    """Pinned image of the model-puller init container ('' for the inventory's)."""
    drift_threshold: float
    """PSI above which a feature counts as drifted."""
    drift_image: str
    """Pinned image of the drift CronJob ('' for the inventory's)."""
    image_source: str
    """``upstream`` or ``mirror`` (the zone's ECR registry; required in prod)."""
    vault_address: str
    """HTTPS address the deployer reaches Vault at."""
    vault_configure: bool
    """Whether Vault's engines, policies and roles are declared."""
    tenant: str
    """The tenant owning the whole stack ('' for a shared platform)."""
    monthly_budget_usd: int
    """Monthly AWS Budget in USD; 0 for none."""
    budget_alert_emails: tuple[str, ...]
    """Addresses the budget alerts go to."""
    allowed_account_ids: tuple[str, ...]
    """Accounts the stack may deploy into and assume roles in (empty: not pinned)."""
    in_zone_external_resources: tuple[str, ...]
    """ARNs, bucket names and host names outside the program known to be in the zone."""
    ingress_allowed_cidrs: tuple[str, ...]
    """Public CIDRs security groups may admit."""
    slo_availability_target: float
    """Share of a served model's inference requests that must succeed."""
    slo_latency_target_ms: int
    """p99 latency target of a served model's latency SLO."""
    slo_latency_objective: float
    """Share of evaluations in which a model's p99 must be within its target."""
    slo_feature_server_target: float
    """Share of successful scrapes of the feature server."""
    slo_pipeline_success_target: float
    """Share of training pipeline runs that must succeed."""
    runbook_base_url: str
    """Base of every alert's ``runbook_url``."""
    alerting: Receivers
    """Alertmanager receivers (credentials only flagged as present)."""
    sso: SsoSettings | None
    """Single sign-on (Dex, oauth2-proxy, Vault operators); None for ``ssoConnector: none``."""
    gateway: GatewayConfig
    """The inference gateway's issuer and limits."""

    @property
    def production(self) -> bool:
        """Production posture: protected state, per-AZ NAT, private endpoint."""
        return self.environment == "prod"

    @property
    def name_prefix(self) -> str:
        """Prefix of every physical name this stack creates."""
        return f"sovml-{self.stack}"

    def to_record(self) -> dict[str, Any]:
        """The config as plain JSON-able data for the synth record (no secrets are held)."""

        def plain(value: Any) -> Any:
            if hasattr(value, "__dataclass_fields__"):
                return {k: plain(getattr(value, k)) for k in value.__dataclass_fields__}
            if isinstance(value, tuple):
                return [plain(v) for v in value]
            return value

        return plain(self)
