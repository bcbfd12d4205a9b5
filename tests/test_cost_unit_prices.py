"""Cost per tenant: instance shapes as data, unit prices from the price table, the recording
rules judged by the real ``promtool`` with exact costs for two tenants with known requests."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import yaml

from components._cost_rules import HOURLY, MONTHLY, UnitPrices, cost_groups, hourly_cost_expr
from components.monitoring import alert_rules
from infra.config import NodePoolConfig
from infra.config.keys import KEYS
from infra.config.stackfile import list_stacks, load_stack
from infra.cost.price_table import PRICES_DIR, CostError, load_prices
from infra.cost.unit_prices import (
    SHAPES_PATH,
    InstanceShape,
    load_shapes,
    parse_shapes,
    split,
    stack_unit_prices,
    unit_prices,
)
from infra.tenants.templates import ENTERPRISE, SMB
from tests.promtool_rules import (
    monitoring_args,
    recorded_groups,
    run_promtool,
    series,
    write_rules,
    write_unit_tests,
)
from tests.system import require_binary
from tests.tenant_cost import TENANTS, expected_hourly, ksm_series

PRICES = load_prices("me-central-1")
SHAPES = load_shapes()


def _pool(role: str, *types: str, capacity: str = "ON_DEMAND") -> NodePoolConfig:
    return NodePoolConfig(
        role=role, gpu=role == "gpu", instance_types=types, capacity_type=capacity, min_size=0,
        desired_size=0, max_size=3, disk_gib=50, labels=(), taints=(),
    )  # fmt: skip


def _prod() -> UnitPrices:
    cfg, _raw, _secrets = load_stack("prod-uae")
    prices = stack_unit_prices(cfg.region, cfg.node_pools, pytest.fail)
    assert prices is not None
    return prices


# --- shapes are facts for every type the table or a stack can name ---------------------------
def _types_in_use() -> set[str]:
    """Every instance type of a stack, a tenant template or a config default."""
    types = {
        t for s in list_stacks() for p in load_stack(s)[0].node_pools for t in p.instance_types
    }
    for template in (SMB, ENTERPRISE):
        types |= {t for k, v in template.fixed.items() if k.endswith("InstanceTypes") for t in v}
    types |= {t for k in KEYS if k.name.endswith("InstanceTypes") for t in k.default}
    return types


def test_every_priced_or_used_instance_type_has_a_shape() -> None:
    priced = set(PRICES.on_demand_hourly) | set(PRICES.spot_hourly)
    used = _types_in_use()
    assert {"c7i.2xlarge", "g5.2xlarge", "m7i.large", "m5.xlarge"} <= used  # the walk found them
    assert sorted((priced | used) - set(SHAPES)) == []
    assert sorted(used - set(PRICES.on_demand_hourly)) == []  # sovml cost prices them too


def test_shapes_of_the_gpu_types_are_the_documented_ones() -> None:
    assert SHAPES["g5.2xlarge"] == InstanceShape(8, 32.0, 1)
    assert SHAPES["g5.12xlarge"] == InstanceShape(48, 192.0, 4)
    assert SHAPES["g4dn.xlarge"] == InstanceShape(4, 16.0, 1)
    assert all(s.gpus == 0 for t, s in SHAPES.items() if not t.startswith(("g4dn.", "g5.")))


@pytest.mark.parametrize(
    ("entry", "why"),
    [
        ({"vcpu": 0, "memoryGiB": 4, "gpus": 0}, "no vCPU"),
        ({"vcpu": True, "memoryGiB": 4, "gpus": 0}, "a boolean is not a count"),
        ({"vcpu": 2, "memoryGiB": 0, "gpus": 0}, "no memory"),
        ({"vcpu": 2, "memoryGiB": "4", "gpus": 0}, "a string"),
        ({"vcpu": 2, "memoryGiB": 4, "gpus": -1}, "negative GPUs"),
        ({"vcpu": 2, "memoryGiB": 4, "gpus": 0.5}, "a fraction of a GPU"),
        ({"vcpu": 2, "memoryGiB": 4}, "a missing key"),
        ({"vcpu": 2, "memoryGiB": 4, "gpus": 0, "gpuModel": "T4"}, "an unknown key"),
        (None, "no shape at all"),
    ],
)
def test_a_malformed_shape_is_refused_by_name(entry: Any, why: str) -> None:
    with pytest.raises(CostError, match=r"^shapes: shapes\.x1\.large must be \{vcpu: int > 0"):
        parse_shapes({"source": "AWS", "shapes": {"x1.large": entry}})


def test_shapes_need_a_source_and_a_table(tmp_path: Path) -> None:
    with pytest.raises(CostError, match="source must say where"):
        parse_shapes({"shapes": {"m5.large": {"vcpu": 2, "memoryGiB": 8, "gpus": 0}}})
    with pytest.raises(CostError, match="shapes must map instance types"):
        parse_shapes({"source": "AWS", "shapes": []})
    with pytest.raises(CostError, match="cannot read instance shapes"):
        load_shapes(tmp_path / "missing.yaml")


# --- the split ---------------------------------------------------------------------------------
@pytest.mark.parametrize("capacity", ["ON_DEMAND", "SPOT"])
def test_a_fully_requested_node_costs_exactly_its_price(capacity: str) -> None:
    for itype, shape in SHAPES.items():
        hourly = PRICES.instance_hourly(itype, capacity)
        assert hourly is not None, itype
        cpu, gib, gpu = split(hourly, shape)
        total = cpu * shape.vcpu + gib * shape.memory_gib + gpu * shape.gpus
        assert total == pytest.approx(hourly, rel=1e-12), itype
        # The OpenCost ratio: a vCPU-hour costs 0.031611 / 0.004237 GiB-hours everywhere.
        assert cpu / gib == pytest.approx(0.031611 / 0.004237, rel=1e-12), itype


def test_prod_uae_unit_prices_worked_by_hand() -> None:
    """c7i.2xlarge on demand $0.428/h, 8 vCPU 16 GiB: k = 0.428 / (8 x 0.031611 + 16 x
    0.004237) = 1.334664...; g5.2xlarge $1.454/h, 8 vCPU 32 GiB 1 GPU: its GPU share is
    1.454 x 0.95 / (8 x 0.031611 + 32 x 0.004237 + 0.95) = 1.03202..."""
    prices = _prod()
    assert (prices.cpu_core_hour, prices.memory_gib_hour, prices.gpu_hour) == (
        0.0421901,
        0.00565497,
        1.032,
    )
    assert prices.hours_per_month == 730
    assert prices.basis == (
        "workers c7i.2xlarge ON_DEMAND $0.428/h; gpu g5.2xlarge ON_DEMAND $1.454/h; "
        "prices me-central-1 2025-06-01"
    )


def test_spot_pools_are_priced_at_spot_and_the_first_type_prices_the_pool() -> None:
    pools = [
        _pool("system", "m7i.large"),
        _pool("workers", "m7i.xlarge", "m5.xlarge", capacity="SPOT"),
    ]
    prices = unit_prices(pools, PRICES, SHAPES)
    cpu, gib, _ = split(0.096, SHAPES["m7i.xlarge"])  # m7i.xlarge's spotHourly
    assert (prices.cpu_core_hour, prices.memory_gib_hour) == pytest.approx((cpu, gib), rel=1e-5)
    assert prices.gpu_hour is None and "$0.096/h" in prices.basis


def test_without_a_workers_pool_the_system_pool_prices_cpu() -> None:
    prices = unit_prices([_pool("system", "m7i.large")], PRICES, SHAPES)
    assert prices.cpu_core_hour == pytest.approx(split(0.121, SHAPES["m7i.large"])[0], rel=1e-5)
    with pytest.raises(CostError, match="no workers or system pool"):
        unit_prices([_pool("gpu", "g5.xlarge")], PRICES, SHAPES)


def test_an_unpriced_or_unknown_type_is_no_price_at_all(tmp_path: Path) -> None:
    with pytest.raises(CostError, match=r"^workers pool: no ON_DEMAND price for m7i\.8xlarge$"):
        unit_prices([_pool("workers", "m7i.8xlarge")], PRICES, SHAPES)
    no_shape = {k: v for k, v in SHAPES.items() if k != "g5.2xlarge"}
    with pytest.raises(CostError, match=r"^gpu pool: no shape for g5\.2xlarge: add it to shapes"):
        unit_prices([_pool("workers", "c7i.xlarge"), _pool("gpu", "g5.2xlarge")], PRICES, no_shape)
    warned: list[str] = []
    assert stack_unit_prices("eu-west-1", [_pool("system", "m7i.large")], warned.append) is None
    assert warned == [
        f"cost per tenant not recorded: no price table for region eu-west-1: add "
        f"{PRICES_DIR / 'eu-west-1.yaml'} (tables exist for me-central-1)"
    ]
    bad = tmp_path / "shapes.yaml"
    bad.write_text(yaml.safe_dump({"source": "x", "shapes": {"m7i.large": {"vcpu": 2}}}))
    pools = [_pool("system", "m7i.large")]
    assert stack_unit_prices("me-central-1", pools, warned.append, shapes_path=bad) is None
    assert "shapes.m7i.large must be" in warned[-1] and SHAPES_PATH.name == "shapes.yaml"


@pytest.mark.parametrize(
    ("field", "value"),
    [("cpu_core_hour", -0.01), ("memory_gib_hour", math.nan), ("gpu_hour", math.inf),
     ("cpu_core_hour", True), ("hours_per_month", 0), ("memory_gib_hour", "0.1")],
)  # fmt: skip
def test_unit_prices_refuse_what_is_not_a_price(field: str, value: Any) -> None:
    good = dict(cpu_core_hour=0.04, memory_gib_hour=0.005, gpu_hour=1.0, hours_per_month=730)
    with pytest.raises(ValueError, match=rf"^UnitPrices\.{field}: "):
        UnitPrices(**{**good, field: value}, basis="test")


# --- the rules ---------------------------------------------------------------------------------
def test_no_tenants_or_no_prices_declare_no_cost_rules() -> None:
    assert cost_groups((), _prod()) == [] and cost_groups(TENANTS, None) == []
    args = monitoring_args(tenants=TENANTS, unit_prices=_prod())
    (group,) = [g for g in alert_rules(args) if g["name"] == "sovereign-ml.cost"]
    assert [r["record"] for r in group["rules"]] == [HOURLY, MONTHLY]
    assert not [g for g in alert_rules(monitoring_args()) if g["name"] == "sovereign-ml.cost"]


@pytest.mark.parametrize(
    "tenants",
    [('risk"} or vector(1) #',), ("a|.*",), ("Risk",), ("risk-analytics", "risk-analytics")],
)
def test_tenant_names_cannot_escape_the_selector(tenants: tuple[str, ...]) -> None:
    with pytest.raises(ValueError, match=r"^cost rules: "):
        hourly_cost_expr(tenants, _prod())


def test_a_stack_without_gpus_has_no_gpu_term() -> None:
    prices = unit_prices([_pool("workers", "m7i.xlarge")], PRICES, SHAPES)
    expr = hourly_cost_expr(("sandbox",), prices)
    assert "nvidia_com_gpu" not in expr and 'namespace=~"sandbox"' in expr


def test_prod_uae_records_the_cost_rules_for_its_tenants(
    stack_records: dict[str, dict[str, Any]],
) -> None:
    groups = recorded_groups(stack_records["prod-uae"]["resources"])
    (group,) = [g for g in groups if g["name"] == "sovereign-ml.cost"]
    assert group["rules"] == cost_groups(TENANTS, _prod())[0]["rules"]
    assert 'namespace=~"customer-insights|risk-analytics"' in group["rules"][0]["expr"]


SCALE = 1e6
"""Costs are compared in micro-dollars, round(USD x 1e6): integers, no float equality in YAML."""


def _promql_round(value: float) -> int:
    """PromQL's round(): half away from zero is floor(x + 0.5) for the positive costs here."""
    return math.floor(value * SCALE + 0.5)


def _cost_test(prices: UnitPrices, expected: dict[str, float]) -> dict[str, Any]:
    """Five minutes of the fixed kube-state-metrics series; at 4m each tenant's hourly cost and
    monthly projection, and nothing for the finished or the platform pod."""
    inputs = [
        {"series": series(metric, labels), "values": f"{value!r}x4"}
        for metric, labels, value in ksm_series()
    ]
    exprs = []
    for record, factor in ((HOURLY, 1.0), (MONTHLY, prices.hours_per_month)):
        samples = [
            {"labels": f'{{namespace="{ns}"}}', "value": _promql_round(cost * factor)}
            for ns, cost in sorted(expected.items())
        ]
        exprs.append(
            {"expr": f"round({record} * {SCALE:g})", "eval_time": "4m", "exp_samples": samples}
        )
    return {"interval": "1m", "input_series": inputs, "promql_expr_test": exprs}


@pytest.mark.slow
def test_promtool_prices_two_tenants_exactly(tmp_path: Path) -> None:
    promtool = require_binary("promtool")
    prices = _prod()
    rules = write_rules(tmp_path / "cost.yaml", cost_groups(TENANTS, prices))
    proc = run_promtool(promtool, "check", "rules", rules, cwd=tmp_path)
    assert proc.returncode == 0 and "SUCCESS: 2 rules found" in proc.stdout, proc.stdout
    expected = expected_hourly(prices)
    assert expected == pytest.approx(
        {"risk-analytics": 1.4328211475, "customer-insights": 0.09721497}, rel=1e-12
    )
    tests = write_unit_tests(tmp_path / "cost_test.yaml", rules, [_cost_test(prices, expected)])
    proc = run_promtool(promtool, "test", "rules", tests, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # The harness must be able to fail: a cent off one tenant, or the finished pod counted.
    for wrong in (
        {**expected, "risk-analytics": expected["risk-analytics"] + 0.01},
        {**expected, "customer-insights": expected["customer-insights"] + 8 * prices.cpu_core_hour},
    ):
        tests = write_unit_tests(tmp_path / "wrong_test.yaml", rules, [_cost_test(prices, wrong)])
        proc = run_promtool(promtool, "test", "rules", tests, cwd=tmp_path)
        assert proc.returncode == 1 and "FAILED" in proc.stdout + proc.stderr, proc.stdout
