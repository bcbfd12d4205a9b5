"""Per-feature drift of one table against another, and the retraining decision drift leads to.

Columns are paired by name and classified by :mod:`pipelines.monitoring.kinds`; a kind that
differs between the two tables, an unsupported kind or a reference column with no value is a
:class:`kernels.drift.DriftError` (bad input), never drift. Numeric columns get PSI, KS, JS and W1
from :func:`kernels.drift.drift`; categorical and boolean columns get
:func:`kernels.drift.categorical_drift`. A feature drifts when the chosen statistic exceeds the
threshold (:func:`kernels.drift.check_threshold` says which thresholds are meaningful);
categorical columns are judged by PSI over categories (``psi``, and ``ks`` or ``w1``, which have
no categorical form, against :data:`CATEGORICAL_PSI_THRESHOLD` in the last two cases) or by JS over
categories (``js``). A column with no value at all in the window also counts as drifted.
Retraining is due when any feature drifts (:func:`decide`): ``sovml drift`` and the hourly drift
job take the same decision.

Values: NaN (and an empty cell, None, NA) is missing, as in the kernels. +-inf in a numeric
column is bad input (:class:`DriftError` naming the table, the column and the count): in a file
it is an overflowed or mis-written value, and counting it as missing would hide that. Any finite
float64 is valid, up to +-1.8e308 (the kernels never overflow); an integer too large for float64
is bad input.
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
    check_threshold,
    drift,
)
from pipelines.monitoring.kinds import NUMERIC, match_columns
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
    """``numeric``, ``categorical`` or ``boolean`` (:mod:`pipelines.monitoring.kinds`)."""
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
    name: str,
    reference: pd.Series,
    current: pd.Series,
    threshold: float,
    statistic: str,
    kind: str = "categorical",
) -> tuple[FeatureRow, CategoricalDrift | None]:
    """One categorical column's row, and its kernel result (None when the window has no value)."""
    if current.notna().sum() == 0:
        # Like an empty numeric feature: nothing to compare, which is itself a drift.
        return FeatureRow(name, kind, *([math.nan] * 5), 1.0, math.nan, True), None
    cat = categorical_drift(reference.to_numpy(), current.to_numpy())
    value = cat.js if statistic == "js" else cat.psi
    limit = threshold if statistic in ("psi", "js") else CATEGORICAL_PSI_THRESHOLD
    stats = (cat.psi, math.nan, cat.js, math.nan, cat.p_value)  # no KS or W1 for categories
    row = FeatureRow(name, kind, *stats, cat.missing_fraction_cur, value, value > limit)
    return row, cat


def compare_tables(
    ref_df: pd.DataFrame,
    cur_df: pd.DataFrame,
    threshold: float = DEFAULT_THRESHOLD,
    statistic: str = DEFAULT_STATISTIC,
    names: tuple[str, str] = ("table", "table"),
) -> Comparison:
    """Every column of ``cur_df`` against the same column of ``ref_df``.

    ``names`` say where the reference and the window came from (file paths), for the messages of
    the :class:`DriftError` raised for a bad threshold or statistic, a schema or kind mismatch,
    an unsupported column, a reference column with no value, or an infinite or too large value.
    """
    check_threshold(threshold, statistic)
    if len(ref_df) == 0 or len(cur_df) == 0:
        side = "reference" if len(ref_df) == 0 else "window"
        raise DriftError(f"empty {side}: {names[0] if len(ref_df) == 0 else names[1]}: 0 rows")
    columns = match_columns(ref_df, cur_df, *names)
    numeric = [c for c in columns if c.kind == NUMERIC]
    rows: list[FeatureRow] = []
    evidence: dict[str, NumericSample | CategoricalDrift] = {}
    if numeric:
        feature_names = [c.name for c in numeric]
        ref_values = _as_float(ref_df, [c.ref_label for c in numeric], feature_names, names[0])
        cur_values = _as_float(cur_df, [c.cur_label for c in numeric], feature_names, names[1])
        profile = build_profile(ref_values, feature_names)
        res = drift(profile, cur_values, feature_names=feature_names, allow_empty_features=True)
        for j, row in enumerate(numeric_rows(res, threshold, statistic)):
            rows.append(row)
            if row.drifted:
                col = cur_values[:, j]
                evidence[row.name] = NumericSample(profile.values(j), col[np.isfinite(col)])
    for c in columns:
        if c.kind == NUMERIC:
            continue
        ref_col, cur_col = ref_df[c.ref_label], cur_df[c.cur_label]
        row, cat = categorical_row(c.name, ref_col, cur_col, threshold, statistic, c.kind)
        rows.append(row)
        if row.drifted and cat is not None:
            evidence[c.name] = cat
    order = {c.name: i for i, c in enumerate(columns)}
    rows.sort(key=lambda r: order[r.name])
    return Comparison(tuple(rows), evidence, statistic, threshold, len(ref_df), len(cur_df))


def compare_files(
    reference: Path,
    current: Path,
    threshold: float = DEFAULT_THRESHOLD,
    statistic: str = DEFAULT_STATISTIC,
) -> Comparison:
    """:func:`compare_tables` of two Parquet/CSV files; :class:`DriftError` for any bad input."""
    check_threshold(threshold, statistic)
    ref_df, cur_df = read_pair(reference, current)
    return compare_tables(ref_df, cur_df, threshold, statistic, (str(reference), str(current)))


def _as_float(
    frame: pd.DataFrame, labels: list[object], names: list[str], source: str
) -> np.ndarray:
    """The numeric columns as a float64 matrix; :class:`DriftError` for a non-finite value.

    Missing values (NaN, None, pandas NA) become NaN, which the kernels treat as missing.
    """
    out = np.empty((len(frame), len(labels)), dtype=np.float64)
    for j, (label, name) in enumerate(zip(labels, names, strict=True)):
        try:
            # astype turns nullable integers' <NA> into NaN.
            out[:, j] = frame[label].astype("float64").to_numpy()
        except (ArithmeticError, TypeError, ValueError) as exc:
            # A Python int or Decimal beyond float64, or a signalling Decimal NaN.
            raise DriftError(
                f"{source}: column {name!r} has a value that is no float64 number ({exc})"
            ) from exc
    infinite = np.isinf(out).sum(axis=0)
    bad = [f"column {names[j]!r} has {int(infinite[j])}" for j in np.flatnonzero(infinite)]
    if bad:
        raise DriftError(
            f"{source}: {', '.join(bad)} infinite value(s) (+-inf); drift needs finite numbers "
            "(leave a cell empty for a missing value)"
        )
    return out
