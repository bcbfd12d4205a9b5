"""What the estimate bills besides node pools: the kinds table and how each kind is counted.

The table is data, ``infra/cost/billables.yaml``: one entry per billable resource kind, naming
the synth record's type token, how its quantity is read from the inputs (one of ``READERS``),
which price of ``prices/<region>.yaml`` bills one unit and per what (hour, month, or an assumed
usage in GB per month), and how the line item is labelled. ``kind_items`` evaluates one entry;
``billing()`` is the table in report order. Node pools are priced apart (``infra.cost.pools``):
their figures depend on the pools' min and max sizes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, Literal, get_args

import yaml

from infra.cost.price_table import FIELDS, CostError, PriceTable

Resource = Mapping[str, Any]
"""One resource of the synth record (``type``, ``name``, ``custom``, ``inputs``, ...)."""

BILLABLES_FILE = Path(__file__).resolve().parent / "billables.yaml"

AVAILABILITY: Mapping[bool, tuple[int, str]] = {True: (2, "Multi-AZ"), False: (1, "single-AZ")}
"""An RDS instance's ``multiAz`` -> (instances billed, label): Multi-AZ runs a standby."""


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


def money(x: float) -> str:
    """Dollars with at least two decimals; unit prices below $1 keep up to four."""
    if x >= 1:
        return f"${x:,.2f}"
    text = f"{x:.4f}".rstrip("0")
    return "$" + text + "0" * max(0, 2 - len(text.partition(".")[2]))


def of_type(resources: Iterable[Resource], typ: str) -> list[Resource]:
    """The custom resources of type ``typ``, in record order."""
    return [r for r in resources if r.get("custom", True) and r.get("type") == typ]


def inputs_of(resource: Resource) -> Mapping[str, Any]:
    """The resource's inputs; empty when the record has none."""
    return resource.get("inputs") or {}


# --------------------------------------------------------------------------------------------
# Quantity readers: resources of one type -> what one or more line items count
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Quantity:
    """What one line item counts, read from the record."""

    count: int
    """Units billed (resources, ENIs, cache nodes, instances)."""
    names: tuple[str, ...]
    """The resources counted; an item with none is left out where its kind says so."""
    facts: Mapping[str, Any] = field(default_factory=dict)
    """Values for the kind's key and detail templates; ``class`` picks a price from a map."""
    storage_gb: tuple[int, int] | None = None
    """Allocated GB at (min, max), billed per instance beside the unit price (RDS)."""


Reader = Callable[[list[Resource]], list[Quantity]]
"""Resources of one type (record order) -> the quantities of its line items."""


def count_all(resources: list[Resource]) -> list[Quantity]:
    """One item counting every resource of the type."""
    return [Quantity(len(resources), tuple(r["name"] for r in resources))]


def interface_endpoint_azs(resources: list[Resource]) -> list[Quantity]:
    """One item counting interface-endpoint ENIs (gateway endpoints are free)."""
    interface = [r for r in resources if inputs_of(r).get("vpcEndpointType") == "Interface"]
    # An interface endpoint places one ENI in each subnet it names; AWS bills per ENI-hour.
    enis = sum(len(inputs_of(r).get("subnetIds") or []) for r in interface)
    names = tuple(r["name"] for r in interface)
    return [Quantity(enis, names, {"endpoints": len(interface)})]


def cache_nodes(resources: list[Resource]) -> list[Quantity]:
    """One item per replication group, counting its cache nodes."""
    out = []
    for r in resources:
        inputs = inputs_of(r)
        facts = {
            "name": r["name"],
            "class": str(inputs.get("nodeType") or "(none)"),
            "engine": inputs.get("engine", ""),
        }
        out.append(Quantity(int(inputs.get("numCacheClusters") or 1), (r["name"],), facts))
    return out


def rds_instances(resources: list[Resource]) -> list[Quantity]:
    """One item per RDS instance: its copies (standby for Multi-AZ) and storage allocated..max."""
    out = []
    for r in resources:
        inputs = inputs_of(r)
        copies, az = AVAILABILITY[bool(inputs.get("multiAz"))]
        low = int(inputs.get("allocatedStorage") or 0)
        # Storage autoscaling may grow the volume up to maxAllocatedStorage.
        high = max(low, int(inputs.get("maxAllocatedStorage") or 0))
        facts = {
            "name": r["name"],
            "class": str(inputs.get("instanceClass") or "(none)"),
            "engine": inputs.get("engine", ""),
            "az": az,
            "low": low,
            "high": high,
        }
        out.append(Quantity(copies, (r["name"],), facts, storage_gb=(low, high)))
    return out


READERS: Mapping[str, Reader] = {
    "count": count_all,
    "interface endpoint AZs": interface_endpoint_azs,
    "cache nodes": cache_nodes,
    "RDS instances": rds_instances,
}
"""The ``quantity`` names the kinds table may use."""


# --------------------------------------------------------------------------------------------
# The kinds table (billables.yaml)
# --------------------------------------------------------------------------------------------

Per = Literal["hour", "month", "usage"]
"""What one price unit covers: an hour, a month, or the kind's assumed monthly usage in GB."""


@dataclass(frozen=True)
class Billable:
    """One billable resource kind: how the record is counted and which price bills it."""

    type: str
    """The synth record's type token."""
    key: str
    """Line-item key; ``{name}`` for one item per resource."""
    category: str
    """compute, storage, network, control plane, security, logging, database or governance."""
    detail: str
    """Template over the quantity's facts, ``{count}`` and ``{usage}``."""
    price: str
    """``PriceTable`` field of the unit price; a map is indexed by the quantity's ``class``."""
    per: Per
    """What one price unit covers (see ``Per``)."""
    usage: str = ""
    """With ``per="usage"``: the ``PriceTable`` field of the assumed GB per resource per month."""
    quantity: Reader = count_all
    """How the record is counted."""
    unpriced: str = ""
    """Service named when the map has no price for the class (``no RDS price for ...``)."""
    storage_price: str = ""
    """``PriceTable`` field of the GB-month price of the quantity's ``storage_gb``."""
    only_present: bool = False
    """Leave the item out when the record has none (instead of a $0 line)."""
    assumption: str = ""
    """Stated among the estimate's assumptions when the record has any (template, ``{usage}``)."""


@dataclass(frozen=True)
class Billing:
    """The kinds table: what is priced, in report order, and what is known not to be."""

    kinds: tuple[Billable, ...]
    """Every priced kind besides node pools, in the order the report lists them."""
    unpriced_types: tuple[str, ...]
    """Billable types the estimate does not price yet; a record holding one reports it."""


_PRICE_PATHS = {path: (name, shape) for name, path, shape in FIELDS}
_KIND_KEYS = (
    "key",
    "type",
    "category",
    "detail",
    "quantity",
    "price",
    "per",
    "usage",
    "unpriced",
    "storagePrice",
    "onlyPresent",
    "assumption",
)


def _text(entry: Mapping[str, Any], key: str, where: str, required: bool = True) -> str:
    value = entry.get(key, None if required else "")
    if not isinstance(value, str) or (required and not value):
        raise CostError(f"{where}: {key} must be a non-empty string, got {value!r}")
    return value


def _price_field(path: str, where: str, key: str) -> tuple[str, str]:
    """(``PriceTable`` field, shape) at ``path`` of the price table."""
    if path not in _PRICE_PATHS:
        known = ", ".join(sorted(_PRICE_PATHS))
        raise CostError(f"{where}: {key} {path!r} is not a price-table path ({known})")
    return _PRICE_PATHS[path]


def _amount_field(path: str, where: str, key: str) -> str:
    """The ``PriceTable`` field of a single amount at ``path``."""
    name, shape = _price_field(path, where, key)
    if shape != "number":
        raise CostError(f"{where}: {key} {path!r} is a map of prices; give a single amount")
    return name


def _check_choices(entry: Mapping[str, Any], where: str) -> None:
    """Keys, ``per``, ``quantity`` and flags are among the allowed values."""
    unknown = sorted(set(entry) - set(_KIND_KEYS))
    if unknown:
        raise CostError(f"{where}: unknown keys {unknown}; allowed: {list(_KIND_KEYS)}")
    per = _text(entry, "per", where)
    if per not in get_args(Per):
        raise CostError(f"{where}: per must be one of {list(get_args(Per))}, got {per!r}")
    quantity = entry.get("quantity", "count")
    if quantity not in READERS:
        raise CostError(f"{where}: quantity must be one of {list(READERS)}, got {quantity!r}")
    if not isinstance(entry.get("onlyPresent", False), bool):
        raise CostError(f"{where}: onlyPresent must be true or false")
    if entry.get("assumption") and per != "usage":
        raise CostError(f"{where}: an assumption goes with per: usage")


def _billable(entry: Any, where: str) -> Billable:
    """One checked entry of ``kinds``."""
    if not isinstance(entry, Mapping):
        raise CostError(f"{where}: expected a mapping")
    _check_choices(entry, where)
    per = entry["per"]
    price, shape = _price_field(_text(entry, "price", where), where, "price")
    unpriced = _text(entry, "unpriced", where, required=shape != "number")
    if unpriced and shape == "number":
        raise CostError(f"{where}: unpriced goes with a map of prices")
    storage = _text(entry, "storagePrice", where, required=False)
    return Billable(
        type=_text(entry, "type", where),
        key=_text(entry, "key", where),
        category=_text(entry, "category", where),
        detail=_text(entry, "detail", where),
        price=price,
        per=per,
        usage=_amount_field(_text(entry, "usage", where), where, "usage") if per == "usage" else "",
        quantity=READERS[entry.get("quantity", "count")],
        unpriced=unpriced,
        storage_price=_amount_field(storage, where, "storagePrice") if storage else "",
        only_present=entry.get("onlyPresent", False),
        assumption=_text(entry, "assumption", where, required=False),
    )


def parse_billables(doc: Any, where: str = "billables") -> Billing:
    """A ``Billing`` from the YAML document; CostError naming the first bad entry and key."""
    if not isinstance(doc, Mapping) or not isinstance(doc.get("kinds"), list):
        raise CostError(f"{where}: expected a mapping with a list of kinds")
    kinds = []
    for i, entry in enumerate(doc["kinds"]):
        label = f" ({entry.get('key')})" if isinstance(entry, Mapping) else ""
        kinds.append(_billable(entry, f"{where}: kinds[{i}]{label}"))
    types = doc.get("unpriced", [])
    if not isinstance(types, list) or not all(isinstance(t, str) and t for t in types):
        raise CostError(f"{where}: unpriced must be a list of type tokens")
    return Billing(tuple(kinds), tuple(types))


@cache
def billing(path: Path = BILLABLES_FILE) -> Billing:
    """The kinds table of ``path`` (``infra/cost/billables.yaml``), read once."""
    try:
        doc = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise CostError(f"{path}: cannot read the kinds table: {exc}") from None
    return parse_billables(doc, str(path))


# --------------------------------------------------------------------------------------------
# Evaluation
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Priced:
    """Line items of one kind, with what they assumed and what they could not price."""

    items: list[LineItem]
    assumptions: list[str]
    unpriced: list[str]


def _unit_price(kind: Billable, q: Quantity, prices: PriceTable, unpriced: list[str]) -> float:
    """The price of one unit; a map without the quantity's class prices it at 0 and says so."""
    price = getattr(prices, kind.price)
    if not isinstance(price, Mapping):
        return float(price)
    hourly = price.get(q.facts["class"])
    if hourly is None:
        unpriced.append(f"{q.names[0]}: no {kind.unpriced} price for {q.facts['class']}")
        return 0.0
    return float(hourly)


def _item(kind: Billable, q: Quantity, prices: PriceTable, unpriced: list[str]) -> LineItem:
    """``count`` x unit (+ allocated GB x GB price, where the kind bills storage) per month."""
    price = _unit_price(kind, q, prices, unpriced)
    hours = prices.hours_per_month
    facts: dict[str, Any] = {**q.facts, "count": q.count}
    if kind.per == "hour":
        unit, unit_basis = hours * price, f"{hours:g} h x {money(price)}"
    elif kind.per == "month":
        unit, unit_basis = price, f"{money(price)}/month"
    else:
        usage = getattr(prices, kind.usage)
        facts["usage"] = usage
        unit, unit_basis = usage * price, f"{usage:g} GB x {money(price)}"
    detail = kind.detail.format_map(facts).strip()
    key = kind.key.format_map(facts)
    names = tuple(sorted(q.names))
    if q.storage_gb is None or not kind.storage_price:
        basis = f"{q.count} x {unit_basis}" if q.count else "none in the record"
        monthly = q.count * unit
        return LineItem(key, kind.category, detail, basis, basis, monthly, monthly, names)
    gb = getattr(prices, kind.storage_price)
    (low, high), copies = q.storage_gb, q.count
    return LineItem(
        key=key,
        category=kind.category,
        detail=detail,
        basis_min=f"{copies} x ({unit_basis} + {low} GB x {money(gb)})",
        basis_max=f"{copies} x ({unit_basis} + {high} GB x {money(gb)})",
        monthly_min=copies * (unit + low * gb),
        monthly_max=copies * (unit + high * gb),
        resources=names,
    )


def kind_items(kind: Billable, resources: Iterable[Resource], prices: PriceTable) -> Priced:
    """The line items of one kind in the record, with their assumptions and unpriced parts."""
    priced = Priced([], [], [])
    for q in kind.quantity(of_type(resources, kind.type)):
        if kind.only_present and not q.names:
            continue
        priced.items.append(_item(kind, q, prices, priced.unpriced))
        if kind.assumption and q.names:
            priced.assumptions.append(kind.assumption.format(usage=getattr(prices, kind.usage)))
    return priced


def unpriced_types(resources: Iterable[Resource], types: Iterable[str]) -> list[str]:
    """One line per resource of a billable type the estimate does not price yet (``types``)."""
    known = set(types)
    return [
        f"{r['name']}: {r['type']} is not priced by infra/cost/estimate.py"
        for r in resources
        if r.get("type") in known
    ]
