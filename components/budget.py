"""A monthly AWS cost budget for one stack (or tenant), with e-mail alerts."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws

from components._aws import TYPE_PREFIX, child

COST_FILTER_TAGS = (
    "stack",
    "tenant",
    "owner",
    "cost-center",
    "environment",
    "residency-zone",
    "tier",
    "data-classification",
)
"""Tags a budget may filter on: those the stack's AWS provider puts on every resource."""
ACTUAL_THRESHOLD_PERCENT = 80
FORECAST_THRESHOLD_PERCENT = 100
MAX_SUBSCRIBERS = 10
"""AWS Budgets accepts at most 10 e-mail subscribers per notification."""
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[a-z]{2,}")
# Budget names: 1-100 characters, no ':' or '\'; the suffix "-monthly" takes 8.
_NAME_PREFIX = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,90}")
_TAG_VALUE = re.compile(r"[\w .:/=+@-]{1,128}")


@dataclass
class BudgetArgs:
    """Inputs of :class:`StackBudget`."""

    name_prefix: str
    """Prefix of the budget's name (``<prefix>-monthly``), e.g. ``sovml-prod-uae``."""
    limit_usd: int
    """Monthly limit in US dollars (> 0)."""
    alert_emails: Sequence[str]
    """Addresses notified at 80 % of actual and 100 % of forecast spend (1 to 10)."""
    cost_filter_tags: Mapping[str, str] = field(default_factory=dict)
    """Tags whose costs the budget counts, e.g. ``{"tenant": "acme"}`` or ``{"stack": "dev"}``.

    AWS Budgets ORs the values of its one ``TagKeyValue`` filter: a cost counts when it carries
    any of these tags, so pass one. Empty: every cost of the account. The tag must be activated
    as a cost allocation tag in the payer account's Billing console, or nothing matches.
    """


class StackBudget(pulumi.ComponentResource):
    """An ``aws.budgets.Budget`` of type COST, monthly, in USD, filtered on the stack's tags.

    Two notifications go to the alert addresses: when actual spend passes 80 % of the limit and
    when the forecast for the month passes 100 %. AWS Budgets is a global service: the budget
    holds only its limit, filter and the addresses, never workload data, so it does not move
    data out of the residency zone.
    """

    budget_name: pulumi.Output[str]

    def __init__(
        self, name: str, args: BudgetArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        emails = validate(args)
        super().__init__(f"{TYPE_PREFIX}:budget:StackBudget", name, None, opts)

        notifications = [
            {
                "comparison_operator": "GREATER_THAN",
                "threshold": float(threshold),
                "threshold_type": "PERCENTAGE",
                "notification_type": kind,
                "subscriber_email_addresses": emails,
            }
            for threshold, kind in (
                (ACTUAL_THRESHOLD_PERCENT, "ACTUAL"),
                (FORECAST_THRESHOLD_PERCENT, "FORECASTED"),
            )
        ]
        budget = aws.budgets.Budget(
            f"{name}-budget",
            name=f"{args.name_prefix}-monthly",
            budget_type="COST",
            time_unit="MONTHLY",
            limit_amount=str(args.limit_usd),
            limit_unit="USD",
            # User-defined cost allocation tags are addressed as "user:<key>$<value>".
            cost_filters=(
                [
                    {
                        "name": "TagKeyValue",
                        "values": [f"user:{k}${v}" for k, v in args.cost_filter_tags.items()],
                    }
                ]
                if args.cost_filter_tags
                else None
            ),
            notifications=notifications,
            opts=child(self),
        )

        self.budget_name = budget.name
        self.register_outputs({"budget_name": self.budget_name})


def validate(args: BudgetArgs) -> list[str]:
    """Raise ``ValueError`` naming the first field not allowed; returns the alert addresses."""
    if not isinstance(args.name_prefix, str) or not _NAME_PREFIX.fullmatch(args.name_prefix):
        raise ValueError(
            f"BudgetArgs.name_prefix: {args.name_prefix!r}; allowed 1-91 characters: letters, "
            "digits, '.', '_' and '-', starting with a letter or digit"
        )
    if isinstance(args.limit_usd, bool) or not isinstance(args.limit_usd, int):
        raise ValueError(
            f"BudgetArgs.limit_usd: {args.limit_usd!r}; allowed a whole number of USD > 0"
        )
    if args.limit_usd <= 0:
        raise ValueError(f"BudgetArgs.limit_usd: {args.limit_usd}; allowed > 0")
    emails = list(args.alert_emails)
    if isinstance(args.alert_emails, str) or not 1 <= len(emails) <= MAX_SUBSCRIBERS:
        raise ValueError(
            f"BudgetArgs.alert_emails: {args.alert_emails!r}; allowed a list of 1 to "
            f"{MAX_SUBSCRIBERS} e-mail addresses"
        )
    bad = [e for e in emails if not isinstance(e, str) or not _EMAIL.fullmatch(e)]
    if bad or len(set(emails)) != len(emails):
        raise ValueError(
            f"BudgetArgs.alert_emails: {bad or emails}; allowed distinct e-mail addresses"
        )
    for key, value in args.cost_filter_tags.items():
        if key not in COST_FILTER_TAGS:
            raise ValueError(
                f"BudgetArgs.cost_filter_tags: unknown tag {key!r}; allowed "
                f"{', '.join(COST_FILTER_TAGS)}"
            )
        if not isinstance(value, str) or not _TAG_VALUE.fullmatch(value):
            raise ValueError(
                f"BudgetArgs.cost_filter_tags[{key}]: {value!r}; allowed a tag value of 1-128 "
                "letters, digits, spaces and _ . : / = + - @"
            )
    return emails
