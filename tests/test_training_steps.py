"""The training pipeline's library in-process, without a kfp.local run: validation, metrics,
the gate's fallback, reproducible training (bf16, DDP) and the feature store's S3 source."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from pipelines.training import data, gate, local_run, model, steps, train
from pipelines.training import preprocessing as features
from pipelines.training.registry import Registry

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]


# --------------------------------------------------------------------------- validation and metrics


def test_validation_lists_every_problem() -> None:
    from pipelines.training import validation

    frame = data.generate(300, 1)
    frame.loc[:4, "age"] = 150.0
    frame["defaulted"] = 0
    frame.loc[0, "customer_id"] = frame.loc[1, "customer_id"]
    problems = [str(p) for p in validation.check(frame)]
    assert problems == [
        "validate: column 'age' rule 'range': 5 of 300 values outside [18, 100] (min 18, max 150)",
        "validate: column 'customer_id' rule 'unique': 1 duplicated ids",
        "validate: column 'defaulted' rule 'class-balance': positive rate 0.0000 "
        "outside [0.02, 0.6]",
    ]
    assert validation.check(data.generate(300, 1)) == []


@settings(deadline=None)  # the first example pays for importing scipy.stats
@given(
    st.lists(st.tuples(st.integers(0, 1), st.integers(0, 6)), min_size=2, max_size=40).filter(
        lambda rows: len({label for label, _ in rows}) == 2
    )
)
def test_auc_matches_pairwise_definition(rows: list[tuple[int, int]]) -> None:
    """AUC = P(score of a positive > score of a negative) + 0.5 P(tie), ties included."""
    from scipy.stats import rankdata

    from pipelines.training import metrics

    labels = np.array([label for label, _ in rows])
    scores = np.array([score for _, score in rows], dtype=float)
    np.testing.assert_allclose(metrics.average_ranks(scores), rankdata(scores))
    pos, neg = scores[labels == 1], scores[labels == 0]
    pairs = [(p > n) + 0.5 * (p == n) for p in pos for n in neg]
    assert metrics.roc_auc(labels, scores) == pytest.approx(float(np.mean(pairs)))


# ----------------------------------------------------------------------------------------- the gate


def test_gate_falls_back_to_recorded_metrics(tmp_path: Path) -> None:
    registry = Registry(tmp_path)
    registry.register(
        "m", 4, {"model": {"weights_sha256": "x"}, "metrics": {"auc": 0.91}, "artifacts": {}}
    )
    registry.promote("m", 4)
    production = registry.production("m")
    assert production is not None
    auc, how = steps.production_auc(production, None)
    assert (auc, how) == (0.91, "recorded-metrics")
    decision = gate.decide(0.9, 0.5, 4, auc, how)
    assert not decision.passed and "(as recorded)" in decision.reason
    assert gate.decide(0.92, 0.5, 4, auc, how).passed
    assert gate.decide(0.905, 0.5, 4, auc, how, tolerance=0.01).passed


# ---------------------------------------------------------------------------------- reproducibility


def _small_problem(rows: int = 1500) -> tuple[np.ndarray, np.ndarray, features.FeatureSpec]:
    frame = data.generate(rows, 11)
    tr, te, cutoff = features.split_out_of_time(frame, 0.2)
    spec = features.fit(tr, te, cutoff)
    x, y = features.matrices(tr, spec)
    return x, y, spec


def test_training_is_reproducible() -> None:
    x, y, spec = _small_problem()
    params = train.TrainParams(seed=5, epochs=3)
    first = train.train(x, y, spec, params)
    second = train.train(x, y, spec, params)
    assert first.state.keys() == second.state.keys()
    for name in first.state:
        assert torch.equal(first.state[name], second.state[name]), name
    assert model.state_sha256(first.state) == model.state_sha256(second.state)
    assert first.history == second.history
    other = train.train(x, y, spec, train.TrainParams(seed=6, epochs=3))
    assert model.state_sha256(other.state) != model.state_sha256(first.state)
    assert first.info["device"] == "cpu" and first.info["distributed"] is False


def test_bf16_autocast_on_cpu() -> None:
    x, y, spec = _small_problem(600)
    result = train.train(x, y, spec, train.TrainParams(epochs=1, precision="bf16"))
    assert result.info["precision"] == "bfloat16"
    assert all(v.dtype in (torch.float32, torch.bool) for v in result.state.values())
    with pytest.raises(ValueError, match="fp16' needs CUDA"):
        train.resolve_runtime(train.TrainParams(precision="fp16"))


def test_ddp_with_two_cpu_workers() -> None:
    x, y, spec = _small_problem(600)
    result = train.train(x, y, spec, train.TrainParams(epochs=1, workers=2))
    assert result.info["distributed"] is True
    assert result.info["world_size"] == 2 and result.info["backend"] == "gloo"
    assert train.loss_is_finite(result.history)


# ------------------------------------------------------------------------------------ feature store


def test_default_run_materializes_where_sovml_features_looks(tmp_path: Path) -> None:
    from pipelines import features as feature_store

    assert local_run.default_feature_repo(local_run.DEFAULT_OUTPUT) == feature_store.DEFAULT_REPO
    assert feature_store.DEFAULT_REPO == ROOT / "build" / "feature_store"
    assert local_run.default_feature_repo(tmp_path) == tmp_path / "feature_store"


def test_s3_offline_source_is_written_with_the_registrys_encryption(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """s3:// writes pass the registry's ``s3_additional_kwargs`` (aws:kms) on every request."""
    import sys
    import types

    import fsspec.implementations.local as local_fs
    import pyarrow.parquet as pq

    from pipelines import features as fs

    seen: list[dict[str, str]] = []

    class RecordingS3(local_fs.LocalFileSystem):  # type: ignore[misc]
        def __init__(self, s3_additional_kwargs: dict[str, str]) -> None:
            super().__init__(auto_mkdir=True)
            seen.append(s3_additional_kwargs)

    monkeypatch.setitem(sys.modules, "s3fs", types.SimpleNamespace(S3FileSystem=RecordingS3))
    rows = fs.write_source(
        data.generate(20, 1),
        f"s3://{tmp_path}/data/credit_features.parquet",
        {"ServerSideEncryption": "aws:kms"},
    )
    assert rows == 20 and seen == [{"ServerSideEncryption": "aws:kms"}]
    assert pq.read_table(tmp_path / "data" / "credit_features.parquet").num_rows == 20
