"""``sovml drift`` on random tables and arguments: an error never looks like drift.

Random small reference/current tables (numeric, huge, non-finite, string, boolean, mixed,
all-missing and datetime columns; empty tables; renamed columns; CSV or Parquet) and random
thresholds and statistics go through the real ``sovml`` app. Whatever the input: the exit code
is 0, 1 or 2; 1 only when the table marks a drifted feature and the last line asks to retrain;
0 only when it marks none and the last line says so; 2 always with one ``error:`` line and
nothing on stdout; never a traceback.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from infra.cli.app import app

runner = CliRunner()
NAMES = ("a", "b", "c")
KINDS = ("normal", "huge", "nonfinite", "ints", "strings", "bools", "mixed", "missing", "dates")
# Mostly meaningful thresholds, so that many runs reach a decision; any float otherwise.
THRESHOLDS = st.one_of(
    st.sampled_from([0.05, 0.2, 0.5, 1.0, 1e300]),
    st.sampled_from([0.2, 0.8, 1e300]),
    st.floats(allow_nan=True, allow_infinity=True),
)
STATISTICS = st.sampled_from(["psi", "ks", "js", "w1", "PSI", "mean"])


@st.composite
def column(draw: st.DrawFn, kind: str, rows: int) -> pd.Series:
    """``rows`` values of one kind; ``nonfinite`` mixes NaN and +-inf with numbers."""
    if kind == "normal":
        values = draw(st.lists(st.floats(-3, 3), min_size=rows, max_size=rows))
    elif kind == "huge":
        big = st.sampled_from([1.7e308, -1.7e308, 1.79e308, -1e308, 0.0, 1e-300])
        values = draw(st.lists(big, min_size=rows, max_size=rows))
    elif kind == "nonfinite":
        odd = st.sampled_from([np.nan, np.inf, -np.inf, 1.0, 2.0])
        values = draw(st.lists(odd, min_size=rows, max_size=rows))
    elif kind == "ints":
        values = draw(st.lists(st.integers(-5, 5), min_size=rows, max_size=rows))
    elif kind == "strings":
        values = draw(st.lists(st.sampled_from(["x", "y", "z"]), min_size=rows, max_size=rows))
    elif kind == "bools":
        values = draw(st.lists(st.booleans(), min_size=rows, max_size=rows))
    elif kind == "mixed":
        label = st.sampled_from([1, 2, "x", "y", None])
        return pd.Series(draw(st.lists(label, min_size=rows, max_size=rows)), dtype=object)
    elif kind == "dates":
        return pd.Series(pd.to_datetime(draw(st.lists(st.integers(0, 10**9), min_size=rows,
                                                      max_size=rows)), unit="s"))  # fmt: skip
    else:
        values = [np.nan] * rows
    return pd.Series(values)


@st.composite
def tables(draw: st.DrawFn) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A reference and a window of 0 to 25 rows and 0 to 3 columns.

    Mostly the same columns of the same kinds (so that many runs get to a decision), sometimes
    a column of another kind, sometimes columns of their own.
    """
    names = draw(st.lists(st.sampled_from(NAMES), min_size=0, max_size=3, unique=True))
    kinds = [draw(st.sampled_from(KINDS)) for _ in names]
    ref_rows, cur_rows = draw(st.integers(0, 25)), draw(st.integers(0, 25))
    ref = pd.DataFrame({n: draw(column(k, ref_rows)) for n, k in zip(names, kinds, strict=True)})
    shape = draw(st.sampled_from(["same", "same", "same", "other kind", "own columns"]))
    if shape == "own columns":
        names = draw(st.lists(st.sampled_from(NAMES), min_size=0, max_size=3, unique=True))
        kinds = [draw(st.sampled_from(KINDS)) for _ in names]
    elif shape == "other kind" and names:
        kinds[draw(st.integers(0, len(kinds) - 1))] = draw(st.sampled_from(KINDS))
    cur = pd.DataFrame({n: draw(column(k, cur_rows)) for n, k in zip(names, kinds, strict=True)})
    return ref, cur


def write(frame: pd.DataFrame, path: Path) -> Path:
    """``frame`` as CSV or Parquet (by suffix); Parquet falls back to CSV for mixed objects."""
    if path.suffix == ".parquet":
        try:
            frame.to_parquet(path, index=False)
            return path
        except Exception:  # pyarrow refuses object columns of mixed types
            path = path.with_suffix(".csv")
    frame.to_csv(path, index=False)
    return path


def table_rows(stdout: str) -> list[str]:
    """The ``drifted`` cell of each body row of the printed table."""
    return [line.split("│")[-2].strip() for line in stdout.splitlines() if line.startswith("│")]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    tables(),
    st.sampled_from([".csv", ".parquet"]),
    THRESHOLDS,
    STATISTICS,
    st.sampled_from(["ok", "ok", "ok", "folder", "under-file"]),
)
def test_drift_never_confuses_errors_with_drift(
    pair: tuple[pd.DataFrame, pd.DataFrame],
    suffix: str,
    threshold: float,
    statistic: str,
    html: str,
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        ref_path = write(pair[0], root / f"ref{suffix}")
        cur_path = write(pair[1], root / f"cur{suffix}")
        report = {"ok": root / "out" / "r.html", "folder": root, "under-file": ref_path / "r.html"}
        args = ["drift", str(ref_path), str(cur_path), "--html", str(report[html])]
        args += ["--threshold", repr(threshold), "--statistic", statistic]
        result = runner.invoke(app, args)
        output = result.output
        event(f"exit {result.exit_code}")
        assert result.exception is None or isinstance(result.exception, SystemExit), output
        assert "Traceback" not in output and result.exit_code in (0, 1, 2), output
        if result.exit_code == 2:
            assert result.stdout == "", output
            assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1, output
            return
        assert result.stderr == "", output
        assert html == "ok" and report["ok"].is_file(), output
        drifted = table_rows(result.stdout)
        last = result.stdout.splitlines()[-1]
        assert drifted and set(drifted) <= {"yes", "no"}, output
        if result.exit_code == 1:
            assert "yes" in drifted and last.endswith("exceeds threshold -> retrain"), output
        else:
            assert "yes" not in drifted and last == "no retraining needed", output
