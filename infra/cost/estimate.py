"""Monthly cost estimate of a stack, read from its synth record and a price table.

``estimate(record, prices)`` looks only at ``build/<stack>/resources.json``: node groups (instance
type, capacity type, min and max size, and the root-volume size of the launch template each one
uses; ``infra.cost.pools``) and the kinds listed in ``infra/cost/billables.yaml`` (NAT gateways,
public IPv4 addresses, interface VPC endpoints (one ENI per subnet), EKS clusters, RDS instances,
ElastiCache replication groups, KMS keys, CloudWatch log groups, S3 buckets and budgets; counted
by ``infra.cost.items``); and the Triton Rollouts, since a model server that never scales to zero
keeps a node of its pool running even when the pool's minimum is 0. Most other types the program
declares (IAM, subnets, route tables, security groups, bucket settings, add-ons, Kubernetes
objects) have no charge of their own; billable types not priced yet (that file's ``unpriced``
list) are reported as unpriced rather than silently counted as 0. Usage the record cannot know
(GB through NAT, log GB, stored GB) comes from the price table's ``assumptions`` and each line
item that uses one says so.

The price table is data (``infra/cost/prices/<region>.yaml``, read by ``infra.cost.price_table``)
with its region, date and source; the numbers there are approximate and must be checked before an
estimate is quoted.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from infra.cost.items import LineItem, billing, kind_items, unpriced_types
from infra.cost.pools import node_items, serving_floors
from infra.cost.price_table import CostError, PriceTable

EXCLUDED = (
    "data transfer out of the region and between AZs",
    "interface-endpoint and gateway data processing",
    "S3, KMS and CloudWatch API requests",
    "CloudWatch Logs storage beyond the first month and log queries",
    "load balancers created later by Kubernetes services",
    "support plan, taxes and discounts (Savings Plans, reserved instances)",
)
"""What no estimate includes; printed with every report."""


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


def _base_assumptions(prices: PriceTable) -> list[str]:
    """What every estimate assumes, whatever the record holds."""
    return [
        f"{prices.hours_per_month:g} hours per month; node pools priced by their first (cheapest)"
        " instance type",
        f"spot capacity at the table's spot price (else {prices.spot_factor:.0%} of on-demand)",
    ]


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
    assumptions = _base_assumptions(prices)

    floors = serving_floors(resources)
    items, unpriced = node_items(resources, prices, floors)
    if floors:
        assumptions.append(
            "a pool hosting model servers that never scale to zero keeps at least one node: "
            + ", ".join(sorted(floors))
        )
    table = billing()
    for kind in table.kinds:
        priced = kind_items(kind, resources, prices)
        items += priced.items
        assumptions += priced.assumptions
        unpriced += priced.unpriced
    unpriced += unpriced_types(resources, table.unpriced_types)

    return CostEstimate(
        stack=str(record.get("stack", "")),
        region=prices.region,
        currency=prices.currency,
        prices_date=prices.date,
        prices_source=prices.source,
        hours_per_month=prices.hours_per_month,
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
    """Every key of ``base`` in its order, then those only ``other`` has."""

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

    def totals(self) -> tuple[float, ...]:
        """The rows summed in key order: (base min, base max, other min, other max)."""
        totals = [0.0, 0.0, 0.0, 0.0]
        for key in self.keys:
            totals = [t + v for t, v in zip(totals, self.row(key), strict=True)]
        return tuple(totals)


__all__ = ["EXCLUDED", "Comparison", "CostEstimate", "estimate", "write_estimate"]
