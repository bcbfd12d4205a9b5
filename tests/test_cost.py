"""The cost estimate: computed from the synth record and the dated price table only."""

from __future__ import annotations

import copy
import json
import math
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from infra import tenants as tenantmod
from infra.config.stackfile import STACKS
from infra.cost.estimate import estimate
from infra.cost.items import billing, parse_billables
from infra.cost.pools import NODE_GROUP, SCALED_OBJECT, serving_floors
from infra.cost.price_table import CostError, PriceTable, load_prices, parse_prices
from infra.synth.runner import synthesize

EMAIL = "ops@acme.example.ae"
WEBHOOK = "https://itsm.example.ae/alertmanager"
ACCOUNT = "111122223333"
"""The AWS account of the fixture tenants (AWS's documentation account)."""
"""The paging receiver a tenant stack (prod) must name."""
TYPE = {kind.key: kind.type for kind in billing().kinds}
"""Line-item key -> the record type it counts, from the kinds table."""


@pytest.fixture(scope="module")
def records(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """prod-uae and an SMB tenant rendered from the template, synthesized once."""
    root = tmp_path_factory.mktemp("cost")
    stacks, build = root / "stacks", root / "build"
    stacks.mkdir()
    (stacks / "Pulumi.prod-uae.yaml").write_text((STACKS / "Pulumi.prod-uae.yaml").read_text())
    tenantmod.create_tenant(
        tenantmod.TenantRequest(
            "acme",
            emails=(EMAIL,),
            alert_webhook=WEBHOOK,
            oidc_issuer="https://login.example.ae/realms/ml",
            oidc_jwks_uri="https://login.example.ae/realms/ml/certs",
            account_id=ACCOUNT,
        ),
        stacks,
    )
    return {
        s: synthesize(s, stacks_dir=stacks, build_dir=build).record for s in ("prod-uae", "acme")
    }


@pytest.fixture(scope="module")
def prices() -> PriceTable:
    return load_prices("me-central-1")


def of_type(record: dict[str, Any], typ: str) -> list[dict[str, Any]]:
    return [r for r in record["resources"] if r["custom"] and r["type"] == typ]


def test_price_table_is_dated_data_for_its_region(prices: PriceTable) -> None:
    assert prices.region == "me-central-1" and prices.currency == "USD"
    assert len(prices.date) == 10 and prices.date[4] == "-"
    assert "approximate" in prices.source.lower()
    for itype in ("m7i.large", "m7i.xlarge", "m7i.2xlarge", "c7i.2xlarge", "g5.2xlarge"):
        assert prices.on_demand_hourly[itype] > prices.spot_hourly[itype] > 0, itype
    with pytest.raises(CostError, match="no price table for region us-east-1"):
        load_prices("us-east-1")


def test_smb_tenant_is_cpu_only_with_spot_workers(records: dict[str, dict[str, Any]]) -> None:
    groups = {g["inputs"]["labels"]["sovereign-ml/pool"]: g for g in of_type(
        records["acme"], NODE_GROUP)}  # fmt: skip
    assert set(groups) == {"system", "workers"}
    assert groups["workers"]["inputs"]["capacityType"] == "SPOT"
    assert groups["system"]["inputs"]["capacityType"] == "ON_DEMAND"
    assert all(g["inputs"]["amiType"] != "AL2023_x86_64_NVIDIA" for g in groups.values())


def test_smb_costs_less_than_prod(records: dict[str, dict[str, Any]], prices: PriceTable) -> None:
    smb = estimate(records["acme"], prices)
    prod = estimate(records["prod-uae"], prices)
    assert smb.total_min < prod.total_min and smb.total_max < prod.total_max
    assert smb.item("nodes: gpu") is None and prod.item("nodes: gpu") is not None
    # Within its own default budget even with every pool at its maximum.
    assert smb.total_max < tenantmod.TEMPLATES["smb"].default_budget_usd
    assert not smb.unpriced and not prod.unpriced


def test_line_items_come_from_the_record(
    records: dict[str, dict[str, Any]], prices: PriceTable
) -> None:
    record = records["prod-uae"]
    est = estimate(record, prices)
    hours = prices.hours_per_month
    nats = len(of_type(record, TYPE["NAT gateways"]))
    assert nats == 3
    nat = est.item("NAT gateways")
    assert nat is not None
    assert math.isclose(nat.monthly_min, nats * hours * prices.nat_gateway_hourly)
    assert nat.monthly_min == nat.monthly_max and nat.basis_min.startswith("3 x ")

    endpoints = [
        r
        for r in of_type(record, TYPE["interface VPC endpoints"])
        if r["inputs"]["vpcEndpointType"] == "Interface"
    ]
    enis = sum(len(r["inputs"]["subnetIds"]) for r in endpoints)
    item = est.item("interface VPC endpoints")
    per_eni = hours * prices.interface_endpoint_az_hourly
    assert item and math.isclose(item.monthly_min, enis * per_eni)

    kms = est.item("KMS keys")
    assert (
        kms and kms.monthly_min == len(of_type(record, TYPE["KMS keys"])) * prices.kms_key_monthly
    )

    gpu = next(
        g
        for g in of_type(record, NODE_GROUP)
        if g["inputs"]["labels"]["sovereign-ml/pool"] == "gpu"
    )
    scaling = gpu["inputs"]["scalingConfig"]
    hourly = prices.on_demand_hourly[gpu["inputs"]["instanceTypes"][0]]
    nodes = est.item("nodes: gpu")
    assert nodes is not None
    assert math.isclose(nodes.monthly_min, scaling["minSize"] * hours * hourly)
    assert math.isclose(nodes.monthly_max, scaling["maxSize"] * hours * hourly)
    disks = est.item("node disks: gpu")
    assert disks is not None and "200 GiB" in disks.detail  # the GPU launch template's volume
    assert math.isclose(disks.monthly_max, scaling["maxSize"] * 200 * prices.ebs_gp3_gb_month)

    assert math.isclose(est.total_min, sum(i.monthly_min for i in est.items))
    data = est.to_json()
    assert data["prices"]["date"] == prices.date
    assert data["totals"]["monthlyMin"] == round(est.total_min, 2)


def test_spot_workers_priced_at_spot(
    records: dict[str, dict[str, Any]], prices: PriceTable
) -> None:
    workers = estimate(records["acme"], prices).item("nodes: workers")
    assert workers is not None
    group = next(
        g for g in of_type(records["acme"], NODE_GROUP) if g["inputs"]["capacityType"] == "SPOT"
    )
    spot = prices.spot_hourly[group["inputs"]["instanceTypes"][0]]
    high = group["inputs"]["scalingConfig"]["maxSize"]
    assert math.isclose(workers.monthly_max, high * prices.hours_per_month * spot)


def test_smb_minimum_has_no_serving_node_because_the_model_idles_to_zero(
    records: dict[str, dict[str, Any]], prices: PriceTable
) -> None:
    idle = estimate(records["acme"], prices).item("nodes: workers")
    assert idle is not None and idle.monthly_min == 0 and idle.basis_min.startswith("0 x ")
    # The same tenant without its ScaledObject: Triton pins one spot worker around the clock.
    warm_record = copy.deepcopy(records["acme"])
    warm_record["resources"] = [r for r in warm_record["resources"] if r["type"] != SCALED_OBJECT]
    assert serving_floors(warm_record["resources"]) == {"workers": ["triton-credit-risk"]}
    warm = estimate(warm_record, prices)
    workers = warm.item("nodes: workers")
    group = next(
        g for g in of_type(records["acme"], NODE_GROUP) if g["inputs"]["capacityType"] == "SPOT"
    )
    spot = prices.spot_hourly[group["inputs"]["instanceTypes"][0]]
    assert workers is not None and workers.basis_min.startswith("1 x ")
    assert "triton-credit-risk never scales to zero" in workers.basis_min
    assert math.isclose(workers.monthly_min, prices.hours_per_month * spot)
    assert warm.total_min > estimate(records["acme"], prices).total_min
    assert any("keeps at least one node: workers" in a for a in warm.assumptions)


def test_region_mismatch_is_refused(records: dict[str, dict[str, Any]], prices: PriceTable) -> None:
    other = copy.deepcopy(records["acme"])
    other["config"]["region"] = "eu-west-1"
    with pytest.raises(CostError, match="prices are for me-central-1"):
        estimate(other, prices)


def _with_max(record: dict[str, Any], role: str, size: int) -> dict[str, Any]:
    out = copy.deepcopy(record)
    for g in of_type(out, NODE_GROUP):
        if g["inputs"]["labels"]["sovereign-ml/pool"] == role:
            g["inputs"]["scalingConfig"]["maxSize"] = size
    return out


@settings(max_examples=40, deadline=None)
@given(
    role=st.sampled_from(["system", "workers", "gpu"]),
    sizes=st.tuples(st.integers(1, 1000), st.integers(1, 1000)).map(sorted),
)
def test_cost_is_monotone_in_pool_max_size(
    records: dict[str, dict[str, Any]], prices: PriceTable, role: str, sizes: list[int]
) -> None:
    small, large = sizes
    a = estimate(_with_max(records["prod-uae"], role, small), prices)
    b = estimate(_with_max(records["prod-uae"], role, large), prices)
    assert a.total_max <= b.total_max
    assert a.total_min == b.total_min, "the minimum does not depend on max sizes"


def test_cost_command_writes_cost_json_and_compares(
    records: dict[str, dict[str, Any]], tmp_path: Path
) -> None:
    import typer

    from infra.cli.cost import cost_command

    stacks, build = tmp_path / "stacks", tmp_path / "build"
    stacks.mkdir()
    tenantmod.create_tenant(
        tenantmod.TenantRequest(
            "acme",
            emails=(EMAIL,),
            alert_webhook=WEBHOOK,
            oidc_issuer="https://login.example.ae/realms/ml",
            oidc_jwks_uri="https://login.example.ae/realms/ml/certs",
            account_id=ACCOUNT,
        ),
        stacks,
    )
    tenantmod.create_tenant(
        tenantmod.TenantRequest(
            "bigco",
            template="enterprise",
            emails=(EMAIL,),
            alert_webhook=WEBHOOK,
            oidc_issuer="https://login.example.ae/realms/ml",
            oidc_jwks_uri="https://login.example.ae/realms/ml/certs",
            account_id=ACCOUNT,
        ),
        stacks,
    )
    # The fixture's acme record came from another stacks dir, so it is synthesized again (its
    # fingerprint names the stack file's path); bigco has none and is synthesized.
    (build / "acme").mkdir(parents=True)
    (build / "acme" / "resources.json").write_text(json.dumps(records["acme"]))
    app = typer.Typer()
    app.command("cost")(cost_command)
    app.command("other")(lambda: None)  # two commands, so "cost" is addressed by name
    args = ["cost", "acme", "--compare", "bigco", "--stacks-dir", stacks, "--build-dir", build]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "acme vs bigco" in result.output and "total" in result.output
    for stack in ("acme", "bigco"):
        data = json.loads((build / stack / "cost.json").read_text())
        assert data["stack"] == stack and data["totals"]["monthlyMax"] > 0
    args = ["cost", "nope", "--stacks-dir", stacks, "--build-dir", build]
    missing = CliRunner().invoke(app, args)
    assert missing.exit_code == 2 and "no such stack file" in missing.output


def test_databases_are_priced_and_unknown_billables_reported(
    records: dict[str, dict[str, Any]], prices: PriceTable
) -> None:
    record = copy.deepcopy(records["prod-uae"])
    hours = prices.hours_per_month
    est = estimate(record, prices)
    for r in of_type(record, TYPE["database: {name}"]):
        item = est.item(f"database: {r['name']}")
        copies = 2 if r["inputs"].get("multiAz") else 1
        hourly = prices.rds_instance_hourly[r["inputs"]["instanceClass"]]
        storage = r["inputs"]["allocatedStorage"] * prices.rds_gp3_gb_month
        assert item and math.isclose(item.monthly_min, copies * (hours * hourly + storage))
    for r in of_type(record, TYPE["cache: {name}"]):
        item = est.item(f"cache: {r['name']}")
        nodes = r["inputs"].get("numCacheClusters", 1)
        per_node = hours * prices.cache_node_hourly[r["inputs"]["nodeType"]]
        assert item and math.isclose(item.monthly_min, nodes * per_node)
    # A billable type the estimate cannot price is named, never silently free.
    record["resources"].append(
        {"type": "aws:ec2/instance:Instance", "name": "bastion", "custom": True, "inputs": {}}
    )
    assert any("bastion" in u for u in estimate(record, prices).unpriced)


def test_kinds_table_is_checked_data() -> None:
    table = billing()
    fields = set(PriceTable.__dataclass_fields__)
    assert [k.key for k in table.kinds][:2] == ["EKS control plane", "NAT gateways"]
    for kind in table.kinds:
        assert {kind.price, kind.usage or kind.price, kind.storage_price or kind.price} <= fields
    assert "aws:ec2/instance:Instance" in table.unpriced_types
    good = {"key": "k", "type": "t", "category": "c", "detail": "d", "price": "kms.keyMonthly"}
    rds = {**good, "per": "hour", "price": "rds.instanceHourly"}
    cases = {
        "per must be one of": {**good, "per": "day"},
        "unknown keys ['prise']": {**good, "per": "month", "prise": 1},
        "price 'kms.monthly' is not a price-table path": {**good, "per": "month",
                                                          "price": "kms.monthly"},
        "usage must be a non-empty string": {**good, "per": "usage"},
        "unpriced must be a non-empty string": rds,
        "storagePrice 'rds.instanceHourly' is a map of prices": {
            **rds, "unpriced": "RDS", "storagePrice": "rds.instanceHourly"
        },
        "an assumption goes with per: usage": {**good, "per": "hour", "assumption": "a"},
        "quantity must be one of": {**good, "per": "hour", "quantity": "sum"},
    }  # fmt: skip
    for message, entry in cases.items():
        with pytest.raises(CostError, match=re.escape(f"t.yaml: kinds[0] (k): {message}")):
            parse_billables({"kinds": [entry]}, "t.yaml")


def test_price_table_errors_name_the_first_bad_field(prices: PriceTable) -> None:
    doc = yaml.safe_load(Path(prices.path).read_text())
    assert parse_prices(doc, prices.path) == prices
    bad = copy.deepcopy(doc)
    bad["vpc"]["natGatewayHourly"] = -1
    with pytest.raises(CostError, match=re.escape("t.yaml: vpc.natGatewayHourly must be a number")):
        parse_prices(bad, "t.yaml")
    bad = copy.deepcopy(doc)
    bad["rds"]["instanceHourly"]["db.t4g.small"] = True
    with pytest.raises(CostError, match=re.escape("rds.instanceHourly.db.t4g.small must be")):
        parse_prices(bad, "t.yaml")
    del bad["ec2"]["spotHourly"]
    bad["rds"]["instanceHourly"]["db.t4g.small"] = 0.04
    assert parse_prices(bad, "t.yaml").spot_hourly == {}
