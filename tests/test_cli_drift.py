"""``drift_command`` through typer's CliRunner on small CSV and Parquet files."""

from __future__ import annotations

import errno
import os
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
# A fixed, wide terminal: the table's columns must not depend on how long the temporary
# paths it prints are (longer under pytest-xdist's per-worker folders), nor on the caller's tty.
runner = CliRunner(env={"COLUMNS": "200"})


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
    # An exception other than the exit itself would be a traceback for a user.
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result.exit_code, result.output


def run_split(*args: object) -> tuple[int, str, str]:
    """Exit code, stdout and stderr of one ``drift`` run."""
    result = runner.invoke(app, ["drift", *map(str, args)])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result.exit_code, result.stdout, result.stderr


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
    assert (
        code == 2
        and "error: --statistic: unknown statistic 'mean'; choose one of psi, ks, js, w1" in out
    )
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


def _csv(root: Path, name: str, **columns: object) -> Path:
    path = root / name
    pd.DataFrame(columns).to_csv(path, index=False)
    return path


def test_values_near_the_float64_limit(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    ref = _csv(tmp_path, "ref.csv", a=rng.uniform(-1, 1, 400) * 1.7e308)
    cur = _csv(tmp_path, "cur.csv", a=rng.uniform(0, 1, 400) * 1.7e308)
    html = tmp_path / "r.html"
    code, out, err = run_split(ref, cur, "--html", html)
    assert (code, err) == (1, "")
    assert out.splitlines()[-1] == "drift on 1 of 1 features exceeds threshold -> retrain"
    assert html.read_text().count("<svg") == 1
    # Half the mass 3.4e308 apart: W1 = 5.67e307, finite, below this threshold.
    ref = _csv(tmp_path, "ref2.csv", a=[-1.7e308, 1.7e308] * 30)
    cur = _csv(tmp_path, "cur2.csv", a=[-1.7e308, 1.7e308, 1.7e308] * 30)
    for threshold, code_want in (("1e307", 1), ("1e308", 0)):
        code, out, err = run_split(ref, cur, "--statistic", "w1", "--threshold", threshold,
                                   "--html", html)  # fmt: skip
        assert (code, err) == (code_want, ""), out
        assert "5.667e+307" in out


@pytest.mark.parametrize(
    ("threshold", "statistic", "message"),
    [
        ("nan", "psi", "threshold nan is out of range for psi: use a finite number > 0"),
        ("inf", "PSI", "threshold inf is out of range for psi: use a finite number > 0"),
        ("-inf", "w1", "threshold -inf is out of range for w1: use a finite number > 0"),
        ("0", "psi", "threshold 0 is out of range for psi: use a finite number > 0"),
        ("1.5", "ks", "threshold 1.5 is out of range for ks: use a number in (0, 1]"),
        ("0.9", "js", "threshold 0.9 is out of range for js: use a number in (0, 0.832555]"),
    ],
)
def test_thresholds_that_switch_detection_off_exit_2(
    files: dict[str, Path], threshold: str, statistic: str, message: str
) -> None:
    html = files["root"] / "threshold.html"
    code, out, err = run_split(files["ref.csv"], files["shifted.csv"], "--threshold", threshold,
                               "--statistic", statistic, "--html", html)  # fmt: skip
    assert (code, out, err) == (2, "", f"error: --threshold: {message}\n")
    assert not html.exists()


def test_unwritable_report_paths_exit_2_before_computing(files: dict[str, Path]) -> None:
    root = files["root"]
    fifo = root / "report.fifo"
    os.mkfifo(fifo)
    ref = files["ref.csv"]
    cases = {
        root: "is a folder, not a file",
        fifo: "is not a regular file",
        ref / "r.html": f"{ref} is not a folder",
        files["same.csv"]: f"is the input file {files['same.csv']}; the report would overwrite it",
        root / ("a" * 300 + ".html"): "cannot be used (File name too long)",
    }
    for html, why in cases.items():
        code, out, err = run_split(ref, files["same.csv"], "--html", html)
        assert (code, out, err) == (2, "", f"error: --html {html}: {why}\n")
    assert pd.read_csv(files["same.csv"]).shape == (2000, 4)  # the input is intact


def test_a_report_that_cannot_be_written_exits_3_without_a_decision(
    files: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    def full(src: str, dst: str) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "replace", full)
    html = files["root"] / "full" / "r.html"
    code, out, err = run_split(files["ref.csv"], files["shifted.csv"], "--html", html)
    assert (code, out) == (3, "")
    assert err == f"error: cannot write the report {html}: No space left on device\n"
    assert list(html.parent.iterdir()) == []  # no half-written report or temporary file


def test_unexpected_errors_exit_3(files: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    import pipelines.monitoring.compare as compare

    def broken(*args: object) -> None:
        raise RuntimeError("boom\nsecond line")

    monkeypatch.setattr(compare, "compare_files", broken)
    html = files["root"] / "boom.html"
    code, out, err = run_split(files["ref.csv"], files["same.csv"], "--html", html)
    assert (code, out) == (3, "")
    assert err == "error: internal error while comparing: RuntimeError: boom\n"


def test_input_errors_exit_2_with_a_specific_message(files: dict[str, Path]) -> None:
    root = files["root"] / "inputs"
    root.mkdir()
    ref = files["ref.csv"]
    json, parquet, ragged, zero = (root / n for n in ("t.json", "b.parquet", "r.csv", "z.csv"))
    json.write_text("{}")
    parquet.write_bytes(b"PAR1 not really")
    ragged.write_text("a,b\n1,2\n1,2,3,4\n")
    zero.write_bytes(b"")
    num = _csv(root, "num.csv", colour=[1.0, 2.0, 3.0], a=1.0, b=2.0, n=3)
    inf = _csv(root, "inf.csv", a=[1.0, np.inf, -np.inf], b=1.0, n=1, colour="red")
    other = _csv(root, "other.csv", x=[1.0, 2.0])
    no_value = _csv(root, "no_value.csv", a=[np.nan] * 3, b=1.0, n=1, colour="red")
    header_only = _csv(root, "header.csv", a=[], b=[], n=[], colour=[])
    long = "a" * 300 + ".csv"
    cases = [
        (ref, root / "missing.csv", f"{root / 'missing.csv'}: no such file"),
        (root / long, ref, f"{root / long}: cannot be used (File name too long)"),
        (ref, root, f"{root}: is a folder; give a .parquet or .csv file"),
        (ref, json, f"{json}: unsupported file type '.json'; use .parquet or .csv"),
        (ref, parquet, f"{parquet}: cannot read ("),
        (ref, ragged, f"{ragged}: cannot read (Error tokenizing data."),
        (ref, zero, f"{zero}: cannot read (No columns to parse from file)"),
        (ref, header_only, f"empty window: {header_only}"),
        (header_only, ref, f"empty reference: {header_only}"),
        (ref, other, f"schema mismatch: no column in common: reference {ref} has"),
        (ref, num, f"schema mismatch: column 'colour' is categorical in reference {ref} but "
                   f"numeric in current {num}"),
        (ref, inf, f"{inf}: column 'a' has 2 infinite value(s) (+-inf)"),
        (no_value, ref, f"column(s) with no value in reference {no_value} (all missing): 'a'"),
    ]  # fmt: skip
    html = root / "r.html"
    for reference, current, message in cases:
        code, out, err = run_split(reference, current, "--html", html)
        assert (code, out) == (2, ""), (current, err)
        assert err.startswith(f"error: {message}") and err.count("\n") == 1, err
    assert not html.exists()
