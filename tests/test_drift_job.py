"""The monitoring CronJob's logic on local files: scores, exposition, the retraining trigger."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from kernels.drift import build_profile
from pipelines.monitoring import drift_job

NAMES = ("income", "age", "balance")


def _setup(tmp_path: Path, shift: float) -> tuple[str, str]:
    rng = np.random.default_rng(0)
    ref = rng.normal(size=(5000, 3))
    build_profile(ref, NAMES).save(tmp_path / "reference_profile.npz")
    window = tmp_path / "window"
    window.mkdir()
    cur = rng.normal(size=(4000, 3))
    cur[:, 0] += shift
    pd.DataFrame(cur, columns=list(NAMES)).iloc[:2000].to_parquet(window / "a.parquet")
    pd.DataFrame(cur, columns=list(NAMES)).iloc[2000:].to_csv(window / "b.csv", index=False)
    return str(tmp_path / "reference_profile.npz"), str(window)


def test_shifted_feature_requests_retraining(tmp_path: Path) -> None:
    ref, window = _setup(tmp_path, shift=1.5)
    calls: list[tuple[str, str, str]] = []
    res = drift_job.run(
        "credit-risk",
        ref,
        window,
        0.2,
        kfp_endpoint="http://kfp",
        submit=lambda *a: calls.append(a),
    )
    assert res.rows == 4000 and res.drifted == ("income",)
    assert res.retrain_requested and calls == [("http://kfp", "training", "credit-risk")]
    text = drift_job.exposition("credit-risk", res.result, NAMES)
    assert 'sovml_drift_psi{model="credit-risk",feature="income"}' in text


def test_stable_window_requests_nothing(tmp_path: Path) -> None:
    ref, window = _setup(tmp_path, shift=0.0)
    calls: list[object] = []
    res = drift_job.run(
        "m", ref, window, 0.2, kfp_endpoint="http://kfp", submit=lambda *a: calls.append(a)
    )
    assert res.drifted == () and not res.retrain_requested and not calls


def test_main_reports_a_missing_window(tmp_path: Path, capsys: object) -> None:
    ref, _ = _setup(tmp_path, shift=0.0)
    empty = tmp_path / "empty"
    empty.mkdir()
    assert drift_job.main(["--model", "m", "--reference", ref, "--window", str(empty)]) == 1
