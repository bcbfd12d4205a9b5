"""Monthly cost estimate of a stack, read from its synth record and a price table.

``estimate(record, prices)`` looks only at ``build/<stack>/resources.json``: node groups (instance
type, capacity type, min and max size, and the root-volume size of the launch template each one
uses), NAT gateways, public IPv4 addresses, interface VPC endpoints (one ENI per subnet), EKS
clusters, RDS instances, ElastiCache replication groups, KMS keys, CloudWatch log groups, S3
buckets and budgets; and the Triton Rollouts, since a model server that never scales to zero
keeps a node of its pool running even when the pool's minimum is 0. Most other types the program
declares (IAM, subnets, route tables, security groups, bucket settings, add-ons, Kubernetes
objects) have no charge of their own; billable types not priced yet (``BILLABLE_UNPRICED``) are
reported as unpriced rather than silently counted as 0. Usage the record cannot know (GB through
NAT, log GB, stored GB) comes from the price table's ``assumptions`` and each line item that uses
one says so.

The price table is data (``infra/cost/prices/<region>.yaml``) with its region, date and source; the
numbers there are approximate and must be checked before an estimate is quoted.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

PRICES_DIR = Path(__file__).resolve().parent / "prices"

NODE_GROUP = "aws:eks/nodeGroup:NodeGroup"
LAUNCH_TEMPLATE = "aws:ec2/launchTemplate:LaunchTemplate"
NAT_GATEWAY = "aws:ec2/natGateway:NatGateway"
EIP = "aws:ec2/eip:Eip"
VPC_ENDPOINT = "aws:ec2/vpcEndpoint:VpcEndpoint"
EKS_CLUSTER = "aws:eks/cluster:Cluster"
KMS_KEY = "aws:kms/key:Key"
LOG_GROUP = "aws:cloudwatch/logGroup:LogGroup"
S3_BUCKET = "aws:s3/bucket:Bucket"
BUDGET = "aws:budgets/budget:Budget"
RDS_INSTANCE = "aws:rds/instance:Instance"
CACHE_GROUP = "aws:elasticache/replicationGroup:ReplicationGroup"
ROLLOUT = "kubernetes:argoproj.io/v1alpha1:Rollout"
SCALED_OBJECT = "kubernetes:keda.sh/v1alpha1:ScaledObject"
BILLABLE_UNPRICED = (
    "aws:ec2/instance:Instance",
    "aws:ebs/volume:Volume",
    "aws:rds/cluster:Cluster",
    "aws:rds/clusterInstance:ClusterInstance",
    "aws:elasticache/cluster:Cluster",
    "aws:elasticache/serverlessCache:ServerlessCache",
    "aws:lb/loadBalancer:LoadBalancer",
    "aws:alb/loadBalancer:LoadBalancer",
    "aws:efs/fileSystem:FileSystem",
    "aws:opensearch/domain:Domain",
    "aws:msk/cluster:Cluster",
    "aws:secretsmanager/secret:Secret",
    "aws:sagemaker/endpoint:Endpoint",
    "aws:sagemaker/notebookInstance:NotebookInstance",
)
"""Billable types the estimate does not price yet; a record holding one reports it as unpriced."""

# EKS managed node groups get a 20 GiB root volume when the launch template names none.
DEFAULT_NODE_DISK_GIB = 20

EXCLUDED = (
    "data transfer out of the region and between AZs",
    "interface-endpoint and gateway data processing",
    "S3, KMS and CloudWatch API requests",
    "CloudWatch Logs storage beyond the first month and log queries",
    "load balancers created later by Kubernetes services",
    "support plan, taxes and discounts (Savings Plans, reserved instances)",
)
"""What no estimate includes; printed with every report."""


class CostError(Exception):
    """The estimate cannot be made (missing or malformed price table, region mismatch)."""


# --------------------------------------------------------------------------------------------
# Price table
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PriceTable:
    """Prices for one region, read from ``infra/cost/prices/<region>.yaml``."""

    region: str
    currency: str
    date: str
    source: str
    hours_per_month: float
    on_demand_hourly: Mapping[str, float]
    spot_hourly: Mapping[str, float]
    spot_factor: float
    eks_cluster_hourly: float
    nat_gateway_hourly: float
    nat_gateway_per_gb: float
    interface_endpoint_az_hourly: float
    public_ipv4_hourly: float
    ebs_gp3_gb_month: float
    kms_key_monthly: float
    logs_ingestion_per_gb: float
    s3_standard_gb_month: float
    rds_instance_hourly: Mapping[str, float]
    rds_gp3_gb_month: float
    cache_node_hourly: Mapping[str, float]
    budget_monthly: float
    nat_gb_per_gateway_month: float
    log_gb_per_group_month: float
    s3_gb_per_bucket: float
    path: str = ""

    def instance_hourly(self, instance_type: str, capacity_type: str) -> float | None:
        """Hourly price of one instance, or None when the table has no price for the type."""
        on_demand = self.on_demand_hourly.get(instance_type)
        if capacity_type != "SPOT":
            return on_demand
        if instance_type in self.spot_hourly:
            return self.spot_hourly[instance_type]
        return None if on_demand is None else on_demand * self.spot_factor


def _number(doc: Mapping[str, Any], path: str, where: str) -> float:
    value: Any = doc
    for part in path.split("."):
        value = value.get(part) if isinstance(value, Mapping) else None
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise CostError(f"{where}: {path} must be a number >= 0, got {value!r}")
    return float(value)


def _prices(doc: Mapping[str, Any], path: str, where: str) -> dict[str, float]:
    """A map of instance class -> hourly price at ``section.key`` (names contain dots)."""
    top, _, key = path.partition(".")
    parent = doc.get(top)
    section = parent.get(key) if isinstance(parent, Mapping) else None
    if not isinstance(section, Mapping):
        raise CostError(f"{where}: {path} must map instance types to hourly prices")
    out: dict[str, float] = {}
    for name, value in section.items():
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise CostError(f"{where}: {path}.{name} must be a number >= 0, got {value!r}")
        out[str(name)] = float(value)
    return out


def parse_prices(doc: Mapping[str, Any], where: str = "price table") -> PriceTable:
    """A ``PriceTable`` from the YAML document; CostError naming the first bad field."""
    if not isinstance(doc, Mapping):
        raise CostError(f"{where}: expected a mapping")
    for key in ("region", "currency", "date", "source"):
        if not isinstance(doc.get(key), str) or not doc.get(key):
            raise CostError(f"{where}: {key} must be a non-empty string")
    return PriceTable(
        region=doc["region"],
        currency=doc["currency"],
        date=doc["date"],
        source=" ".join(doc["source"].split()),
        hours_per_month=_number(doc, "hoursPerMonth", where),
        on_demand_hourly=_prices(doc, "ec2.onDemandHourly", where),
        spot_hourly=_prices(doc, "ec2.spotHourly", where) if "spotHourly" in doc["ec2"] else {},
        spot_factor=_number(doc, "ec2.spotFactor", where),
        eks_cluster_hourly=_number(doc, "eks.clusterHourly", where),
        nat_gateway_hourly=_number(doc, "vpc.natGatewayHourly", where),
        nat_gateway_per_gb=_number(doc, "vpc.natGatewayPerGb", where),
        interface_endpoint_az_hourly=_number(doc, "vpc.interfaceEndpointAzHourly", where),
        public_ipv4_hourly=_number(doc, "vpc.publicIpv4Hourly", where),
        ebs_gp3_gb_month=_number(doc, "ebs.gp3GbMonth", where),
        kms_key_monthly=_number(doc, "kms.keyMonthly", where),
        logs_ingestion_per_gb=_number(doc, "cloudwatch.logsIngestionPerGb", where),
        s3_standard_gb_month=_number(doc, "s3.standardGbMonth", where),
        rds_instance_hourly=_prices(doc, "rds.instanceHourly", where),
        rds_gp3_gb_month=_number(doc, "rds.gp3GbMonth", where),
        cache_node_hourly=_prices(doc, "elasticache.nodeHourly", where),
        budget_monthly=_number(doc, "budgets.budgetMonthly", where),
        nat_gb_per_gateway_month=_number(doc, "assumptions.natGbPerGatewayMonth", where),
        log_gb_per_group_month=_number(doc, "assumptions.logGbPerGroupMonth", where),
        s3_gb_per_bucket=_number(doc, "assumptions.s3GbPerBucket", where),
        path=where,
    )


def load_prices(region: str, prices_dir: Path = PRICES_DIR) -> PriceTable:
    """The price table of ``region``; CostError when there is none or it is malformed."""
    path = prices_dir / f"{region}.yaml"
    if not path.is_file():
        have = ", ".join(sorted(p.stem for p in prices_dir.glob("*.yaml"))) or "none"
        raise CostError(f"no price table for region {region}: add {path} (tables exist for {have})")
    try:
        doc = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise CostError(f"{path}: not valid YAML: {exc}") from None
    table = parse_prices(doc, str(path))
    if table.region != region:
        raise CostError(f"{path}: region is {table.region}, expected {region}")
    return table


# --------------------------------------------------------------------------------------------
# Estimate
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LineItem:
    """One priced thing in the stack, per month at the node pools' min and max sizes."""

    key: str
    """Stable label, also used to line up two stacks (``nodes: system``)."""
    category: str
    """compute, storage, network, control plane, security, logging or governance."""
    detail: str
    """What is counted, e.g. ``m7i.large ON_DEMAND``."""
    basis_min: str
    """How the minimum was computed, e.g. ``2 x 730 h x $0.1210``."""
    basis_max: str
    """How the maximum was computed."""
    monthly_min: float
    monthly_max: float
    resources: tuple[str, ...] = ()
    """Names of the resources in the record this item prices."""


@dataclass(frozen=True)
class CostEstimate:
    """The monthly estimate of one stack."""

    stack: str
    region: str
    currency: str
    prices_date: str
    prices_source: str
    hours_per_month: float
    items: tuple[LineItem, ...]
    assumptions: tuple[str, ...]
    unpriced: tuple[str, ...] = ()
    """Things the record declares that the price table cannot price (counted as 0)."""
    excluded: tuple[str, ...] = EXCLUDED

    @property
    def total_min(self) -> float:
        """Monthly total with every node pool at its minimum size."""
        return sum(i.monthly_min for i in self.items)

    @property
    def total_max(self) -> float:
        """Monthly total with every node pool at its maximum size."""
        return sum(i.monthly_max for i in self.items)

    def item(self, key: str) -> LineItem | None:
        """The line item with ``key``, if any."""
        return next((i for i in self.items if i.key == key), None)

    def to_json(self) -> dict[str, Any]:
        """Plain data for ``build/<stack>/cost.json`` (amounts rounded to cents)."""
        return {
            "stack": self.stack,
            "region": self.region,
            "currency": self.currency,
            "prices": {"date": self.prices_date, "source": self.prices_source},
            "hoursPerMonth": self.hours_per_month,
            "totals": {
                "monthlyMin": round(self.total_min, 2),
                "monthlyMax": round(self.total_max, 2),
            },
            "items": [
                {
                    **{
                        k: v
                        for k, v in asdict(i).items()
                        if k not in ("monthly_min", "monthly_max")
                    },
                    "resources": list(i.resources),
                    "monthlyMin": round(i.monthly_min, 2),
                    "monthlyMax": round(i.monthly_max, 2),
                }
                for i in self.items
            ],
            "assumptions": list(self.assumptions),
            "unpriced": list(self.unpriced),
            "excluded": list(self.excluded),
        }


def _money(x: float) -> str:
    """Dollars with at least two decimals; unit prices below $1 keep up to four."""
    if x >= 1:
        return f"${x:,.2f}"
    text = f"{x:.4f}".rstrip("0")
    return "$" + text + "0" * max(0, 2 - len(text.partition(".")[2]))


def _of_type(resources: Iterable[Mapping[str, Any]], typ: str) -> list[Mapping[str, Any]]:
    return [r for r in resources if r.get("custom", True) and r.get("type") == typ]


def _flat(
    key: str,
    category: str,
    detail: str,
    count: int,
    unit: float,
    unit_basis: str,
    names: list[str],
) -> LineItem:
    """An item that does not depend on node-pool sizes: ``count`` x ``unit`` per month."""
    basis = f"{count} x {unit_basis}" if count else "none in the record"
    return LineItem(
        key, category, detail, basis, basis, count * unit, count * unit, tuple(sorted(names))
    )


def _volume_gib(group: Mapping[str, Any], templates: Mapping[str, Mapping[str, Any]]) -> int:
    """Root-volume GiB of the launch template a node group uses (by id, else by dependency)."""
    lt_ref = (group.get("inputs") or {}).get("launchTemplate") or {}
    template = templates.get(str(lt_ref.get("id")))
    if template is None:
        for urn in (group.get("propertyDependencies") or {}).get("launchTemplate", []):
            template = templates.get(urn)
            if template:
                break
    if template is None:
        return int((group.get("inputs") or {}).get("diskSize") or DEFAULT_NODE_DISK_GIB)
    total = 0
    for mapping in (template.get("inputs") or {}).get("blockDeviceMappings") or []:
        ebs = mapping.get("ebs") or {}
        total += int(ebs.get("volumeSize") or 0)
    return total or DEFAULT_NODE_DISK_GIB


def serving_floors(resources: Iterable[Mapping[str, Any]]) -> dict[str, list[str]]:
    """Pools that keep a node for always-on model servers: pool -> the Rollouts pinning it.

    A Triton Rollout with replicas holds a node of the pool its pods select around the clock,
    whatever the pool's own minimum; one a KEDA ScaledObject may take to zero replicas
    (``minReplicaCount`` or ``idleReplicaCount`` 0) does not.
    """
    to_zero: set[tuple[str, str]] = set()
    for so in _of_type(resources, SCALED_OBJECT):
        inputs = so.get("inputs") or {}
        spec = inputs.get("spec") or {}
        ref = spec.get("scaleTargetRef") or {}
        if ref.get("kind") == "Rollout" and 0 in (
            spec.get("minReplicaCount", 0),
            spec.get("idleReplicaCount"),
        ):
            to_zero.add(((inputs.get("metadata") or {}).get("namespace", ""), ref.get("name", "")))
    floors: dict[str, list[str]] = {}
    for ro in _of_type(resources, ROLLOUT):
        inputs = ro.get("inputs") or {}
        meta, spec = inputs.get("metadata") or {}, inputs.get("spec") or {}
        if (meta.get("namespace", ""), meta.get("name", "")) in to_zero:
            continue
        if int(spec.get("replicas", 1) or 0) < 1:
            continue
        pod = (spec.get("template") or {}).get("spec") or {}
        pool = (pod.get("nodeSelector") or {}).get("sovereign-ml/pool")
        if pool:
            floors.setdefault(str(pool), []).append(str(meta.get("name") or ro.get("name")))
    return floors


def _node_items(
    groups: list[Mapping[str, Any]],
    templates: Mapping[str, Mapping[str, Any]],
    prices: PriceTable,
    unpriced: list[str],
    floors: Mapping[str, list[str]],
) -> list[LineItem]:
    hours = prices.hours_per_month
    items: list[LineItem] = []
    for g in groups:
        inputs = g.get("inputs") or {}
        scaling = inputs.get("scalingConfig") or {}
        low, high = int(scaling.get("minSize") or 0), int(scaling.get("maxSize") or 0)
        capacity = str(inputs.get("capacityType") or "ON_DEMAND")
        types = [str(t) for t in inputs.get("instanceTypes") or []]
        pool = (inputs.get("labels") or {}).get("sovereign-ml/pool") or g["name"]
        # A pool at min 0 still runs a node while a model server that never idles sits on it.
        pinned = (
            f" (min 1: {', '.join(floors[pool])} never scales to zero)"
            if (low < 1 and floors.get(pool))
            else ""
        )
        low = max(low, 1) if pinned else low
        # The pools list their types cheapest first and EKS launches on-demand capacity in that
        # order, so the first type prices the pool; spot prices come from the same first type.
        itype = types[0] if types else "(none)"
        hourly = prices.instance_hourly(itype, capacity)
        if hourly is None:
            unpriced.append(f"{g['name']}: no {capacity} price for {itype}")
            hourly = 0.0
        label = f"{hours:g} h"
        items.append(
            LineItem(
                key=f"nodes: {pool}",
                category="compute",
                detail=f"{itype} {capacity}"
                + (f" (of {len(types)} types)" if len(types) > 1 else ""),
                basis_min=f"{low} x {label} x {_money(hourly)}{pinned}",
                basis_max=f"{high} x {label} x {_money(hourly)}",
                monthly_min=low * hours * hourly,
                monthly_max=high * hours * hourly,
                resources=(g["name"],),
            )
        )
        gib = _volume_gib(g, templates)
        gb_price = prices.ebs_gp3_gb_month
        items.append(
            LineItem(
                key=f"node disks: {pool}",
                category="storage",
                detail=f"{gib} GiB gp3 per node",
                basis_min=f"{low} x {gib} GB x {_money(gb_price)}",
                basis_max=f"{high} x {gib} GB x {_money(gb_price)}",
                monthly_min=low * gib * gb_price,
                monthly_max=high * gib * gb_price,
                resources=(g["name"],),
            )
        )
    return items


def _database_items(
    resources: list[Mapping[str, Any]], prices: PriceTable, unpriced: list[str]
) -> list[LineItem]:
    """RDS instances (standby doubled for Multi-AZ; storage allocated..max) and cache nodes."""
    hours = prices.hours_per_month
    items: list[LineItem] = []
    for r in _of_type(resources, RDS_INSTANCE):
        inputs = r.get("inputs") or {}
        klass = str(inputs.get("instanceClass") or "(none)")
        copies = 2 if inputs.get("multiAz") else 1
        hourly = prices.rds_instance_hourly.get(klass)
        if hourly is None:
            unpriced.append(f"{r['name']}: no RDS price for {klass}")
            hourly = 0.0
        low = int(inputs.get("allocatedStorage") or 0)
        # Storage autoscaling may grow the volume up to maxAllocatedStorage.
        high = max(low, int(inputs.get("maxAllocatedStorage") or 0))
        gb = prices.rds_gp3_gb_month
        az = "Multi-AZ" if copies == 2 else "single-AZ"
        items.append(
            LineItem(
                key=f"database: {r['name']}",
                category="database",
                detail=f"{klass} {inputs.get('engine', '')} {az}, {low}-{high} GB".strip(),
                basis_min=f"{copies} x ({hours:g} h x {_money(hourly)} + {low} GB x {_money(gb)})",
                basis_max=f"{copies} x ({hours:g} h x {_money(hourly)} + {high} GB x {_money(gb)})",
                monthly_min=copies * (hours * hourly + low * gb),
                monthly_max=copies * (hours * hourly + high * gb),
                resources=(r["name"],),
            )
        )
    for r in _of_type(resources, CACHE_GROUP):
        inputs = r.get("inputs") or {}
        node = str(inputs.get("nodeType") or "(none)")
        count = int(inputs.get("numCacheClusters") or 1)
        hourly = prices.cache_node_hourly.get(node)
        if hourly is None:
            unpriced.append(f"{r['name']}: no ElastiCache price for {node}")
            hourly = 0.0
        items.append(
            _flat(
                f"cache: {r['name']}",
                "database",
                f"{node} {inputs.get('engine', '')} nodes".strip(),
                count,
                hours * hourly,
                f"{hours:g} h x {_money(hourly)}",
                [r["name"]],
            )
        )
    return items


def estimate(record: Mapping[str, Any], prices: PriceTable) -> CostEstimate:
    """The monthly cost of what ``record`` declares, at node-pool min and max sizes.

    Args:
        record: A synth record (``build/<stack>/resources.json`` as data).
        prices: The price table of the record's region.

    Raises:
        CostError: The table is for another region than the record.
    """
    region = str((record.get("config") or {}).get("region") or "")
    if region and region != prices.region:
        raise CostError(f"prices are for {prices.region}, the stack runs in {region}")
    resources = [r for r in record.get("resources", []) if r.get("custom", True)]
    hours = prices.hours_per_month
    unpriced: list[str] = []
    assumptions: list[str] = [
        f"{hours:g} hours per month; node pools priced by their first (cheapest) instance type",
        f"spot capacity at the table's spot price (else {prices.spot_factor:.0%} of on-demand)",
    ]

    templates: dict[str, Mapping[str, Any]] = {}
    for lt in _of_type(resources, LAUNCH_TEMPLATE):
        for ref in (lt.get("id"), lt.get("urn")):
            if ref:
                templates[str(ref)] = lt
    # Pools in the config's role order (system, workers, gpu), whatever order they registered in.
    order = {"system": 0, "workers": 1, "gpu": 2}
    groups = sorted(
        _of_type(resources, NODE_GROUP),
        key=lambda g: (
            order.get(((g.get("inputs") or {}).get("labels") or {}).get("sovereign-ml/pool"), 9),
            g["name"],
        ),
    )
    floors = serving_floors(resources)
    items = _node_items(groups, templates, prices, unpriced, floors)
    if floors:
        assumptions.append(
            "a pool hosting model servers that never scale to zero keeps at least one node: "
            + ", ".join(sorted(floors))
        )

    eks = _of_type(resources, EKS_CLUSTER)
    items.append(
        _flat(
            "EKS control plane",
            "control plane",
            "cluster, standard support",
            len(eks),
            hours * prices.eks_cluster_hourly,
            f"{hours:g} h x {_money(prices.eks_cluster_hourly)}",
            [r["name"] for r in eks],
        )
    )

    nats = _of_type(resources, NAT_GATEWAY)
    items.append(
        _flat(
            "NAT gateways",
            "network",
            "hourly charge",
            len(nats),
            hours * prices.nat_gateway_hourly,
            f"{hours:g} h x {_money(prices.nat_gateway_hourly)}",
            [r["name"] for r in nats],
        )
    )
    gb = prices.nat_gb_per_gateway_month
    items.append(
        _flat(
            "NAT data processing",
            "network",
            f"assumed {gb:g} GB per gateway per month",
            len(nats),
            gb * prices.nat_gateway_per_gb,
            f"{gb:g} GB x {_money(prices.nat_gateway_per_gb)}",
            [r["name"] for r in nats],
        )
    )
    if nats:
        assumptions.append(f"{gb:g} GB processed per NAT gateway per month")

    eips = _of_type(resources, EIP)
    items.append(
        _flat(
            "public IPv4 addresses",
            "network",
            "Elastic IPs (NAT gateways)",
            len(eips),
            hours * prices.public_ipv4_hourly,
            f"{hours:g} h x {_money(prices.public_ipv4_hourly)}",
            [r["name"] for r in eips],
        )
    )

    # An interface endpoint places one ENI in each subnet it names; AWS bills per ENI-hour.
    interface = [
        r
        for r in _of_type(resources, VPC_ENDPOINT)
        if (r.get("inputs") or {}).get("vpcEndpointType") == "Interface"
    ]
    enis = sum(len((r.get("inputs") or {}).get("subnetIds") or []) for r in interface)
    items.append(
        _flat(
            "interface VPC endpoints",
            "network",
            f"{len(interface)} endpoints, {enis} endpoint-AZs",
            enis,
            hours * prices.interface_endpoint_az_hourly,
            f"{hours:g} h x {_money(prices.interface_endpoint_az_hourly)}",
            [r["name"] for r in interface],
        )
    )

    keys = _of_type(resources, KMS_KEY)
    items.append(
        _flat(
            "KMS keys",
            "security",
            "customer-managed keys",
            len(keys),
            prices.kms_key_monthly,
            f"{_money(prices.kms_key_monthly)}/month",
            [r["name"] for r in keys],
        )
    )

    logs = _of_type(resources, LOG_GROUP)
    log_gb = prices.log_gb_per_group_month
    items.append(
        _flat(
            "CloudWatch log ingestion",
            "logging",
            f"assumed {log_gb:g} GB per log group per month",
            len(logs),
            log_gb * prices.logs_ingestion_per_gb,
            f"{log_gb:g} GB x {_money(prices.logs_ingestion_per_gb)}",
            [r["name"] for r in logs],
        )
    )
    if logs:
        assumptions.append(f"{log_gb:g} GB ingested per log group per month")

    buckets = _of_type(resources, S3_BUCKET)
    s3_gb = prices.s3_gb_per_bucket
    items.append(
        _flat(
            "S3 storage",
            "storage",
            f"assumed {s3_gb:g} GB standard per bucket",
            len(buckets),
            s3_gb * prices.s3_standard_gb_month,
            f"{s3_gb:g} GB x {_money(prices.s3_standard_gb_month)}",
            [r["name"] for r in buckets],
        )
    )
    if buckets:
        assumptions.append(f"{s3_gb:g} GB stored per S3 bucket")

    items += _database_items(resources, prices, unpriced)
    for r in resources:
        if r.get("type") in BILLABLE_UNPRICED:
            unpriced.append(f"{r['name']}: {r['type']} is not priced by infra/cost/estimate.py")

    budgets = _of_type(resources, BUDGET)
    if budgets:
        items.append(
            _flat(
                "AWS Budgets",
                "governance",
                "budgets without actions",
                len(budgets),
                prices.budget_monthly,
                f"{_money(prices.budget_monthly)}/month",
                [r["name"] for r in budgets],
            )
        )

    return CostEstimate(
        stack=str(record.get("stack", "")),
        region=prices.region,
        currency=prices.currency,
        prices_date=prices.date,
        prices_source=prices.source,
        hours_per_month=hours,
        items=tuple(items),
        assumptions=tuple(assumptions),
        unpriced=tuple(unpriced),
    )


def write_estimate(est: CostEstimate, path: Path) -> Path:
    """Write the estimate as JSON (``build/<stack>/cost.json``) and return the path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(est.to_json(), indent=2) + "\n")
    return path


@dataclass
class Comparison:
    """Two estimates lined up by line-item key (``other`` minus ``base`` as the difference)."""

    base: CostEstimate
    other: CostEstimate
    keys: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        seen = [i.key for i in self.base.items]
        self.keys = seen + [i.key for i in self.other.items if i.key not in seen]

    def row(self, key: str) -> tuple[float, float, float, float]:
        """Monthly (base min, base max, other min, other max) for ``key``; 0 where absent."""
        a, b = self.base.item(key), self.other.item(key)
        return (
            a.monthly_min if a else 0.0,
            a.monthly_max if a else 0.0,
            b.monthly_min if b else 0.0,
            b.monthly_max if b else 0.0,
        )


__all__ = [
    "CostError",
    "CostEstimate",
    "LineItem",
    "PriceTable",
    "estimate",
    "load_prices",
    "parse_prices",
]
