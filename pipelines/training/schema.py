"""The credit-risk table: columns, types and allowed ranges, in one place.

The synthetic generator (:mod:`pipelines.training.data`) writes this schema and the validator
(:mod:`pipelines.training.validation`) enforces it, so the two cannot drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

ENTITY = "customer_id"
"""Entity key (as in the Feast feature view): one row per customer and event."""
TIMESTAMP = "event_timestamp"
"""Event time (UTC); the train/test split is out-of-time on this column."""
LABEL = "defaulted"
"""Binary target: 1 when the customer defaulted within 12 months of the event."""
SENSITIVE = "gender"
"""The declared sensitive attribute (synthetic here): never a model feature (it is not in
:data:`FEATURES`), carried beside the label so the evaluate step can measure group fairness."""
SENSITIVE_GROUPS: dict[int, str] = {0: "female", 1: "male"}
"""The attribute's codes and the group names reports use; any other code fails validation."""

Kind = Literal["int", "float", "datetime"]
Transform = Literal["identity", "log1p"]


@dataclass(frozen=True)
class Column:
    """One column of the table.

    Attributes:
        name: Column name.
        kind: Broad dtype family the validator checks (``int``, ``float``, ``datetime``).
        minimum: Smallest allowed value (inclusive), None for unbounded.
        maximum: Largest allowed value (inclusive), None for unbounded.
        transform: Monotone transform applied before standardisation (``log1p`` for money
            amounts, whose long right tail would otherwise dominate the scale).
        description: What the column means.
    """

    name: str
    kind: Kind
    minimum: float | None = None
    maximum: float | None = None
    transform: Transform = "identity"
    description: str = ""


FEATURE_COLUMNS: tuple[Column, ...] = (
    Column("age", "float", 18, 100, description="Age in years."),
    Column("income", "float", 0, 5e6, "log1p", "Annual income."),
    Column("employment_years", "float", 0, 60, description="Years with current employer."),
    Column("debt_to_income", "float", 0, 10, description="Total debt over annual income."),
    Column("credit_limit", "float", 0, 1e6, "log1p", "Sum of revolving credit limits."),
    Column("credit_utilization", "float", 0, 2, description="Revolving balance over limit."),
    Column("open_accounts", "float", 0, 80, description="Open credit accounts."),
    Column("delinquencies_2y", "float", 0, 50, description="Delinquencies in the last 2 years."),
    Column(
        "months_since_delinquency",
        "float",
        0,
        240,
        description="Months since the last delinquency (240 when never).",
    ),
    Column("loan_amount", "float", 0, 2e6, "log1p", "Requested loan amount."),
    Column("loan_term_months", "float", 6, 120, description="Loan term in months."),
    Column("interest_rate", "float", 0, 0.6, description="Annual interest rate offered."),
    Column("inquiries_6m", "float", 0, 50, description="Hard credit inquiries in 6 months."),
    Column("savings_balance", "float", 0, 1e7, "log1p", "Balance of savings accounts."),
    Column("residence_years", "float", 0, 80, description="Years at the current address."),
    Column("payment_to_income", "float", 0, 5, description="Monthly payment over monthly income."),
)
"""The model's numeric features, in model input order."""

FEATURES: tuple[str, ...] = tuple(c.name for c in FEATURE_COLUMNS)

COLUMNS: tuple[Column, ...] = (
    Column(ENTITY, "int", 0, None, description="Customer id (unique per row)."),
    Column(TIMESTAMP, "datetime", description="Event time, UTC."),
    *FEATURE_COLUMNS,
    Column(
        SENSITIVE,
        "int",
        min(SENSITIVE_GROUPS),
        max(SENSITIVE_GROUPS),
        description="Sensitive attribute (0 = female, 1 = male); evaluation only, not a feature.",
    ),
    Column(LABEL, "int", 0, 1, description="1 = defaulted."),
)
"""Every column the ingested table must have, in file order."""

BY_NAME: dict[str, Column] = {c.name: c for c in COLUMNS}
