"""pipelines.monitoring: the per-column comparison, its one decision rule and the input readers."""

from __future__ import annotations

import decimal
import os
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
from pipelines.monitoring.drift_job import main as drift_job_main
from pipelines.monitoring.kinds import column_kind
from pipelines.monitoring.report import output_problem, svg_histogram, write_report
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
    comparison = compare_tables(ref, cur, threshold=1.0, statistic="ks")
    x, c = comparison.rows
    assert (x.kind, c.kind) == ("numeric", "categorical")
    assert not x.drifted and c.drifted and c.value == c.psi > CATEGORICAL_PSI_THRESHOLD
    assert list(comparison.evidence) == ["c"]
    assert comparison.decision == Decision(("c",), 2)
    assert comparison.decision.summary() == "drift on 1 of 2 features exceeds threshold -> retrain"


def test_numeric_evidence_holds_the_finite_values() -> None:
    ref, cur = _tables()
    cur.loc[:9, "x"] = np.nan
    comparison = compare_tables(ref, cur, threshold=1e-12, statistic="w1")
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


@pytest.mark.parametrize(
    ("values", "dtype", "kind"),
    [
        ([1.5, None], "float64", "numeric"),
        ([1, None], "Int64", "numeric"),
        ([decimal.Decimal("1.5"), None], object, "numeric"),
        ([True, False], bool, "boolean"),
        ([True, None], object, "boolean"),
        (["a", None], object, "categorical"),
        (["a", "b"], "category", "categorical"),
        ([1, "a"], object, "categorical"),
        ([None, None], object, "empty"),
        ([np.nan, np.nan], "float64", "empty"),
        ([pd.Timestamp(0), None], "datetime64[ns]", "datetime"),
        ([pd.Timedelta(1), None], "timedelta64[ns]", "duration"),
        ([1 + 2j, 3j], complex, "complex"),
        ([b"a", b"b"], object, "bytes"),
        ([[1], [2]], object, "nested"),
        ([{"a": 1}, "x"], object, "nested"),
    ],
)
def test_column_kinds(values: list, dtype: object, kind: str) -> None:
    assert column_kind(pd.Series(values, dtype=dtype)) == kind


def test_kind_mismatch_is_a_schema_error_not_drift() -> None:
    ref = pd.DataFrame({"x": ["1", "2", "x"] * 20, "y": [1.0, 2.0, 3.0] * 20})
    cur = pd.DataFrame({"x": [1.0, 2.0, 3.0] * 20, "y": [True, False, True] * 20})
    with pytest.raises(DriftError) as info:
        compare_tables(ref, cur, names=("r.csv", "c.csv"))
    assert str(info.value) == (
        "schema mismatch: column 'x' is categorical in reference r.csv but numeric in current "
        "c.csv; schema mismatch: column 'y' is numeric in reference r.csv but boolean in current "
        "c.csv"
    )


def test_unsupported_and_valueless_reference_columns_are_refused() -> None:
    ref = pd.DataFrame({"t": pd.to_datetime([0, 1, 2]), "b": [np.nan] * 3, "x": [1.0, 2, 3]})
    with pytest.raises(DriftError) as info:
        compare_tables(ref, ref.copy(), names=("r.parquet", "c.parquet"))
    message = str(info.value)
    assert message.startswith("unsupported column(s) in reference r.parquet: 't' (datetime); ")
    assert "column(s) with no value in reference r.parquet (all missing): 'b'" in message


def test_infinite_values_are_bad_input_naming_file_column_and_count() -> None:
    ref, cur = _tables(50)
    cur.loc[:2, "x"] = [np.inf, -np.inf, np.nan]
    with pytest.raises(DriftError) as info:
        compare_tables(ref, cur, names=("r.csv", "c.csv"))
    assert str(info.value) == (
        "c.csv: column 'x' has 2 infinite value(s) (+-inf); drift needs finite numbers "
        "(leave a cell empty for a missing value)"
    )
    big = pd.DataFrame({"x": pd.Series([10**400, 1], dtype=object), "c": ["a", "b"]})
    with pytest.raises(DriftError, match=r"r\.csv: column 'x' has a value that is no float64"):
        compare_tables(big, big, names=("r.csv", "c.csv"))


def test_columns_pair_by_name_and_mixed_labels_compare() -> None:
    ref = pd.DataFrame({"m": pd.Series([1] * 50 + ["a"] * 50, dtype=object), "x": range(100)})
    cur = pd.DataFrame({"x": range(100), "m": pd.Series(["a"] * 90 + [1] * 10, dtype=object)})
    comparison = compare_tables(ref, cur, statistic="psi")
    m, x = comparison.rows
    assert (m.name, m.kind, m.drifted) == ("m", "categorical", True)
    assert (x.name, x.kind, x.drifted) == ("x", "numeric", False)
    with pytest.raises(DriftError, match=r"no column in common: reference r has \['m', 'x'\]"):
        compare_tables(ref, cur.rename(columns={"x": "z", "m": "n"}), names=("r", "c"))


def test_output_problems_are_found_before_computing(tmp_path: Path, monkeypatch) -> None:
    data = tmp_path / "data.csv"
    data.write_text("a\n1\n")
    fifo = tmp_path / "fifo.html"
    os.mkfifo(fifo)
    assert output_problem(tmp_path) == "is a folder, not a file"
    assert output_problem(tmp_path / "..") == "names a folder, not a file"
    assert output_problem(fifo) == "is not a regular file"
    assert output_problem(data / "sub" / "r.html") == f"{data} is not a folder"
    assert output_problem(data, (tmp_path / "x.csv", data)) == (
        f"is the input file {data}; the report would overwrite it"
    )
    assert output_problem(tmp_path / "new" / "deeper" / "r.html") is None
    assert output_problem(data) is None
    # Root passes every permission check, so the read-only cases answer through os.access.
    monkeypatch.setattr(os, "access", lambda path, mode: False)
    assert output_problem(data) == "is not writable"
    assert output_problem(tmp_path / "r.html") == f"folder {tmp_path} is not writable"


def test_a_failed_report_write_leaves_the_old_report(tmp_path: Path, monkeypatch) -> None:
    ref, cur = _tables(200)
    comparison = compare_tables(ref, cur)
    path = tmp_path / "report.html"
    path.write_text("old")

    def full(src: str, dst: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", full)
    with pytest.raises(OSError, match="No space left"):
        write_report(path, comparison, Path("r.csv"), Path("c.csv"))
    assert path.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == [path.name]
    monkeypatch.undo()
    write_report(path, comparison, Path("r.csv"), Path("c.csv"))
    assert "<!DOCTYPE html>" in path.read_text()
    assert (path.stat().st_mode & 0o777) == 0o666 & ~_umask()


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@pytest.mark.parametrize(
    ("ref", "cur", "first"),
    [
        (np.linspace(-1, 1, 300) * 1.7e308, np.linspace(0, 1, 300) * 1.7e308, "-1.67e+308"),
        (np.full(5, 1e20), np.full(5, 1e20), "1e+20"),  # constant: widened around it
        (np.array([1.0, np.nextafter(1.0, 2)]), np.array([1.0]), "1"),  # 1 float step
    ],
)
def test_histograms_of_extreme_samples(ref, cur, first: str | None) -> None:
    svg = svg_histogram(ref, cur, "x")
    assert svg.startswith("<svg") and "nan" not in svg and "inf" not in svg
    if first:
        assert f'font-size="10">{first}</text>' in svg


def test_the_job_refuses_thresholds_that_switch_detection_off(capsys) -> None:
    for bad in ("nan", "inf", "0", "-1"):
        with pytest.raises(SystemExit) as info:
            drift_job_main(
                ["--model", "m", "--reference", "r", "--window", "w", "--threshold", bad]
            )
        assert info.value.code == 2
        assert "--threshold: threshold" in capsys.readouterr().err
