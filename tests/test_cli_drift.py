"""``drift_command`` through typer's CliRunner on small CSV and Parquet files."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

from infra.cli.drift import drift_command

app = typer.Typer(add_completion=False)


@app.callback()
def _group() -> None:
    """A group, so the command is invoked by name as under ``sovml``."""


app.command("drift")(drift_command)
runner = CliRunner()


def frame(rng: np.random.Generator, rows: int, shift: float = 0.0) -> pd.DataFrame:
    """Two normal columns, an integer column with ties and a categorical one."""
    cats = ["red", "green", "blue"]
    probs = [0.5, 0.3, 0.2] if shift == 0 else [0.1, 0.3, 0.6]
    return pd.DataFrame(
        {
            "a": rng.normal(shift, 1.0, rows),
            "b": rng.normal(5.0, 2.0, rows),
            "n": rng.poisson(3.0, rows),
            "colour": rng.choice(cats, rows, p=probs),
        }
    )


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    rng = np.random.default_rng(42)
    root = tmp_path_factory.mktemp("drift")
    ref, same, shifted = frame(rng, 3000), frame(rng, 2000), frame(rng, 2000, shift=1.0)
    out = {}
    for name, df in (("ref", ref), ("same", same), ("shifted", shifted)):
        df.to_csv(root / f"{name}.csv", index=False)
        df.to_parquet(root / f"{name}.parquet", index=False)
        out[f"{name}.csv"] = root / f"{name}.csv"
        out[f"{name}.parquet"] = root / f"{name}.parquet"
    out["root"] = root
    return out


def run(*args: object) -> tuple[int, str]:
    result = runner.invoke(app, ["drift", *map(str, args)])
    return result.exit_code, result.output


def run_window(files: dict[str, Path], window: str, ext: str) -> tuple[int, str, str]:
    """Exit code, output and HTML report of ``window`` against the reference, both ``.ext``."""
    html = files["root"] / f"{window}-{ext}.html"
    code, out = run(files[f"ref.{ext}"], files[f"{window}.{ext}"], "--html", html)
    return code, out, html.read_text()


@pytest.mark.parametrize("ext", ["csv", "parquet"])
def test_unshifted_window_needs_no_retraining(files: dict[str, Path], ext: str) -> None:
    code, out, text = run_window(files, "same", ext)
    assert code == 0, out
    assert "no retraining needed" in out
    for col in ("PSI", "KS", "JS", "W1", "drifted"):
        assert col in out
    assert "<svg" not in text and "no retraining needed" in text
    assert "colour" in text and "<table>" in text


@pytest.mark.parametrize("ext", ["csv", "parquet"])
def test_shifted_window_asks_for_retraining(files: dict[str, Path], ext: str) -> None:
    code, out, text = run_window(files, "shifted", ext)
    assert code == 1, out
    assert "drift on 2 of 4 features exceeds threshold -> retrain" in out
    assert text.count("<svg") == 2
    assert 'data-feature="a"' in text and 'data-feature="colour"' in text
    assert 'data-feature="b"' not in text
    assert text.startswith("<!DOCTYPE html>") and "<script" not in text
    for chunk in text.split("<svg")[1:]:
        svg = ET.fromstring("<svg" + chunk.split("</svg>")[0] + "</svg>")  # well-formed
        assert len(svg.findall("{http://www.w3.org/2000/svg}rect")) >= 8  # bars + legend


def test_statistic_and_threshold_options(files: dict[str, Path]) -> None:
    html = files["root"] / "ks.html"
    code, out = run(files["ref.csv"], files["shifted.csv"], "--statistic", "ks", "--html", html)
    assert code == 1 and "-> retrain" in out
    code, out = run(
        files["ref.csv"], files["shifted.csv"], "--statistic", "w1", "--threshold", "5",
        "--html", html,
    )  # fmt: skip
    # W1 of the mean shift is ~1 (< 5), but the categorical column still drifts by PSI.
    assert code == 1 and "drift on 1 of 4 features" in out


def test_bad_input_exits_2(files: dict[str, Path]) -> None:
    root = files["root"]
    html = root / "bad.html"
    code, out = run(files["ref.csv"], files["same.csv"], "--statistic", "mean", "--html", html)
    assert code == 2 and "unknown statistic" in out
    pd.read_csv(files["same.csv"]).drop(columns=["b"]).to_csv(root / "narrow.csv", index=False)
    code, out = run(files["ref.csv"], root / "narrow.csv", "--html", html)
    assert code == 2 and "schema mismatch" in out and "missing ['b']" in out
    pd.read_csv(files["same.csv"]).iloc[:0].to_csv(root / "empty.csv", index=False)
    code, out = run(files["ref.csv"], root / "empty.csv", "--html", html)
    assert code == 2 and "empty window" in out and "empty.csv" in out
    code, out = run(files["ref.csv"], root / "missing.csv", "--html", html)
    assert code == 2 and "no such file" in out
    assert not html.exists()


def test_all_missing_column_counts_as_drift(files: dict[str, Path]) -> None:
    root = files["root"]
    df = pd.read_csv(files["same.csv"])
    df["b"] = np.nan
    df.to_csv(root / "nan_b.csv", index=False)
    html = root / "nan.html"
    code, out = run(files["ref.csv"], root / "nan_b.csv", "--html", html)
    assert code == 1 and "drift on 1 of 4 features" in out
    assert "100.0%" in html.read_text()
