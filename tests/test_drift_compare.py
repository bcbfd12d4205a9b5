"""pipelines.monitoring: the per-column comparison, its one decision rule and the input readers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from kernels.drift import DriftError, build_profile, drift
from pipelines.monitoring.compare import (
    CATEGORICAL_PSI_THRESHOLD,
    Decision,
    NumericSample,
    compare_files,
    compare_tables,
    decide,
    numeric_rows,
)
from pipelines.monitoring.tables import read_input


def _tables(rows: int = 2000) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(1)
    ref = pd.DataFrame(
        {"x": rng.normal(0, 1, rows), "c": rng.choice(["a", "b"], rows, p=[0.7, 0.3])}
    )
    cur = pd.DataFrame(
        {"x": rng.normal(0.05, 1, rows), "c": rng.choice(["a", "b"], rows, p=[0.3, 0.7])}
    )
    return ref, cur


def test_categorical_columns_use_their_own_threshold_under_ks() -> None:
    ref, cur = _tables()
    comparison = compare_tables(ref, cur, threshold=10.0, statistic="ks")
    x, c = comparison.rows
    assert (x.kind, c.kind) == ("numeric", "categorical")
    assert not x.drifted and c.drifted and c.value == c.psi > CATEGORICAL_PSI_THRESHOLD
    assert list(comparison.evidence) == ["c"]
    assert comparison.decision == Decision(("c",), 2)
    assert comparison.decision.summary() == "drift on 1 of 2 features exceeds threshold -> retrain"


def test_numeric_evidence_holds_the_finite_values() -> None:
    ref, cur = _tables()
    cur.loc[:9, "x"] = np.nan
    comparison = compare_tables(ref, cur, threshold=0.0, statistic="w1")
    sample = comparison.evidence["x"]
    assert isinstance(sample, NumericSample)
    assert sample.reference.size == len(ref) and sample.current.size == len(cur) - 10


def test_the_job_and_the_command_share_the_decision() -> None:
    rng = np.random.default_rng(2)
    ref, cur = rng.normal(size=(1000, 2)), rng.normal(size=(1000, 2))
    cur[:, 1] += 2.0
    result = drift(build_profile(ref, ("a", "b")), cur)
    decision = decide(numeric_rows(result, 0.2, "psi"))
    assert decision.drifted == ("b",) and decision.retrain
    assert not decide(numeric_rows(result, 1e9, "psi")).retrain
    assert decide([]).summary() == "no retraining needed"


def test_inputs_are_checked_before_reading(tmp_path: Path) -> None:
    (tmp_path / "t.json").write_text("{}")
    with pytest.raises(DriftError, match=r"unsupported file type '\.json'"):
        read_input(tmp_path / "t.json")
    (tmp_path / "t.parquet").write_text("not parquet")
    with pytest.raises(DriftError, match="cannot read"):
        read_input(tmp_path / "t.parquet")
    with pytest.raises(DriftError, match="unknown statistic 'mean'"):
        compare_files(tmp_path / "missing.csv", tmp_path / "missing.csv", statistic="mean")
