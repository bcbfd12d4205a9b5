"""A seeded synthetic credit-risk table, and reading/writing/hashing tables as Parquet.

Nothing is downloaded: the platform's own tests and the local pipeline run on data generated
here. The same ``(rows, seed)`` always gives the same bytes on the same library versions, so the
data SHA-256 recorded in the lineage is reproducible too.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from pipelines.training import schema

if TYPE_CHECKING:
    import pandas as pd

EPOCH = datetime(2025, 1, 1, tzinfo=UTC)
"""Start of the generated event window; fixed (not "now") so output never depends on the clock."""
WINDOW_DAYS = 365
CSV_SUFFIXES = (".csv", ".txt")
"""File endings :func:`read_table` reads as CSV; it reads any other file as Parquet."""
PARQUET_SUFFIXES = (".parquet", ".pq")
"""File endings that name Parquet (for readers that refuse a file of any other ending)."""


def generate(
    rows: int, seed: int, *, identifiers: bool = False, biased: bool = False
) -> pd.DataFrame:
    """Generate a credit-risk-like table with the columns of :data:`schema.COLUMNS`.

    Defaults (about 22 %) depend on the features through a logistic model with an interaction
    and unexplained noise: a logistic baseline reaches an AUC near 0.87, so the task is
    learnable but not trivial.

    Args:
        rows: Number of rows (at least 1).
        seed: Seed of the NumPy generator; the only source of randomness.
        identifiers: Also add the raw direct identifiers a real extract carries
            (:data:`IDENTIFIER_COLUMNS`: Emirates ID, full name, phone, e-mail, and free-text
            notes with identifiers in some rows), drawn from a generator of their own, so the
            schema columns are the same values with or without them. The ingest step asks for
            them and pseudonymizes them (:mod:`pipelines.privacy`); other callers (drift, the
            feature store's tests) get the schema columns only, as before.
        biased: Skew the :data:`BIASED_GROUP`'s records after their outcomes are drawn
            (:func:`_skewed`): more debt and utilization recorded than they have, and some
            repaid loans recorded as defaults. A model trained on it scores that group as
            riskier without seeing the attribute: the variant the fairness gate must refuse.
            The attribute itself (:data:`schema.SENSITIVE`) is drawn from a stream of its own,
            independent of every other column: the unbiased table is fair by construction.

    Returns:
        The table, sorted by ``event_timestamp``.

    Raises:
        ValueError: If ``rows`` is not positive.
    """
    import pandas as pd

    if rows < 1:
        raise ValueError(f"rows must be >= 1, got {rows}")
    # One generator, drawn from in a fixed order (applicants, pricing, outcomes, events): the
    # order is part of the data, so these helpers must keep it.
    rng = np.random.default_rng(seed)
    columns = _applicants(rng, rows)
    columns.update(_pricing(rng, columns))
    defaulted = _defaults(rng, columns)
    group_rng = np.random.default_rng([seed, SENSITIVE_STREAM])
    group = group_rng.integers(0, 2, rows)
    if biased:
        columns, defaulted = _skewed(group_rng, columns, defaulted, group == BIASED_GROUP)
    seconds = np.sort(rng.integers(0, WINDOW_DAYS * 86_400, rows))
    timestamps = pd.to_datetime(EPOCH) + pd.to_timedelta(seconds, unit="s")
    customer_id = rng.permutation(np.arange(100_000, 100_000 + rows, dtype=np.int64))
    frame = pd.DataFrame(
        {
            schema.ENTITY: customer_id,
            schema.TIMESTAMP: timestamps,
            **{
                name: values if DECIMALS.get(name) is None else values.round(DECIMALS[name])
                for name, values in columns.items()
            },
            schema.SENSITIVE: group.astype(np.int64),
            schema.LABEL: defaulted,
        }
    )
    frame = frame[[c.name for c in schema.COLUMNS]]
    if identifiers:
        # A separate stream: the schema columns above are the same bytes either way.
        people = _identities(np.random.default_rng([seed, IDENTITY_STREAM]), frame["age"])
        frame = frame.assign(**people)
    return frame


DECIMALS: dict[str, int] = {
    "age": 1,
    "income": 2,
    "employment_years": 1,
    "debt_to_income": 4,
    "credit_limit": 2,
    "credit_utilization": 4,
    "loan_amount": 2,
    "interest_rate": 5,
    "savings_balance": 2,
    "residence_years": 1,
    "payment_to_income": 4,
}
"""Decimals each generated feature is rounded to (the counts are whole already)."""


def _applicants(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    """The applicant and loan features drawn independently of the price, in draw order."""
    age = np.clip(rng.normal(42, 12, n), 18, 95)
    income = np.clip(rng.lognormal(10.8, 0.55, n), 6_000, 4e6)
    employment_years = np.clip(rng.gamma(2.0, 3.5, n), 0, np.maximum(age - 17, 0))
    debt_to_income = np.clip(rng.gamma(2.2, 0.17, n), 0, 8)
    credit_limit = np.clip(income * rng.uniform(0.05, 0.6, n), 500, 9e5)
    credit_utilization = np.clip(rng.beta(2.0, 3.5, n) * 1.3, 0, 1.9)
    open_accounts = rng.poisson(6, n).astype(np.float64)
    delinquencies_2y = rng.poisson(0.35 + 0.8 * (credit_utilization > 0.9), n).astype(np.float64)
    months_since_delinquency = np.where(
        delinquencies_2y == 0, 240.0, np.clip(rng.exponential(14, n), 0, 239).round()
    )
    return {
        "age": age,
        "income": income,
        "employment_years": employment_years,
        "debt_to_income": debt_to_income,
        "credit_limit": credit_limit,
        "credit_utilization": credit_utilization,
        "open_accounts": open_accounts,
        "delinquencies_2y": delinquencies_2y,
        "months_since_delinquency": months_since_delinquency,
        "loan_amount": np.clip(income * rng.uniform(0.05, 0.9, n), 1_000, 1.5e6),
        "loan_term_months": rng.choice([12.0, 24.0, 36.0, 48.0, 60.0, 72.0], n),
        "inquiries_6m": rng.poisson(1.2, n).astype(np.float64),
        "savings_balance": np.clip(rng.lognormal(8.5, 1.4, n) * (income / 50_000), 0, 9e6),
        "residence_years": np.clip(rng.gamma(1.6, 4.0, n), 0, 70),
    }


def _pricing(rng: np.random.Generator, f: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The offered interest rate and the payment's share of income."""
    # Risk-based pricing: the offered rate already carries part of the signal, as in real books.
    base_risk = 1.2 * f["debt_to_income"] + 1.5 * f["credit_utilization"]
    base_risk = base_risk + 0.35 * f["delinquencies_2y"]
    n = len(base_risk)
    interest_rate = np.clip(0.04 + 0.03 * base_risk + rng.normal(0, 0.02, n), 0.01, 0.45)
    monthly_rate = interest_rate / 12
    monthly_payment = (
        f["loan_amount"] * monthly_rate / (1 - (1 + monthly_rate) ** (-f["loan_term_months"]))
    )
    payment_to_income = np.clip(monthly_payment / (f["income"] / 12), 0, 4.5)
    return {"interest_rate": interest_rate, "payment_to_income": payment_to_income}


def _defaults(rng: np.random.Generator, f: dict[str, np.ndarray]) -> np.ndarray:
    """Who defaults: a logistic model of the features, an interaction and unexplained noise."""
    never = f["delinquencies_2y"] == 0
    logit = (
        -3.4
        + 1.1 * (f["debt_to_income"] - 0.37)
        + 1.7 * (f["credit_utilization"] - 0.5)
        + 0.45 * f["delinquencies_2y"]
        - 0.012 * (f["months_since_delinquency"] - 240) * (~never)
        + 0.18 * f["inquiries_6m"]
        - 0.35 * (np.log1p(f["income"]) - 10.8)
        - 0.03 * (f["employment_years"] - 7)
        - 0.012 * (f["age"] - 42)
        + 1.4 * f["payment_to_income"]
        - 0.12 * (np.log1p(f["savings_balance"]) - 8.5)
        + 0.9 * (f["credit_utilization"] > 0.95) * (f["delinquencies_2y"] > 0)  # interaction
        + rng.normal(0, 0.6, len(never))  # what no feature explains
    )
    return (rng.uniform(0, 1, len(never)) < 1 / (1 + np.exp(-logit))).astype(np.int64)


SENSITIVE_STREAM = 0x5E
"""Second word of the sensitive attribute's seed: a stream of its own, so adding the attribute
left every other column's values as they were."""
BIASED_GROUP = 0
"""The group (:data:`schema.SENSITIVE_GROUPS` code) whose records the biased variant skews."""
BIAS_SHIFT: dict[str, float] = {"debt_to_income": 0.6, "credit_utilization": 0.5}
"""What the biased variant adds to that group's recorded features (clipped to the schema): more
debt and utilization than they have, the two strongest signals of the default model; it also
lets a model single the group out without ever seeing the attribute (a proxy)."""
BIAS_RELABEL = 0.4
"""Share of that group's repaid loans the biased variant records as defaults (a biased history
of outcomes, e.g. earlier write-offs for one group)."""


def _skewed(
    rng: np.random.Generator,
    columns: dict[str, np.ndarray],
    defaulted: np.ndarray,
    chosen: np.ndarray,
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """The biased variant: ``columns`` with :data:`BIAS_SHIFT` added to the ``chosen`` rows'
    recorded features, and :data:`BIAS_RELABEL` of their repaid loans recorded as defaults."""
    out = dict(columns)
    for name, shift in BIAS_SHIFT.items():
        top = schema.BY_NAME[name].maximum
        out[name] = np.where(chosen, np.minimum(columns[name] + shift, top), columns[name])
    relabel = chosen & (defaulted == 0) & (rng.uniform(0, 1, len(defaulted)) < BIAS_RELABEL)
    return out, np.where(relabel, 1, defaulted).astype(np.int64)


IDENTITY_STREAM = 0x1D
"""Second word of the identity columns' seed (``[seed, IDENTITY_STREAM]``): a stream of its own."""


def _identities(rng: np.random.Generator, age: pd.Series) -> dict[str, list[str]]:
    """Raw identifier columns (see :func:`generate`) drawn from ``rng`` only."""
    from pipelines.privacy import synthetic

    return synthetic.identities(rng, age.to_numpy(), EPOCH.year)


def write_table(
    frame: pd.DataFrame, path: str | Path, *, metadata: dict[str, Any] | None = None
) -> str:
    """Write ``frame`` as Parquet (no index) and return the file's SHA-256.

    Args:
        frame: The table.
        path: The file (parents created).
        metadata: Added to the file's key-value metadata, each value as JSON (the ingest step's
            pseudonymization report travels with the table this way).
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    if metadata is None:
        frame.to_parquet(target, index=False, engine="pyarrow", compression="zstd")
        return sha256_file(target)
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(frame, preserve_index=False)
    extra = {k.encode(): json.dumps(v, sort_keys=True).encode() for k, v in metadata.items()}
    table = table.replace_schema_metadata({**(table.schema.metadata or {}), **extra})
    pq.write_table(table, target, compression="zstd")
    return sha256_file(target)


def table_metadata(path: str | Path, key: str) -> Any:
    """The JSON value :func:`write_table` stored under ``key`` in a Parquet file, or None."""
    import pyarrow.parquet as pq

    raw = (pq.read_schema(path).metadata or {}).get(key.encode())
    return None if raw is None else json.loads(raw)


def read_table(path: str | Path, *, dates: Sequence[str] = (schema.TIMESTAMP,)) -> pd.DataFrame:
    """Read a CSV (by suffix, :data:`CSV_SUFFIXES`) or Parquet (any other) table into a DataFrame.

    Args:
        path: The file.
        dates: CSV columns parsed as dates (Parquet keeps its own types): the event time of the
            credit-risk table by default, ``()`` for tables of another shape (the drift inputs).
    """
    import pandas as pd

    source = Path(path)
    if source.suffix.lower() in CSV_SUFFIXES:
        return pd.read_csv(source, parse_dates=list(dates) or None)
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
