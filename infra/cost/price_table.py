"""The dated price table of one region: ``infra/cost/prices/<region>.yaml`` read and checked.

The numbers in the table are approximate list prices with a date and a source; they must be
checked before an estimate is quoted. Usage the synth record cannot know (GB through NAT, log GB,
stored GB) sits under the table's ``assumptions``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml

from infra.config.yamlfile import safe_load

PRICES_DIR = Path(__file__).resolve().parent / "prices"


class CostError(Exception):
    """The estimate cannot be made (missing or malformed price table, region mismatch)."""


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


Shape = Literal["number", "prices", "optional prices"]
"""How a field is read: one amount, a map of instance class -> hourly amount, or such a map that
may be absent (then empty)."""

FIELDS: tuple[tuple[str, str, Shape], ...] = (
    ("hours_per_month", "hoursPerMonth", "number"),
    ("on_demand_hourly", "ec2.onDemandHourly", "prices"),
    ("spot_hourly", "ec2.spotHourly", "optional prices"),
    ("spot_factor", "ec2.spotFactor", "number"),
    ("eks_cluster_hourly", "eks.clusterHourly", "number"),
    ("nat_gateway_hourly", "vpc.natGatewayHourly", "number"),
    ("nat_gateway_per_gb", "vpc.natGatewayPerGb", "number"),
    ("interface_endpoint_az_hourly", "vpc.interfaceEndpointAzHourly", "number"),
    ("public_ipv4_hourly", "vpc.publicIpv4Hourly", "number"),
    ("ebs_gp3_gb_month", "ebs.gp3GbMonth", "number"),
    ("kms_key_monthly", "kms.keyMonthly", "number"),
    ("logs_ingestion_per_gb", "cloudwatch.logsIngestionPerGb", "number"),
    ("s3_standard_gb_month", "s3.standardGbMonth", "number"),
    ("rds_instance_hourly", "rds.instanceHourly", "prices"),
    ("rds_gp3_gb_month", "rds.gp3GbMonth", "number"),
    ("cache_node_hourly", "elasticache.nodeHourly", "prices"),
    ("budget_monthly", "budgets.budgetMonthly", "number"),
    ("nat_gb_per_gateway_month", "assumptions.natGbPerGatewayMonth", "number"),
    ("log_gb_per_group_month", "assumptions.logGbPerGroupMonth", "number"),
    ("s3_gb_per_bucket", "assumptions.s3GbPerBucket", "number"),
)
"""``PriceTable`` field -> dotted path in the YAML document -> shape, in the order they are
checked (the first bad one is the error)."""

TEXT_FIELDS = ("region", "currency", "date", "source")
"""Top-level keys that must be non-empty strings."""


def _amount(value: Any, path: str, where: str) -> float:
    """``value`` as a float; CostError unless it is a number >= 0 (booleans are not numbers)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise CostError(f"{where}: {path} must be a number >= 0, got {value!r}")
    return float(value)


def _number(doc: Mapping[str, Any], path: str, where: str) -> float:
    value: Any = doc
    for part in path.split("."):
        value = value.get(part) if isinstance(value, Mapping) else None
    return _amount(value, path, where)


def _prices(doc: Mapping[str, Any], path: str, where: str) -> dict[str, float]:
    """A map of instance class -> hourly price at ``section.key`` (names contain dots)."""
    top, _, key = path.partition(".")
    parent = doc.get(top)
    section = parent.get(key) if isinstance(parent, Mapping) else None
    if not isinstance(section, Mapping):
        raise CostError(f"{where}: {path} must map instance types to hourly prices")
    return {str(name): _amount(value, f"{path}.{name}", where) for name, value in section.items()}


def _field(doc: Mapping[str, Any], path: str, shape: Shape, where: str) -> Any:
    """The value at ``path`` read as ``shape``."""
    if shape == "number":
        return _number(doc, path, where)
    top, _, key = path.partition(".")
    if shape == "optional prices" and key not in doc[top]:
        return {}
    return _prices(doc, path, where)


def parse_prices(doc: Mapping[str, Any], where: str = "price table") -> PriceTable:
    """A ``PriceTable`` from the YAML document; CostError naming the first bad field."""
    if not isinstance(doc, Mapping):
        raise CostError(f"{where}: expected a mapping")
    for key in TEXT_FIELDS:
        if not isinstance(doc.get(key), str) or not doc.get(key):
            raise CostError(f"{where}: {key} must be a non-empty string")
    values = {name: _field(doc, path, shape, where) for name, path, shape in FIELDS}
    return PriceTable(
        region=doc["region"],
        currency=doc["currency"],
        date=doc["date"],
        source=" ".join(doc["source"].split()),
        path=where,
        **values,
    )


def load_prices(region: str, prices_dir: Path = PRICES_DIR) -> PriceTable:
    """The price table of ``region``; CostError when there is none or it is malformed."""
    path = prices_dir / f"{region}.yaml"
    if not path.is_file():
        have = ", ".join(sorted(p.stem for p in prices_dir.glob("*.yaml"))) or "none"
        raise CostError(f"no price table for region {region}: add {path} (tables exist for {have})")
    try:
        # libyaml: every synth reads the prices again, so that its fingerprint lists them.
        doc = safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise CostError(f"{path}: not valid YAML: {exc}") from None
    table = parse_prices(doc, str(path))
    if table.region != region:
        raise CostError(f"{path}: region is {table.region}, expected {region}")
    return table
