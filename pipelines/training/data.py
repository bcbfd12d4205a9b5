"""A seeded synthetic credit-risk table, and reading/writing/hashing tables as Parquet.

Nothing is downloaded: the platform's own tests and the local pipeline run on data generated
here. The same ``(rows, seed)`` always gives the same bytes on the same library versions, so the
data SHA-256 recorded in the lineage is reproducible too.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from pipelines.training import schema

if TYPE_CHECKING:
    import pandas as pd

EPOCH = datetime(2025, 1, 1, tzinfo=UTC)
"""Start of the generated event window; fixed (not "now") so output never depends on the clock."""
WINDOW_DAYS = 365


def generate(rows: int, seed: int) -> pd.DataFrame:
    """Generate a credit-risk-like table with the columns of :data:`schema.COLUMNS`.

    Defaults (about 22 %) depend on the features through a logistic model with an interaction
    and unexplained noise: a logistic baseline reaches an AUC near 0.87, so the task is
    learnable but not trivial.

    Args:
        rows: Number of rows (at least 1).
        seed: Seed of the NumPy generator; the only source of randomness.

    Returns:
        The table, sorted by ``event_timestamp``.

    Raises:
        ValueError: If ``rows`` is not positive.
    """
    import pandas as pd

    if rows < 1:
        raise ValueError(f"rows must be >= 1, got {rows}")
    rng = np.random.default_rng(seed)
    n = rows

    age = np.clip(rng.normal(42, 12, n), 18, 95)
    income = np.clip(rng.lognormal(10.8, 0.55, n), 6_000, 4e6)
    employment_years = np.clip(rng.gamma(2.0, 3.5, n), 0, np.maximum(age - 17, 0))
    debt_to_income = np.clip(rng.gamma(2.2, 0.17, n), 0, 8)
    credit_limit = np.clip(income * rng.uniform(0.05, 0.6, n), 500, 9e5)
    credit_utilization = np.clip(rng.beta(2.0, 3.5, n) * 1.3, 0, 1.9)
    open_accounts = rng.poisson(6, n).astype(np.float64)
    delinquencies_2y = rng.poisson(0.35 + 0.8 * (credit_utilization > 0.9), n).astype(np.float64)
    never = delinquencies_2y == 0
    months_since_delinquency = np.where(
        never, 240.0, np.clip(rng.exponential(14, n), 0, 239).round()
    )
    loan_amount = np.clip(income * rng.uniform(0.05, 0.9, n), 1_000, 1.5e6)
    loan_term_months = rng.choice([12.0, 24.0, 36.0, 48.0, 60.0, 72.0], n)
    inquiries_6m = rng.poisson(1.2, n).astype(np.float64)
    savings_balance = np.clip(rng.lognormal(8.5, 1.4, n) * (income / 50_000), 0, 9e6)
    residence_years = np.clip(rng.gamma(1.6, 4.0, n), 0, 70)

    # Risk-based pricing: the offered rate already carries part of the signal, as in real books.
    base_risk = 1.2 * debt_to_income + 1.5 * credit_utilization + 0.35 * delinquencies_2y
    interest_rate = np.clip(0.04 + 0.03 * base_risk + rng.normal(0, 0.02, n), 0.01, 0.45)
    monthly_payment = (
        loan_amount * (interest_rate / 12) / (1 - (1 + interest_rate / 12) ** (-loan_term_months))
    )
    payment_to_income = np.clip(monthly_payment / (income / 12), 0, 4.5)

    logit = (
        -3.4
        + 1.1 * (debt_to_income - 0.37)
        + 1.7 * (credit_utilization - 0.5)
        + 0.45 * delinquencies_2y
        - 0.012 * (months_since_delinquency - 240) * (~never)
        + 0.18 * inquiries_6m
        - 0.35 * (np.log1p(income) - 10.8)
        - 0.03 * (employment_years - 7)
        - 0.012 * (age - 42)
        + 1.4 * payment_to_income
        - 0.12 * (np.log1p(savings_balance) - 8.5)
        + 0.9 * (credit_utilization > 0.95) * (delinquencies_2y > 0)  # interaction
        + rng.normal(0, 0.6, n)  # what no feature explains
    )
    defaulted = (rng.uniform(0, 1, n) < 1 / (1 + np.exp(-logit))).astype(np.int64)

    seconds = np.sort(rng.integers(0, WINDOW_DAYS * 86_400, n))
    timestamps = pd.to_datetime(EPOCH) + pd.to_timedelta(seconds, unit="s")
    customer_id = rng.permutation(np.arange(100_000, 100_000 + n, dtype=np.int64))

    frame = pd.DataFrame(
        {
            schema.ENTITY: customer_id,
            schema.TIMESTAMP: timestamps,
            "age": age.round(1),
            "income": income.round(2),
            "employment_years": employment_years.round(1),
            "debt_to_income": debt_to_income.round(4),
            "credit_limit": credit_limit.round(2),
            "credit_utilization": credit_utilization.round(4),
            "open_accounts": open_accounts,
            "delinquencies_2y": delinquencies_2y,
            "months_since_delinquency": months_since_delinquency,
            "loan_amount": loan_amount.round(2),
            "loan_term_months": loan_term_months,
            "interest_rate": interest_rate.round(5),
            "inquiries_6m": inquiries_6m,
            "savings_balance": savings_balance.round(2),
            "residence_years": residence_years.round(1),
            "payment_to_income": payment_to_income.round(4),
            schema.LABEL: defaulted,
        }
    )
    return frame[[c.name for c in schema.COLUMNS]]


def write_table(frame: pd.DataFrame, path: str | Path) -> str:
    """Write ``frame`` as Parquet (no index) and return the file's SHA-256."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(target, index=False, engine="pyarrow", compression="zstd")
    return sha256_file(target)


def read_table(path: str | Path) -> pd.DataFrame:
    """Read a Parquet or CSV table (by suffix) into a DataFrame."""
    import pandas as pd

    source = Path(path)
    if source.suffix.lower() == ".csv":
        return pd.read_csv(source, parse_dates=[schema.TIMESTAMP])
    return pd.read_parquet(source, engine="pyarrow")


def sha256_file(path: str | Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def sha256_tree(root: str | Path) -> str:
    """Hex SHA-256 over a folder: each file's relative path and content digest, sorted."""
    base = Path(root)
    digest = hashlib.sha256()
    for file in sorted(p for p in base.rglob("*") if p.is_file()):
        digest.update(file.relative_to(base).as_posix().encode())
        digest.update(b"\0")
        digest.update(sha256_file(file).encode())
        digest.update(b"\n")
    return digest.hexdigest()
