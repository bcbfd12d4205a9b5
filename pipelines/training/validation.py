"""Data validation: schema, nulls, ranges, uniqueness and class balance.

Every problem names the column and the rule, in the form the pipeline prints and the CLI shows::

    validate: column 'income' rule 'not-null': 1000 of 1000 values are NaN

All problems are collected before failing, so one run shows everything that is wrong.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pipelines.training import schema

if TYPE_CHECKING:
    import pandas as pd

ERROR_MARKER = "SOVML-PIPELINE-ERROR: "
"""Prefix of the line a failing step prints, so a runner can pick the reason out of the logs."""


@dataclass(frozen=True)
class Problem:
    """One violated rule.

    Attributes:
        column: The column concerned (or ``*`` for table-level rules).
        rule: Rule id: ``present``, ``dtype``, ``not-null``, ``range``, ``unique``,
            ``allowed-values``, ``class-balance``, ``min-rows``.
        detail: What was found.
    """

    column: str
    rule: str
    detail: str

    def __str__(self) -> str:
        return f"validate: column {self.column!r} rule {self.rule!r}: {self.detail}"


class ValidationError(ValueError):
    """Raised when the data breaks at least one rule; ``problems`` lists them all."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


@dataclass(frozen=True)
class Rules:
    """Thresholds of the table-level rules.

    Attributes:
        min_rows: Fewest rows worth training on.
        min_positive_rate: Lowest acceptable share of label 1.
        max_positive_rate: Highest acceptable share of label 1.
    """

    min_rows: int = 200
    min_positive_rate: float = 0.02
    max_positive_rate: float = 0.6


def _fmt(value: float) -> str:
    return f"{value:g}"


def check(frame: pd.DataFrame, rules: Rules | None = None) -> list[Problem]:
    """Return every rule ``frame`` breaks (empty when the data is fine)."""
    rules = rules or Rules()
    problems: list[Problem] = []
    n = len(frame)
    if n < rules.min_rows:
        problems.append(Problem("*", "min-rows", f"{n} rows, at least {rules.min_rows} needed"))
    for col in schema.COLUMNS:
        problems.extend(_column_problems(frame, col))
    if schema.ENTITY in frame.columns:
        dupes = int(frame[schema.ENTITY].duplicated().sum())
        if dupes:
            problems.append(Problem(schema.ENTITY, "unique", f"{dupes} duplicated ids"))
    if schema.LABEL in frame.columns and not any(p.column == schema.LABEL for p in problems):
        problems.extend(_label_problems(frame[schema.LABEL], rules))
    return problems


def _column_problems(frame: pd.DataFrame, col: schema.Column) -> list[Problem]:
    """Presence, dtype, nulls and, for numbers, whole values and range of column ``col``."""
    import pandas as pd

    if col.name not in frame.columns:
        found = ", ".join(map(str, frame.columns[:8])) + (", ..." if frame.shape[1] > 8 else "")
        return [Problem(col.name, "present", f"column is missing (found: {found})")]
    series = frame[col.name]
    if col.kind == "datetime":
        if not pd.api.types.is_datetime64_any_dtype(series):
            return [Problem(col.name, "dtype", f"expected datetime, got {series.dtype}")]
    elif not pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series):
        return [Problem(col.name, "dtype", f"expected {col.kind}, got {series.dtype}")]
    problems: list[Problem] = []
    n = len(series)
    nulls = int(series.isna().sum())
    if nulls:
        what = "NaT" if col.kind == "datetime" else "NaN"
        problems.append(Problem(col.name, "not-null", f"{nulls} of {n} values are {what}"))
    if col.kind != "datetime":
        problems.extend(_value_problems(series, col))
    return problems


def _value_problems(series: pd.Series, col: schema.Column) -> list[Problem]:
    """Fractions in a whole-number column, infinite values and values outside the range."""
    import numpy as np

    problems: list[Problem] = []
    n = len(series)
    values = series.to_numpy(dtype=np.float64, na_value=np.nan)
    present = values[~np.isnan(values)]
    if col.kind == "int" and present.size and not np.all(np.mod(present, 1) == 0):
        problems.append(Problem(col.name, "dtype", "expected whole numbers, found fractions"))
    if not np.all(np.isfinite(present)):
        bad = int((~np.isfinite(present)).sum())
        problems.append(Problem(col.name, "range", f"{bad} of {n} values are infinite"))
        present = present[np.isfinite(present)]
    low = -np.inf if col.minimum is None else col.minimum
    high = np.inf if col.maximum is None else col.maximum
    outside = (present < low) | (present > high)
    if outside.any():
        bounds = f"[{_fmt(low)}, {_fmt(high)}]"
        problems.append(
            Problem(
                col.name,
                "range",
                f"{int(outside.sum())} of {n} values outside {bounds} "
                f"(min {_fmt(present.min())}, max {_fmt(present.max())})",
            )
        )
    return problems


def _label_problems(labels: pd.Series, rules: Rules) -> list[Problem]:
    """Labels other than 0 and 1, or a positive rate outside the rules' class balance."""
    odd = sorted(set(labels.dropna().unique().tolist()) - {0, 1})
    if odd:
        return [Problem(schema.LABEL, "allowed-values", f"labels must be 0 or 1, found {odd[:5]}")]
    if not len(labels):
        return []
    rate = float(labels.mean())
    if rules.min_positive_rate <= rate <= rules.max_positive_rate:
        return []
    return [
        Problem(
            schema.LABEL,
            "class-balance",
            f"positive rate {rate:.4f} outside [{_fmt(rules.min_positive_rate)}, "
            f"{_fmt(rules.max_positive_rate)}]",
        )
    ]


def summary(frame: pd.DataFrame) -> dict[str, Any]:
    """A small profile of a valid table, for the validation report."""
    stamps = frame[schema.TIMESTAMP]
    return {
        "rows": len(frame),
        "columns": list(map(str, frame.columns)),
        "positive_rate": float(frame[schema.LABEL].mean()),
        "event_time_min": stamps.min().isoformat(),
        "event_time_max": stamps.max().isoformat(),
        "feature_ranges": {
            name: [float(frame[name].min()), float(frame[name].max())] for name in schema.FEATURES
        },
    }


def validate(frame: pd.DataFrame, rules: Rules | None = None) -> dict[str, Any]:
    """Check ``frame`` and return its profile.

    Raises:
        ValidationError: With every problem found, one per line.
    """
    problems = check(frame, rules)
    if problems:
        raise ValidationError(problems)
    return summary(frame)
