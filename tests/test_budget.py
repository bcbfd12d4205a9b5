"""StackBudget under the synth's recording mocks, and its validation."""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi_aws as aws
import pytest

from components.budget import BudgetArgs, StackBudget
from infra.synth.runner import run_recorded
from policies.rules import Context, evaluate
from policies.rules.record import resources_from_record

REGION = "me-central-1"
TAGS = {
    "owner": "acme",
    "cost-center": "tenant-acme",
    "data-classification": "confidential",
    "stack": "acme",
    "tenant": "acme",
}


def args(**kw: Any) -> BudgetArgs:
    base: dict[str, Any] = dict(
        name_prefix="sovml-acme",
        limit_usd=1500,
        alert_emails=["ops@acme.example.ae", "cfo@acme.example.ae"],
        cost_filter_tags={"tenant": "acme"},
    )
    base.update(kw)
    return BudgetArgs(**base)


def record(budget_args: BudgetArgs) -> list[dict[str, Any]]:
    def program() -> None:
        provider = aws.Provider(
            "aws", region=REGION, default_tags={"tags": TAGS}, skip_region_validation=False
        )
        StackBudget("budget", budget_args, opts=pulumi.ResourceOptions(providers={"aws": provider}))

    return run_recorded(program, stack="unit", region=REGION).resources


def test_budget_is_monthly_cost_in_usd_with_two_alerts() -> None:
    resources = record(args())
    component = next(r for r in resources if r["type"] == "sovereign-ml:budget:StackBudget")
    budgets = [r for r in resources if r["type"] == "aws:budgets/budget:Budget"]
    assert len(budgets) == 1
    budget = budgets[0]
    assert budget["name"] == "budget-budget" and budget["parent"] == component["urn"]
    inputs = budget["inputs"]
    assert inputs["name"] == "sovml-acme-monthly"
    assert (inputs["budgetType"], inputs["timeUnit"]) == ("COST", "MONTHLY")
    assert (inputs["limitAmount"], inputs["limitUnit"]) == ("1500", "USD")
    assert inputs["costFilters"] == [{"name": "TagKeyValue", "values": ["user:tenant$acme"]}]
    alerts = {(n["notificationType"], n["threshold"]) for n in inputs["notifications"]}
    assert alerts == {("ACTUAL", 80), ("FORECASTED", 100)}
    for n in inputs["notifications"]:
        assert n["comparisonOperator"] == "GREATER_THAN" and n["thresholdType"] == "PERCENTAGE"
        assert n["subscriberEmailAddresses"] == ["ops@acme.example.ae", "cfo@acme.example.ae"]
    # Every child is named after the component and parented to it.
    for r in resources:
        if r["parent"] == component["urn"]:
            assert r["name"].startswith("budget-"), r["urn"]
    # The policy rules (tags, residency) have nothing against it. This one-component program
    # is a production stack of its own, without the audit trail the platform adds: the stack
    # rules SOV-AUD-* judge the platform (tests/test_audit_trail.py), not this component.
    violations = [
        v
        for v in evaluate(resources_from_record({"resources": resources}), Context())
        if not v.rule_id.startswith("SOV-AUD-")
    ]
    assert violations == []


def test_no_tags_means_the_whole_account() -> None:
    budget = next(
        r for r in record(args(cost_filter_tags={})) if r["type"] == "aws:budgets/budget:Budget"
    )
    assert "costFilters" not in budget["inputs"]


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"limit_usd": 0}, r"BudgetArgs.limit_usd: 0; allowed > 0"),
        ({"limit_usd": -5}, r"BudgetArgs.limit_usd: -5"),
        ({"limit_usd": True}, r"BudgetArgs.limit_usd: True; allowed a whole number"),
        ({"limit_usd": 12.5}, r"BudgetArgs.limit_usd: 12.5"),
        ({"alert_emails": []}, r"BudgetArgs.alert_emails: \[\]; allowed a list of 1 to 10"),
        ({"alert_emails": "ops@acme.example.ae"}, r"BudgetArgs.alert_emails"),
        ({"alert_emails": [f"a{i}@x.example" for i in range(11)]}, r"1 to 10"),
        ({"alert_emails": ["not-an-address"]}, r"\['not-an-address'\]; allowed distinct e-mail"),
        ({"alert_emails": ["a@x.example", "a@x.example"]}, r"allowed distinct"),
        ({"cost_filter_tags": {"team": "x"}}, r"unknown tag 'team'; allowed stack, tenant"),
        ({"cost_filter_tags": {"tenant": ""}}, r"cost_filter_tags\[tenant\]"),
        ({"name_prefix": "bad:name"}, r"BudgetArgs.name_prefix: 'bad:name'; allowed"),
        ({"name_prefix": ""}, r"BudgetArgs.name_prefix"),
    ],
)
def test_validation_names_the_field_and_what_is_allowed(kw: dict[str, Any], message: str) -> None:
    # Raised in the constructor before the component or any child exists (no runtime needed).
    with pytest.raises(ValueError, match=message):
        StackBudget("budget", args(**kw))
