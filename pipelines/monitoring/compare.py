"""Per-feature drift of one table against another, and the retraining decision drift leads to.

Numeric columns get PSI, KS, JS and W1 from :func:`kernels.drift.drift`; other columns (strings,
categories, booleans) get :func:`kernels.drift.categorical_drift`. A feature drifts when the chosen
statistic exceeds the threshold; categorical columns are judged by PSI over categories
(``psi``, and ``ks`` or ``w1``, which have no categorical form, against
:data:`CATEGORICAL_PSI_THRESHOLD` in the last two cases) or by JS over categories (``js``). A column
with no value at all in the window also counts as drifted. Retraining is due when any feature
drifts (:func:`decide`): ``sovml drift`` and the hourly drift job take the same decision.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from kernels.drift import (
    CategoricalDrift,
    DriftError,
    DriftResult,
    build_profile,
    categorical_drift,
    check_statistic,
    drift,
)
from pipelines.monitoring.tables import read_pair

if TYPE_CHECKING:
    import pandas as pd

DEFAULT_THRESHOLD = 0.2
"""A feature drifts when its statistic exceeds this, unless told otherwise."""
DEFAULT_STATISTIC = "psi"
"""The statistic the decision uses unless told otherwise; the drift job always uses it."""
CATEGORICAL_PSI_THRESHOLD = 0.2
"""Categorical columns have no KS or W1; under those statistics they are judged by PSI against
the conventional "significant shift" level instead of a threshold meant for another scale."""


@dataclass(frozen=True)
class FeatureRow:
    """One feature's line in the table and the report."""

    name: str
    """Column name."""
    kind: str
    """``numeric`` or ``categorical``."""
    psi: float
    """PSI (over bins, or over categories)."""
    ks: float
    """KS statistic (NaN for a categorical column)."""
    js: float
    """Jensen-Shannon distance (over bins, or over categories)."""
    w1: float
    """Wasserstein-1 distance (NaN for a categorical column)."""
    chi2_p: float
    """Chi-square p-value (NaN for a numeric column)."""
    nan_fraction_cur: float
    """Missing fraction of the window."""
    value: float
    """The statistic the decision uses."""
    drifted: bool
    """Whether this feature drifted."""


@dataclass(frozen=True)
class NumericSample:
    """A drifted numeric feature's finite values on both sides, for the report's histogram."""

    reference: np.ndarray
    """Finite reference values."""
    current: np.ndarray
    """Finite window values."""


@dataclass(frozen=True)
class Decision:
    """What the per-feature verdicts decide: retraining when any feature drifted."""

    drifted: tuple[str, ...]
    """The drifted features, in row order."""
    features: int
    """How many features were compared."""

    @property
    def retrain(self) -> bool:
        """Whether retraining is due."""
        return bool(self.drifted)

    def summary(self) -> str:
        """The decision in one line."""
        if not self.drifted:
            return "no retraining needed"
        return (
            f"drift on {len(self.drifted)} of {self.features} features exceeds threshold -> retrain"
        )


def decide(rows: Sequence[FeatureRow]) -> Decision:
    """The retraining decision of a comparison's rows."""
    return Decision(tuple(r.name for r in rows if r.drifted), len(rows))


@dataclass(frozen=True)
class Comparison:
    """Every feature of a window compared with its reference, in the reference's column order."""

    rows: tuple[FeatureRow, ...]
    """One row per column."""
    evidence: dict[str, NumericSample | CategoricalDrift]
    """What the report plots for each drifted feature: numeric features first, then categorical."""
    statistic: str
    """The statistic the decision used."""
    threshold: float
    """The threshold it was compared with."""
    ref_rows: int
    """Rows of the reference."""
    cur_rows: int
    """Rows of the window."""

    @property
    def decision(self) -> Decision:
        """The retraining decision."""
        return decide(self.rows)


def numeric_rows(result: DriftResult, threshold: float, statistic: str) -> list[FeatureRow]:
    """One row per feature of a kernel result; empty features count as drifted."""
    values = result.statistic(statistic)
    drifted = result.drifted(threshold, statistic)
    return [
        FeatureRow(
            name=name,
            kind="numeric",
            psi=result.psi[j],
            ks=result.ks[j],
            js=result.js[j],
            w1=result.w1[j],
            chi2_p=math.nan,
            nan_fraction_cur=result.nan_fraction_cur[j],
            value=values[j],
            drifted=bool(drifted[j]),
        )
        for j, name in enumerate(result.feature_names)
    ]


def categorical_row(
    name: str, reference: pd.Series, current: pd.Series, threshold: float, statistic: str
) -> tuple[FeatureRow, CategoricalDrift | None]:
    """One categorical column's row, and its kernel result (None when the window has no value)."""
    if current.notna().sum() == 0:
        # Like an empty numeric feature: nothing to compare, which is itself a drift.
        return FeatureRow(name, "categorical", *([math.nan] * 5), 1.0, math.nan, True), None
    cat = categorical_drift(reference.to_numpy(), current.to_numpy())
    value = cat.js if statistic == "js" else cat.psi
    limit = threshold if statistic in ("psi", "js") else CATEGORICAL_PSI_THRESHOLD
    stats = (cat.psi, math.nan, cat.js, math.nan, cat.p_value)  # no KS or W1 for categories
    row = FeatureRow(name, "categorical", *stats, cat.missing_fraction_cur, value, value > limit)
    return row, cat


def split_columns(ref: pd.DataFrame, cur: pd.DataFrame) -> tuple[list[str], list[str]]:
    """Numeric and categorical columns; :class:`DriftError` naming expected vs got on a mismatch."""
    expected, got = [str(c) for c in ref.columns], [str(c) for c in cur.columns]
    if expected != got:
        missing = [c for c in expected if c not in got]
        extra = [c for c in got if c not in expected]
        raise DriftError(
            f"schema mismatch: expected columns {expected}, got {got} "
            f"(missing {missing}, unexpected {extra})"
        )
    numeric = [c for c in ref.columns if _is_numeric(ref[c])]
    categorical = [c for c in ref.columns if c not in numeric]
    wrong = [c for c in numeric if not _is_numeric(cur[c])]
    if wrong:
        raise DriftError(f"schema mismatch: columns numeric in reference but not current: {wrong}")
    return [str(c) for c in numeric], [str(c) for c in categorical]


def compare_tables(
    ref_df: pd.DataFrame,
    cur_df: pd.DataFrame,
    threshold: float = DEFAULT_THRESHOLD,
    statistic: str = DEFAULT_STATISTIC,
) -> Comparison:
    """Every column of ``cur_df`` against the same column of ``ref_df``."""
    numeric, categorical = split_columns(ref_df, cur_df)
    rows: list[FeatureRow] = []
    evidence: dict[str, NumericSample | CategoricalDrift] = {}
    if numeric:
        profile = build_profile(_as_float(ref_df[numeric]), numeric)
        cur_values = _as_float(cur_df[numeric])
        res = drift(profile, cur_values, feature_names=numeric, allow_empty_features=True)
        for j, row in enumerate(numeric_rows(res, threshold, statistic)):
            rows.append(row)
            if row.drifted:
                col = cur_values[:, j]
                evidence[row.name] = NumericSample(profile.values(j), col[np.isfinite(col)])
    for name in categorical:
        row, cat = categorical_row(name, ref_df[name], cur_df[name], threshold, statistic)
        rows.append(row)
        if row.drifted and cat is not None:
            evidence[name] = cat
    order = {name: i for i, name in enumerate(ref_df.columns.astype(str))}
    rows.sort(key=lambda r: order[r.name])
    return Comparison(tuple(rows), evidence, statistic, threshold, len(ref_df), len(cur_df))


def compare_files(
    reference: Path,
    current: Path,
    threshold: float = DEFAULT_THRESHOLD,
    statistic: str = DEFAULT_STATISTIC,
) -> Comparison:
    """:func:`compare_tables` of two Parquet/CSV files; :class:`DriftError` for any bad input."""
    check_statistic(statistic)
    ref_df, cur_df = read_pair(reference, current)
    return compare_tables(ref_df, cur_df, threshold, statistic)


def _is_numeric(series: pd.Series) -> bool:
    """Numeric but not boolean (booleans are categories)."""
    import pandas as pd

    return pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)


def _as_float(frame: pd.DataFrame) -> np.ndarray:
    """The frame as a float64 matrix."""
    # astype turns nullable integers' <NA> into NaN, which the kernel treats as missing.
    return frame.astype("float64").to_numpy()
