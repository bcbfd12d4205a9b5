"""The typed stack configuration: one frozen ``PlatformConfig`` per stack, validated once.

Pulumi's project file can type config keys only as string, integer, boolean or array (objects are
not declarable), so every key is flat and typed; the node pools are three fixed roles (``system``,
``workers``, ``gpu``) with the same fields each. ``KEYS`` below is the single source of the key
set: ``Pulumi.yaml`` is generated from it (``sovml config schema``) and a test keeps them equal.

``parse()`` is a plain function, tested without Pulumi: it takes the raw values of a stack (as
found in the stack file, or as strings the way the Pulumi engine hands them to the program) and
returns either a ``PlatformConfig`` or every problem at once, each naming the stack file, the key,
the value and what is allowed.
"""

from __future__ import annotations

import contextlib
import difflib
import ipaddress
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from policies.zones import ZONES, region_info, zone_of_region

PROJECT = "sovereign-ml"
"""Pulumi project name; also the config namespace of every key below."""

ENVIRONMENTS = ("dev", "staging", "prod")
TIERS = ("enterprise", "smb")
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
    "serving", "monitoring", "vault", "keda",
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


TENANT_NAME = re.compile(r"^[a-z][a-z0-9-]{1,28}[a-z0-9]$")
INSTANCE_TYPE = re.compile(r"^[a-z][a-z0-9-]*\.[a-z0-9]+$")
LABEL_KEY = re.compile(
    r"^([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$"
)
LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$")
TAG_VALUE = re.compile(r"^[\w .:/=+@-]{1,128}$")


# --------------------------------------------------------------------------------------------
# The key schema
# --------------------------------------------------------------------------------------------

REQUIRED: Any = object()
"""Marker for keys without a default: the stack file must set them."""


@dataclass(frozen=True)
class Key:
    """One config key as ``Pulumi.yaml`` declares it."""

    name: str
    """Key name inside the ``sovereign-ml`` namespace (``aws:region`` is the one foreign key)."""
    type: str
    """Pulumi config type: ``string``, ``integer``, ``boolean`` or ``array`` (of strings)."""
    description: str
    """What the key means and what it allows, shown by ``pulumi config``."""
    default: Any = REQUIRED
    """Default applied when the stack file omits the key; ``REQUIRED`` when there is none."""
    items: str = "string"
    """Item type of an array key (``string`` or ``integer``)."""


def _pool_keys(role: str, what: str, defaults: Mapping[str, Any]) -> list[Key]:
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
        "Pinned image of the init container that pulls (and decrypts) model repositories.",
        "ghcr.io/sovereign-ml/model-puller:0.1.0",
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
        "Pinned image of the hourly drift job (this repository's kernels and drift_job).",
        "ghcr.io/sovereign-ml/drift-monitor:0.1.0",
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
)

KEYS_BY_NAME: dict[str, Key] = {k.name: k for k in KEYS}
REGION_KEY = "aws:region"


# --------------------------------------------------------------------------------------------
# The typed config
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Tags:
    """The three mandatory tags carried by every taggable resource."""

    owner: str
    cost_center: str
    data_classification: str

    def as_aws(self, **extra: str) -> dict[str, str]:
        """Tags in AWS form (``owner``, ``cost-center``, ``data-classification``) plus extras."""
        return {
            "owner": self.owner,
            "cost-center": self.cost_center,
            "data-classification": self.data_classification,
            **extra,
        }


@dataclass(frozen=True)
class Taint:
    """A Kubernetes node taint."""

    key: str
    value: str
    effect: str

    @property
    def eks_effect(self) -> str:
        """The taint effect as the EKS API spells it (``NO_SCHEDULE``)."""
        return re.sub(r"(?<!^)(?=[A-Z])", "_", self.effect).upper()


@dataclass(frozen=True)
class NodePoolConfig:
    """One node pool role as the stack asks for it."""

    role: str
    gpu: bool
    instance_types: tuple[str, ...]
    capacity_type: str
    min_size: int
    desired_size: int
    max_size: int
    disk_gib: int
    labels: tuple[tuple[str, str], ...]
    taints: tuple[Taint, ...]


@dataclass(frozen=True)
class NetworkConfig:
    """VPC layout."""

    cidr: str
    az_count: int
    availability_zones: tuple[str, ...]
    single_nat_gateway: bool


@dataclass(frozen=True)
class ClusterConfig:
    """EKS control plane settings."""

    kubernetes_version: str
    endpoint_public_access: bool
    public_access_cidrs: tuple[str, ...]


@dataclass(frozen=True)
class PlatformConfig:
    """Everything a stack asks for, validated; components get slices of it as Args."""

    stack: str
    source: str
    environment: str
    zone: str
    region: str
    partition: str
    tier: str
    tags: Tags
    network: NetworkConfig
    cluster: ClusterConfig
    node_pools: tuple[NodePoolConfig, ...]
    log_retention_days: int
    kms_deletion_window_days: int
    tenants: tuple[str, ...]
    served_models: tuple[tuple[str, str], ...] = ()
    canary_steps: tuple[int, ...] = (5, 25, 50, 100)
    serving_scale_to_zero: bool = False
    serving_idle_minutes: int = 15
    serving_warm_hours: str = ""
    model_puller_image: str = ""
    drift_threshold: float = 0.2
    drift_image: str = ""
    vault_address: str = "https://127.0.0.1:8200"
    vault_configure: bool = False
    tenant: str = ""
    monthly_budget_usd: int = 0
    budget_alert_emails: tuple[str, ...] = ()

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


# --------------------------------------------------------------------------------------------
# Parsing and validation
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ConfigProblem:
    """One thing wrong with a stack's config."""

    source: str
    """The stack file the value came from."""
    key: str
    """Fully qualified key, e.g. ``sovereign-ml:gpuPoolMinSize``."""
    value: Any
    """The offending value as given (``None`` when missing)."""
    allowed: str
    """What would be accepted."""

    def __str__(self) -> str:
        shown = "(missing)" if self.value is None else json.dumps(self.value, default=str)
        return f"{self.source}: {self.key} = {shown}: {self.allowed}"


class ConfigError(Exception):
    """Raised with every problem of a stack's config at once."""

    def __init__(self, problems: list[ConfigProblem]) -> None:
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"{len(problems)} problem(s) in the stack config:\n{lines}")


def qualified(name: str) -> str:
    """The key as written in a stack file."""
    return name if ":" in name else f"{PROJECT}:{name}"


class _Reader:
    """Reads typed values from raw stack config, recording problems instead of raising."""

    def __init__(self, raw: Mapping[str, Any], source: str) -> None:
        self.raw = raw
        self.source = source
        self.problems: list[ConfigProblem] = []

    def problem(self, name: str, value: Any, allowed: str) -> None:
        self.problems.append(ConfigProblem(self.source, qualified(name), value, allowed))

    def _value(self, name: str) -> tuple[Any, bool]:
        if name in self.raw and self.raw[name] is not None:
            return self.raw[name], True
        key = KEYS_BY_NAME.get(name)
        if key is None or key.default is REQUIRED:
            return None, False
        return key.default, True

    def string(self, name: str, choices: tuple[str, ...] | None = None) -> str | None:
        value, present = self._value(name)
        if not present:
            self.problem(
                name, None, "required" + (f"; one of {', '.join(choices)}" if choices else "")
            )
            return None
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            self.problem(name, value, "a string")
            return None
        text = str(value)
        if choices is not None and text not in choices:
            self.problem(name, value, f"one of {', '.join(choices)}")
            return None
        return text

    def integer(self, name: str, low: int, high: int) -> int | None:
        value, present = self._value(name)
        if not present:
            self.problem(name, None, f"required: an integer from {low} to {high}")
            return None
        number: int | None = None
        if isinstance(value, bool):
            number = None
        elif isinstance(value, int):
            number = value
        elif isinstance(value, float) and value.is_integer():
            number = int(value)
        elif isinstance(value, str) and re.fullmatch(r"[+-]?[0-9]{1,12}", value.strip()):
            number = int(value.strip())
        if number is None or not low <= number <= high:
            self.problem(name, value, f"an integer from {low} to {high}")
            return None
        return number

    def boolean(self, name: str) -> bool | None:
        value, present = self._value(name)
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value in ("true", "false"):
            return value == "true"
        self.problem(name, value if present else None, "true or false")
        return None

    def integers(self, name: str) -> tuple[int, ...] | None:
        """A list of integers (native, or JSON text from the engine)."""
        value, present = self._value(name)
        if isinstance(value, str):
            with contextlib.suppress(ValueError):
                value = json.loads(value)
        if not isinstance(value, list) or not all(
            isinstance(v, int) and not isinstance(v, bool) for v in value
        ):
            self.problem(name, value if present else None, "a list of integers")
            return None
        return tuple(value)

    def strings(self, name: str) -> tuple[str, ...] | None:
        value, present = self._value(name)
        if isinstance(value, str):
            # The Pulumi engine hands arrays to the program as JSON text.
            try:
                value = json.loads(value)
            except ValueError:
                self.problem(name, value, "a list of strings")
                return None
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            self.problem(name, value if present else None, "a list of strings")
            return None
        return tuple(value)


def _parse_pool(r: _Reader, role: str, production: bool) -> NodePoolConfig | None:
    p = f"{role}Pool"
    if role != "system" and not r.boolean(f"{p}Enabled"):
        return None
    gpu = role == "gpu"
    types = r.strings(f"{p}InstanceTypes")
    if types is not None:
        if not types:
            r.problem(f"{p}InstanceTypes", list(types), "at least one EC2 instance type")
        for t in types:
            family = t.split(".")[0]
            if not INSTANCE_TYPE.match(t):
                r.problem(f"{p}InstanceTypes", t, "an EC2 instance type such as m7i.xlarge")
            elif gpu and family not in GPU_INSTANCE_FAMILIES:
                r.problem(
                    f"{p}InstanceTypes",
                    t,
                    f"a GPU instance family: one of {', '.join(GPU_INSTANCE_FAMILIES)}",
                )
            elif not gpu and family in GPU_INSTANCE_FAMILIES:
                r.problem(f"{p}InstanceTypes", t, "a CPU instance family (GPUs go in the gpu pool)")
    capacity = r.string(f"{p}CapacityType", CAPACITY_TYPES)
    if role == "system" and capacity == "SPOT":
        r.problem(f"{p}CapacityType", capacity, "ON_DEMAND: platform services must not be evicted")
    low = r.integer(f"{p}MinSize", 0, 1000)
    desired = r.integer(f"{p}DesiredSize", 0, 1000)
    high = r.integer(f"{p}MaxSize", 1, 1000)
    if role == "system" and low is not None and low < (2 if production else 1):
        r.problem(
            f"{p}MinSize",
            low,
            f">= {2 if production else 1}: the system pool runs CoreDNS and the platform services",
        )
    if None not in (low, desired, high) and not low <= desired <= high:  # type: ignore[operator]
        r.problem(
            f"{p}DesiredSize",
            desired,
            f"between {p}MinSize ({low}) and {p}MaxSize ({high})",
        )
    disk = r.integer(f"{p}DiskGiB", 20, 16384)
    labels: list[tuple[str, str]] = []
    for item in r.strings(f"{p}Labels") or ():
        k, sep, v = item.partition("=")
        if not sep or not LABEL_KEY.match(k) or not LABEL_VALUE.match(v):
            r.problem(f"{p}Labels", item, "'key=value' with a valid Kubernetes label key and value")
        else:
            labels.append((k, v))
    taints: list[Taint] = []
    raw_taints = r.strings(f"{p}Taints")
    for item in raw_taints or ():
        m = re.fullmatch(r"([^=:]+)=([^:]*):(\w+)", item)
        if not m or not LABEL_KEY.match(m[1]) or m[3] not in TAINT_EFFECTS:
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
    if None in (types, capacity, low, desired, high, disk, raw_taints):
        return None
    return NodePoolConfig(
        role=role,
        gpu=gpu,
        instance_types=types,  # type: ignore[arg-type]
        capacity_type=capacity,  # type: ignore[arg-type]
        min_size=low,  # type: ignore[arg-type]
        desired_size=desired,  # type: ignore[arg-type]
        max_size=high,  # type: ignore[arg-type]
        disk_gib=disk,  # type: ignore[arg-type]
        labels=tuple(labels),
        taints=tuple(taints),
    )


def _check_unknown_keys(r: _Reader, raw: Mapping[str, Any]) -> None:
    for name in raw:
        if name == REGION_KEY or (":" in name and not name.startswith(f"{PROJECT}:")):
            continue  # other providers' keys (aws:*, kubernetes:*, vault:*) are theirs to check
        bare = name.removeprefix(f"{PROJECT}:")
        if bare not in KEYS_BY_NAME:
            close = difflib.get_close_matches(bare, list(KEYS_BY_NAME), n=1)
            hint = (
                f"did you mean {qualified(close[0])}?" if close else "see Pulumi.yaml for the keys"
            )
            r.problem(bare, raw[name], f"an unknown key; {hint}")


def parse(
    raw: Mapping[str, Any], *, stack: str, source: str
) -> PlatformConfig | list[ConfigProblem]:
    """Build the typed config from raw stack values, or return every problem found.

    Args:
        raw: The stack's config values keyed by bare name (``environment``) or ``aws:region``;
            fully qualified ``sovereign-ml:`` keys are accepted too. Values may be native YAML
            types or the strings the Pulumi engine passes to a program.
        stack: The stack name (``prod-uae``).
        source: The stack file, named in every problem.
    """
    raw = {
        k.removeprefix(f"{PROJECT}:") if k.startswith(f"{PROJECT}:") else k: v
        for k, v in raw.items()
    }
    r = _Reader(raw, source)
    _check_unknown_keys(r, raw)
    environment = r.string("environment", ENVIRONMENTS)
    production = environment == "prod"
    zone_name = r.string("residencyZone", tuple(ZONES))
    tier = r.string("tier", TIERS)

    region = raw.get(REGION_KEY)
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

    owner = r.string("owner")
    cost_center = r.string("costCenter")
    classification = r.string("dataClassification", DATA_CLASSIFICATIONS)
    for name, value in (("owner", owner), ("costCenter", cost_center)):
        if value is not None and not TAG_VALUE.match(value):
            r.problem(name, value, "1-128 characters: letters, digits, spaces and _ . : / = + - @")

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
    info = region_info(region) if region else None
    max_azs = len(info.availability_zones) if info else 3
    az_count = r.integer("azCount", 2, max_azs)
    if production and az_count is not None and az_count < 3:
        r.problem("azCount", az_count, "3 in prod (a zone outage must not take the platform down)")
    single_nat = r.boolean("singleNatGateway")
    # SMB stacks may share one NAT: AWS-service traffic already stays on the VPC endpoints, so
    # an AZ outage only cuts the other AZs' internet egress, not the platform.
    tier_raw = raw.get("tier", "enterprise")
    if production and single_nat and tier_raw != "smb":
        r.problem("singleNatGateway", True, "false in prod for enterprise stacks (one NAT per AZ)")
    retention = r.integer("logRetentionDays", 1, 3653)
    if retention is not None and retention not in LOG_RETENTION_DAYS:
        r.problem(
            "logRetentionDays", retention, f"a CloudWatch retention value: {LOG_RETENTION_DAYS}"
        )
        retention = None
    elif production and retention is not None and retention < 365:
        r.problem("logRetentionDays", retention, ">= 365 in prod (audit evidence for a year)")

    version = r.string("kubernetesVersion", KUBERNETES_VERSIONS)
    public = r.boolean("endpointPublicAccess")
    cidrs = r.strings("publicAccessCidrs")
    if public and environment is not None and environment != "dev":
        r.problem("endpointPublicAccess", True, f"false outside dev (this stack is {environment})")
    if public and cidrs is not None and not cidrs:
        r.problem("publicAccessCidrs", [], "at least one CIDR when endpointPublicAccess is true")
    for c in cidrs or ():
        try:
            n = ipaddress.ip_network(c, strict=True)
            if n.prefixlen == 0:
                raise ValueError
        except ValueError:
            r.problem(
                "publicAccessCidrs",
                c,
                "a specific IPv4 CIDR such as 203.0.113.0/24 (never 0.0.0.0/0)",
            )
    if cidrs and not public:
        r.problem("publicAccessCidrs", list(cidrs), "empty unless endpointPublicAccess is true")

    pools = tuple(p for p in (_parse_pool(r, role, production) for role in POOL_ROLES) if p)
    deletion_window = r.integer("kmsDeletionWindowDays", 7, 30)
    if production and deletion_window is not None and deletion_window < 30:
        r.problem("kmsDeletionWindowDays", deletion_window, "30 in prod (time to notice a mistake)")

    tenants = r.strings("tenants")
    seen: set[str] = set()
    for t in tenants or ():
        if not TENANT_NAME.match(t):
            r.problem(
                "tenants",
                t,
                "3-30 characters: lower-case letters, digits and '-', starting with a letter",
            )
        elif t in RESERVED_NAMESPACES:
            r.problem("tenants", t, f"not a reserved namespace ({', '.join(RESERVED_NAMESPACES)})")
        elif t in seen:
            r.problem("tenants", t, "unique tenant names")
        seen.add(t)

    served: list[tuple[str, str]] = []
    served_raw = r.strings("servedModels")
    for item in served_raw or ():
        model, sep, profile = item.partition(":")
        if not sep or not TENANT_NAME.match(model) or profile not in ("gpu", "cpu"):
            r.problem("servedModels", item, "'name:profile' with a DNS-style name and gpu or cpu")
        elif profile == "gpu" and raw.get("gpuPoolEnabled", True) in (False, "false"):
            r.problem("servedModels", item, "a gpu profile needs gpuPoolEnabled: true (or use cpu)")
        else:
            served.append((model, profile))
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
    puller = r.string("modelPullerImage")
    if puller is not None and not re.fullmatch(r"[\w.:/-]+:[\w.-]+(@sha256:[0-9a-f]{64})?", puller):
        r.problem("modelPullerImage", puller, "an image with a pinned tag, e.g. repo/name:1.2.3")
    elif puller is not None and puller.endswith(":latest"):
        r.problem("modelPullerImage", puller, "a pinned tag, not latest")
    drift_text = r.string("driftThreshold")
    drift_threshold: float | None = None
    try:
        drift_threshold = float(drift_text) if drift_text is not None else None
        if drift_threshold is not None and not 0 < drift_threshold < 10:
            raise ValueError
    except ValueError:
        r.problem("driftThreshold", drift_text, "a number between 0 and 10, e.g. 0.2")
        drift_threshold = None
    drift_image = r.string("driftMonitorImage")
    if drift_image is not None and (
        not re.fullmatch(r"[\w.:/-]+:[\w.-]+", drift_image) or drift_image.endswith(":latest")
    ):
        r.problem("driftMonitorImage", drift_image, "an image with a pinned tag, not latest")
    vault_address = r.string("vaultAddress")
    if vault_address is not None and not re.fullmatch(
        r"https://[\w.-]+(:\d{1,5})?/?", vault_address
    ):
        r.problem("vaultAddress", vault_address, "an https:// address (Vault traffic is TLS only)")
    vault_configure = r.boolean("vaultConfigure")
    tenant = r.string("tenant")
    if tenant and not TENANT_NAME.match(tenant):
        r.problem(
            "tenant",
            tenant,
            "3-30 characters: lower-case letters, digits and '-', starting with a letter",
        )
    budget = r.integer("monthlyBudgetUsd", 0, 10_000_000)
    emails = r.strings("budgetAlertEmails")
    for e in emails or ():
        if not re.fullmatch(r"[^@\s]+@[^@\s]+\.[a-z]{2,}", e):
            r.problem("budgetAlertEmails", e, "an e-mail address")
    if budget and emails is not None and not emails:
        r.problem("budgetAlertEmails", [], "at least one address when monthlyBudgetUsd > 0")

    if r.problems:
        return r.problems
    assert info is not None and zone_name and region  # narrowed: no problems means all parsed
    return PlatformConfig(
        stack=stack,
        source=source,
        environment=environment,  # type: ignore[arg-type]
        zone=zone_name,
        region=region,
        partition=info.partition,
        tier=tier,  # type: ignore[arg-type]
        tags=Tags(owner, cost_center, classification),  # type: ignore[arg-type]
        network=NetworkConfig(
            cidr=cidr_text,  # type: ignore[arg-type]
            az_count=az_count,  # type: ignore[arg-type]
            availability_zones=info.availability_zones[:az_count],
            single_nat_gateway=single_nat,  # type: ignore[arg-type]
        ),
        cluster=ClusterConfig(
            kubernetes_version=version,  # type: ignore[arg-type]
            endpoint_public_access=public,  # type: ignore[arg-type]
            public_access_cidrs=cidrs,  # type: ignore[arg-type]
        ),
        node_pools=pools,
        log_retention_days=retention,  # type: ignore[arg-type]
        kms_deletion_window_days=deletion_window,  # type: ignore[arg-type]
        tenants=tenants,  # type: ignore[arg-type]
        served_models=tuple(served),
        canary_steps=steps or (),
        serving_scale_to_zero=bool(scale_to_zero),
        serving_idle_minutes=idle_minutes,  # type: ignore[arg-type]
        serving_warm_hours=warm_hours,
        model_puller_image=puller,  # type: ignore[arg-type]
        drift_threshold=drift_threshold or 0.2,
        drift_image=drift_image,  # type: ignore[arg-type]
        vault_address=vault_address,  # type: ignore[arg-type]
        vault_configure=bool(vault_configure),
        tenant=tenant or "",
        monthly_budget_usd=budget or 0,
        budget_alert_emails=emails or (),
    )


def load(raw: Mapping[str, Any], *, stack: str, source: str) -> PlatformConfig:
    """Like ``parse`` but raises ``ConfigError`` with every problem."""
    result = parse(raw, stack=stack, source=source)
    if isinstance(result, list):
        raise ConfigError(result)
    return result


def from_pulumi(get: Callable[[str], Any], *, stack: str, source: str) -> PlatformConfig:
    """Load the config inside a Pulumi program; ``get(key)`` returns a raw value or None."""
    names = [k.name for k in KEYS] + [REGION_KEY]
    return load({n: get(n) for n in names}, stack=stack, source=source)


def project_config_schema() -> dict[str, Any]:
    """The ``config:`` section of ``Pulumi.yaml``, generated from ``KEYS``."""
    out: dict[str, Any] = {}
    for k in KEYS:
        entry: dict[str, Any] = {"type": k.type, "description": k.description}
        if k.type == "array":
            entry["items"] = {"type": k.items}
        if k.default is not REQUIRED:
            entry["default"] = k.default
        out[k.name] = entry
    return out


__all__ = [
    "KEYS",
    "ConfigError",
    "ConfigProblem",
    "NodePoolConfig",
    "PlatformConfig",
    "load",
    "parse",
]
