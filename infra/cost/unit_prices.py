"""Prices of a requested vCPU-, GiB- and GPU-hour per stack, from the table ``sovml cost`` uses.

The cost-per-tenant rules (:mod:`components._cost_rules`) price kube-state-metrics' requests
with these. A pool is priced as ``sovml cost`` prices it (:mod:`infra.cost.pools`): its first
(cheapest) instance type at its capacity type, from ``infra/cost/prices/<region>.yaml``; the
type's shape (vCPUs, memory GiB, GPUs) comes from ``infra/cost/shapes.yaml``.

The split of an instance's hourly price ``P`` among its resources is proportional to weights:
OpenCost's default prices (its ``configs/default.json``: $0.031611 per vCPU-hour, $0.004237 per
GiB-hour, $0.95 per GPU-hour), used as a *ratio* only, scaled so that a node whose every vCPU,
GiB and GPU is requested costs exactly ``P``::

    k = P / (vcpu x 0.031611 + gib x 0.004237 + gpus x 0.95)
    vCPU-hour = k x 0.031611,  GiB-hour = k x 0.004237,  GPU-hour = k x 0.95

Why this rule: a plain per-node price says nothing about CPU versus memory, and a split by equal
shares would make a memory-optimised node's vCPU dearer than a compute-optimised one's; a
widely used fixed ratio keeps the unit prices comparable across families while every fully
requested node still sums to its own price.

Which pool prices what: CPU and memory at the ``workers`` pool's rates (where tenant pipelines
and CPU serving run; the ``system`` pool's when there is no workers pool), GPUs at the ``gpu``
pool's GPU rate. The metric does not say which pool a pod runs on, so a GPU pod's CPU and
memory are priced at the workers' rates, not the GPU node's (the approximation the README
states).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from components._cost_rules import UnitPrices
from infra.config import NodePoolConfig
from infra.config.yamlfile import safe_load
from infra.cost.price_table import PRICES_DIR, CostError, PriceTable, load_prices

SHAPES_PATH = Path(__file__).resolve().parent / "shapes.yaml"
WEIGHTS = {"vcpu": 0.031611, "gib": 0.004237, "gpu": 0.95}
"""OpenCost's default hourly prices per vCPU, GiB and GPU: the ratio of the split (only)."""
SIGNIFICANT = 6
"""Unit prices are rounded to this many significant digits (the table is approximate; the rules
and the tests then read the same short numbers)."""


@dataclass(frozen=True)
class InstanceShape:
    """What one instance type offers the pods on it."""

    vcpu: int
    """vCPUs (Kubernetes cores)."""
    memory_gib: float
    """Memory in GiB."""
    gpus: int
    """NVIDIA GPUs."""


def parse_shapes(doc: Any, where: str = "shapes") -> dict[str, InstanceShape]:
    """Instance type -> shape from the YAML document; CostError naming the first bad entry."""
    shapes = doc.get("shapes") if isinstance(doc, Mapping) else None
    if not isinstance(shapes, Mapping) or not shapes:
        raise CostError(f"{where}: shapes must map instance types to their shapes")
    if not isinstance(doc.get("source"), str) or not doc["source"].strip():
        raise CostError(f"{where}: source must say where the shapes come from")
    out = {}
    for name, entry in shapes.items():
        shape = _shape(entry)
        if shape is None:
            raise CostError(
                f"{where}: shapes.{name} must be {{vcpu: int > 0, memoryGiB: number > 0, "
                f"gpus: int >= 0}}, got {entry!r}"
            )
        out[str(name)] = shape
    return out


def _shape(entry: Any) -> InstanceShape | None:
    """One shape entry, or None unless it has exactly the three keys with sane values (booleans
    are not numbers)."""
    if not isinstance(entry, Mapping) or set(entry) != {"vcpu", "memoryGiB", "gpus"}:
        return None
    vcpu, gib, gpus = entry["vcpu"], entry["memoryGiB"], entry["gpus"]
    if type(vcpu) is not int or type(gpus) is not int or type(gib) not in (int, float):
        return None
    if vcpu < 1 or gpus < 0 or not gib > 0:
        return None
    return InstanceShape(vcpu, float(gib), gpus)


def load_shapes(path: Path = SHAPES_PATH) -> dict[str, InstanceShape]:
    """The instance shapes; CostError when the file is missing or malformed."""
    try:
        doc = safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise CostError(f"{path}: cannot read instance shapes: {exc}") from None
    return parse_shapes(doc, str(path))


def _round(value: float) -> float:
    return float(f"{value:.{SIGNIFICANT}g}")


def split(hourly: float, shape: InstanceShape) -> tuple[float, float, float]:
    """An instance's hourly price as (per vCPU-hour, per GiB-hour, per GPU-hour), unrounded."""
    units = (shape.vcpu, shape.memory_gib, shape.gpus)
    weights = (WEIGHTS["vcpu"], WEIGHTS["gib"], WEIGHTS["gpu"])
    k = hourly / sum(u * w for u, w in zip(units, weights, strict=True))
    return k * weights[0], k * weights[1], k * weights[2]


def _priced(
    pool: NodePoolConfig, prices: PriceTable, shapes: Mapping[str, InstanceShape]
) -> tuple[tuple[float, float, float], str]:
    """The pool's split unit prices and its basis (``role type CAPACITY $P/h``)."""
    itype = pool.instance_types[0]  # the type ``sovml cost`` prices the pool by
    hourly = prices.instance_hourly(itype, pool.capacity_type)
    if hourly is None:
        raise CostError(f"{pool.role} pool: no {pool.capacity_type} price for {itype}")
    shape = shapes.get(itype)
    if shape is None:
        raise CostError(f"{pool.role} pool: no shape for {itype}: add it to {SHAPES_PATH.name}")
    return split(hourly, shape), f"{pool.role} {itype} {pool.capacity_type} ${hourly:g}/h"


def unit_prices(
    pools: Sequence[NodePoolConfig], prices: PriceTable, shapes: Mapping[str, InstanceShape]
) -> UnitPrices:
    """The stack's unit prices (module docstring); CostError for an unpriced or unknown type."""
    by_role = {p.role: p for p in pools}
    cpu_pool = by_role.get("workers") or by_role.get("system")
    if cpu_pool is None:
        raise CostError("no workers or system pool to price CPU and memory by")
    (cpu, gib, _), basis = _priced(cpu_pool, prices, shapes)
    gpu_hour, bases = None, [basis]
    gpu_pool = next((p for p in pools if p.gpu), None)
    if gpu_pool is not None:
        (_, _, gpu_hour), gpu_basis = _priced(gpu_pool, prices, shapes)
        bases.append(gpu_basis)
    return UnitPrices(
        cpu_core_hour=_round(cpu),
        memory_gib_hour=_round(gib),
        gpu_hour=None if gpu_hour is None else _round(gpu_hour),
        hours_per_month=prices.hours_per_month,
        basis=f"{'; '.join(bases)}; prices {prices.region} {prices.date}",
    )


def stack_unit_prices(
    region: str,
    pools: Sequence[NodePoolConfig],
    warn: Callable[[str], None],
    prices_dir: Path = PRICES_DIR,
    shapes_path: Path = SHAPES_PATH,
) -> UnitPrices | None:
    """The unit prices of a stack, or None (said through ``warn``) when they cannot be derived:
    then no cost rules are declared rather than wrong ones, and the rest of the stack stands."""
    try:
        return unit_prices(pools, load_prices(region, prices_dir), load_shapes(shapes_path))
    except CostError as exc:
        warn(f"cost per tenant not recorded: {exc}")
        return None
