"""Parsing and validating a stack's raw config into one ``PlatformConfig``, or every problem.

``parse()`` is a plain function, tested without Pulumi: it takes the raw values of a stack (as
found in the stack file, or as strings the way the Pulumi engine hands them to the program) and
returns either a ``PlatformConfig`` or every problem at once, each naming the stack file, the key,
the value and what is allowed. It reads the stack section by section (identity and residency,
tags, network, cluster, node pools, tenants, serving, images, vault, budget; then the trust
boundaries, SLOs, log masking, the audit trail and alert receivers, each from its own module);
each section reads its keys through one ``Reader`` that collects the problems, in the order the
sections run.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any

from infra.config.alerting import parse_receivers
from infra.config.audit import parse_audit
from infra.config.boundaries import is_specific_cidr, parse_boundaries
from infra.config.gateway import parse_gateway
from infra.config.keys import (
    CAPACITY_TYPES,
    DATA_CLASSIFICATIONS,
    EMAIL,
    ENVIRONMENTS,
    GPU_INSTANCE_FAMILIES,
    GPU_TAINT_KEY,
    IDLE_MINUTES,
    IMAGE_SOURCES,
    INSTANCE_TYPE,
    KEYS,
    KUBERNETES_VERSIONS,
    LABEL_KEY,
    LABEL_VALUE,
    LOG_RETENTION_DAYS,
    POOL_ROLES,
    PROJECT,
    REGION_KEY,
    RESERVED_NAMESPACES,
    TAG_VALUE,
    TAINT_EFFECTS,
    TENANT_NAME,
    TENANT_NAME_RULE,
    TIERS,
    warm_hours_cron,
)
from infra.config.logs import parse_logs
from infra.config.model import (
    ClusterConfig,
    NetworkConfig,
    NodePoolConfig,
    PlatformConfig,
    Tags,
    Taint,
)
from infra.config.namespaces import check_keys
from infra.config.problems import ConfigError, ConfigProblem
from infra.config.reader import Reader
from infra.config.slo import parse_slos
from infra.config.sso import check_sso_in_zone, parse_sso
from infra.config.tiers import check_tier
from policies.zones import ZONES, Region, region_info, zone_of_region

_Fields = dict[str, Any]
"""``PlatformConfig`` fields a section parsed, by field name (``None`` where it found a problem)."""


@dataclass(frozen=True)
class _Identity:
    """What the stack is and where its data lives: the facts other sections' rules depend on."""

    environment: str | None
    """``dev``, ``staging`` or ``prod``; None when invalid."""
    zone: str | None
    """Residency zone; None when invalid."""
    tier: str | None
    """``enterprise`` or ``smb``; None when invalid."""
    region: str | None
    """AWS region inside the zone; None when missing or outside it."""
    info: Region | None
    """The region's facts (AZs, partition); None when the region is."""

    @property
    def production(self) -> bool:
        """Whether the production rules apply."""
        return self.environment == "prod"

    def fields(self) -> _Fields:
        """The ``PlatformConfig`` fields of the identity (its partition from the region)."""
        return {
            "environment": self.environment,
            "zone": self.zone,
            "region": self.region,
            "partition": self.info.partition if self.info else None,
            "tier": self.tier,
        }


def _parse_identity(r: Reader) -> _Identity:
    """Environment, residency zone, tier, and a region that lies inside the zone."""
    environment = r.string("environment", ENVIRONMENTS)
    zone_name = r.string("residencyZone", tuple(ZONES))
    tier = r.string("tier", TIERS)

    region = r.raw.get(REGION_KEY)
    if not isinstance(region, str) or not region:
        allowed = (
            f"required; zone {zone_name} allows {', '.join(ZONES[zone_name].region_names)}"
            if zone_name
            else "required: an AWS region inside the residency zone"
        )
        r.problem(REGION_KEY, region, allowed)
        region = None
    elif zone_name is not None and region not in ZONES[zone_name].region_names:
        other = zone_of_region(region)
        where = f" (it belongs to zone {other.name})" if other else ""
        r.problem(
            REGION_KEY,
            region,
            f"a region inside residency zone '{zone_name}': "
            f"{', '.join(ZONES[zone_name].region_names)}{where}",
        )
        region = None
    info = region_info(region) if region else None
    return _Identity(environment, zone_name, tier, region, info)


def _parse_tags(r: Reader) -> Tags | None:
    """The owner, cost-center and data-classification tags."""
    owner = r.string("owner")
    cost_center = r.string("costCenter")
    classification = r.string("dataClassification", DATA_CLASSIFICATIONS)
    for name, value in (("owner", owner), ("costCenter", cost_center)):
        if value is not None and not TAG_VALUE.fullmatch(value):
            r.problem(
                name, value, "1-128 characters: letters, digits, inner spaces and _ . : / = + - @"
            )
    if owner is None or cost_center is None or classification is None:
        return None
    return Tags(owner, cost_center, classification)


def _parse_network(r: Reader, identity: _Identity) -> NetworkConfig | None:
    """The VPC: a private CIDR, enough AZs for the posture, and the NAT layout."""
    production = identity.production
    cidr_text = r.string("vpcCidr")
    if cidr_text is not None:
        try:
            net = ipaddress.ip_network(cidr_text, strict=True)
            if net.version != 4 or not net.is_private or not 16 <= net.prefixlen <= 20:
                raise ValueError
        except ValueError:
            r.problem(
                "vpcCidr", cidr_text, "a private IPv4 network from /16 to /20, e.g. 10.40.0.0/16"
            )
            cidr_text = None
    info = identity.info
    max_azs = len(info.availability_zones) if info else 3
    az_count = r.integer("azCount", 2, max_azs)
    if production and az_count is not None and az_count < 3:
        r.problem("azCount", az_count, "3 in prod (a zone outage must not take the platform down)")
    single_nat = r.boolean("singleNatGateway")
    # SMB stacks may share one NAT: AWS-service traffic already stays on the VPC endpoints, so
    # an AZ outage only cuts the other AZs' internet egress, not the platform.
    tier_raw = r.raw.get("tier", "enterprise")
    if production and single_nat and tier_raw != "smb":
        r.problem("singleNatGateway", True, "false in prod for enterprise stacks (one NAT per AZ)")
    if info is None or cidr_text is None or az_count is None or single_nat is None:
        return None
    return NetworkConfig(
        cidr=cidr_text,
        az_count=az_count,
        availability_zones=info.availability_zones[:az_count],
        single_nat_gateway=single_nat,
    )


def _parse_log_retention(r: Reader, production: bool) -> int | None:
    """Days of flow and control-plane logs: a CloudWatch value, a year in prod."""
    retention = r.integer("logRetentionDays", 1, 3653)
    if retention is not None and retention not in LOG_RETENTION_DAYS:
        r.problem(
            "logRetentionDays", retention, f"a CloudWatch retention value: {LOG_RETENTION_DAYS}"
        )
        retention = None
    elif production and retention is not None and retention < 365:
        r.problem("logRetentionDays", retention, ">= 365 in prod (audit evidence for a year)")
    return retention


def _parse_cluster(r: Reader, environment: str | None) -> ClusterConfig | None:
    """The EKS control plane: version, and a public endpoint only in dev, to listed CIDRs."""
    version = r.string("kubernetesVersion", KUBERNETES_VERSIONS)
    public = r.boolean("endpointPublicAccess")
    cidrs = r.strings("publicAccessCidrs")
    if public and environment is not None and environment != "dev":
        r.problem("endpointPublicAccess", True, f"false outside dev (this stack is {environment})")
    if public and cidrs is not None and not cidrs:
        r.problem("publicAccessCidrs", [], "at least one CIDR when endpointPublicAccess is true")
    for c in cidrs or ():
        if not is_specific_cidr(c):
            r.problem(
                "publicAccessCidrs",
                c,
                "a specific IPv4 CIDR such as 203.0.113.0/24 (never 0.0.0.0/0)",
            )
    if cidrs and not public:
        r.problem("publicAccessCidrs", list(cidrs), "empty unless endpointPublicAccess is true")
    if version is None or public is None or cidrs is None:
        return None
    return ClusterConfig(
        kubernetes_version=version, endpoint_public_access=public, public_access_cidrs=cidrs
    )


def _pool_instance_types(r: Reader, p: str, gpu: bool) -> tuple[str, ...] | None:
    """A pool's instance types: at least one, GPU families exactly in the GPU pool."""
    types = r.strings(f"{p}InstanceTypes")
    if types is not None:
        if not types:
            r.problem(f"{p}InstanceTypes", list(types), "at least one EC2 instance type")
        for t in types:
            family = t.split(".")[0]
            if not INSTANCE_TYPE.fullmatch(t):
                r.problem(f"{p}InstanceTypes", t, "an EC2 instance type such as m7i.xlarge")
            elif gpu and family not in GPU_INSTANCE_FAMILIES:
                r.problem(
                    f"{p}InstanceTypes",
                    t,
                    f"a GPU instance family: one of {', '.join(GPU_INSTANCE_FAMILIES)}",
                )
            elif not gpu and family in GPU_INSTANCE_FAMILIES:
                r.problem(f"{p}InstanceTypes", t, "a CPU instance family (GPUs go in the gpu pool)")
    return types


def _pool_sizes(
    r: Reader, p: str, role: str, production: bool
) -> tuple[int | None, int | None, int | None]:
    """A pool's (min, desired, max) node counts, in order; the system pool keeps a floor."""
    low = r.integer(f"{p}MinSize", 0, 1000)
    desired = r.integer(f"{p}DesiredSize", 0, 1000)
    high = r.integer(f"{p}MaxSize", 1, 1000)
    if role == "system" and low is not None and low < (2 if production else 1):
        r.problem(
            f"{p}MinSize",
            low,
            f">= {2 if production else 1}: the system pool runs CoreDNS and the platform services",
        )
    if low is not None and desired is not None and high is not None and not low <= desired <= high:
        r.problem(
            f"{p}DesiredSize",
            desired,
            f"between {p}MinSize ({low}) and {p}MaxSize ({high})",
        )
    return low, desired, high


def _pool_labels(r: Reader, p: str) -> tuple[tuple[str, str], ...]:
    """A pool's extra node labels, each ``key=value``."""
    labels: list[tuple[str, str]] = []
    for item in r.strings(f"{p}Labels") or ():
        k, sep, v = item.partition("=")
        if not sep or not LABEL_KEY.fullmatch(k) or not LABEL_VALUE.fullmatch(v):
            r.problem(f"{p}Labels", item, "'key=value' with a valid Kubernetes label key and value")
        else:
            labels.append((k, v))
    return tuple(labels)


def _pool_taints(r: Reader, p: str, gpu: bool) -> tuple[Taint, ...] | None:
    """A pool's taints, each ``key=value:Effect``; the GPU pool must carry the GPU taint."""
    taints: list[Taint] = []
    raw_taints = r.strings(f"{p}Taints")
    for item in raw_taints or ():
        m = re.fullmatch(r"([^=:]+)=([^:]*):(\w+)", item)
        if (
            not m
            or not LABEL_KEY.fullmatch(m[1])
            or not LABEL_VALUE.fullmatch(m[2])
            or m[3] not in TAINT_EFFECTS
        ):
            r.problem(
                f"{p}Taints",
                item,
                f"'key=value:Effect' with Effect one of {', '.join(TAINT_EFFECTS)}",
            )
        else:
            taints.append(Taint(m[1], m[2], m[3]))
    if (
        gpu
        and raw_taints is not None
        and not any(t.key == GPU_TAINT_KEY and t.effect == "NoSchedule" for t in taints)
    ):
        r.problem(
            f"{p}Taints",
            list(raw_taints),
            f"must include '{GPU_TAINT_KEY}=true:NoSchedule' so only GPU workloads land there",
        )
    return None if raw_taints is None else tuple(taints)


def _parse_pool(r: Reader, role: str, production: bool) -> NodePoolConfig | None:
    """One node pool role; None when it is disabled or has a problem."""
    p = f"{role}Pool"
    if role != "system" and not r.boolean(f"{p}Enabled"):
        return None
    gpu = role == "gpu"
    types = _pool_instance_types(r, p, gpu)
    capacity = r.string(f"{p}CapacityType", CAPACITY_TYPES)
    if role == "system" and capacity == "SPOT":
        r.problem(f"{p}CapacityType", capacity, "ON_DEMAND: platform services must not be evicted")
    low, desired, high = _pool_sizes(r, p, role, production)
    disk = r.integer(f"{p}DiskGiB", 20, 16384)
    labels = _pool_labels(r, p)
    taints = _pool_taints(r, p, gpu)
    if (
        types is None
        or capacity is None
        or low is None
        or desired is None
        or high is None
        or disk is None
        or taints is None
    ):
        return None
    return NodePoolConfig(
        role=role,
        gpu=gpu,
        instance_types=types,
        capacity_type=capacity,
        min_size=low,
        desired_size=desired,
        max_size=high,
        disk_gib=disk,
        labels=labels,
        taints=taints,
    )


def _parse_node_pools(r: Reader, production: bool) -> tuple[NodePoolConfig, ...]:
    """The enabled node pools, in ``POOL_ROLES`` order."""
    return tuple(p for p in (_parse_pool(r, role, production) for role in POOL_ROLES) if p)


def _parse_kms_deletion_window(r: Reader, production: bool) -> int | None:
    """Days before a scheduled KMS key deletion happens; the longest allowed in prod."""
    deletion_window = r.integer("kmsDeletionWindowDays", 7, 30)
    if production and deletion_window is not None and deletion_window < 30:
        r.problem("kmsDeletionWindowDays", deletion_window, "30 in prod (time to notice a mistake)")
    return deletion_window


def _parse_tenants(r: Reader) -> tuple[str, ...] | None:
    """Tenant namespaces: valid, unreserved and unique names."""
    tenants = r.strings("tenants")
    seen: set[str] = set()
    for t in tenants or ():
        if not TENANT_NAME.fullmatch(t):
            r.problem("tenants", t, TENANT_NAME_RULE)
        elif t in RESERVED_NAMESPACES:
            r.problem("tenants", t, f"not a reserved namespace ({', '.join(RESERVED_NAMESPACES)})")
        elif t in seen:
            r.problem("tenants", t, "unique tenant names")
        seen.add(t)
    return tenants


def _parse_served_versions(r: Reader, served: list[str]) -> tuple[tuple[str, int], ...]:
    """``servedModelVersions``: one ``name:N`` per served model at most, names from
    ``servedModels`` (whether a prod stack names an approved one is the gate's check)."""
    versions: list[tuple[str, int]] = []
    for item in r.strings("servedModelVersions") or ():
        model, sep, number = item.partition(":")
        if not sep or not number.isdigit() or int(number) < 1 or number != str(int(number)):
            r.problem("servedModelVersions", item, "'name:N' with N a registry version (1, 2, ...)")
        elif model not in served:
            r.problem(
                "servedModelVersions",
                item,
                f"a model of servedModels ({', '.join(served) or 'none is served'})",
            )
        elif model in {name for name, _ in versions}:
            r.problem("servedModelVersions", item, "one version per served model")
        else:
            versions.append((model, int(number)))
    return tuple(versions)


def _parse_serving(r: Reader) -> _Fields:
    """Served models, canary steps, and the scale-to-zero settings with their warm hours."""
    served: list[tuple[str, str]] = []
    served_raw = r.strings("servedModels")
    for item in served_raw or ():
        model, sep, profile = item.partition(":")
        if not sep or not TENANT_NAME.fullmatch(model) or profile not in ("gpu", "cpu"):
            r.problem("servedModels", item, "'name:profile' with a DNS-style name and gpu or cpu")
        elif (
            profile == "gpu"
            and r.raw.get("gpuPoolEnabled", True) in (False, "false")
            and r.peek("tier") != "smb"  # the tier's own rule says what to do (infra.config.tiers)
        ):
            r.problem("servedModels", item, "a gpu profile needs gpuPoolEnabled: true (or use cpu)")
        else:
            served.append((model, profile))
    versions = _parse_served_versions(r, [name for name, _ in served])
    steps = r.integers("canarySteps")
    if steps is not None and (
        not steps or list(steps) != sorted(set(steps)) or steps[0] < 1 or steps[-1] != 100
    ):
        r.problem("canarySteps", list(steps), "increasing percentages from 1, ending at 100")
        steps = None
    scale_to_zero = r.boolean("servingScaleToZero")
    idle_minutes = r.integer("servingIdleMinutes", *IDLE_MINUTES)
    if scale_to_zero and served_raw == ():
        r.problem(
            "servingScaleToZero",
            True,
            "false when servedModels is empty (there is nothing to scale to zero)",
        )
    warm_hours = r.string("servingWarmHours") or ""
    if warm_hours and warm_hours_cron(warm_hours) is None:
        r.problem(
            "servingWarmHours",
            warm_hours,
            "days and local hours 'Ddd[-Ddd] HH:MM-HH:MM' (Sun..Sat, start before end), "
            "e.g. 'Mon-Fri 08:00-18:00'",
        )
        warm_hours = ""
    return {
        "served_models": tuple(served),
        "served_model_versions": versions,
        "canary_steps": steps or (),
        "serving_scale_to_zero": bool(scale_to_zero),
        "serving_idle_minutes": idle_minutes,
        "serving_warm_hours": warm_hours,
    }


_IMAGE = r"[A-Za-z0-9_.:/-]+:[A-Za-z0-9_.-]+"
"""An image reference with a tag (ASCII: registries refuse anything else)."""


def _parse_images(r: Reader) -> _Fields:
    """Where images come from, the pinned workload images (model puller, drift monitor) and the
    drift threshold. An empty image key means the inventory's image, resolved by the program
    from the image source (infra/images/sources.py), so the default is spelled in one place."""
    source = r.string("imageSource", IMAGE_SOURCES)
    # prod on upstream is refused by the gate (SOV-SUP-001 names every public image), not here:
    # a prod config stays loadable so the gate can show each image that leaves the zone.
    accounts = r.peek("allowedAccountIds")
    if source == "mirror" and not accounts:
        r.problem(
            "imageSource",
            source,
            "mirror needs allowedAccountIds: the mirror is the first listed account's ECR",
        )
    puller = r.string("modelPullerImage")
    if puller and not re.fullmatch(rf"{_IMAGE}(@sha256:[0-9a-f]{{64}})?", puller):
        r.problem("modelPullerImage", puller, "an image with a pinned tag, e.g. repo/name:1.2.3")
    elif puller and puller.endswith(":latest"):
        r.problem("modelPullerImage", puller, "a pinned tag, not latest")
    drift_text = r.string("driftThreshold")
    drift_threshold: float | None = None
    try:
        if drift_text is not None and not re.fullmatch(r"[0-9]{1,2}(\.[0-9]{1,6})?", drift_text):
            raise ValueError
        drift_threshold = float(drift_text) if drift_text is not None else None
        if drift_threshold is not None and not 0 < drift_threshold < 10:
            raise ValueError
    except ValueError:
        r.problem("driftThreshold", drift_text, "a number between 0 and 10, e.g. 0.2")
        drift_threshold = None
    drift_image = r.string("driftMonitorImage")
    if drift_image and (not re.fullmatch(_IMAGE, drift_image) or drift_image.endswith(":latest")):
        r.problem("driftMonitorImage", drift_image, "an image with a pinned tag, not latest")
    return {
        "model_puller_image": puller,
        "drift_threshold": drift_threshold or 0.2,
        "drift_image": drift_image,
        "image_source": source,
    }


def _parse_vault(r: Reader) -> _Fields:
    """Where the deployer reaches Vault (TLS only) and whether to configure it."""
    vault_address = r.string("vaultAddress")
    if vault_address is not None and not re.fullmatch(
        r"https://[A-Za-z0-9_.-]+(:[0-9]{1,5})?/?", vault_address
    ):
        r.problem("vaultAddress", vault_address, "an https:// address (Vault traffic is TLS only)")
    vault_configure = r.boolean("vaultConfigure")
    return {"vault_address": vault_address, "vault_configure": bool(vault_configure)}


def _parse_budget(r: Reader) -> _Fields:
    """Who the stack is billed to (its tenant), its monthly budget and who gets the alerts."""
    tenant = r.string("tenant")
    if tenant and not TENANT_NAME.fullmatch(tenant):
        r.problem("tenant", tenant, TENANT_NAME_RULE)
    budget = r.integer("monthlyBudgetUsd", 0, 10_000_000)
    emails = r.strings("budgetAlertEmails")
    for e in emails or ():
        if not EMAIL.fullmatch(e):
            r.problem("budgetAlertEmails", e, "an e-mail address")
    if budget and emails is not None and not emails:
        r.problem("budgetAlertEmails", [], "at least one address when monthlyBudgetUsd > 0")
    return {
        "tenant": tenant or "",
        "monthly_budget_usd": budget or 0,
        "budget_alert_emails": emails or (),
    }


def _bare(key: str) -> str:
    """``sovereign-ml:name`` as ``name``; any other key (``aws:region``, ``a:b:c``) as written."""
    name = key.removeprefix(f"{PROJECT}:")
    return name if ":" not in name else key


def parse(
    raw: Mapping[str, Any],
    *,
    stack: str,
    source: str,
    secret_keys: Collection[str] = (),
) -> PlatformConfig | list[ConfigProblem]:
    """Build the typed config from raw stack values, or return every problem found.

    Args:
        raw: The stack's config values keyed by bare name (``environment``) or ``aws:region``;
            fully qualified ``sovereign-ml:`` keys are accepted too. Values may be native YAML
            types or the strings the Pulumi engine passes to a program.
        stack: The stack name (``prod-uae``).
        source: The stack file, named in every problem.
        secret_keys: Keys whose stack-file values were ``secure:`` (their raw values are
            placeholders); a plain value under a key named like a credential is an error.
    """
    r = Reader({_bare(k): v for k, v in raw.items()}, source, secret_keys)
    check_keys(r)
    identity = _parse_identity(r)
    production = identity.production
    # A dict display evaluates left to right: the sections run, and report, in this order.
    sections: _Fields = {
        "tags": _parse_tags(r),
        "network": _parse_network(r, identity),
        "log_retention_days": _parse_log_retention(r, production),
        "cluster": _parse_cluster(r, identity.environment),
        "node_pools": _parse_node_pools(r, production),
        "kms_deletion_window_days": _parse_kms_deletion_window(r, production),
        "tenants": _parse_tenants(r),
        **_parse_serving(r),
        **_parse_images(r),
        **_parse_vault(r),
        **_parse_budget(r),
        **parse_boundaries(r),
        **parse_slos(r),
        **parse_logs(r),
        **parse_audit(r, production),
        "alerting": parse_receivers(r, identity.environment),
        "sso": parse_sso(r),
        "gateway": parse_gateway(r),
    }
    check_tier(r, identity.tier)
    check_sso_in_zone(r, sections["sso"], sections.get("in_zone_external_resources"))
    if r.problems:
        return r.problems
    fields = {**identity.fields(), **sections}
    # A Reader records a problem for every value it cannot read, so none is missing here
    # (sso is None by choice: ssoConnector none).
    assert None not in (v for k, v in fields.items() if k != "sso")
    return PlatformConfig(stack=stack, source=source, **fields)


def load(raw: Mapping[str, Any], *, stack: str, source: str) -> PlatformConfig:
    """Like ``parse`` but raises ``ConfigError`` with every problem."""
    result = parse(raw, stack=stack, source=source)
    if isinstance(result, list):
        raise ConfigError(result)
    return result


def from_pulumi(get: Callable[[str], Any], *, stack: str, source: str) -> PlatformConfig:
    """Load the config inside a Pulumi program; ``get(key)`` returns a raw value or None."""
    names = [k.name for k in KEYS if not k.secret] + [REGION_KEY]
    raw = {n: get(n) for n in names}
    # A credential's text never enters the config: only that it is set (as a secret).
    secrets = [k.name for k in KEYS if k.secret and get(k.name)]
    raw.update({n: "[secret]" for n in secrets})
    result = parse(raw, stack=stack, source=source, secret_keys=secrets)
    if isinstance(result, list):
        raise ConfigError(result)
    return result
