"""Node pools priced at their min and max sizes: instances and root volumes per pool.

A pool is priced by its first (cheapest) instance type at its capacity type, with the root-volume
size of the launch template it uses. A pool whose minimum is 0 still keeps one node while a model
server that never scales to zero sits on it (``serving_floors``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from infra.config.keys import POOL_ROLES
from infra.cost.items import LineItem, Resource, inputs_of, money, of_type
from infra.cost.price_table import PriceTable

NODE_GROUP = "aws:eks/nodeGroup:NodeGroup"
LAUNCH_TEMPLATE = "aws:ec2/launchTemplate:LaunchTemplate"
ROLLOUT = "kubernetes:argoproj.io/v1alpha1:Rollout"
SCALED_OBJECT = "kubernetes:keda.sh/v1alpha1:ScaledObject"

POOL_LABEL = "sovereign-ml/pool"
"""Node label (and Rollout node selector) naming a node's pool, as ``components._k8s`` sets it
(not imported from there: reading a record must not load the Pulumi SDK)."""

# EKS managed node groups get a 20 GiB root volume when the launch template names none.
DEFAULT_NODE_DISK_GIB = 20

POOL_ORDER: Mapping[str, int] = {role: i for i, role in enumerate(POOL_ROLES)}
"""Report order of the pools: the config's role order, whatever order they registered in."""
OTHER_POOLS = 9
"""Order of a pool with another (or no) role label: after the known ones."""


def _pool(group: Resource) -> Any:
    """The pool label of a node group, or None."""
    return (inputs_of(group).get("labels") or {}).get(POOL_LABEL)


def node_groups(resources: Iterable[Resource]) -> list[Resource]:
    """The record's node groups in report order (pool role, then name)."""
    return sorted(
        of_type(resources, NODE_GROUP),
        key=lambda g: (POOL_ORDER.get(_pool(g), OTHER_POOLS), g["name"]),
    )


def launch_templates(resources: Iterable[Resource]) -> dict[str, Resource]:
    """Launch templates by id and by URN (node groups refer to them either way)."""
    templates: dict[str, Resource] = {}
    for lt in of_type(resources, LAUNCH_TEMPLATE):
        for ref in (lt.get("id"), lt.get("urn")):
            if ref:
                templates[str(ref)] = lt
    return templates


def volume_gib(group: Resource, templates: Mapping[str, Resource]) -> int:
    """Root-volume GiB of the launch template a node group uses (by id, else by dependency)."""
    lt_ref = inputs_of(group).get("launchTemplate") or {}
    template = templates.get(str(lt_ref.get("id")))
    if template is None:
        for urn in (group.get("propertyDependencies") or {}).get("launchTemplate", []):
            template = templates.get(urn)
            if template:
                break
    if template is None:
        return int(inputs_of(group).get("diskSize") or DEFAULT_NODE_DISK_GIB)
    total = 0
    for mapping in inputs_of(template).get("blockDeviceMappings") or []:
        ebs = mapping.get("ebs") or {}
        total += int(ebs.get("volumeSize") or 0)
    return total or DEFAULT_NODE_DISK_GIB


def _scaled_to_zero(resources: Iterable[Resource]) -> set[tuple[str, str]]:
    """(namespace, name) of the Rollouts a KEDA ScaledObject may take to zero replicas."""
    to_zero: set[tuple[str, str]] = set()
    for so in of_type(resources, SCALED_OBJECT):
        inputs = inputs_of(so)
        spec = inputs.get("spec") or {}
        ref = spec.get("scaleTargetRef") or {}
        if ref.get("kind") == "Rollout" and 0 in (
            spec.get("minReplicaCount", 0),
            spec.get("idleReplicaCount"),
        ):
            to_zero.add(((inputs.get("metadata") or {}).get("namespace", ""), ref.get("name", "")))
    return to_zero


def serving_floors(resources: Iterable[Resource]) -> dict[str, list[str]]:
    """Pools that keep a node for always-on model servers: pool -> the Rollouts pinning it.

    A Triton Rollout with replicas holds a node of the pool its pods select around the clock,
    whatever the pool's own minimum; one a KEDA ScaledObject may take to zero replicas
    (``minReplicaCount`` or ``idleReplicaCount`` 0) does not.
    """
    resources = list(resources)
    to_zero = _scaled_to_zero(resources)
    floors: dict[str, list[str]] = {}
    for ro in of_type(resources, ROLLOUT):
        inputs = inputs_of(ro)
        meta, spec = inputs.get("metadata") or {}, inputs.get("spec") or {}
        if (meta.get("namespace", ""), meta.get("name", "")) in to_zero:
            continue
        if int(spec.get("replicas", 1) or 0) < 1:
            continue
        pod = (spec.get("template") or {}).get("spec") or {}
        pool = (pod.get("nodeSelector") or {}).get(POOL_LABEL)
        if pool:
            floors.setdefault(str(pool), []).append(str(meta.get("name") or ro.get("name")))
    return floors


@dataclass(frozen=True)
class PoolSize:
    """What one node group runs: nodes at min and max, the instance type priced, its price."""

    group: str
    """The node group's name in the record."""
    pool: str
    """The pool label, else the node group's name."""
    low: int
    """Nodes at the minimum (1 where a model server pins the pool)."""
    high: int
    """Nodes at the maximum."""
    pinned: str
    """Why the minimum was raised to 1 (appended to the basis), else empty."""
    capacity: str
    """ON_DEMAND or SPOT."""
    instance_type: str
    """The type that prices the pool: its first (cheapest) one."""
    type_count: int
    """How many instance types the pool lists."""
    hourly: float
    """Hourly price of one node (0 where the table has none)."""


def pool_size(
    group: Resource, prices: PriceTable, floors: Mapping[str, list[str]], unpriced: list[str]
) -> PoolSize:
    """Read one node group's sizes, capacity and types, and price its first type."""
    inputs = inputs_of(group)
    scaling = inputs.get("scalingConfig") or {}
    low, high = int(scaling.get("minSize") or 0), int(scaling.get("maxSize") or 0)
    pool = _pool(group) or group["name"]
    # A pool at min 0 still runs a node while a model server that never idles sits on it.
    pinned = (
        f" (min 1: {', '.join(floors[pool])} never scales to zero)"
        if (low < 1 and floors.get(pool))
        else ""
    )
    low = max(low, 1) if pinned else low
    capacity = str(inputs.get("capacityType") or "ON_DEMAND")
    types = [str(t) for t in inputs.get("instanceTypes") or []]
    # The pools list their types cheapest first and EKS launches on-demand capacity in that
    # order, so the first type prices the pool; spot prices come from the same first type.
    itype = types[0] if types else "(none)"
    hourly = prices.instance_hourly(itype, capacity)
    if hourly is None:
        unpriced.append(f"{group['name']}: no {capacity} price for {itype}")
        hourly = 0.0
    return PoolSize(group["name"], pool, low, high, pinned, capacity, itype, len(types), hourly)


def _per_node(
    size: PoolSize,
    what: str,
    category: str,
    detail: str,
    amount: tuple[float, str],
    price: float,
    min_note: str = "",
) -> LineItem:
    """One line item: nodes at min and max x ``amount`` x ``price`` per month.

    ``amount`` is (hours or GiB per node, its label); ``min_note`` says why the minimum is above
    the pool's own.
    """
    unit = f"{amount[1]} x {money(price)}"
    return LineItem(
        key=f"{what}: {size.pool}",
        category=category,
        detail=detail,
        basis_min=f"{size.low} x {unit}{min_note}",
        basis_max=f"{size.high} x {unit}",
        monthly_min=size.low * amount[0] * price,
        monthly_max=size.high * amount[0] * price,
        resources=(size.group,),
    )


def pool_items(size: PoolSize, gib: int, prices: PriceTable) -> list[LineItem]:
    """The nodes and node-disk line items of one pool."""
    hours, gb_price = prices.hours_per_month, prices.ebs_gp3_gb_month
    many = f" (of {size.type_count} types)" if size.type_count > 1 else ""
    instances, per_hour = f"{size.instance_type} {size.capacity}{many}", (hours, f"{hours:g} h")
    nodes = _per_node(size, "nodes", "compute", instances, per_hour, size.hourly, size.pinned)
    # The disks follow the nodes' count, pinned minimum included (it is said on the nodes' line).
    disks = _per_node(
        size, "node disks", "storage", f"{gib} GiB gp3 per node", (gib, f"{gib} GB"), gb_price
    )
    return [nodes, disks]


def node_items(
    resources: list[Resource], prices: PriceTable, floors: Mapping[str, list[str]]
) -> tuple[list[LineItem], list[str]]:
    """Every pool's nodes and node disks in report order, and what could not be priced."""
    templates = launch_templates(resources)
    items: list[LineItem] = []
    unpriced: list[str] = []
    for group in node_groups(resources):
        size = pool_size(group, prices, floors, unpriced)
        items += pool_items(size, volume_gib(group, templates), prices)
    return items, unpriced
