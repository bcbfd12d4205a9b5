"""The config keys of a stack: their names, types, defaults and the values each allows.

Pulumi's project file can type config keys only as string, integer, boolean or array (objects are
not declarable), so every key is flat and typed; the node pools are three fixed roles (``system``,
``workers``, ``gpu``) with the same fields each. ``KEYS`` below is the single source of the key
set: ``Pulumi.yaml`` is generated from it (``sovml config schema``) and a test keeps them equal.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from infra.config.key import REQUIRED, Key
from infra.config.sso_keys import SSO_KEYS
from policies.zones import ZONES

PROJECT = "sovereign-ml"
"""Pulumi project name; also the config namespace of every key below."""
REGION_KEY = "aws:region"
"""The one foreign key a stack must set: the AWS provider's region."""

ENVIRONMENTS = ("dev", "staging", "prod")
TIERS = ("enterprise", "smb")
IMAGE_SOURCES = ("upstream", "mirror")
DATA_CLASSIFICATIONS = ("public", "internal", "confidential", "restricted")
CAPACITY_TYPES = ("ON_DEMAND", "SPOT")
TAINT_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")
POOL_ROLES = ("system", "workers", "gpu")
# EKS versions in standard support on 2026-11-23; checkov's CKV_AWS_339 holds a similar list.
KUBERNETES_VERSIONS = ("1.32", "1.33", "1.34")
# CloudWatch Logs accepts only these retention periods (days).
LOG_RETENTION_DAYS = (
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922,
    3288, 3653,
)  # fmt: skip
# Instance families with NVIDIA GPUs; a GPU pool must use them and a CPU pool must not.
GPU_INSTANCE_FAMILIES = ("g4dn", "g5", "g6", "g6e", "gr6", "p3", "p4d", "p4de", "p5", "p5e", "p5en")
GPU_TAINT_KEY = "nvidia.com/gpu"
RESERVED_NAMESPACES = (
    "default", "kube-system", "kube-public", "kube-node-lease", "kubeflow", "feature-store",
    "serving", "monitoring", "vault", "keda", "cert-manager", "auth",
)  # fmt: skip
# servingIdleMinutes: shorter than the scrape and rate windows flaps; a day is "always on".
IDLE_MINUTES = (5, 1440)
WARM_HOURS = re.compile(
    r"(?P<d1>Mon|Tue|Wed|Thu|Fri|Sat|Sun)(-(?P<d2>Mon|Tue|Wed|Thu|Fri|Sat|Sun))? "
    r"(?P<h1>[01]\d|2[0-3]):(?P<m1>[0-5]\d)-(?P<h2>[01]\d|2[0-3]):(?P<m2>[0-5]\d)"
)
"""``servingWarmHours``: days and local hours, e.g. ``Mon-Fri 08:00-18:00``."""
_CRON_DAYS = {"Sun": 0, "Mon": 1, "Tue": 2, "Wed": 3, "Thu": 4, "Fri": 5, "Sat": 6}


def warm_hours_cron(text: str) -> tuple[str, str] | None:
    """``(start, end)`` cron expressions of a ``servingWarmHours`` value; None if malformed.

    >>> warm_hours_cron("Mon-Fri 08:00-18:00")
    ('0 8 * * 1-5', '0 18 * * 1-5')
    """
    m = WARM_HOURS.fullmatch(text)
    if m is None or (m["h1"], m["m1"]) >= (m["h2"], m["m2"]):
        return None
    days = str(_CRON_DAYS[m["d1"]])
    if m["d2"]:
        if _CRON_DAYS[m["d2"]] <= _CRON_DAYS[m["d1"]]:
            return None
        days += f"-{_CRON_DAYS[m['d2']]}"
    start = f"{int(m['m1'])} {int(m['h1'])} * * {days}"
    return start, f"{int(m['m2'])} {int(m['h2'])} * * {days}"


# Every pattern below is applied with ``fullmatch`` (never ``match`` with ``$``, which also
# accepts a trailing newline): a value is valid only when the whole value matches.
TENANT_NAME = re.compile(r"[a-z][a-z0-9-]{1,28}[a-z0-9]")
INSTANCE_TYPE = re.compile(r"[a-z][a-z0-9-]*\.[a-z0-9]+")
LABEL_KEY = re.compile(
    r"([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?"
)
LABEL_VALUE = re.compile(r"([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?")
TAG_VALUE = re.compile(r"[\w.:/=+@-]([\w .:/=+@-]{0,126}[\w.:/=+@-])?")
"""An AWS tag value: 1-128 characters, inner spaces only (a trailing space is invisible)."""
EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[a-z]{2,}")
STACK_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")
"""A stack name as Pulumi allows it (and no path: ``..`` or ``/`` never reach the file system)."""
TENANT_NAME_RULE = "3-30 characters: lower-case letters, digits and '-', starting with a letter"
"""What ``TENANT_NAME`` allows, in words (the tail of every tenant-name problem)."""


# --------------------------------------------------------------------------------------------
# The key schema
# --------------------------------------------------------------------------------------------


def _pool_keys(role: str, what: str, defaults: Mapping[str, Any]) -> list[Key]:
    """The keys of one node pool role (``<role>Pool...``); ``what`` names the pool in prose."""
    prefix = f"{role}Pool"
    keys = []
    if role != "system":
        keys.append(
            Key(f"{prefix}Enabled", "boolean", f"Whether the {what} exists.", defaults["enabled"])
        )
    keys += [
        Key(
            f"{prefix}InstanceTypes",
            "array",
            f"EC2 instance types of the {what}, cheapest first"
            + (" (NVIDIA GPU families only)." if role == "gpu" else " (no GPU families)."),
            defaults["instanceTypes"],
        ),
        Key(
            f"{prefix}CapacityType",
            "string",
            f"ON_DEMAND or SPOT for the {what}"
            + (" (the system pool is always ON_DEMAND)." if role == "system" else "."),
            defaults["capacityType"],
        ),
        Key(
            f"{prefix}MinSize",
            "integer",
            f"Minimum node count of the {what} (>= 0).",
            defaults["min"],
        ),
        Key(
            f"{prefix}DesiredSize",
            "integer",
            f"Initial node count of the {what} (min <= desired <= max).",
            defaults["desired"],
        ),
        Key(
            f"{prefix}MaxSize",
            "integer",
            f"Maximum node count of the {what} (>= 1).",
            defaults["max"],
        ),
        Key(
            f"{prefix}DiskGiB",
            "integer",
            f"Encrypted gp3 root volume size of the {what} nodes in GiB (20-16384).",
            defaults["disk"],
        ),
        Key(
            f"{prefix}Labels",
            "array",
            f"Extra Kubernetes node labels of the {what}, each 'key=value'.",
            defaults["labels"],
        ),
        Key(
            f"{prefix}Taints",
            "array",
            f"Kubernetes taints of the {what}, each 'key=value:Effect'"
            + (" (must include nvidia.com/gpu=true:NoSchedule)." if role == "gpu" else "."),
            defaults["taints"],
        ),
    ]
    return keys


ALERT_KEYS: tuple[Key, ...] = (
    Key(
        "alertPagerdutyRoutingKey",
        "string",
        "PagerDuty Events v2 routing key for pages (secret: `pulumi config set --secret`).",
        "",
        secret=True,
    ),
    Key(
        "alertOpsgenieApiKey",
        "string",
        "Opsgenie API key for pages (secret: `pulumi config set --secret`).",
        "",
        secret=True,
    ),
    Key(
        "alertServicenowUrl",
        "string",
        "ServiceNow inbound webhook URL (https) that opens tickets from warnings; '' for none.",
        "",
    ),
    Key("alertServicenowUser", "string", "Basic-auth user of the ServiceNow webhook.", ""),
    Key(
        "alertServicenowPassword",
        "string",
        "Password of alertServicenowUser (secret: `pulumi config set --secret`).",
        "",
        secret=True,
    ),
    Key(
        "alertWebhookUrl",
        "string",
        "Generic incident webhook (https) receiving pages and tickets; '' for none.",
        "",
    ),
    Key("alertEmailTo", "array", "Addresses that receive tickets (warnings) by e-mail.", []),
    Key("alertEmailFrom", "string", "Sender address of alert e-mails.", ""),
    Key(
        "alertEmailSmarthost",
        "string",
        "SMTP relay 'host:port' for alert e-mails (TLS is always required).",
        "",
    ),
    Key("alertEmailUsername", "string", "SMTP user for alert e-mails; '' for none.", ""),
    Key(
        "alertEmailPassword",
        "string",
        "Password of alertEmailUsername (secret: `pulumi config set --secret`).",
        "",
        secret=True,
    ),
    Key(
        "alertTenantWebhooks",
        "array",
        "A tenant's own alert receiver, each 'tenant=https://url'; alerts labelled with the "
        "tenant (tenant or namespace label) go there too.",
        [],
    ),
)
"""Alertmanager receivers (components._alertmanager_config); prod needs a paging one."""

GATEWAY_KEYS: tuple[Key, ...] = (
    Key(
        "gatewayOidcIssuer",
        "string",
        "OIDC issuer (https URL, the tokens' iss) whose JWTs the inference gateway accepts; "
        "required when the stack serves models.",
        "",
    ),
    Key(
        "gatewayOidcJwksUri",
        "string",
        "The issuer's JWKS URL (https) the gateway verifies token signatures with.",
        "",
    ),
    Key(
        "gatewayOidcAudiences",
        "array",
        "Audiences (aud) a token must carry one of; never empty.",
        ["sovml-inference"],
    ),
    Key("gatewayHostname", "string", "DNS name clients call the gateway by.", "inference.internal"),
    Key(
        "gatewayMaxRequestBytes",
        "integer",
        "Largest inference request body the gateway forwards (1024-67108864; larger: 413).",
        4194304,
    ),
    Key(
        "gatewayRateLimitRps",
        "integer",
        "Requests per second each gateway replica admits (1-100000; more: 429).",
        200,
    ),
)
"""The inference gateway (components.inference_gateway, infra.config.gateway)."""


KEYS: tuple[Key, ...] = (
    Key(
        "environment",
        "string",
        "Stack environment: dev, staging or prod (prod protects state).",
        "prod",
    ),
    Key("residencyZone", "string", f"Data-residency zone: one of {', '.join(ZONES)}.", "uae"),
    Key(
        "tier", "string", "Platform tier: enterprise or smb (sizes shared services).", "enterprise"
    ),
    Key("owner", "string", "Owner tag on every resource (team or person accountable).", REQUIRED),
    Key("costCenter", "string", "cost-center tag on every resource (for chargeback).", REQUIRED),
    Key(
        "dataClassification",
        "string",
        "data-classification tag: public, internal, confidential or restricted.",
        "confidential",
    ),
    Key(
        "vpcCidr", "string", "IPv4 CIDR of the VPC: private (RFC 1918), /16 to /20.", "10.40.0.0/16"
    ),
    Key("azCount", "integer", "Availability zones to span: 2 or 3 (prod needs 3).", 3),
    Key(
        "singleNatGateway",
        "boolean",
        "One NAT gateway for all AZs instead of one per AZ (cheaper; not allowed in prod).",
        False,
    ),
    Key(
        "logRetentionDays",
        "integer",
        "Retention of flow logs and control-plane logs in days (a CloudWatch value; prod >= 365).",
        365,
    ),
    Key(
        "auditRetentionDays",
        "integer",
        "Object Lock retention (COMPLIANCE mode) of the audit trail bucket's files in days "
        "(1-36500; prod >= 365).",
        2557,
    ),
    Key(
        "auditLogRetentionDays",
        "integer",
        "Retention of the audit trail's CloudWatch Logs group in days (a CloudWatch value; "
        "prod >= 365).",
        365,
    ),
    Key(
        "logMaskedFields",
        "array",
        "Fields of container log records (JSON logs merged into the record) that Fluent Bit "
        "removes on the node before shipping, e.g. password, token.",
        ["password", "token", "authorization", "secret", "emirates_id"],
    ),
    Key(
        "kubernetesVersion",
        "string",
        f"EKS Kubernetes version: one of {', '.join(KUBERNETES_VERSIONS)}.",
        "1.33",
    ),
    Key(
        "endpointPublicAccess",
        "boolean",
        "Expose the EKS API publicly (dev only, and only to publicAccessCidrs).",
        False,
    ),
    Key(
        "publicAccessCidrs",
        "array",
        "CIDRs allowed to reach a public EKS endpoint (dev only; never 0.0.0.0/0).",
        [],
    ),
    *_pool_keys(
        "system",
        "system node pool (platform services, on-demand CPU)",
        {
            "instanceTypes": ["m7i.xlarge"],
            "capacityType": "ON_DEMAND",
            "min": 2,
            "desired": 3,
            "max": 6,
            "disk": 100,
            "labels": ["sovereign-ml/pool=system"],
            "taints": [],
        },
    ),
    *_pool_keys(
        "workers",
        "CPU worker pool (pipelines, CPU inference)",
        {
            "enabled": True,
            "instanceTypes": ["c7i.2xlarge", "m7i.2xlarge"],
            "capacityType": "ON_DEMAND",
            "min": 0,
            "desired": 1,
            "max": 10,
            "disk": 100,
            "labels": ["sovereign-ml/pool=workers"],
            "taints": [],
        },
    ),
    *_pool_keys(
        "gpu",
        "GPU node pool (training, GPU inference)",
        {
            "enabled": True,
            "instanceTypes": ["g5.2xlarge"],
            "capacityType": "ON_DEMAND",
            "min": 0,
            "desired": 1,
            "max": 4,
            "disk": 200,
            "labels": ["sovereign-ml/pool=gpu", "nvidia.com/gpu.present=true"],
            "taints": ["nvidia.com/gpu=true:NoSchedule"],
        },
    ),
    Key(
        "kmsDeletionWindowDays",
        "integer",
        "Waiting period before a scheduled KMS key deletion, 7-30 days (prod: 30).",
        30,
    ),
    Key("tenants", "array", "Tenant names; each gets a namespace and quotas.", []),
    Key(
        "vaultAddress",
        "string",
        "HTTPS address the deployer reaches Vault at to configure it (token from VAULT_TOKEN).",
        "https://127.0.0.1:8200",
    ),
    Key(
        "vaultConfigure",
        "boolean",
        "Declare Vault's engines, policies and roles; false until Vault is up and initialised "
        "(two-step bootstrap, see README).",
        False,
    ),
    Key(
        "servedModels",
        "array",
        "Models Triton serves, each 'name:profile' with profile gpu or cpu (cpu needs no GPUs).",
        ["credit-risk:gpu"],
    ),
    Key(
        "servedModelVersions",
        "array",
        "The registry version each served model serves, 'name:N' (name as in servedModels); a "
        "prod stack must name an approved version for every served model (gate SOV-MOD-001).",
        [],
    ),
    Key(
        "canarySteps",
        "array",
        "Traffic percentages a new model version moves through, each step gated by analysis; "
        "increasing, ending at 100.",
        [5, 25, 50, 100],
        items="integer",
    ),
    Key(
        "servingScaleToZero",
        "boolean",
        "Let KEDA scale each served model to zero replicas after servingIdleMinutes without "
        "requests (no serving node while idle; waking is a cold start of minutes). Off by "
        "default; the smb tenant template turns it on.",
        False,
    ),
    Key(
        "servingIdleMinutes",
        "integer",
        "Minutes without inference requests before a scale-to-zero model goes to zero "
        f"replicas ({IDLE_MINUTES[0]}-{IDLE_MINUTES[1]}).",
        15,
    ),
    Key(
        "servingWarmHours",
        "string",
        "With servingScaleToZero: days and local hours (the residency zone's time zone) when "
        "served models are kept at their floor, e.g. 'Mon-Fri 08:00-18:00'; outside them they "
        "go to zero once idle. Empty: no schedule (an idle model must then be woken by hand).",
        "",
    ),
    Key(
        "modelPullerImage",
        "string",
        "Pinned image of the init container that pulls (and decrypts) model repositories. "
        "Empty: the inventory's model-puller (policies/inventory.toml).",
        "",
    ),
    Key(
        "imageSource",
        "string",
        "Where workloads and Helm releases pull images and charts: upstream (the public "
        "registries, by tag) or mirror (the zone's ECR registry of the first allowedAccountIds "
        "account, by digest where policies/images.lock.toml pins one). The gate refuses upstream "
        "images in prod (SOV-SUP-001).",
        "upstream",
    ),
    Key(
        "driftThreshold",
        "string",
        "PSI above which a feature counts as drifted and retraining is requested (a number, "
        "as text: Pulumi config has no float type).",
        "0.2",
    ),
    Key(
        "driftMonitorImage",
        "string",
        "Pinned image of the hourly drift job (this repository's kernels and drift_job). "
        "Empty: the inventory's drift-monitor (policies/inventory.toml).",
        "",
    ),
    Key(
        "tenant",
        "string",
        "The tenant this whole stack belongs to (SMB stacks); tagged on every resource. Empty "
        "for a shared platform.",
        "",
    ),
    Key(
        "monthlyBudgetUsd",
        "integer",
        "Monthly AWS Budget for this stack in USD with alerts at 80% and 100%; 0 for none.",
        0,
    ),
    Key(
        "budgetAlertEmails",
        "array",
        "Addresses notified by the stack's budget alerts (required when monthlyBudgetUsd > 0).",
        [],
    ),
    Key(
        "allowedAccountIds",
        "array",
        "AWS account ids (12 digits) the stack may deploy into and assume roles in; the AWS "
        "provider refuses credentials of any other account. Empty: not pinned, and any "
        "assume-role is refused by the gate.",
        [],
    ),
    Key(
        "inZoneExternalResources",
        "array",
        "Resources outside this program that are known to be inside the residency zone and may "
        "be named as destinations: ARNs, S3 bucket names or host names. The gate refuses any "
        "other destination it cannot resolve to a resource the program declares.",
        [],
    ),
    Key(
        "ingressAllowedCidrs",
        "array",
        "Public IPv4/IPv6 CIDRs that security groups may admit (e.g. an office range); any "
        "other public ingress is refused by the gate.",
        [],
    ),
    Key(
        "sloAvailabilityTarget",
        "string",
        "Share of each served model's inference requests that must succeed (a number in (0, 1) "
        "as text, e.g. 0.999); burn-rate alerts page on its error budget.",
        "0.999",
    ),
    Key(
        "sloLatencyTargetMs",
        "integer",
        "p99 latency (ms) each served model must stay within for its latency SLO (1-60000).",
        100,
    ),
    Key(
        "sloLatencyObjective",
        "string",
        "Share of evaluations in which a model's p99 is within sloLatencyTargetMs (a number in "
        "(0, 1) as text; Triton exports quantiles, not histograms: a time-slice SLI).",
        "0.99",
    ),
    Key(
        "sloFeatureServerTarget",
        "string",
        "Share of successful scrapes of the feature server (its availability SLO; a number in "
        "(0, 1) as text).",
        "0.999",
    ),
    Key(
        "sloPipelineSuccessTarget",
        "string",
        "Share of training pipeline runs that must succeed (a number in (0, 1) as text); its "
        "burn-rate alerts judge 1d, 3d and 7d windows (runs are few a day).",
        "0.95",
    ),
    Key(
        "runbookBaseUrl",
        "string",
        "Base of every alert's runbook_url (<base>/<AlertName>.md): a URL of this repository's "
        "docs/runbooks, or the repository-relative default.",
        "docs/runbooks",
    ),
    *ALERT_KEYS,
    *SSO_KEYS,
    *GATEWAY_KEYS,
)

KEYS_BY_NAME: dict[str, Key] = {k.name: k for k in KEYS}
"""``KEYS`` by bare name (``environment``)."""
