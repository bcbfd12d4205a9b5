"""Cost per tenant in tests: the unit prices of a synth record, and the known requests of two
tenants served as kube-state-metrics series with the cost they must come to.

:data:`PODS` is what :mod:`tests.synthetic_exporter` serves as kube-state-metrics for the
session's Prometheus and what ``tests/test_cost_unit_prices.py`` feeds promtool: two tenant
namespaces of ``prod-uae`` (one with a GPU pod), a finished pod in a tenant namespace and a
platform pod, the last two of which must cost nothing. :func:`expected_hourly` is the answer
worked out here from the requests, independently of the rule's PromQL.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from components._cost_rules import GIB, UnitPrices
from infra.config import NodePoolConfig
from infra.cost.unit_prices import stack_unit_prices

TENANTS = ("risk-analytics", "customer-insights")
"""``prod-uae``'s tenants."""


@dataclass(frozen=True)
class Pod:
    """One pod as kube-state-metrics sees it: a phase and its containers' requests."""

    namespace: str
    name: str
    phase: str
    containers: dict[str, dict[str, float]]
    """Container -> resource (``cpu`` cores, ``memory`` bytes, ``nvidia_com_gpu``) -> request."""


PODS = (
    Pod(
        "risk-analytics",
        "train-gpu-0",
        "Running",
        {
            "trainer": {"cpu": 4.0, "memory": 16 * GIB, "nvidia_com_gpu": 1.0},
            "sidecar": {"cpu": 0.25, "memory": 256 * 1024**2},
        },
    ),
    Pod("risk-analytics", "features-7f9c", "Running", {"main": {"cpu": 2.0, "memory": 8 * GIB}}),
    Pod("customer-insights", "scoring-0", "Running", {"main": {"cpu": 1.5, "memory": 6 * GIB}}),
    # A finished pipeline step: its requests are still exported but it holds no node.
    Pod("customer-insights", "step-done", "Succeeded", {"main": {"cpu": 8.0, "memory": 32 * GIB}}),
    # A platform pod: not a tenant's, never priced.
    Pod("serving", "triton-0", "Running", {"triton": {"cpu": 4.0, "memory": 16 * GIB}}),
)
UNITS = {"cpu": "core", "memory": "byte", "nvidia_com_gpu": "integer"}
"""The ``unit`` label kube-state-metrics puts on each resource's requests."""
PHASES = ("Pending", "Running", "Succeeded", "Failed", "Unknown")


def ksm_series(pods: tuple[Pod, ...] = PODS) -> list[tuple[str, dict[str, str], float]]:
    """``(metric, labels, value)`` of kube-state-metrics v2 for the pods: requests per
    container and resource, and one phase series per phase (1 for the pod's, else 0)."""
    out: list[tuple[str, dict[str, str], float]] = []
    for pod in pods:
        base = {"namespace": pod.namespace, "pod": pod.name, "uid": f"uid-{pod.name}"}
        for container, requests in pod.containers.items():
            node = {"node": "ip-10-40-1-10.me-central-1.compute.internal", "container": container}
            for resource, value in requests.items():
                labels = {**base, **node, "resource": resource, "unit": UNITS[resource]}
                out.append(("kube_pod_container_resource_requests", labels, value))
        for phase in PHASES:
            out.append(
                ("kube_pod_status_phase", {**base, "phase": phase}, float(phase == pod.phase))
            )
    return out


def expected_hourly(prices: UnitPrices, pods: tuple[Pod, ...] = PODS) -> dict[str, float]:
    """USD per hour per tenant: running tenant pods' requests x the unit prices."""
    rate = {"cpu": prices.cpu_core_hour, "nvidia_com_gpu": prices.gpu_hour or 0.0}
    cost: dict[str, float] = {}
    for pod in pods:
        if pod.namespace not in TENANTS or pod.phase != "Running":
            continue
        for requests in pod.containers.values():
            for resource, value in requests.items():
                if resource == "memory":
                    amount = value / GIB * prices.memory_gib_hour
                else:
                    amount = value * rate[resource]
                cost[pod.namespace] = cost.get(pod.namespace, 0.0) + amount
    return cost


def _refuse(message: str) -> None:
    raise AssertionError(message)


def record_unit_prices(config: dict[str, Any]) -> UnitPrices | None:
    """The unit prices the program derives for a synth record's config (the same function)."""
    pools = [
        NodePoolConfig(**{**p, "instance_types": tuple(p["instance_types"])})
        for p in config["node_pools"]
    ]
    return stack_unit_prices(config["region"], pools, _refuse)


def cost_args(config: dict[str, Any]) -> dict[str, Any]:
    """The MonitoringArgs fields of the cost rules for a synth record's config."""
    return {"tenants": tuple(config["tenants"]), "unit_prices": record_unit_prices(config)}
