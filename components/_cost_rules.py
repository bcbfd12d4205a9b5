"""Cost per tenant: the unit prices of a stack and the recording rules that price requests.

Pure (no resources): :class:`components.monitoring.Monitoring` adds :func:`cost_groups` to its
``PrometheusRule`` and :mod:`components._dashboards` draws the recorded series. The prices come
from :mod:`infra.cost.unit_prices` (the price table ``sovml cost`` uses, split per resource);
components never read price files.

Recorded, for the tenant namespaces only (a platform namespace never appears):

* ``sovml:tenant_cost_usd_per_hour{namespace}``: the sum over the namespace's *running* pods of
  kube-state-metrics' ``kube_pod_container_resource_requests`` (CPU cores, memory bytes as GiB,
  ``nvidia_com_gpu``) times the price of a requested vCPU-, GiB- and GPU-hour. It prices
  requests, not usage: a pod pays for what it reserved on the node, idle or busy.
* ``sovml:tenant_cost_usd_per_month{namespace}``: the same x the price table's hours per month
  (a projection at the current requests, not a bill).

Both carry exactly one label, ``namespace`` (the tenant's name).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

HOURLY = "sovml:tenant_cost_usd_per_hour"
"""Recorded USD per hour of each tenant namespace's running pods' requests."""
MONTHLY = "sovml:tenant_cost_usd_per_month"
""":data:`HOURLY` x hours per month: the monthly projection at the current requests."""
GIB = 1073741824
"""Bytes per GiB: kube-state-metrics reports memory requests in bytes."""
REQUESTS = "kube_pod_container_resource_requests"
PHASE = "kube_pod_status_phase"
_TENANT = re.compile(r"[a-z][a-z0-9-]{1,28}[a-z0-9]")
"""A tenant name (the config's rule); also keeps the names safe inside a PromQL regex."""


@dataclass(frozen=True)
class UnitPrices:
    """USD per requested unit-hour of one stack, and where the numbers come from."""

    cpu_core_hour: float
    """USD per requested vCPU (core) per hour."""
    memory_gib_hour: float
    """USD per requested GiB of memory per hour."""
    gpu_hour: float | None
    """USD per requested GPU per hour; None when the stack has no GPU pool."""
    hours_per_month: float
    """Hours in the price table's month (the monthly projection's factor)."""
    basis: str
    """One line saying which instance types, capacity and price table priced them."""

    def __post_init__(self) -> None:
        numbers = {
            "cpu_core_hour": self.cpu_core_hour,
            "memory_gib_hour": self.memory_gib_hour,
            "hours_per_month": self.hours_per_month,
            **({} if self.gpu_hour is None else {"gpu_hour": self.gpu_hour}),
        }
        for name, value in numbers.items():
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"UnitPrices.{name}: {value!r}; allowed a number")
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"UnitPrices.{name}: {value!r}; allowed a finite number >= 0")
        if self.hours_per_month <= 0:
            raise ValueError(f"UnitPrices.hours_per_month: {self.hours_per_month!r}; allowed > 0")

    def describe(self) -> str:
        """The prices in words, for a panel's description."""
        gpu = "" if self.gpu_hour is None else f", ${self.gpu_hour:g} per GPU-hour"
        return (
            f"${self.cpu_core_hour:g} per vCPU-hour, ${self.memory_gib_hour:g} per GiB-hour{gpu} "
            f"({self.basis})"
        )


def _tenant_selector(tenants: Sequence[str]) -> str:
    bad = [t for t in tenants if not isinstance(t, str) or not _TENANT.fullmatch(t)]
    if bad:
        raise ValueError(f"cost rules: tenant names {bad!r}; allowed {_TENANT.pattern}")
    if len(set(tenants)) != len(tenants):
        raise ValueError(f"cost rules: duplicate tenants in {list(tenants)!r}")
    return f'namespace=~"{"|".join(sorted(tenants))}"'


def hourly_cost_expr(tenants: Sequence[str], prices: UnitPrices) -> str:
    """PromQL of the USD per hour of each tenant namespace's running pods' requests.

    Each resource's series is priced on its own and the three are united with ``or`` (they
    differ in their ``resource`` label), so a namespace without GPU requests still has a cost.
    """
    where = _tenant_selector(tenants)
    terms = [
        f'{REQUESTS}{{resource="cpu", {where}}} * {prices.cpu_core_hour!r}',
        f'{REQUESTS}{{resource="memory", {where}}} / {GIB} * {prices.memory_gib_hour!r}',
    ]
    if prices.gpu_hour is not None:
        terms.append(f'{REQUESTS}{{resource="nvidia_com_gpu", {where}}} * {prices.gpu_hour!r}')
    # Completed pods (finished pipeline steps) keep their requests in kube-state-metrics but
    # hold no node: only running pods are priced.
    running = f'max by (namespace, pod) ({PHASE}{{phase="Running", {where}}} == 1)'
    return "\n".join(
        [
            "sum by (namespace) (",
            "  (",
            *[f"    {term}" if i == 0 else f"    or {term}" for i, term in enumerate(terms)],
            "  )",
            f"  * on (namespace, pod) group_left () {running}",
            ")",
        ]
    )


def cost_groups(tenants: Sequence[str], prices: UnitPrices | None) -> list[dict[str, Any]]:
    """The ``sovereign-ml.cost`` rule group; none without tenants or without prices."""
    if not tenants or prices is None:
        return []
    return [
        {
            "name": "sovereign-ml.cost",
            "rules": [
                {"record": HOURLY, "expr": hourly_cost_expr(tenants, prices)},
                {"record": MONTHLY, "expr": f"{HOURLY} * {prices.hours_per_month!r}"},
            ],
        }
    ]
