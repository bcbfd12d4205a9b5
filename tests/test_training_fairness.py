"""The fairness gate: the sensitive attribute, fairlearn's figures against a hand computation,
the gate's refusals, and real trained models on the fair and the biased data."""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pipelines.training import data, fairness, gate, schema, steps
from pipelines.training import preprocessing as features_lib

pytestmark = pytest.mark.slow


# ------------------------------------------------------------------------------ the attribute


def test_sensitive_attribute_is_declared_but_never_a_feature() -> None:
    assert schema.SENSITIVE in schema.BY_NAME
    assert schema.SENSITIVE not in schema.FEATURES
    frame = data.generate(400, 3)
    assert set(frame[schema.SENSITIVE].unique()) == set(schema.SENSITIVE_GROUPS)
    spec = features_lib.fit(*features_lib.split_out_of_time(frame, 0.2))
    assert schema.SENSITIVE not in spec.features


def test_biased_variant_skews_one_group_only() -> None:
    fair, biased = data.generate(3000, 5), data.generate(3000, 5, biased=True)
    skewed = fair[schema.SENSITIVE] == data.BIASED_GROUP
    pd_testing = pytest.importorskip("pandas.testing")
    # The other group's rows are the same bytes; the attribute itself is the same.
    pd_testing.assert_frame_equal(fair[~skewed], biased[~skewed])
    for name, shift in data.BIAS_SHIFT.items():
        gap = (biased.loc[skewed, name] - fair.loc[skewed, name]).mean()
        assert 0.5 * shift < gap <= shift, name
    # Some repaid loans became defaults; no default became a repaid loan.
    assert (biased.loc[skewed, schema.LABEL] >= fair.loc[skewed, schema.LABEL]).all()
    assert biased.loc[skewed, schema.LABEL].mean() > fair.loc[skewed, schema.LABEL].mean() + 0.1


# ----------------------------------------------------------------------------- the figures


def test_figures_match_a_hand_computation() -> None:
    # group 0 (female): labels 1 1 0 0, scores .9 .4 .6 .1 -> decisions 1 0 1 0
    # group 1 (male):   labels 1 0 0 0, scores .8 .7 .2 .3 -> decisions 1 1 0 0
    labels = np.array([1, 1, 0, 0, 1, 0, 0, 0])
    scores = np.array([0.9, 0.4, 0.6, 0.1, 0.8, 0.7, 0.2, 0.3])
    groups = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    got = fairness.evaluate(labels, scores, groups)
    female, male = got["by_group"]["female"], got["by_group"]["male"]
    # selection 2/4 vs 2/4; TPR 1/2 vs 1/1; FPR 1/2 vs 1/3
    assert female["selection_rate"] == male["selection_rate"] == 0.5
    assert (female["true_positive_rate"], male["true_positive_rate"]) == (0.5, 1.0)
    assert (female["false_positive_rate"], male["false_positive_rate"]) == (0.5, 0.333333)
    assert got["demographic_parity_difference"] == 0.0
    assert got["equalized_odds_difference"] == 0.5  # max(|.5 - 1|, |.5 - 1/3|)
    # accuracy: 2/4 vs 3/4; AUC: female pairs (.9>.6 .9>.1 .4<.6 .4>.1) = 3/4, male 3/3 = 1
    assert (female["accuracy"], male["accuracy"]) == (0.5, 0.75)
    assert (female["auc"], male["auc"]) == (0.75, 1.0)
    assert female["rows"] == male["rows"] == 4
    assert got["missing_groups"] == [] and got["attribute"] == schema.SENSITIVE


def test_one_class_group_and_missing_group_are_reported_not_hidden() -> None:
    got = fairness.evaluate(np.array([0, 0, 1, 0]), np.array([0.7, 0.2, 0.9, 0.1]), np.zeros(4))
    assert got["missing_groups"] == ["male"]
    got = fairness.evaluate(
        np.array([0, 0, 1, 0]), np.array([0.7, 0.2, 0.9, 0.1]), np.array([0, 0, 1, 1])
    )
    female = got["by_group"]["female"]
    assert female["true_positive_rate"] is None and female["auc"] is None
    with pytest.raises(ValueError, match=r"codes \[7\] are not declared groups"):
        fairness.evaluate(np.array([0, 1]), np.array([0.1, 0.9]), np.array([0, 7]))


# --------------------------------------------------------------------------- the refusals


def _figures(parity: float, odds: float) -> dict[str, Any]:
    rates = {"accuracy": 0.8, "auc": 0.8, "rows": 100}
    return {
        "attribute": "gender",
        "demographic_parity_difference": parity,
        "equalized_odds_difference": odds,
        "missing_groups": [],
        "by_group": {
            "female": {
                **rates,
                "selection_rate": 0.3,
                "true_positive_rate": 0.7,
                "false_positive_rate": 0.2,
            },
            "male": {
                **rates,
                "selection_rate": 0.3 - parity,
                "true_positive_rate": 0.7 - odds,
                "false_positive_rate": 0.2 - odds / 2,
            },
        },
    }


def test_gate_names_metric_groups_and_threshold() -> None:
    limits = gate.DEFAULT_LIMITS
    decision = gate.decide(0.85, 0.7, fairness=_figures(0.2, 0.05), limits=limits)
    assert not decision.passed
    assert decision.reason == (
        "demographic parity difference over gender 0.2000 exceeds the threshold 0.1000: "
        "selection rate of group female 0.3000 vs group male 0.1000"
    )
    decision = gate.decide(0.85, 0.7, fairness=_figures(0.05, 0.3), limits=limits)
    assert not decision.passed
    assert decision.reason == (
        "equalized odds difference over gender 0.3000 exceeds the threshold 0.1500: "
        "true positive rate of group female 0.7000 vs group male 0.4000"
    )
    # Judged figures and limits travel in the decision (and so in the lineage record).
    assert decision.to_dict()["fairness"]["limits"] == {
        "max_parity_difference": 0.1,
        "max_odds_difference": 0.15,
    }
    passed = gate.decide(0.85, 0.7, fairness=_figures(0.1, 0.15), limits=limits)
    assert passed.passed and "fairness within thresholds" in passed.reason
    # The AUC floor still comes first; without limits fairness is not judged.
    assert "below the threshold" in gate.decide(0.6, 0.7, fairness=_figures(0.5, 0.5)).reason
    assert gate.decide(0.85, 0.7).fairness is None


def test_gate_refuses_what_it_cannot_judge() -> None:
    limits = gate.DEFAULT_LIMITS
    assert not gate.decide(0.85, 0.7, fairness=None, limits=limits).passed
    missing = {**_figures(0.0, 0.0), "missing_groups": ["male"]}
    assert gate.fairness_problem(missing, limits) == (
        "cannot judge fairness over gender: no test rows for group(s) male"
    )
    one_class = _figures(0.0, 0.0)
    one_class["by_group"]["male"]["true_positive_rate"] = None
    assert gate.fairness_problem(one_class, limits) == (
        "cannot judge equalized odds over gender: group male has no defaults in the test rows"
    )
    undefined = {**_figures(0.0, 0.0), "demographic_parity_difference": None}
    assert "undefined exceeds" in str(gate.fairness_problem(undefined, limits))
    for bad in (-0.1, 1.5, math.nan):
        with pytest.raises(ValueError, match="max_parity_difference must be in"):
            gate.FairnessLimits(bad, 0.1)


# ------------------------------------------------------------------ real models, both variants


def _evaluated(tmp_path: Path, biased: bool) -> dict[str, Any]:
    """A real model trained and evaluated by the steps on fair or biased data (no Feast)."""
    table = tmp_path / "table.parquet"
    data.write_table(data.generate(3000, 11, biased=biased), table)
    paths = {n: str(tmp_path / n) for n in ("train.parquet", "test.parquet", "spec.json")}
    steps.features(str(table), *paths.values(), 0.2)
    params = {
        "seed": 11,
        "epochs": 4,
        "batch_size": 128,
        "learning_rate": 0.003,
        "weight_decay": 0.0001,
        "hidden_units": "64,32",
        "precision": "fp32",
        "workers": 1,
    }
    steps.train(paths["train.parquet"], paths["spec.json"], str(tmp_path / "model"), params)
    limits = {
        "max_parity_difference": gate.DEFAULT_LIMITS.max_parity_difference,
        "max_odds_difference": gate.DEFAULT_LIMITS.max_odds_difference,
    }
    return steps.evaluate(
        paths["test.parquet"],
        paths["spec.json"],
        str(tmp_path / "model"),
        str(tmp_path / "report.json"),
        "",
        "m",
        0.7,
        0.0,
        limits=limits,
    )


def test_fair_data_passes_and_biased_data_is_refused(tmp_path: Path) -> None:
    fair = _evaluated(tmp_path / "fair", biased=False)
    assert fair["gate"]["passed"], fair["gate"]["reason"]
    # Measured 0.042 here; the gate's 0.10 leaves room for a few rows decided otherwise elsewhere.
    assert fair["fairness"]["demographic_parity_difference"] < 0.1
    biased = _evaluated(tmp_path / "biased", biased=True)
    assert biased["metrics"]["auc"] >= 0.7  # accurate enough: only fairness refuses it
    assert not biased["gate"]["passed"]
    assert biased["gate"]["reason"].startswith("demographic parity difference over gender"), biased[
        "gate"
    ]["reason"]
    assert "of group female" in biased["gate"]["reason"]  # the skewed group, scored riskier
    assert biased["gate"]["fairness"]["figures"] == biased["fairness"]


def test_biased_run_is_refused_end_to_end(tmp_path: Path) -> None:
    """``sovml pipeline run training --local --biased``: a real kfp.local run (about 35 s here)
    whose gate refuses the model on fairness, so nothing is exported or registered."""
    from typer.testing import CliRunner

    from infra.cli.app import app

    args = ["pipeline", "run", "training", "--local", "--biased", "--fail-on-reject"]
    args += ["--rows", "2000", "--seed", "7", "--epochs", "3", "--min-auc", "0.7"]
    # Two tuning trials: the tuner is tested elsewhere; here only the gate's refusal matters.
    args += ["--tune-trials", "2", "--output-dir", str(tmp_path / "out")]
    result = CliRunner().invoke(app, args, env={"COLUMNS": "300"})
    assert result.exit_code == 1, result.output
    assert "gate: REJECTED: demographic parity difference over gender" in result.output
    assert "exceeds the threshold 0.1000: selection rate of group female" in result.output
    assert "export               skipped (gate rejected the model)" in result.output
    assert re.search(r"demographic_parity_difference +│ +0\.[1-9]", result.output)
    assert not list((tmp_path / "out" / "registry").glob("*/versions/*.json"))
